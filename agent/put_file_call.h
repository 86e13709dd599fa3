// PutFile: writes one file sent in chunks (herd.v1.Agent/PutFile). The header
// and the chunks are read on the serving thread; the commit (fsync, rename)
// runs on the slow-work thread. Nothing at the path changes unless size and
// SHA-256 match (agent/files/file_writer.h).
#pragma once

#include "agent/agent_context.h"
#include "herd/v1/agent.grpc.pb.h"
#include "proto/rpc/call_queue.h"

namespace herd::agent {

// Asks for the next PutFile call. Serving thread (or before it starts).
void ArmPutFileCall(rpc::CallQueue& queue, v1::Agent::AsyncService& async, AgentContext& c);

}  // namespace herd::agent
