// `herd cert renew`: new certificates for agents' existing keys, in two
// rounds over the fleet. First every host is asked for its public key
// (BeginEnroll as an admin); then each gets its own certificate, named
// after its inventory host and signed with the fleet CA (CompleteEnroll,
// one request per host). A host that fails the first round has its result
// from it and is not asked again. Reported as one operation: one result per
// host, one summary.
#pragma once

#include <chrono>
#include <vector>

#include "control/executor.h"
#include "control/pki_store.h"
#include "control/reporter.h"

namespace herd::control {

std::vector<HostResult> RenewCertificates(Executor& executor, const std::vector<const Host*>& hosts,
                                          const FleetCa& ca, int days,
                                          std::chrono::milliseconds timeout, Reporter& reporter);

}  // namespace herd::control
