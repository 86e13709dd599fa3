// The pieces of running apps that need no sandbox: the SQLite state
// (AppDb), data snapshots and their restore, health probes against real
// sockets, and the log tail.
#include <fcntl.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "agent/apps/app_db.h"
#include "agent/apps/app_process.h"
#include "agent/apps/probe.h"
#include "agent/apps/snapshot.h"
#include "tests/support/test_support.h"

using namespace herd;
using namespace herd::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST_CASE("AppDb records each activation's rollout, also in a database from before rollouts",
          "[agent][apps]") {
  ScopedTempDir dir;
  const std::string path = dir / "state.db";
  {
    // The activations table as it was made before it had a rollout column.
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
    REQUIRE(sqlite3_exec(raw,
                         "CREATE TABLE activations (id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT "
                         "NOT NULL, kind TEXT NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER "
                         "NOT NULL, step TEXT NOT NULL, snapshot TEXT NOT NULL, outcome TEXT NOT "
                         "NULL, reason TEXT NOT NULL, started_unix INTEGER NOT NULL, ended_unix "
                         "INTEGER NOT NULL, restore_data INTEGER NOT NULL);"
                         "INSERT INTO activations VALUES (1, 'notes', 'activate', 0, 1, 'probe', "
                         "'', '', '', 1, 0, 0);",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(raw);
  }
  auto db = agent::AppDb::Open(path);
  REQUIRE(db.ok());
  auto old = (*db)->Unfinished();
  REQUIRE(old.size() == 1);
  CHECK(old[0].rollout.empty());
  agent::ActivationRecord a;
  a.app = "web";
  a.kind = "activate";
  a.to = 1;
  a.step = "verified";
  a.rollout = "r20261204-180000-beef";
  REQUIRE((*db)->Begin(&a).ok());
  auto both = (*db)->Unfinished();
  REQUIRE(both.size() == 2);
  CHECK(both[1].rollout == "r20261204-180000-beef");
  // Opened again: the column is there, nothing is added twice.
  db->reset();
  auto again = agent::AppDb::Open(path);
  REQUIRE(again.ok());
  CHECK((*again)->Unfinished().size() == 2);
}

TEST_CASE("AppDb keeps activations and apps across reopening, and End leaves the process alone",
          "[agent][apps]") {
  ScopedTempDir dir;
  const std::string path = dir / "state.db";
  int64_t id = 0;
  {
    auto db = agent::AppDb::Open(path);
    REQUIRE(db.ok());
    agent::AppRecord proc;
    proc.name = "notes";
    proc.pid = 42;
    proc.pid_start = 7;
    proc.running = 2;
    REQUIRE((*db)->SetProcess(proc).ok());
    agent::ActivationRecord a;
    a.app = "notes";
    a.kind = "activate";
    a.from = 1;
    a.to = 2;
    a.step = "verified";
    REQUIRE((*db)->Begin(&a).ok());
    id = a.id;
    REQUIRE((*db)->SetStep(id, "probe").ok());
    REQUIRE((*db)->SetSnapshot(id, "copy").ok());
  }
  auto db = agent::AppDb::Open(path);
  REQUIRE(db.ok());
  auto unfinished = (*db)->Unfinished();
  REQUIRE(unfinished.size() == 1);
  CHECK(unfinished[0].id == id);
  CHECK(unfinished[0].step == "probe");
  CHECK(unfinished[0].snapshot == "copy");
  agent::ActivationRecord a = unfinished[0];
  a.step = "commit";
  a.outcome = "committed";
  a.reason = "healthy";
  agent::AppRecord app;
  app.name = "notes";
  app.current = 2;
  app.previous = 1;
  app.data_format = 2;
  app.enabled = true;
  REQUIRE((*db)->End(a, app).ok());
  CHECK((*db)->Unfinished().empty());
  auto stored = (*db)->App("notes");
  REQUIRE(stored);
  CHECK(stored->current == 2);
  CHECK(stored->data_format == 2);
  CHECK(stored->pid == 42);  // the supervisor's, untouched
  CHECK(stored->running == 2);
  CHECK((*db)->CommittedTo("notes", 2)->id == id);
  CHECK_FALSE((*db)->CommittedTo("notes", 1));
  REQUIRE((*db)->DeleteApp("notes").ok());
  CHECK_FALSE((*db)->App("notes"));
  CHECK(agent::AppDb::Open(dir / "missing/state.db").status().code() == StatusCode::kInternal);
}

TEST_CASE("a data snapshot keeps owners, modes and links, and restoring it is repeatable",
          "[agent][apps]") {
  ScopedTempDir dir;
  const std::string data = dir / "data";
  fs::create_directories(data + "/sub");
  WriteFile(data + "/a.txt", "alpha");
  WriteFile(data + "/sub/b.txt", "beta");
  REQUIRE(::chmod((data + "/a.txt").c_str(), 0640) == 0);
  REQUIRE(::chmod(data.c_str(), 0700) == 0);
  fs::create_symlink("a.txt", data + "/link");
  const bool root = ::geteuid() == 0;
  if (root) REQUIRE(::chown((data + "/sub/b.txt").c_str(), 61999, 61999) == 0);

  auto kind = agent::SnapshotTree(data, dir / "snap", 1 << 20);
  REQUIRE(kind.ok());
  CHECK((*kind == "copy" || *kind == "reflink"));
  CHECK_FALSE(fs::exists(dir / "snap.tmp"));
  // What the new version does to the data...
  WriteFile(data + "/a.txt", "changed");
  fs::remove(data + "/sub/b.txt");
  WriteFile(data + "/new.txt", "new");
  // ...is undone by the restore, twice over (a crash may repeat it).
  for (int i = 0; i < 2; ++i) {
    REQUIRE(agent::RestoreTree(dir / "snap", data).ok());
    CHECK(ReadFile(data + "/a.txt") == "alpha");
    CHECK(ReadFile(data + "/sub/b.txt") == "beta");
    CHECK_FALSE(fs::exists(data + "/new.txt"));
    CHECK(fs::read_symlink(data + "/link") == "a.txt");
    CHECK((fs::status(data + "/a.txt").permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
    CHECK((fs::status(data).permissions() & fs::perms::all) == fs::perms::owner_all);
    struct stat st {};
    REQUIRE(::stat((data + "/sub/b.txt").c_str(), &st) == 0);
    if (root) CHECK(st.st_uid == 61999u);
  }
  CHECK(ReadFile(dir / "snap/a.txt") == "alpha");  // the snapshot is kept
  // Too big to copy (and no reflink on this filesystem, or data beyond the
  // limit either way): refused, nothing left behind.
  auto big = agent::SnapshotTree(data, dir / "snap2", 1);
  if (!big.ok()) {
    CHECK(big.status().code() == StatusCode::kFailedPrecondition);
    CHECK_THAT(big.status().message(), Catch::Contains("--no-snapshot"));
    CHECK_FALSE(fs::exists(dir / "snap2"));
    CHECK_FALSE(fs::exists(dir / "snap2.tmp"));
  } else {
    CHECK(*big == "reflink");
  }
}

namespace {

// A one-connection-at-a-time HTTP server on 127.0.0.1 answering `reply`
// (or accepting and saying nothing when it is empty).
class TinyServer {
 public:
  explicit TinyServer(std::string reply) : reply_(std::move(reply)) {
    fd_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_.get(), 8) == 0);
    REQUIRE(::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        UniqueFd c(::accept(fd_.get(), nullptr, nullptr));
        if (!c.valid() || stop_) break;
        char buf[1024];
        (void)::recv(c.get(), buf, sizeof buf, 0);
        if (reply_.empty()) {
          while (!stop_) std::this_thread::sleep_for(10ms);
        } else {
          (void)!::send(c.get(), reply_.data(), reply_.size(), MSG_NOSIGNAL);
        }
      }
    });
  }
  ~TinyServer() {
    stop_ = true;
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  std::string reply_;
  UniqueFd fd_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("http and tcp probes: 2xx and 3xx are healthy, the rest a reason code", "[agent][apps]") {
  {
    TinyServer ok("HTTP/1.0 204 No Content\r\n\r\n");
    CHECK(agent::ProbeHttp("127.0.0.1", ok.port(), "/health", 2s).ok);
    CHECK(agent::ProbeTcp("127.0.0.1", ok.port(), 2s).ok);
  }
  {
    TinyServer moved("HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n");
    CHECK(agent::ProbeHttp("127.0.0.1", moved.port(), "/", 2s).ok);
  }
  {
    TinyServer bad("HTTP/1.1 503 Service Unavailable\r\n\r\nbusy");
    auto r = agent::ProbeHttp("127.0.0.1", bad.port(), "/", 2s);
    CHECK_FALSE(r.ok);
    CHECK(r.reason == "http-503");
  }
  {
    TinyServer junk("SSH-2.0-OpenSSH_9.2\r\n");
    CHECK(agent::ProbeHttp("127.0.0.1", junk.port(), "/", 2s).reason == "bad-reply");
  }
  {
    TinyServer silent("");
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(agent::ProbeHttp("127.0.0.1", silent.port(), "/", 300ms).reason == "timeout");
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);  // bounded by the timeout
  }
  // Nobody listening: refused, at once.
  int free_port = 0;
  {
    TinyServer gone("x");
    free_port = gone.port();
  }
  CHECK(agent::ProbeTcp("127.0.0.1", free_port, 2s).reason == "refused");
}

TEST_CASE("the log tail takes the last lines across the rotated file", "[agent][apps]") {
  ScopedTempDir dir;
  const std::string log = dir / "output.log";
  WriteFile(log + ".1", "one\ntwo\n");
  WriteFile(log, "three\nfour\n");
  CHECK(agent::TailLog(log, 1, 1 << 20) == "four\n");
  CHECK(agent::TailLog(log, 3, 1 << 20) == "two\nthree\nfour\n");
  CHECK(agent::TailLog(log, 100, 1 << 20) == "one\ntwo\nthree\nfour\n");
  CHECK(agent::TailLog(log, 100, 5) == "four\n");
  // Rotation: the bytes move to .1, the file starts again.
  agent::RotateLog(log, 4);
  CHECK(ReadFile(log).empty());
  CHECK(ReadFile(log + ".1") == "three\nfour\n");
  REQUIRE(::chmod(dir.path().c_str(), 0711) == 0);
  CHECK(agent::ClosedAncestor(dir.path()) == "");
  REQUIRE(::chmod(dir.path().c_str(), 0700) == 0);
  CHECK(agent::ClosedAncestor(dir.path() + "/x") == dir.path());
}

TEST_CASE("the processes of an app uid are found in /proc, zombies left out", "[agent][apps]") {
  ScopedTempDir proc;
  const auto task = [&](const std::string& pid, const std::string& state, const std::string& uids) {
    fs::create_directories(proc / pid);
    WriteFile(proc / pid + "/status",
              "Name:\tx\nState:\t" + state + "\nTgid:\t" + pid + "\nUid:\t" + uids + "\n");
  };
  task("100", "S (sleeping)", "61001\t61001\t61001\t61001");
  task("101", "Z (zombie)", "61001\t61001\t61001\t61001");
  task("102", "R (running)", "0\t61002\t0\t61002");  // effective uid alone
  task("103", "S (sleeping)", "61003\t61003\t61003\t61003");
  fs::create_directories(proc / "self");
  fs::create_directories(proc / "104");  // gone meanwhile: no status
  auto found = agent::ProcessesOf({61001, 61002}, proc.path());
  std::sort(found.begin(), found.end());
  for (const auto& [pid, uid] : found) UNSCOPED_INFO(pid << " of uid " << uid);
  CHECK(found == std::vector<std::pair<pid_t, uid_t>>{{100, 61001}, {102, 61002}});
  CHECK(agent::ProcessesOf({}, proc.path()).empty());
  // The real /proc: this process under its own uid.
  bool self = false;
  for (const auto& [pid, uid] : agent::ProcessesOf({::getuid()})) self |= pid == ::getpid();
  CHECK(self);
}
