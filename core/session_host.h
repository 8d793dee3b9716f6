// SessionHost: everything a Session may use of the reactor that runs it, and nothing more.
//
// In production the host is the Worker (core/worker.h); tests/core/session_test.cc drives
// sessions on a scripted host with its own ring and a clock the test advances. A session
// includes this header, never worker.h: it submits to the host's ring, reads the host's clock
// (one reading per batch of completions), arms the host's timers, borrows its provided buffers
// and pipes, counts into its counters, looks up credentials through its services, and asks it
// for three things only a host can do: park the session until credentials change, forget that
// parking, and free the session after the current batch of completions.
//
// Why a base class with state rather than a pure interface: the relay path touches the clock,
// the buffers, the pipes, the options and the ring on every chunk. Here those are non-virtual
// inline accessors, so a relayed chunk costs no virtual call (a multishot recv completion:
// now_ms(), buffers(), options(), pipes(); an armed poll or recv: GetSqe()); the three virtual
// hooks run once per credential wait and once per session.
//
// Contract: single-threaded. Everything here is used on the host's thread only, and the
// implementation calls ReadClock() once before dispatching each batch of completions and runs
// timers() up to now_ms() after it. A session asks ScheduleDestroy() only when it has no
// request outstanding; the host frees it after the batch (never inside the call). The ring,
// buffers and timers exist between OpenRing() and CloseRing().
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "core/credential_broker.h"
#include "core/credential_cache.h"
#include "core/pipe_pool.h"
#include "core/provided_buffers.h"
#include "core/rejected_tokens.h"
#include "core/timer_wheel.h"
#include "core/tls_client.h"
#include "core/worker_counters.h"
#include "core/worker_options.h"

namespace mailring::core {

class Session;

// Shared services a host reads; null when the routes need none (basic authentication only).
struct WorkerServices {
  CredentialCache* credentials = nullptr;  // reader index = the host's index()
  CredentialBroker* broker = nullptr;
};

class SessionHost {
 public:
  SessionHost(const SessionHost&) = delete;
  SessionHost& operator=(const SessionHost&) = delete;

  // --- Submission to the host's ring ---
  // A free submission entry; never null (submits what is queued when the queue is full).
  io_uring_sqe* GetSqe();
  // Submits what is queued if fewer than `count` entries are free (a linked pair must not be
  // split across two submissions).
  void ReserveSqes(unsigned count);
  // The connect timeout as io_uring wants it; read by the kernel when the submission is
  // flushed, so it lives as long as the host.
  __kernel_timespec* connect_timeout_spec() { return &connect_timeout_spec_; }

  // --- Clock: monotonic milliseconds, read once per batch of completions ---
  int64_t now_ms() const { return now_ms_; }
  TimerWheel& timers() { return *timers_; }

  // --- Resources lent to sessions ---
  const WorkerOptions& options() const { return options_; }
  PipePool& pipes() { return pipes_; }
  const PipePool& pipes() const { return pipes_; }
  ProvidedBuffers& buffers() { return buffers_; }
  // Null when no route of this host uses TLS.
  const TlsContext* tls_context() const { return tls_context_.get(); }
  const WorkerCounters& counters() const { return counters_; }
  WorkerCounters& mutable_counters() { return counters_; }

  // --- Credentials ---
  const WorkerServices& services() const { return services_; }
  // Tokens the mail server refused, until the cache holds another one (core/rejected_tokens.h).
  RejectedTokens& rejected_tokens() { return rejected_tokens_; }
  // The host's index: log prefix ("session=w<index>:<id>"), credential-cache reader, and the
  // worker the control thread wakes (CredentialRequest::worker).
  int index() const { return index_; }
  // Parks `session` until the credential cache changed; the host then calls
  // session->OnCredentialsChanged() (once; the session parks again if it must).
  virtual void WaitForCredentials(Session* session) = 0;
  // Forgets `session`'s parking; a no-op when it is not parked (a closing session calls it
  // without keeping a flag of its own).
  virtual void ForgetCredentialWait(Session* session) = 0;

  // --- Lifetime ---
  // Frees `session` after the current batch of completions. The session has no request
  // outstanding and is closing; it calls this once.
  virtual void ScheduleDestroy(Session* session) = 0;

 protected:
  SessionHost(int index, const WorkerOptions& options, WorkerServices services);
  virtual ~SessionHost();

  // Creates the ring (SINGLE_ISSUER | DEFER_TASKRUN: only the calling thread may submit from
  // now on), registers the provided buffers, reads the clock and starts the timer wheel.
  absl::Status OpenRing();
  // Drops the timers and the ring; every session must be gone.
  void CloseRing();
  // Takes the clock reading for the next batch of completions.
  void ReadClock() { now_ms_ = options_.now_ms(); }

  const int index_;
  const WorkerOptions options_;
  const WorkerServices services_;
  io_uring ring_{};
  bool ring_ready_ = false;
  int64_t now_ms_ = 0;
  std::unique_ptr<TlsContext> tls_context_;
  std::unique_ptr<TimerWheel> timers_;

 private:
  __kernel_timespec connect_timeout_spec_{};
  PipePool pipes_;
  ProvidedBuffers buffers_;
  RejectedTokens rejected_tokens_;
  WorkerCounters counters_;
};

}  // namespace mailring::core
