#include "control/control_thread.h"

#include <algorithm>
#include <utility>

#include "core/clock.h"
#include "core/log.h"

namespace mailring::control {

ControlThread::ControlThread(std::shared_ptr<const core::RouteTable> routes,
                             core::CredentialCache* cache, CredentialServiceOptions options)
    : cache_(cache), credentials_(std::move(routes), cache, &http_, std::move(options)) {}

ControlThread::~ControlThread() { Stop(); }

void ControlThread::SetWorkers(std::vector<core::Worker*> workers) {
  credentials_.SetWorkers(std::move(workers));
}

void ControlThread::AddTask(std::function<int64_t(int64_t)> task) {
  tasks_.push_back(std::move(task));
}

void ControlThread::Start() {
  thread_ = std::thread([this] { Run(); });
}

void ControlThread::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_release);
  http_.Wakeup();
  thread_.join();
}

void ControlThread::Run() {
  core::SetLogThreadName("control");
  while (!stop_.load(std::memory_order_acquire)) {
    const int64_t now_ms = core::MonotonicMs();
    int64_t next_ms = credentials_.Tick(now_ms);
    for (auto& task : tasks_) next_ms = std::min(next_ms, task(now_ms));
    cache_->Reclaim();
    // Bounded wait: the next timer, at most one second (reclamation and stop checks).
    const int64_t wait_ms = std::clamp<int64_t>(next_ms - now_ms, 0, 1000);
    http_.Poll(absl::Milliseconds(wait_ms));
  }
}

}  // namespace mailring::control
