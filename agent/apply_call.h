// Apply (herd apply): the handler of herd.v1.Agent/Apply, on the slow-work
// thread (so one after another per device), on record in the audit trail. The work
// itself is agent/apply/apply.h.
#pragma once

#include "agent/agent_context.h"
#include "herd/v1/agent.pb.h"

namespace herd::agent {

Status HandleApply(AgentContext& c, const Caller& who, const v1::ApplyRequest& req,
                   v1::ApplyReply* reply);

}  // namespace herd::agent
