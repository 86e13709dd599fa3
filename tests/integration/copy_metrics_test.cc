#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/hash.h"
#include "tests/support/test_support.h"

using namespace herd::testing;
using namespace std::chrono_literals;

namespace {
std::string Inventory(ScopedTempDir& dir, std::vector<std::unique_ptr<AgentProcess>>& agents,
                      int n) {
  for (int i = 1; i <= n; ++i) {
    agents.push_back(std::make_unique<AgentProcess>("node" + std::to_string(i)));
    REQUIRE(agents.back()->ready());
  }
  std::vector<const AgentProcess*> ptrs;
  for (auto& a : agents) ptrs.push_back(a.get());
  return WriteInventory(dir, ptrs);
}
}  // namespace

TEST_CASE("copy delivers the file with checksum and mode to every host", "[integration][copy]") {
  ScopedTempDir dir;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  auto inv = Inventory(dir, agents, 2);
  std::string content(3 * 1024 * 1024 + 17, 'x');
  for (size_t i = 0; i < content.size(); i += 4096) content[i] = static_cast<char>(i / 4096);
  WriteFile(dir / "src.bin", content);
  ScopedTempDir dest;  // both loopback agents share this machine's filesystem
  auto r = RunHerd({"-i", inv, "--no-progress", "copy", "node1", dir / "src.bin", dest / "out.bin",
                    "--mode", "0640"});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("node1: wrote " + dest / "out.bin"));
  CHECK(herd::Sha256Hex(ReadFile(dest / "out.bin")) == herd::Sha256Hex(content));
  struct stat st {};
  REQUIRE(::stat((dest / "out.bin").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
}

TEST_CASE("a 1 GiB copy passes through the CLI in bounded memory", "[integration][copy]") {
  ScopedTempDir dir;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  auto inv = Inventory(dir, agents, 1);
  // Sparse, with a marked page every 64 MiB, so the digest covers the whole.
  const std::string src = dir / "big.bin";
#if defined(__SANITIZE_ADDRESS__)
  const off_t size = off_t{1} << 27;  // instrumented hashing is slow: 128 MiB
#else
  const off_t size = off_t{1} << 30;
#endif
  {
    herd::UniqueFd fd(::open(src.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
    REQUIRE(fd.valid());
    REQUIRE(::ftruncate(fd.get(), size) == 0);
    for (off_t at = 0; at < size; at += off_t{64} << 20) {
      const std::string mark = "page at " + std::to_string(at);
      REQUIRE(::pwrite(fd.get(), mark.data(), mark.size(), at) ==
              static_cast<ssize_t>(mark.size()));
    }
  }
  auto r = RunHerd(
      {"-i", inv, "--no-progress", "-o", "json", "copy", "node1", src, dir / "out.bin"}, 300s);
  REQUIRE(r.exit_code == 0);
  INFO("herd peak RSS " << r.max_rss_kb << " KiB");
#if !defined(__SANITIZE_ADDRESS__)  // ASan holds freed memory in quarantine
  CHECK(r.max_rss_kb < 64 * 1024);  // the file is 1 GiB
#endif
  struct stat st {};
  REQUIRE(::stat((dir / "out.bin").c_str(), &st) == 0);
  CHECK(st.st_size == size);
  const auto line = nlohmann::json::parse(Lines(r.out).at(0));
  CHECK(line["data"]["bytes"] == static_cast<uint64_t>(size));
  CHECK(line["data"]["mode"] == "0644");
  std::remove((dir / "out.bin").c_str());
}

TEST_CASE("copy onto a directory or into a missing one fails and damages nothing",
          "[integration][copy]") {
  ScopedTempDir dir;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  auto inv = Inventory(dir, agents, 1);
  WriteFile(dir / "src", "new");
  ScopedTempDir dest;
  WriteFile(dest / "keep", "old");
  auto onto_dir = RunHerd({"-i", inv, "copy", "all", dir / "src", dest.path()});
  CHECK(onto_dir.exit_code == 2);
  CHECK_THAT(onto_dir.err, Catch::Contains("is a directory"));
  auto missing = RunHerd({"-i", inv, "copy", "all", dir / "src", dest / "no/such/file"});
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.err, Catch::Contains("does not exist"));
  auto relative = RunHerd({"-i", inv, "copy", "all", dir / "src", "relative/path"});
  CHECK(relative.exit_code == 1);
  auto nosrc = RunHerd({"-i", inv, "copy", "all", dir / "nope", dest / "x"});
  CHECK(nosrc.exit_code == 1);
  CHECK_THAT(nosrc.err, Catch::Contains(dir / "nope"));
  // The agent's own state (audit log, keys) is not a copy target.
  const std::string audit = agents[0]->state_dir() + "/audit.log";
  const std::string trail = ReadFile(audit);
  auto onto_audit = RunHerd({"-i", inv, "copy", "all", dir / "src", audit});
  CHECK(onto_audit.exit_code == 2);
  CHECK_THAT(onto_audit.err, Catch::Contains("in the agent's state directory"));
  CHECK(ReadFile(audit).rfind(trail, 0) == 0);  // only appended to (the refusal)
  CHECK(ReadFile(dest / "keep") == "old");
  size_t entries = 0;
  for (auto& e : std::filesystem::directory_iterator(dest.path())) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("a reader never sees a partial file while copy replaces it", "[integration][copy]") {
  ScopedTempDir dir;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  auto inv = Inventory(dir, agents, 1);
  const std::string old_content(1 << 20, 'o'), new_content(16 << 20, 'n');
  WriteFile(dir / "src", new_content);
  ScopedTempDir dest;
  const std::string target = dest / "file";
  WriteFile(target, old_content);
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0}, reads{0};
  std::thread reader([&] {
    for (int i = 0; i < 200000 && !stop; ++i) {
      std::string s = ReadFile(target);
      ++reads;
      if (s != old_content && s != new_content) ++torn;
    }
  });
  auto r = RunHerd({"-i", inv, "copy", "all", dir / "src", target});
  stop = true;
  reader.join();
  CHECK(r.exit_code == 0);
  CHECK(reads > 0);
  CHECK(torn == 0);
  CHECK(ReadFile(target) == new_content);
}

TEST_CASE("metrics endpoint serves build, gRPC, exec and host metrics", "[integration][metrics]") {
  ScopedTempDir dir;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  auto inv = Inventory(dir, agents, 1);
  REQUIRE(RunHerd({"-i", inv, "run", "all", "--", "true"}).exit_code == 0);
  REQUIRE(RunHerd({"-i", inv, "run", "all", "--", "false"}).exit_code == 2);
  // Clients that connect and never finish their requests, more of them than
  // the endpoint keeps open, do not hold it: a scrape beside them is
  // answered (HttpGet gives up after 5 s).
  const std::string addr = agents[0]->metrics_address();
  std::vector<herd::UniqueFd> stalled;
  for (int i = 0; i < 100; ++i) {
    stalled.push_back(ConnectLoopback(addr));
    REQUIRE(stalled.back().valid());
    if (i % 2) ::send(stalled.back().get(), "GET /metrics HTTP/1.1\r\n", 23, MSG_NOSIGNAL);
  }
  long code = 0;
  std::string body = HttpGet("http://" + addr + "/metrics", &code);
  stalled.clear();
  CHECK(code == 200);
  CHECK_THAT(body, Catch::Contains("herd_build_info{version=\"" HERD_VERSION "\"} 1"));
  CHECK_THAT(body, Catch::Contains("herd_grpc_requests_total{code=\"OK\",method=\"Exec\"} 2"));
  CHECK_THAT(body, Catch::Contains("herd_exec_total{result=\"ok\"} 1"));
  CHECK_THAT(body, Catch::Contains("herd_exec_total{result=\"failed\"} 1"));
  CHECK_THAT(body, Catch::Contains("herd_exec_duration_seconds_count 2"));
  CHECK_THAT(body, Catch::Contains("herd_host_memory_bytes{kind=\"total\"}"));
  CHECK_THAT(body, Catch::Contains("herd_host_filesystem_bytes{kind=\"available\""));
  CHECK_THAT(body, Catch::Contains("herd_host_load{period=\"1m\"}"));
  CHECK_THAT(body, Catch::Contains("herd_host_cpu_seconds_total{mode=\"idle\"}"));
  CHECK_THAT(body, Catch::Contains("herd_host_uptime_seconds"));
  CHECK_THAT(body, Catch::Contains("herd_agent_resident_memory_bytes"));
  CHECK_THAT(body, Catch::Contains("herd_audit_write_errors_total 0"));
  // What Prometheus' own linter accepts.
  WriteFile(dir / "scrape.txt", body);
  auto lint = RunProgram("/bin/sh", {"-c", "promtool check metrics < " + dir / "scrape.txt"}, 30s);
  INFO(lint.out << lint.err);
  CHECK(lint.exit_code == 0);
}

TEST_CASE("an audit line the agent cannot write is counted and logged, not dropped silently",
          "[integration][metrics]") {
  ScopedTempDir dir;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  auto inv = Inventory(dir, agents, 1);
  // A directory where the log should be: every append fails.
  const std::string log = agents[0]->state_dir() + "/audit.log";
  std::filesystem::remove(log);
  REQUIRE(std::filesystem::create_directory(log));
  REQUIRE(RunHerd({"-i", inv, "run", "all", "--", "true"}).exit_code == 0);
  long code = 0;
  const std::string body = HttpGet("http://" + agents[0]->metrics_address() + "/metrics", &code);
  CHECK(code == 200);
  // The command's "started" line and its result line.
  CHECK_THAT(body, Catch::Contains("herd_audit_write_errors_total 2"));
  CHECK_THAT(agents[0]->log(), Catch::Contains("audit entry not recorded"));
}

TEST_CASE("targets prints file_sd JSON with every metrics address", "[integration][metrics]") {
  ScopedTempDir dir;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  auto inv = Inventory(dir, agents, 2);
  auto r = RunHerd({"-i", inv, "targets", "all"});
  CHECK(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  REQUIRE(j.size() == 2);
  CHECK(j[0]["targets"][0] == agents[0]->metrics_address());
  CHECK(j[1]["labels"]["herd_host"] == "node2");
  auto w = RunHerd({"-i", inv, "targets", "@web", "-w", dir / "sd.json"});
  CHECK(w.exit_code == 0);
  CHECK(nlohmann::json::parse(ReadFile(dir / "sd.json")).size() == 1);
}
