#include "agent/host/scrape_server.h"

#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <vector>

#include "common/unique_fd.h"
#include "tests/support/test_support.h"

using herd::UniqueFd;
using herd::agent::ScrapeServer;
using herd::testing::HttpGet;

namespace {

UniqueFd Connect(int port) {
  UniqueFd fd = herd::testing::ConnectLoopback(port);
  REQUIRE(fd.valid());
  return fd;
}

// Sends `request` and reads until the server closes (bounded by SO_RCVTIMEO).
std::string Exchange(int port, const std::string& request) {
  UniqueFd fd = Connect(port);
  timeval tv{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  REQUIRE(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[4096];
  for (int i = 0; i < 1000; ++i) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

TEST_CASE("the scrape endpoint answers GET and HEAD of its path, and nothing else",
          "[agent][metrics]") {
  int renders = 0;
  auto s = ScrapeServer::Start("127.0.0.1:0", "/metrics", [&] {
    ++renders;
    return std::string("up 1\n");
  });
  REQUIRE(s.ok());
  const int port = (*s)->port();
  long code = 0;
  CHECK(HttpGet("http://127.0.0.1:" + std::to_string(port) + "/metrics", &code) == "up 1\n");
  CHECK(code == 200);
  CHECK(HttpGet("http://127.0.0.1:" + std::to_string(port) + "/metrics?x=1", &code) == "up 1\n");
  HttpGet("http://127.0.0.1:" + std::to_string(port) + "/other", &code);
  CHECK(code == 404);
  const std::string head = Exchange(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK_THAT(head, Catch::Contains("Content-Length: 5\r\n"));
  CHECK(head.size() == head.find("\r\n\r\n") + 4);  // no body
  CHECK(Exchange(port, "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0) == 0);
  CHECK(Exchange(port, "garbage\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
  CHECK(Exchange(port, std::string(20000, 'A')).rfind("HTTP/1.1 431", 0) == 0);
  CHECK(renders == 3);
}

TEST_CASE("a scrape succeeds while other clients hold connections open", "[agent][metrics]") {
  auto s = ScrapeServer::Start("127.0.0.1:0", "/metrics", [] { return std::string("up 1\n"); });
  REQUIRE(s.ok());
  const int port = (*s)->port();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  // More idle and half-sent connections than the server keeps open.
  std::vector<UniqueFd> held;
  for (size_t i = 0; i < ScrapeServer::kMaxConnections + 36; ++i) {
    held.push_back(Connect(port));
    if (i % 2 == 0) ::send(held.back().get(), "GET /metr", 9, MSG_NOSIGNAL);
  }
  for (int i = 0; i < 5; ++i) {
    long code = 0;
    CHECK(HttpGet(url, &code) == "up 1\n");
    CHECK(code == 200);
  }
}

TEST_CASE("the scrape endpoint names the address it cannot bind", "[agent][metrics]") {
  auto first = ScrapeServer::Start("127.0.0.1:0", "/metrics", [] { return std::string(); });
  REQUIRE(first.ok());
  const std::string taken = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = ScrapeServer::Start(taken, "/metrics", [] { return std::string(); });
  REQUIRE_FALSE(second.ok());
  CHECK_THAT(second.status().message(), Catch::Contains("cannot serve metrics on " + taken) &&
                                            Catch::Contains("Address already in use"));
  CHECK_FALSE(ScrapeServer::Start("nonsense", "/metrics", [] { return std::string(); }).ok());
}
