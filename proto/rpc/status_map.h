// The status mapping between herd::Status and grpc::Status, in both
// directions, for every side of herd's gRPC (agent services, the CLI's
// transport, the mux, later peers). Stateless.
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"

namespace herd::rpc {

// How a herd error is answered over gRPC. Unknown codes become INTERNAL;
// messages are cut at 1 KiB.
grpc::Status ToGrpc(const Status& s);

// How a gRPC status is seen by herd. CANCELLED and codes herd has no name
// for become kInternal; an empty message becomes "gRPC status N".
Status FromGrpc(const grpc::Status& s);

// A client-side failure to reach a peer (UNAVAILABLE before any answer) in
// plain words: a connection that could not be set up, when gRPC's message is
// one of the usual ones ("connection refused (is herdd running there?)", TLS
// name or CA mismatches); a connection that broke after it was set up, as
// that. Otherwise the message unchanged.
std::string ExplainUnreachable(const std::string& grpc_message);

}  // namespace herd::rpc
