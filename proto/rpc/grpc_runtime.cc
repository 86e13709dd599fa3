#include "proto/rpc/grpc_runtime.h"

#include <absl/synchronization/mutex.h>
#include <grpc/support/log.h>

namespace herd::rpc {
namespace {

GrpcLogSink& Sink() {
  static GrpcLogSink sink;
  return sink;
}

void Forward(gpr_log_func_args* args) {
  if (!Sink()) return;
  const int severity = args->severity == GPR_LOG_SEVERITY_ERROR  ? 2
                       : args->severity == GPR_LOG_SEVERITY_INFO ? 1
                                                                 : 0;
  Sink()(severity, args->message ? args->message : "");
}

}  // namespace

void InitGrpcRuntime(GrpcLogSink sink) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Sink() = std::move(sink);
  gpr_set_log_function(Forward);
}

}  // namespace herd::rpc
