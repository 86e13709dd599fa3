#include "tests/support/test_support.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace herd::testing {

using Clock = std::chrono::steady_clock;

namespace {
bool pki_initializing_ = false;  // true while TestPkiDir() makes the PKI with RunHerd
}  // namespace

std::string HerdBinary() { return HERD_BIN; }
std::string HerddBinary() { return HERDD_BIN; }
std::string SourceDir() { return HERD_SOURCE_DIR; }

ScopedTempDir::ScopedTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/herd-test-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

ScopedTempDir::~ScopedTempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (true) {
    if (cond()) return true;
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

namespace {

std::string Field(const std::string& ready, const std::string& key) {
  for (const auto& line : Lines(ready)) {
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  }
  return "";
}

bool Reap(pid_t pid, std::chrono::milliseconds limit, int* status) {
  return WaitFor([&] { return ::waitpid(pid, status, WNOHANG) == pid; }, limit);
}

}  // namespace

const std::string& TestPkiDir() {
  // Removed, CA key and all, when the test process exits.
  static const std::unique_ptr<ScopedTempDir> dir = [] {
    pki_initializing_ = true;
    auto d = std::make_unique<ScopedTempDir>();
    const std::string pki = *d / "pki";
    auto run = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {"--pki-dir", pki});
      auto r = RunHerd(args, std::chrono::seconds(30));
      if (r.exit_code != 0) throw std::runtime_error("test PKI: " + r.err);
    };
    run({"ca", "init", "--name", "herd test CA"});
    run({"cert", "issue", "admin", "--role", "admin"});
    run({"cert", "issue", "operator", "--role", "operator"});
    run({"cert", "issue", "viewer", "--role", "viewer"});
    pki_initializing_ = false;
    return d;
  }();
  static const std::string path = *dir / "pki";
  return path;
}

AgentProcess::AgentProcess(const std::string& name, std::vector<std::string> extra, bool enrolled)
    : name_(name) {
  state_dir_ = dir_ / "state";
  // A state directory of the caller's (kept across restarts) is the one read.
  for (size_t i = 0; i + 1 < extra.size(); ++i) {
    if (extra[i] == "--state-dir") state_dir_ = extra[i + 1];
  }
  const std::string ready = dir_ / "ready";
  if (enrolled && std::find(extra.begin(), extra.end(), "--plaintext") == extra.end()) {
    auto r = RunHerd({"--pki-dir", TestPkiDir(), "cert", "agent", name, "--out", dir_ / "tls"},
                     std::chrono::seconds(30));
    if (r.exit_code != 0) std::cerr << "cannot issue agent certificate: " << r.err << "\n";
    extra.insert(extra.begin(), {"--tls-dir", dir_ / "tls"});
  }
  // Commands of test agents run as root, to write into the tests' private
  // folders, unless the test says otherwise (a --run-as, or a config).
  if (std::find(extra.begin(), extra.end(), "--run-as") == extra.end() &&
      std::find(extra.begin(), extra.end(), "--config") == extra.end()) {
    extra.insert(extra.begin(), {"--run-as", "root"});
  }
  std::vector<std::string> args = {HerddBinary(), "--listen",    "127.0.0.1:0", "--metrics-listen",
                                   "127.0.0.1:0", "--state-dir", state_dir_,    "--ready-file",
                                   ready,         "--name",      name,          "--log-level",
                                   "debug"};
  args.insert(args.end(), extra.begin(), extra.end());
  const std::string log = dir_ / "log";
  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  bool ok = WaitFor(
      [&] {
        int st;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
          pid_ = -1;
          return true;  // died
        }
        return ::access(ready.c_str(), R_OK) == 0;
      },
      std::chrono::seconds(30));
  if (ok && pid_ > 0) {
    std::string text = ReadFile(ready);
    grpc_ = Field(text, "grpc");
    metrics_ = Field(text, "metrics");
  }
  if (!this->ready()) std::cerr << "herdd " << name << " failed to start:\n" << this->log() << "\n";
}

std::string AgentProcess::log() const { return ReadFile(dir_ / "log"); }

std::string AgentProcess::join_token() const {
  std::string t = ReadFile(state_dir_ + "/join-token");
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

std::vector<nlohmann::json> AgentProcess::Audit(bool refusals) const {
  std::vector<nlohmann::json> out;
  for (const char* file : {"/audit.log", "/refusals.log"}) {
    if (!refusals && std::string(file) == "/refusals.log") break;
    for (const auto& l : Lines(ReadFile(state_dir_ + file))) {
      // A line the agent is appending right now may be read in part: skipped.
      auto j = nlohmann::json::parse(l, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("ts")) out.push_back(std::move(j));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return a["ts"].get<double>() < b["ts"].get<double>();
  });
  return out;
}

bool AgentProcess::AuditHas(const std::string& method, const std::string& result_part) const {
  for (const auto& e : Audit()) {
    if (e["method"] == method &&
        e["result"].get<std::string>().find(result_part) != std::string::npos) {
      return true;
    }
  }
  return false;
}

std::string ServedCertificate(const std::string& address) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  BIO* bio = BIO_new_ssl_connect(ctx.get());
  if (!bio) return "";
  std::unique_ptr<BIO, decltype(&BIO_free_all)> guard(bio, BIO_free_all);
  SSL* ssl = nullptr;
  BIO_get_ssl(bio, &ssl);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl, kAlpn, sizeof kAlpn);
  BIO_set_conn_hostname(bio, address.c_str());
  if (BIO_do_handshake(bio) != 1) return "";
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return "";
  BIO* mem = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(mem, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(mem, &data);
  std::string pem(data, n > 0 ? n : 0);
  BIO_free(mem);
  X509_free(cert);
  return pem;
}

