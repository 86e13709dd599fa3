// Process-wide gRPC runtime settings shared by herd and herdd. Call once at
// the top of main, before any channel or server exists.
#pragma once

#include <functional>
#include <string>

namespace herd::rpc {

// Receives gRPC's own log lines (severity: 0 debug, 1 info, 2 error).
using GrpcLogSink = std::function<void(int severity, const std::string& message)>;

// Turns off abseil's mutex deadlock-cycle detection, which Debian's abseil
// build leaves on: it costs ~10% of CPU per RPC (a lock-order graph updated
// on every mutex acquisition) and herd never relies on it. Routes gRPC's log
// lines (handshake failures and the like, which herd reports per host in its
// own words) to `sink`, or drops them when `sink` is empty.
void InitGrpcRuntime(GrpcLogSink sink = nullptr);

}  // namespace herd::rpc
