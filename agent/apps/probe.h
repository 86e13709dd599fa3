// Health probes of an app (docs/apps.md): `http` (GET, healthy on 2xx and
// 3xx) and `tcp` (a connection is accepted), against the socket herdd made
// for one of the app's `listen` ports. Blocking, bounded by `timeout`;
// thread-safe. `exec` probes run in the app's sandbox (supervisor.cc).
#pragma once

#include <chrono>
#include <string>

namespace herd::agent {

struct ProbeResult {
  bool ok = false;
  // A short code: "ok", "http-503", "refused", "timeout", "bad-reply", ...
  std::string reason;
};

ProbeResult ProbeTcp(const std::string& host, int port, std::chrono::milliseconds timeout);
ProbeResult ProbeHttp(const std::string& host, int port, const std::string& path,
                      std::chrono::milliseconds timeout);

}  // namespace herd::agent
