// ControlThread: the one control thread of the process. One event loop: libcurl multi
// (HttpClient::Poll, woken by workers through curl_multi_wakeup), the CredentialService's
// timers and queues, and the credential cache's reclamation.
//
// Contract: construct and SetWorkers() before Start(); Stop() ends the loop and joins. Workers
// reach it only through broker() (core::CredentialBroker), which is thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "control/btp/credential_service.h"
#include "control/http_client.h"
#include "core/credential_cache.h"
#include "core/route.h"

namespace mailring::control {

class ControlThread {
 public:
  ControlThread(std::shared_ptr<const core::RouteTable> routes, core::CredentialCache* cache,
                CredentialServiceOptions options);
  ~ControlThread();
  ControlThread(const ControlThread&) = delete;
  ControlThread& operator=(const ControlThread&) = delete;

  core::CredentialBroker* broker() { return &credentials_; }
  const CredentialCounters& credential_counters() const { return credentials_.counters(); }
  void SetWorkers(std::vector<core::Worker*> workers);
  // Before Start(): more work for the loop (e.g. the Kubernetes control plane). A task returns
  // the MonotonicMs() time it wants to run again.
  void AddTask(std::function<int64_t(int64_t now_ms)> task);
  HttpClient* http() { return &http_; }
  CredentialService* credential_service() { return &credentials_; }
  void Start();
  void Stop();

 private:
  void Run();

  core::CredentialCache* cache_;
  HttpClient http_;
  CredentialService credentials_;
  std::vector<std::function<int64_t(int64_t)>> tasks_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace mailring::control
