// The per-host operations behind each CLI subcommand, as HostTasks for the
// fan-out engine. Each turns a reply or error into exactly one HostResult.
#pragma once

#include <memory>
#include <string>

#include "control/fanout.h"
#include "control/pki_store.h"

namespace herd::control {

// The one mapping from a transport/agent error to an outcome.
Outcome OutcomeForError(const Status& s);

HostTask PingTask();
HostTask FactsTask();
HostTask HealthTask();
HostTask ExecTask(v1::ExecRequest request);

struct CopySource {
  std::shared_ptr<const std::string> content;
  std::string sha256;
  uint32_t mode = 0644;
};
// Reads a local file for `herd copy`; the mode defaults to the file's own.
Result<CopySource> ReadCopySource(const std::string& path);
HostTask CopyTask(CopySource source, std::string dest_path);
// Reads each agent's audit trail from `since_unix`; entries land in the
// result's stdout (one JSON object per line) and data.entries.
HostTask AuditTask(int64_t since_unix, uint32_t limit);
// Replaces each agent's revocation list with `serials`.
HostTask RevocationsTask(std::vector<std::string> serials);

// Renews each agent's certificate: the agent's key stays, a new certificate
// for it (named after the inventory host, `days` long) is signed with `ca`.
HostTask RenewTask(FleetCa ca, int days);

// Per-command deadline budget: the agent kills the command a little before the
// CLI gives up on the host, so a slow command ends as "timeout", not
// "unreachable".
uint32_t AgentTimeoutMs(std::chrono::milliseconds host_timeout);

}  // namespace herd::control
