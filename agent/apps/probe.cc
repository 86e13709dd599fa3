#include "agent/apps/probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.h"

namespace herd::agent {
namespace {

using Clock = std::chrono::steady_clock;

int MsLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// A connected, non-blocking socket, or the reason there is none.
ProbeResult Connect(const std::string& host, int port, Clock::time_point deadline, UniqueFd* out) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) return {false, "bad-address"};
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return {false, "no-socket"};
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
    return {false, errno == ECONNREFUSED ? "refused" : "connect-error"};
  }
  pollfd p{fd.get(), POLLOUT, 0};
  if (::poll(&p, 1, MsLeft(deadline)) <= 0) return {false, "timeout"};
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return {false, err == ECONNREFUSED ? "refused" : "connect-error"};
  *out = std::move(fd);
  return {true, "ok"};
}

}  // namespace

ProbeResult ProbeTcp(const std::string& host, int port, std::chrono::milliseconds timeout) {
  UniqueFd fd;
  return Connect(host, port, Clock::now() + timeout, &fd);
}

ProbeResult ProbeHttp(const std::string& host, int port, const std::string& path,
                      std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  UniqueFd fd;
  if (ProbeResult r = Connect(host, port, deadline, &fd); !r.ok) return r;
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host +
                          "\r\nUser-Agent: herdd-probe\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < req.size()) {
    const ssize_t n = ::send(fd.get(), req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return {false, "send-error"};
    pollfd p{fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, MsLeft(deadline)) <= 0) return {false, "timeout"};
  }
  // The status line is all a probe reads: "HTTP/1.x NNN ...".
  char buf[64];
  size_t got = 0;
  while (got < 12) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, MsLeft(deadline)) <= 0) return {false, "timeout"};
    const ssize_t n = ::recv(fd.get(), buf + got, sizeof buf - got, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return {false, "reset"};
    }
    got += static_cast<size_t>(n);
  }
  const std::string line(buf, got);
  if (got < 12 || line.compare(0, 7, "HTTP/1.") != 0 || line[8] != ' ') {
    return {false, "bad-reply"};
  }
  // The rest is read (bounded) so that the server sees the client finish
  // instead of a reset.
  for (size_t drained = 0; drained < (64 << 10);) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, MsLeft(deadline)) <= 0) break;
    char rest[4096];
    const ssize_t n = ::recv(fd.get(), rest, sizeof rest, 0);
    if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) break;
    if (n > 0) drained += static_cast<size_t>(n);
  }
  const std::string code = line.substr(9, 3);
  if (code[0] == '2' || code[0] == '3') return {true, "ok"};
  return {false, "http-" + code};
}

}  // namespace herd::agent
