// Process-wide gRPC runtime settings shared by herd and herdd. Call once at
// the top of main, before any channel or server exists.
#pragma once

namespace herd {

// Turns off abseil's mutex deadlock-cycle detection, which Debian's abseil
// build leaves on: it costs ~10% of CPU per RPC (a lock-order graph updated
// on every mutex acquisition) and herd never relies on it.
void InitGrpcRuntime();

}  // namespace herd
