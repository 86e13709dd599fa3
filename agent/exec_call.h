// Exec: streams one command's output, then its result (herd.v1.Agent/Exec).
// The command runs on an ExecRunner worker, which starts the writes itself;
// their completions come back on the serving thread.
#pragma once

#include "agent/agent_context.h"
#include "herd/v1/agent.grpc.pb.h"
#include "proto/rpc/call_queue.h"

namespace herd::agent {

// Asks for the next Exec call. Serving thread (or before it starts).
void ArmExecCall(rpc::CallQueue& queue, v1::Agent::AsyncService& async, AgentContext& c);

}  // namespace herd::agent
