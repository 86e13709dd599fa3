// The app sandbox with the real bubblewrap, started through the real
// launcher as an unprivileged uid: an app that tries to read another app's
// data or herd's state, write outside its data folder, see host processes,
// reach the network without the permission, or gain a capability fails at
// each. Needs root (to switch to the app's uid) and bwrap.
#include "agent/apps/sandbox.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/support/test_support.h"

using namespace herd;
using namespace herd::testing;
namespace fs = std::filesystem;

namespace {

constexpr uid_t kAppUid = 61'001;  // no account of this machine's

struct Run {
  int exit_code = -1;
  std::string out, err;
};

// Starts `s` and collects its output; ends it after 20 s at most.
Run RunSandboxed(const agent::SandboxSpec& s) {
  agent::Account account;
  auto launch = agent::SandboxLaunch(s, &account);
  REQUIRE(launch.ok());
  auto child = agent::ProcessLauncher::Real().Launch(*launch);
  INFO(child.status().message());
  REQUIRE(child.ok());
  child->stdin_w.Close();
  Run r;
  pollfd fds[2] = {{child->stdout_r.get(), POLLIN, 0}, {child->stderr_r.get(), POLLIN, 0}};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int open = 2;
  while (open > 0 && std::chrono::steady_clock::now() < deadline) {
    if (::poll(fds, 2, 1000) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        fds[i].fd = -1;
        --open;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  if (open > 0) ::kill(-child->pid, SIGKILL);
  int status = 0;
  ::waitpid(child->pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

struct Fixture {
  ScopedTempDir dir;
  UniqueFd files, data;
  agent::SandboxSpec spec;
  std::string other_data;

  Fixture() {
    // As herdd keeps them: the app's uid may traverse to its folders.
    REQUIRE(::chmod(dir.path().c_str(), 0711) == 0);
    fs::create_directories(dir / "apps/notes/1/files");
    REQUIRE(::chmod((dir / "apps").c_str(), 0711) == 0);
    fs::create_directories(dir / "apps/notes/data");
    fs::create_directories(dir / "apps/other/data");
    WriteFile(dir / "apps/notes/1/files/app.yaml", "name: notes\n");
    other_data = dir / "apps/other/data/secret";
    WriteFile(other_data, "other app's secret\n");
    WriteFile(dir / "state.key", "herd's key\n");
    REQUIRE(::chown((dir / "apps/notes/data").c_str(), kAppUid, kAppUid) == 0);
    files =
        UniqueFd(::open((dir / "apps/notes/1/files").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    data = UniqueFd(::open((dir / "apps/notes/data").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    REQUIRE((files.valid() && data.valid()));
    spec.name = "notes";
    spec.files_fd = files.get();
    spec.data_fd = data.get();
    spec.uid = kAppUid;
    spec.gid = kAppUid;
    spec.pids = 64;
    spec.memory_bytes = 512ull << 20;
  }

  // `script` run by /bin/sh inside the sandbox.
  Run Sh(const std::string& script) {
    spec.command = {"/bin/sh", "-c", script};
    return RunSandboxed(spec);
  }
};

bool CanSandbox() {
  if (::geteuid() != 0) {
    WARN("skipped: switching to an app's uid needs root");
    return false;
  }
  if (::access("/usr/bin/bwrap", X_OK) != 0) {
    WARN("skipped: no /usr/bin/bwrap (scripts/install-deps.sh installs bubblewrap)");
    return false;
  }
  return true;
}

}  // namespace

TEST_CASE("an app runs as its own uid, in /app, and writes only its data and /tmp",
          "[agent][apps][sandbox]") {
  if (!CanSandbox()) return;
  Fixture f;
  auto r =
      f.Sh("id -u; pwd; cat app.yaml; echo kept > /data/note && echo t > /tmp/t && echo WROTE");
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == std::to_string(kAppUid) + "\n/app\nname: notes\nWROTE\n");
  CHECK(ReadFile(f.dir / "apps/notes/data/note") == "kept\n");
  struct stat st {};
  REQUIRE(::stat((f.dir / "apps/notes/data/note").c_str(), &st) == 0);
  CHECK(st.st_uid == kAppUid);
  // Everywhere else is read-only or absent.
  for (const char* target : {"/app/x", "/usr/x", "/x", "/etc/x", "/proc/x"}) {
    auto w = f.Sh(std::string("echo x > ") + target);
    INFO(target);
    CHECK(w.exit_code != 0);
  }
  CHECK_FALSE(fs::exists(f.dir / "apps/notes/1/files/x"));
}

TEST_CASE("an app sees no other app's data, no herd state, no homes and no host process",
          "[agent][apps][sandbox]") {
  if (!CanSandbox()) return;
  Fixture f;
  for (const std::string& path :
       {f.other_data, f.dir / "state.key", f.dir.path(), std::string("/root"), std::string("/home"),
        std::string("/var/lib"), std::string("/etc/shadow"), std::string("/etc/herd")}) {
    auto r = f.Sh("test -e '" + path + "' && echo VISIBLE; cat '" + path + "' 2>/dev/null");
    INFO(path);
    CHECK(r.out.empty());
  }
  // Its own pid namespace: bwrap's init, the shell, ls and grep at most.
  auto ps = f.Sh("ls /proc | grep -c '^[0-9]'");
  REQUIRE(ps.exit_code == 0);
  CHECK(std::stoi(ps.out) <= 4);
  auto host = f.Sh("hostname");
  CHECK(host.out == "notes\n");
}

TEST_CASE("an app has no capability and cannot make namespaces to get one",
          "[agent][apps][sandbox]") {
  if (!CanSandbox()) return;
  Fixture f;
  auto caps = f.Sh("grep -E '^Cap(Eff|Prm|Amb):' /proc/self/status");
  CHECK(caps.out ==
        "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapAmb:\t0000000000000000\n");
  auto userns = f.Sh("unshare --user --map-root-user true && echo ESCAPED");
  CHECK(userns.out.empty());
  CHECK(userns.exit_code != 0);
  // rlimits hold: processes per uid and address space.
  auto limits = f.Sh("ulimit -p; ulimit -v");  // dash: -p processes, -v KiB
  CHECK(limits.out == "64\n" + std::to_string((512ull << 20) / 1024) + "\n");
}

TEST_CASE("an app reaches the network only with the permission", "[agent][apps][sandbox]") {
  if (!CanSandbox()) return;
  Fixture f;
  // A listener on the host's loopback.
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener.get(), 4) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string connect = "bash -c 'exec 3<>/dev/tcp/127.0.0.1/" +
                              std::to_string(ntohs(addr.sin_port)) + " && echo CONNECTED'";
  auto closed = f.Sh(connect);
  CHECK(closed.out.empty());
  CHECK(closed.exit_code != 0);
  f.spec.network = true;
  auto open = f.Sh(connect);
  INFO(open.err);
  CHECK(open.out == "CONNECTED\n");
}

TEST_CASE("a sandbox is never started as root or without its folders", "[agent][apps]") {
  agent::SandboxSpec s;
  s.name = "x";
  s.command = {"true"};
  s.files_fd = 10;
  s.data_fd = 11;
  agent::Account account;
  CHECK(agent::SandboxLaunch(s, &account).status().code() == StatusCode::kFailedPrecondition);
  s.uid = s.gid = kAppUid;
  s.data_fd = -1;
  CHECK(agent::SandboxLaunch(s, &account).status().code() == StatusCode::kFailedPrecondition);
  s.data_fd = 11;
  auto l = agent::SandboxLaunch(s, &account);
  REQUIRE(l.ok());
  CHECK(l->account->uid == kAppUid);
  CHECK(l->account->groups == std::vector<gid_t>{kAppUid});
  // Renumbered for the child: the folders after the (no) sockets.
  CHECK(l->map_fds == std::vector<std::pair<int, int>>{{10, 3}, {11, 4}});
  const auto has = [&](const std::vector<std::string>& argv, const std::vector<std::string>& seq) {
    return std::search(argv.begin(), argv.end(), seq.begin(), seq.end()) != argv.end();
  };
  CHECK(has(l->argv, {"--unshare-all", "--unshare-user", "--as-pid-1", "--disable-userns"}));
  CHECK(has(l->argv, {"--ro-bind-fd", "3", "/app"}));
  CHECK(has(l->argv, {"--bind-fd", "4", "/data"}));
  CHECK(has(l->argv, {"--remount-ro", "/", "--", "true"}));
  CHECK_FALSE(has(l->argv, {"--setenv", "LISTEN_FDS"}));

  // Listening sockets come first, as LISTEN_FDS says; the status pipe last.
  s.listen_fds = {20, 21};
  s.listen_names = {"http", "admin"};
  s.status_fd = 12;
  auto with = agent::SandboxLaunch(s, &account);
  REQUIRE(with.ok());
  CHECK(with->map_fds ==
        std::vector<std::pair<int, int>>{{20, 3}, {21, 4}, {10, 5}, {11, 6}, {12, 7}});
  CHECK(has(with->argv, {"--setenv", "LISTEN_FDS", "2", "--setenv", "LISTEN_PID", "1", "--setenv",
                         "LISTEN_FDNAMES", "http:admin"}));
  CHECK(has(with->argv, {"--json-status-fd", "7"}));
}
