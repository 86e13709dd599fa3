// A real Prometheus server (Debian's) scrapes a local fleet found through
// `herd targets` file_sd output.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/support/test_support.h"

using namespace herd::testing;
using namespace std::chrono_literals;

namespace {

// A port the kernel hands out now; Prometheus cannot report one it picked.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

TEST_CASE("Prometheus discovers a fleet of 5 via file_sd and reports every agent up",
          "[integration][prometheus]") {
  ScopedTempDir dir;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  std::vector<const AgentProcess*> ptrs;
  for (int i = 1; i <= 5; ++i) {
    agents.push_back(std::make_unique<AgentProcess>("node" + std::to_string(i)));
    REQUIRE(agents.back()->ready());
    ptrs.push_back(agents.back().get());
  }
  auto inv = WriteInventory(dir, ptrs);
  auto t = RunHerd({"-i", inv, "targets", "all", "-w", dir / "herd-targets.json"});
  REQUIRE(t.exit_code == 0);

  // The shipped config, with a 1 s interval for the test.
  std::string config = ReadFile(SourceDir() + "/configs/prometheus.yml");
  config.replace(config.find("scrape_interval: 15s"), 20, "scrape_interval: 1s");
  config.replace(config.find("refresh_interval: 1m"), 20, "refresh_interval: 1s");
  WriteFile(dir / "prometheus.yml", config);
  WriteFile(dir / "herd-alerts.yml", ReadFile(SourceDir() + "/configs/herd-alerts.yml"));

  const int port = FreePort();
  pid_t prom = ::fork();
  if (prom == 0) {
    int fd = ::open((dir / "prometheus.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::string cfg = "--config.file=" + dir / "prometheus.yml";
    std::string data = "--storage.tsdb.path=" + dir / "data";
    std::string web = "--web.listen-address=127.0.0.1:" + std::to_string(port);
    ::execlp("prometheus", "prometheus", cfg.c_str(), data.c_str(), web.c_str(), nullptr);
    ::_exit(127);
  }
  const std::string url =
      "http://127.0.0.1:" + std::to_string(port) + "/api/v1/query?query=up%7Bjob%3D%22herd%22%7D";
  std::set<std::string> up;
  // file_sd batches updates every 5 s; allow a loaded machine plenty more.
  bool all_up = WaitFor(
      [&] {
        std::string body = HttpGet(url);
        if (body.empty()) return false;
        auto j = nlohmann::json::parse(body, nullptr, false);
        if (j.is_discarded() || j["status"] != "success") return false;
        up.clear();
        for (const auto& s : j["data"]["result"]) {
          if (s["value"][1] == "1") up.insert(s["metric"]["instance"].get<std::string>());
        }
        return up.size() == 5;
      },
      120s);
  ::kill(prom, SIGTERM);
  int status = 0;
  if (!WaitFor([&] { return ::waitpid(prom, &status, WNOHANG) == prom; }, 20s)) {
    ::kill(prom, SIGKILL);
    ::waitpid(prom, &status, 0);
  }
  INFO(ReadFile(dir / "prometheus.log"));
  CHECK(all_up);
  // instance is relabelled to the fleet name
  CHECK(up == std::set<std::string>{"node1", "node2", "node3", "node4", "node5"});
}
