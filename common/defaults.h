// Defaults that the agent, the CLI and the docs must agree on, defined once.
#pragma once

#include <chrono>
#include <string>

namespace herd {

// herdd's gRPC and /metrics ports, and what an inventory address without a
// port means.
inline constexpr int kDefaultAgentPort = 7420;
inline constexpr int kDefaultMetricsPort = 9420;

// How long the CLI waits for one host: most commands, then run and copy
// (which the agent's own default command timeout matches).
inline constexpr std::chrono::milliseconds kDefaultHostTimeout{10'000};
inline constexpr std::chrono::milliseconds kDefaultCommandTimeout{60'000};

// The mTLS files of an agent: the fleet CA that signs its callers, its
// certificate and its key. Where enrolment puts them (<state_dir>/tls), what
// `herd cert agent --out DIR` writes and `herdd --tls-dir DIR` reads.
struct TlsFiles {
  std::string ca, cert, key;
  bool complete() const { return !ca.empty() && !cert.empty() && !key.empty(); }
  bool empty() const { return ca.empty() && cert.empty() && key.empty(); }
};
inline TlsFiles TlsFilesIn(const std::string& dir) {
  return {dir + "/ca.crt", dir + "/agent.crt", dir + "/agent.key"};
}

}  // namespace herd
