#include "agent/apps/sandbox.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>

namespace herd::agent {
namespace {

// Top-level folders that merged-/usr systems link into /usr ("bin" ->
// "usr/bin"): recreated as the same links, or bound read-only where the
// host keeps a real folder.
constexpr const char* kUsrLinks[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};

// The few files of /etc an ordinary program reads; the rest of /etc (the
// owner's configuration, herd's included) stays out of sight.
constexpr const char* kEtcFiles[] = {
    "/etc/resolv.conf", "/etc/hosts",       "/etc/nsswitch.conf",   "/etc/host.conf",
    "/etc/localtime",   "/etc/ssl/certs",   "/etc/ca-certificates", "/etc/mime.types",
    "/etc/ld.so.cache", "/etc/alternatives"};

}  // namespace

std::vector<std::string> BwrapArgv(const SandboxSpec& s, const std::string& bwrap) {
  // --as-pid-1: the app is pid 1 of its namespace (no bwrap init between),
  // so that it gets the SIGTERM of a stop and its exit code is bwrap's.
  std::vector<std::string> a = {bwrap, "--unshare-all", "--unshare-user", "--as-pid-1"};
  if (s.network) a.push_back("--share-net");
  a.insert(a.end(), {"--disable-userns", "--new-session", "--cap-drop", "ALL", "--hostname", s.name,
                     "--ro-bind", "/usr", "/usr"});
  for (const char* top : kUsrLinks) {
    const std::string path = std::string("/") + top;
    char target[PATH_MAX];
    const ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
    struct stat st {};
    if (n > 0) {
      a.insert(a.end(), {"--symlink", std::string(target, static_cast<size_t>(n)), path});
    } else if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      a.insert(a.end(), {"--ro-bind", path, path});
    }
  }
  for (const char* f : kEtcFiles) a.insert(a.end(), {"--ro-bind-try", f, f});
  a.insert(a.end(), {"--proc",
                     "/proc",
                     "--dev",
                     "/dev",
                     "--size",
                     std::to_string(s.tmp_bytes),
                     "--tmpfs",
                     "/tmp",
                     "--ro-bind-fd",
                     std::to_string(s.files_fd),
                     "/app",
                     "--bind-fd",
                     std::to_string(s.data_fd),
                     "/data",
                     "--chdir",
                     "/app",
                     "--clearenv",
                     "--setenv",
                     "PATH",
                     "/usr/local/bin:/usr/bin:/bin",
                     "--setenv",
                     "HOME",
                     "/data",
                     "--setenv",
                     "TMPDIR",
                     "/tmp",
                     "--setenv",
                     "HERD_APP",
                     s.name});
  for (const auto& [k, v] : s.env) a.insert(a.end(), {"--setenv", k, v});
  if (!s.listen_fds.empty()) {
    std::string names;
    for (const auto& n : s.listen_names) names += (names.empty() ? "" : ":") + n;
    a.insert(a.end(), {"--setenv", "LISTEN_FDS", std::to_string(s.listen_fds.size()), "--setenv",
                       "LISTEN_PID", "1", "--setenv", "LISTEN_FDNAMES", names});
  }
  if (s.status_fd >= 0) a.insert(a.end(), {"--json-status-fd", std::to_string(s.status_fd)});
  // The root itself (a tmpfs bwrap made) read-only too, once set up.
  a.insert(a.end(), {"--remount-ro", "/", "--"});
  a.insert(a.end(), s.command.begin(), s.command.end());
  return a;
}

Result<LaunchSpec> SandboxLaunch(const SandboxSpec& s, Account* account_storage,
                                 const std::string& bwrap) {
  if (s.uid == 0 || s.gid == 0) {
    return Status(StatusCode::kFailedPrecondition,
                  "app " + s.name + ": refusing to start a sandbox as root");
  }
  if (s.files_fd < 3 || s.data_fd < 3) {
    return Status(StatusCode::kFailedPrecondition,
                  "app " + s.name + ": its files and data folders must be open");
  }
  if (s.command.empty()) return Status::Invalid("app " + s.name + ": no command");
  *account_storage = Account{};
  account_storage->name = "app " + s.name;
  account_storage->home = "/";
  account_storage->uid = s.uid;
  account_storage->gid = s.gid;
  account_storage->groups = {s.gid};
  account_storage->is_agent = false;
  LaunchSpec l;
  // The child's numbers: the sockets from 3 (LISTEN_FDS), then the rest.
  SandboxSpec child = s;
  int next = 3;
  for (size_t i = 0; i < s.listen_fds.size(); ++i) {
    l.map_fds.emplace_back(s.listen_fds[i], next);
    child.listen_fds[i] = next++;
  }
  for (int* fd : {&child.files_fd, &child.data_fd, &child.status_fd}) {
    if (*fd < 0) continue;
    l.map_fds.emplace_back(*fd, next);
    *fd = next++;
  }
  l.argv = BwrapArgv(child, bwrap);
  l.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  l.cwd = "/";
  l.account = account_storage;
  l.stdout_fd = l.stderr_fd = s.log_fd;
  if (s.memory_bytes > 0) l.rlimits.emplace_back(RLIMIT_AS, s.memory_bytes);
  if (s.pids > 0) l.rlimits.emplace_back(RLIMIT_NPROC, s.pids);
  l.rlimits.emplace_back(RLIMIT_CORE, 0);
  return l;
}

}  // namespace herd::agent
