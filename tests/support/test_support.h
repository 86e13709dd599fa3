// Test support: temp dirs, real herdd processes, running the real herd CLI,
// HTTP GET, and bounded polling. Used from the test thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace herd::testing {

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class ScopedTempDir {
 public:
  ScopedTempDir();
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls `cond` every 20 ms until it holds or `limit` passes.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);

// A fleet PKI shared by the whole test process, made with the real CLI:
// ca.crt/ca.key and client identities admin, operator and viewer. RunHerd
// points HERD_PKI_DIR at it (identity admin unless HERD_IDENTITY is given).
const std::string& TestPkiDir();

// A real herdd on 127.0.0.1:0 with its own state dir (or the --state-dir in
// extra_args, which outlives it) and an agent certificate
// from TestPkiDir() (unless extra_args contain --plaintext). The constructor waits
// (bounded) for the ready file; the destructor sends SIGTERM, waits, then
// SIGKILL, and reaps. The log is printed if the agent failed to start.
class AgentProcess {
 public:
  // `enrolled` false: no certificate is handed to the agent, so it starts in
  // enrolment mode with a fresh key and join token in its state dir.
  explicit AgentProcess(const std::string& name, std::vector<std::string> extra_args = {},
                        bool enrolled = true);
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  const std::string& name() const { return name_; }
  const std::string& grpc_address() const { return grpc_; }
  const std::string& metrics_address() const { return metrics_; }
  const std::string& state_dir() const { return state_dir_; }
  std::string log() const;
  std::string join_token() const;  // <state_dir>/join-token, trimmed
  // The agent's audit trail, one parsed JSON object per entry, oldest first:
  // what was done (audit.log) and, unless `refusals` is false, what was
  // refused (refusals.log).
  std::vector<nlohmann::json> Audit(bool refusals = true) const;
  // True if an entry of `method` has a result containing `result_part`.
  bool AuditHas(const std::string& method, const std::string& result_part) const;
  pid_t pid() const { return pid_; }
  bool ready() const { return !grpc_.empty(); }
  // Sends SIGTERM and waits (bounded) for exit; returns the exit status.
  int Stop();

 private:
  ScopedTempDir dir_;
  std::string name_, grpc_, metrics_, state_dir_;
  pid_t pid_ = -1;
};

// Writes an inventory YAML for `agents` (plus extra raw host entries).
std::string WriteInventory(const ScopedTempDir& dir, const std::vector<const AgentProcess*>& agents,
                           const std::string& extra_hosts = "");

struct CliResult {
  int exit_code = -1;
  std::string out, err;
  std::chrono::milliseconds elapsed{0};
  long max_rss_kb = 0;  // the program's peak resident memory
};

// Runs the real herd binary with `args` (and HERD_INVENTORY unset unless
// given in env); kills it after `limit`.
CliResult RunHerd(const std::vector<std::string>& args,
                  std::chrono::milliseconds limit = std::chrono::seconds(60),
                  const std::map<std::string, std::string>& env = {});

// The real herd with `args` in the background, as RunHerd runs it, its
// stdout going to the file `out` and its stderr to `out`.err: for tests that
// act while a command runs. Wait (bounded) gives its exit code; the
// destructor kills (SIGKILL) and reaps one still running.
class BackgroundHerd {
 public:
  BackgroundHerd(const std::vector<std::string>& args, const std::string& out);
  ~BackgroundHerd();
  BackgroundHerd(const BackgroundHerd&) = delete;
  BackgroundHerd& operator=(const BackgroundHerd&) = delete;
  void Signal(int sig);
  // Its exit code (128 + N when signal N ended it), or -1 when it had not
  // ended within `limit` (then it is killed).
  int Wait(std::chrono::milliseconds limit);

 private:
  pid_t pid_ = -1;
};

// Runs any program the same way.
CliResult RunProgram(const std::string& program, const std::vector<std::string>& args,
                     std::chrono::milliseconds limit,
                     const std::map<std::string, std::string>& env = {});

// A TCP connection to 127.0.0.1:`port` (or HOST:PORT's port), or an invalid fd.
UniqueFd ConnectLoopback(int port);
UniqueFd ConnectLoopback(const std::string& host_port);

// HTTP GET via libcurl; returns the body, or "" with *code set (0 on transport error).
std::string HttpGet(const std::string& url, long* code = nullptr);

// The certificate (PEM) a TLS server at host:port presents, or "" if the
// handshake fails. No verification: tests compare what they get.
std::string ServedCertificate(const std::string& address);

// Splits text into lines (without the newline).
std::vector<std::string> Lines(const std::string& text);

std::string HerdBinary();
std::string HerddBinary();
std::string SourceDir();

}  // namespace herd::testing
