#include "grpc_runtime.h"

#include <absl/synchronization/mutex.h>

namespace herd {

void InitGrpcRuntime() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

}  // namespace herd
