// The operator's side of revocation: the PKI folder's signed list
// (<pki_dir>/revocations, common/revocation_list.h), `herd cert revoke`, and
// pushing the list to agents that are behind it. CLI thread only.
#pragma once

#include <string>
#include <vector>

#include "common/revocation_list.h"
#include "common/status.h"
#include "control/executor.h"
#include "control/host_result.h"
#include "control/task.h"

namespace herd::control {

// The folder's list, checked against its ca.crt; version 0 and empty when
// there is none. A list from before signed lists (revoked.txt, a serial per
// line) is read as version 0 holding its serials.
Result<RevocationList> LoadRevocations(const std::string& dir);

struct Revoked {
  RevocationList list;                // the new list, signed and stored
  std::string serial;                 // what was added
  std::vector<std::string> warnings;  // "serial X matches no certificate in DIR"
};
// Adds `who` (an identity NAME.crt in `dir`, or a serial in any usual
// spelling) to the folder's list as a new version signed with ca.key.
Result<Revoked> RevokeCert(const std::string& dir, const std::string& who);
// The same after checking, when the list is to be pushed, that `identity`
// is an admin, so that a refused push leaves nothing half done.
Result<Revoked> RevokeForPush(const std::string& dir, const std::string& who,
                              const std::string& identity, bool push);

// Installs `list` on each agent (SetRevocations). An agent takes it only if
// it is signed by its fleet CA and newer than its own.
Task RevocationsTask(const RevocationList& list, std::chrono::milliseconds timeout);

// After a command: pushes the folder's list (if any) to the hosts whose
// reply said they hold an older one (HostResult::revocation_version). Quiet;
// returns the hosts it brought up to date and those it could not.
struct CatchUp {
  uint64_t version = 0;
  std::vector<std::string> updated, failed;
};
CatchUp PushRevocationsWhereBehind(Executor& executor, const std::vector<const Host*>& hosts,
                                   const std::vector<HostResult>& results,
                                   const RevocationList& list, std::chrono::milliseconds timeout);

}  // namespace herd::control
