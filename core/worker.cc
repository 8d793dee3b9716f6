#include "core/worker.h"

#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "proto/str_cat.h"
#include "core/completion.h"
#include "core/log.h"
#include "core/session.h"
#include "core/tcp_options.h"

namespace mailring::core {

namespace {

absl::StatusOr<int> OpenListener(const Route& route, const WorkerOptions& options) {
  const int fd =
      ::socket(route.listen.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return absl::InternalError(mailring::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  SetTcpOptions(fd, options);  // inherited by every accepted socket
  // One listener per worker on the same address: the kernel balances new connections.
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      ::bind(fd, route.listen.get(), route.listen.length) != 0 || ::listen(fd, 4096) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::UnavailableError(mailring::StrCat("cannot listen on ", route.listen.ToString(),
                                               " (route ", route.index, "): ",
                                               std::strerror(error)));
  }
  return fd;
}

}  // namespace

Worker::Worker(int index, std::shared_ptr<const RouteTable> routes, const WorkerOptions& options,
               WorkerServices services)
    : SessionHost(index, options, services), routes_(std::move(routes)) {}

Worker::~Worker() {
  Join();
  for (const auto& listener : listeners_) {
    if (listener->fd >= 0) ::close(listener->fd);
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

absl::Status Worker::Start(absl::Duration drain_timeout) {
  drain_timeout_ = drain_timeout;
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) return absl::InternalError(mailring::StrCat("eventfd: ", std::strerror(errno)));
  std::promise<absl::Status> ready;
  std::future<absl::Status> ready_future = ready.get_future();
  thread_ = std::thread([this, &ready] { Run(&ready); });
  absl::Status status = ready_future.get();
  if (!status.ok()) Join();
  return status;
}

void Worker::RequestDrain() {
  drain_requested_.store(true, std::memory_order_release);
  Wake();
}

void Worker::NotifyCredentials() {
  credentials_changed_.store(true, std::memory_order_release);
  Wake();
}

void Worker::Wake() {
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof(one));
}

void Worker::OnWake() {
  if (drain_requested_.load(std::memory_order_acquire)) BeginDrain();
  if (routes_changed_.exchange(false, std::memory_order_acq_rel)) ApplyRoutes();
  if (credentials_changed_.exchange(false, std::memory_order_acq_rel)) ResumeCredentialWaiters();
  ArmWake();
}

void Worker::WaitForCredentials(Session* session) { credential_waiters_.push_back(session); }

void Worker::ForgetCredentialWait(Session* session) {
  std::erase(credential_waiters_, session);
}

void Worker::ResumeCredentialWaiters() {
  // Sessions may park again (another key changed, not theirs) while we iterate: take the list.
  std::vector<Session*> waiters;
  waiters.swap(credential_waiters_);
  for (Session* session : waiters) session->OnCredentialsChanged();
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

absl::Status Worker::Setup() {
  if (absl::Status status = OpenRing(); !status.ok()) return status;
  if (absl::Status status = EnsureTlsContext(*routes_); !status.ok()) return status;
  for (const auto& route : *routes_) {
    absl::StatusOr<int> fd = OpenListener(*route, options_);
    if (!fd.ok()) return fd.status();
    auto listener = std::make_unique<Listener>();
    listener->route = route;
    listener->fd = *fd;
    listeners_.push_back(std::move(listener));
  }
  listening_.store(listeners_.size(), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status Worker::EnsureTlsContext(const RouteTable& routes) {
  if (tls_context_ != nullptr) return absl::OkStatus();
  const bool needs_tls = std::any_of(routes.begin(), routes.end(), [](const auto& route) {
    return route->tls != Route::Tls::kNone;
  });
  if (!needs_tls) return absl::OkStatus();
  TlsContextOptions tls_options;
  tls_options.ca_file = options_.ca_file;
  tls_options.aes_gcm_device = options_.tls_aes_ni;
  if (!options_.tls_resumption) tls_options.session_cache.max_destinations = 0;
  tls_options.take_over_records = options_.tls_record_takeover;
  absl::StatusOr<std::unique_ptr<TlsContext>> context = TlsContext::Create(tls_options);
  if (!context.ok()) return context.status();
  tls_context_ = *std::move(context);
  return absl::OkStatus();
}

void Worker::UpdateRoutes(std::shared_ptr<const RouteTable> routes) {
  {
    absl::MutexLock lock(&routes_mutex_);
    pending_routes_ = std::move(routes);
  }
  routes_changed_.store(true, std::memory_order_release);
  Wake();
}

void Worker::ApplyRoutes() {
  std::shared_ptr<const RouteTable> next;
  {
    absl::MutexLock lock(&routes_mutex_);
    next = std::move(pending_routes_);
  }
  if (next == nullptr || draining_) return;
  if (absl::Status status = EnsureTlsContext(*next); !status.ok()) {
    MAILRING_LOG(kError, "cannot serve TLS routes: ", status.message());
  }
  // Same listen address: the listener stays (no connection is refused) and new sessions get
  // the new route; sessions already open keep the route they started with.
  absl::flat_hash_map<std::string, std::shared_ptr<const Route>> wanted;
  for (const auto& route : *next) wanted.emplace(route->listen.ToString(), route);
  size_t opened = 0;
  size_t closed = 0;
  for (auto& listener : listeners_) {
    if (listener->retired) continue;
    auto it = wanted.find(listener->route->listen.ToString());
    if (it == wanted.end()) {
      RetireListener(listener.get());
      ++closed;
      continue;
    }
    listener->route = it->second;
    wanted.erase(it);
  }
  bool failed = false;
  for (auto& [address, route] : wanted) {
    absl::StatusOr<int> fd = OpenListener(*route, options_);
    if (!fd.ok()) {
      ++listen_failures_;
      failed = true;
      MAILRING_LOG(kError, fd.status().message(), "; trying again in 2s");
      continue;
    }
    auto listener = std::make_unique<Listener>();
    listener->route = route;
    listener->fd = *fd;
    ArmAccept(listener.get());
    listeners_.push_back(std::move(listener));
    ++opened;
  }
  std::erase_if(listeners_, [](const auto& listener) {
    return listener->retired && !listener->accepting;  // no completion can refer to it
  });
  routes_ = std::move(next);
  // A port may be busy for a while (e.g. taken as an ephemeral port by an outgoing connection):
  // the same table is applied again later, which opens only what is still missing.
  listen_retry_at_ms_ = failed ? now_ms_ + 2000 : 0;
  listening_.store(listeners_.size() - std::count_if(listeners_.begin(), listeners_.end(),
                                                     [](const auto& l) { return l->retired; }),
                   std::memory_order_relaxed);
  MAILRING_LOG(kInfo, "routes updated: ", opened, " listeners opened, ", closed, " closed, ",
               routes_->size(), " routes");
}

void Worker::RetireListener(Listener* listener) {
  listener->retired = true;
  if (listener->accepting) {
    // The multishot accept holds a reference to the socket: cancel it; the listener object
    // is freed when its final completion arrives (OnAccept).
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_cancel64(sqe, Tag(listener, Op::kAccept), 0);
    io_uring_sqe_set_data64(sqe, 0);
  }
  ::shutdown(listener->fd, SHUT_RDWR);
  ::close(listener->fd);
  listener->fd = -1;
}

void Worker::Run(std::promise<absl::Status>* ready) {
  SetLogThreadName(mailring::StrCat("w", index_));
  absl::Status status = Setup();
  const bool ok = status.ok();
  ready->set_value(std::move(status));  // `ready` dies with Start()'s frame after this
  if (!ok) {
    if (ring_ready_) CloseRing();
    return;
  }
  for (const auto& listener : listeners_) ArmAccept(listener.get());
  ArmWake();
  if (services().credentials != nullptr) services().credentials->SetOnline(index_, true);
  Loop();
  if (services().credentials != nullptr) services().credentials->SetOnline(index_, false);
  // All sessions are gone; release what the ring still references, then the ring.
  if (tls_context_ != nullptr) ReleaseThreadTlsCaches();
  CloseRing();
}

void Worker::ArmAccept(Listener* listener) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_multishot_accept(sqe, listener->fd, nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, Tag(listener, Op::kAccept));
  listener->accepting = true;
}

void Worker::ArmWake() {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
  io_uring_sqe_set_data64(sqe, Tag(this, Op::kWake));
}

void Worker::OnAccept(Listener* listener, const io_uring_cqe& cqe) {
  if (!(cqe.flags & IORING_CQE_F_MORE)) listener->accepting = false;
  if (listener->retired) {
    if (cqe.res >= 0) ::close(cqe.res);
    if (!listener->accepting) {
      std::erase_if(listeners_, [listener](const auto& l) { return l.get() == listener; });
    }
    return;
  }
  if (cqe.res >= 0) {
    if (draining_) {
      ::close(cqe.res);
    } else {
      void* storage = ::operator new(sizeof(Session), std::align_val_t(alignof(Session)));
      auto* session = new (storage) Session(this, listener->route, cqe.res, next_session_id_++);
      session->next_in_worker = sessions_;
      if (sessions_ != nullptr) sessions_->prev_in_worker = session;
      sessions_ = session;
      session->Start();
    }
  } else if (cqe.res != -ECANCELED) {
    accept_failures_.fetch_add(1, std::memory_order_relaxed);
    // EMFILE/ENFILE/ENOMEM: a multishot accept keeps failing as long as the condition lasts,
    // so stop it and try again in a second; connections meanwhile wait in the backlog.
    if (!listener->paused) {
      listener->paused = true;
      if (listener->accepting) {
        io_uring_sqe* sqe = GetSqe();
        io_uring_prep_cancel64(sqe, Tag(listener, Op::kAccept), 0);
        io_uring_sqe_set_data64(sqe, 0);
      }
      accept_retry_at_ms_ = now_ms_ + 1000;
      MAILRING_LOG(kWarning, "accept on ", listener->route->listen.ToString(),
                   " failed: ", std::strerror(-cqe.res), " (", counters().sessions_open.load(),
                   " sessions open on this worker); pausing accepts for 1s");
    }
    return;
  }
  if (!listener->accepting && !listener->paused && !draining_ && listener->fd >= 0) {
    ArmAccept(listener);
  }
}

void Worker::DestroySession(Session* session) {
  if (session->prev_in_worker != nullptr) {
    session->prev_in_worker->next_in_worker = session->next_in_worker;
  } else {
    sessions_ = session->next_in_worker;
  }
  if (session->next_in_worker != nullptr) {
    session->next_in_worker->prev_in_worker = session->prev_in_worker;
  }
  session->~Session();
  ::operator delete(session, std::align_val_t(alignof(Session)));
}

void Worker::ScheduleDestroy(Session* session) { to_destroy_.push_back(session); }

void Worker::DestroyScheduled() {
  // Destroying a session never schedules another, but keep the loop safe if it did.
  while (!to_destroy_.empty()) {
    std::vector<Session*> batch;
    batch.swap(to_destroy_);
    for (Session* session : batch) DestroySession(session);
  }
}

void Worker::BeginDrain() {
  if (draining_) return;
  draining_ = true;
  drain_deadline_ms_ = now_ms_ + absl::ToInt64Milliseconds(drain_timeout_);
  // Stop accepting: cancel the multishot accepts and stop listening, so that the kernel
  // refuses new connections instead of queueing them in a backlog nobody reads.
  for (const auto& listener : listeners_) {
    if (listener->retired) continue;
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_cancel_fd(sqe, listener->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, 0);
    ::shutdown(listener->fd, SHUT_RDWR);
  }
  io_uring_submit(&ring_);
  size_t open = 0;
  for (Session* s = sessions_; s != nullptr; s = s->next_in_worker) ++open;
  MAILRING_LOG(kInfo, "draining: stopped accepting, ", open, " sessions open, waiting up to ",
               absl::FormatDuration(drain_timeout_));
}

void Worker::Loop() {
  __kernel_timespec tick{};
  int64_t shutdown_started_ms = 0;
  // Bounded by the drain: once draining, the loop ends when the sessions are gone, or at the
  // latest a few seconds after the drain deadline forced them closed.
  while (true) {
    DestroyScheduled();
    if (draining_) {
      if (sessions_ == nullptr) break;
      if (now_ms_ >= drain_deadline_ms_ && !drain_bye_sent_) {
        drain_bye_sent_ = true;
        shutdown_started_ms = now_ms_;
        for (Session* s = sessions_; s != nullptr;) {
          Session* next = s->next_in_worker;
          s->Shutdown();
          s = next;
        }
        continue;
      }
      if (drain_bye_sent_ && now_ms_ - shutdown_started_ms > 5000) {
        MAILRING_LOG(kError, "sessions still waiting for completions 5s after shutdown; exiting");
        break;
      }
    }
    const int64_t wait_ms = 1000 - now_ms_ % 1000;
    tick.tv_sec = 0;
    tick.tv_nsec = wait_ms * 1000000;
    io_uring_cqe* cqe = nullptr;
    const int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &tick, nullptr);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      MAILRING_LOG(kError, "io_uring_submit_and_wait_timeout: ", std::strerror(-rc));
    }
    ReadClock();
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      const uint64_t data = cqe->user_data;
      if (data == 0) continue;
      const Op op = TagOp(data);
      switch (op) {
        case Op::kAccept:
          OnAccept(TagOwner<Listener>(data), *cqe);
          break;
        case Op::kWake:
          OnWake();
          break;
        default:
          TagOwner<Session>(data)->OnCompletion(static_cast<uint8_t>(op), *cqe);
          break;
      }
    }
    io_uring_cq_advance(&ring_, seen);
    timers_->Advance(now_ms_);
    DestroyScheduled();
    // No session holds a pointer into the credential cache across iterations.
    if (services().credentials != nullptr) services().credentials->Quiescent(index_);
    if (listen_retry_at_ms_ != 0 && now_ms_ >= listen_retry_at_ms_ && !draining_) {
      listen_retry_at_ms_ = 0;
      {
        absl::MutexLock lock(&routes_mutex_);
        if (pending_routes_ == nullptr) pending_routes_ = routes_;
      }
      ApplyRoutes();
    }
    if (accept_retry_at_ms_ != 0 && now_ms_ >= accept_retry_at_ms_) {
      accept_retry_at_ms_ = 0;
      for (const auto& listener : listeners_) {
        if (!listener->paused) continue;
        listener->paused = false;
        if (!listener->accepting && !draining_) ArmAccept(listener.get());
      }
    }
    // Single writer: no locked instruction.
    iterations_.store(iterations_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

}  // namespace mailring::core
