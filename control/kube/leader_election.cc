#include "control/kube/leader_election.h"

#include <time.h>

#include <cstdio>

#include "core/log.h"
#include "proto/json_writer.h"
#include "proto/str_cat.h"
#include "simdjson.h"

namespace mailring::control {

std::string NowRfc3339Micro() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc;
  gmtime_r(&now.tv_sec, &utc);
  // Sized for any int fields (the compiler cannot know tm's ranges); a real date uses 27.
  char text[96];
  std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(now.tv_nsec / 1000));
  return text;
}

LeaderElection::LeaderElection(KubeClient* kube, LeaderElectionOptions options,
                               std::function<void(bool leader)> on_change)
    : kube_(kube), options_(std::move(options)), on_change_(std::move(on_change)) {}

std::string LeaderElection::LeaseJson(std::string_view resource_version,
                                      std::string_view acquire_time, int64_t transitions) const {
  const std::string now = NowRfc3339Micro();
  proto::JsonWriter json;
  json.BeginObject();
  json.StringField("apiVersion", "coordination.k8s.io/v1").StringField("kind", "Lease");
  json.Key("metadata").BeginObject().StringField("name", options_.lease_name);
  json.StringField("namespace", options_.namespace_name);
  if (!resource_version.empty()) json.StringField("resourceVersion", resource_version);
  json.EndObject();
  json.Key("spec").BeginObject().StringField("holderIdentity", options_.identity);
  json.IntField("leaseDurationSeconds", absl::ToInt64Seconds(options_.lease_duration));
  json.StringField("acquireTime", acquire_time.empty() ? std::string_view(now) : acquire_time);
  json.StringField("renewTime", now).IntField("leaseTransitions", transitions);
  json.EndObject().EndObject();
  return std::move(json).Take();
}

void LeaderElection::SetLeader(bool leader) {
  if (leader == leader_) return;
  leader_ = leader;
  MAILRING_LOG(kInfo, "leader election: ", options_.identity,
               leader ? " is now the leader (writes Services and status)"
                      : " is no longer the leader");
  if (on_change_) on_change_(leader);
}

int64_t LeaderElection::Tick(int64_t now_ms) {
  const int64_t retry_ms = absl::ToInt64Milliseconds(options_.retry_period);
  if (leader_ && now_ms - last_renew_ms_ > absl::ToInt64Milliseconds(options_.renew_deadline)) {
    // Could not renew in time: step down before another pod may legitimately take over.
    SetLeader(false);
  }
  if (in_flight_ || now_ms < next_attempt_ms_) return in_flight_ ? now_ms + retry_ms : next_attempt_ms_;
  in_flight_ = true;
  next_attempt_ms_ = now_ms + retry_ms;
  kube_->Get(mailring::StrCat("/apis/coordination.k8s.io/v1/namespaces/", options_.namespace_name,
                              "/leases/", options_.lease_name),
             [this](absl::StatusOr<KubeResponse> response) { OnRead(std::move(response)); });
  return next_attempt_ms_;
}

void LeaderElection::OnRead(absl::StatusOr<KubeResponse> response) {
  const int64_t now_ms = options_.now_ms();
  const std::string path = mailring::StrCat("/apis/coordination.k8s.io/v1/namespaces/",
                                            options_.namespace_name, "/leases");
  if (absl::IsNotFound(response.status())) {
    kube_->Create(path, LeaseJson("", "", 0),
                  [this](absl::StatusOr<KubeResponse> r) { OnWritten(std::move(r)); });
    return;
  }
  if (!response.ok()) {
    in_flight_ = false;
    MAILRING_LOG(kWarning, "leader election: reading the Lease failed: ",
                 response.status().message());
    return;
  }
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(response->body);
  simdjson::dom::element lease;
  if (parser.parse(padded).get(lease) != simdjson::SUCCESS) {
    in_flight_ = false;
    return;
  }
  std::string_view holder, renew, acquire, resource_version;
  // Absent or mistyped fields keep the value they start with (an unheld Lease has no holder).
  const auto read = [](auto result, auto& into) {
    if (std::move(result).get(into) != simdjson::SUCCESS) return;
  };
  read(lease.at_pointer("/spec/holderIdentity").get_string(), holder);
  read(lease.at_pointer("/spec/renewTime").get_string(), renew);
  read(lease.at_pointer("/spec/acquireTime").get_string(), acquire);
  read(lease.at_pointer("/metadata/resourceVersion").get_string(), resource_version);
  int64_t duration_s = 15, transitions = 0;
  read(lease.at_pointer("/spec/leaseDurationSeconds").get_int64(), duration_s);
  read(lease.at_pointer("/spec/leaseTransitions").get_int64(), transitions);
  if (holder != observed_holder_ || renew != observed_renew_time_) {
    observed_holder_ = std::string(holder);
    observed_renew_time_ = std::string(renew);
    observed_at_ms_ = now_ms;
  }
  observed_duration_ms_ = duration_s * 1000;
  observed_acquire_time_ = std::string(acquire);
  observed_transitions_ = transitions;
  const bool ours = holder == options_.identity;
  const bool expired = holder.empty() || now_ms > observed_at_ms_ + observed_duration_ms_;
  if (!ours && !expired) {
    in_flight_ = false;
    SetLeader(false);
    return;
  }
  kube_->Replace(mailring::StrCat(path, "/", options_.lease_name),
                 LeaseJson(resource_version, ours ? acquire : std::string_view(),
                           ours ? transitions : transitions + 1),
                 [this](absl::StatusOr<KubeResponse> r) { OnWritten(std::move(r)); });
}

void LeaderElection::OnWritten(absl::StatusOr<KubeResponse> response) {
  in_flight_ = false;
  if (response.ok()) {
    last_renew_ms_ = options_.now_ms();
    SetLeader(true);
    return;
  }
  // Another pod wrote first (a stale resourceVersion, or its create won); anything else: try
  // again next period.
  if (absl::IsAborted(response.status()) || absl::IsAlreadyExists(response.status())) {
    SetLeader(false);
  }
}

}  // namespace mailring::control