int AgentProcess::Stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGTERM);
  int status = 0;
  if (!Reap(pid_, std::chrono::seconds(15), &status)) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  return status;
}

AgentProcess::~AgentProcess() { Stop(); }

std::string WriteInventory(const ScopedTempDir& dir, const std::vector<const AgentProcess*>& agents,
                           const std::string& extra_hosts) {
  std::ostringstream y;
  y << "hosts:\n";
  int i = 0;
  for (const auto* a : agents) {
    y << "  - name: " << a->name() << "\n"
      << "    address: " << a->grpc_address() << "\n"
      << "    metrics: " << a->metrics_address() << "\n"
      << "    labels: {role: " << (i % 2 == 0 ? "web" : "db") << ", idx: '" << i << "'}\n";
    ++i;
  }
  y << extra_hosts;
  y << "groups:\n  web: {selector: \"role=web\"}\n";
  const std::string path = dir / "inventory.yaml";
  WriteFile(path, y.str());
  return path;
}

namespace {

// In a forked child: stdin from /dev/null, stdout and stderr to `out` and
// `err`, no inventory or identity from the caller's environment, the test
// PKI when `pki_dir` is set, and `env`; then `program` with `args` (looked
// up on PATH). Never returns.
[[noreturn]] void ExecChild(int out, int err, const char* pki_dir,
                            const std::map<std::string, std::string>& env,
                            const std::string& program, const std::vector<std::string>& args) {
  const int null = ::open("/dev/null", O_RDONLY);
  ::dup2(null, 0);
  ::dup2(out, 1);
  ::dup2(err, 2);
  ::unsetenv("HERD_INVENTORY");
  ::unsetenv("HERD_IDENTITY");
  if (pki_dir) ::setenv("HERD_PKI_DIR", pki_dir, 1);
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  std::vector<std::string> all = {program};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  ::_exit(127);
}

}  // namespace

BackgroundHerd::BackgroundHerd(const std::vector<std::string>& args, const std::string& out) {
  const std::string herd = HerdBinary(), pki_dir = TestPkiDir(), err = out + ".err";
  pid_ = ::fork();
  if (pid_ == 0) {
    ExecChild(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644),
              ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), pki_dir.c_str(), {}, herd,
              args);
  }
}

BackgroundHerd::~BackgroundHerd() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void BackgroundHerd::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int BackgroundHerd::Wait(std::chrono::milliseconds limit) {
  int status = 0;
  bool ended = false;
  WaitFor(
      [&] {
        ended = pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_;
        return ended;
      },
      limit);
  if (!ended) return -1;  // the destructor kills it
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

CliResult RunProgram(const std::string& program, const std::vector<std::string>& args,
                     std::chrono::milliseconds limit,
                     const std::map<std::string, std::string>& env) {
  CliResult r;
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return r;
  const auto t0 = Clock::now();
  // Resolved before fork; while the test PKI itself is being made, none yet.
  const char* pki_dir = !pki_initializing_ ? TestPkiDir().c_str() : nullptr;
  pid_t pid = ::fork();
  if (pid == 0) {
    // Nothing on stdin (herd run forwards what it finds there).
    ExecChild(out[1], err[1], pki_dir, env, program, args);
  }
  ::close(out[1]);
  ::close(err[1]);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  bool killed = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t0 + limit - Clock::now());
    if (left.count() <= 0 && !killed) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    int rc = ::poll(fds, 2, killed ? 1000 : static_cast<int>(std::max<long>(1, left.count())));
    if (rc < 0 && errno != EINTR) break;
    if (rc == 0 && killed) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !fds[i].revents) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, n);
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  struct rusage usage {};
  ::wait4(pid, &status, 0, &usage);
  r.max_rss_kb = usage.ru_maxrss;
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  r.exit_code = killed ? -9 : (WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
  return r;
}

CliResult RunHerd(const std::vector<std::string>& args, std::chrono::milliseconds limit,
                  const std::map<std::string, std::string>& env) {
  return RunProgram(HerdBinary(), args, limit, env);
}

namespace {
size_t Collect(char* p, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(p, size * n);
  return size * n;
}
}  // namespace

UniqueFd ConnectLoopback(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd.valid() && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fd.Close();
  return fd;
}

UniqueFd ConnectLoopback(const std::string& host_port) {
  return ConnectLoopback(std::stoi(host_port.substr(host_port.rfind(':') + 1)));
}

std::string HttpGet(const std::string& url, long* code) {
  std::string body;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  long http = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
  curl_easy_cleanup(c);
  if (code) *code = http;
  return http ? body : "";
}

}  // namespace herd::testing
