// Metrics: the Prometheus text exposition of what the workers and the control thread count.
// Counts only: no destination secret, token or user name ever becomes a label value.
#pragma once

#include <string>
#include <vector>

#include "control/btp/credential_service.h"
#include "core/worker.h"

namespace mailring::control {

struct MetricsSources {
  std::vector<const core::Worker*> workers;
  const CredentialCounters* credentials = nullptr;  // null without a control thread
  const std::atomic<uint64_t>* reconcile_errors = nullptr;  // null in standalone mode
};

std::string RenderMetrics(const MetricsSources& sources);

}  // namespace mailring::control
