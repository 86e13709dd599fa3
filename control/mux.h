// The mux: a local process that holds warm mTLS connections to agents for
// one identity, so that a command does not pay a TLS handshake per host.
//
// `herd mux start` runs it in the background; while its socket answers, herd
// sends every call over one local connection to it (the agent's address and
// name ride in the call's metadata) and the mux forwards the call, unchanged,
// over its connection to that agent, opened at first use and then kept. The
// agent still sees the caller's own certificate, role and revocation status
// on every call: the mux adds no authority, it only saves handshakes.
//
// The socket lives in the PKI folder (0700, the user's own), named after the
// identity, so only that user can reach it. The mux exits after `idle`
// without calls, on SIGTERM, or on `herd mux stop`.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "common/status.h"
#include "proto/rpc/identity.h"

namespace herd::control {

// Call metadata naming the agent the mux should forward a call to.
inline constexpr const char* kMuxAddressKey = "herd-agent-address";
inline constexpr const char* kMuxNameKey = "herd-agent-name";

// <pki_dir>/mux-<identity>.sock
std::string MuxSocketPath(const std::string& pki_dir, const std::string& identity);

struct MuxOptions {
  std::string socket_path;
  rpc::TransportOptions transport;  // the identity the mux dials agents as
  std::chrono::milliseconds idle{10 * 60 * 1000};
};

// Serves until idle, or until `*stop` becomes true (polled). Writes
// <socket>.pid while serving and removes it and the socket on the way out.
Status RunMux(const MuxOptions& opts, const std::atomic<bool>* stop);

// The pid of the mux serving `socket_path`, or 0 if none is running.
int MuxPid(const std::string& socket_path);

// What `herd mux start`, `stop` and `status` do. CLI thread only.
struct MuxState {
  int pid = 0;  // 0: not running
  std::string socket_path;
  bool already_running = false;  // StartMux found one serving
};
// Starts the mux of `opts`, unless one serves its socket already: in the
// background (a child in its own session, detached from the terminal;
// returns once its socket answers, at most 10 s), or with `foreground` here,
// until `*stop` becomes true or it is idle.
Result<MuxState> StartMux(const MuxOptions& opts, bool foreground, const std::atomic<bool>* stop);
// Stops the mux serving `socket_path`: SIGTERM, then up to 10 s for it to go.
// kNotFound when none runs.
Result<MuxState> StopMux(const std::string& socket_path);
// Whether a mux serves `socket_path`, and its pid.
MuxState MuxStatus(const std::string& socket_path);

}  // namespace herd::control
