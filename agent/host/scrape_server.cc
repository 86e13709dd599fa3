#include "agent/host/scrape_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace herd::agent {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct Connection {
  UniqueFd fd;
  std::string in, out;  // request so far; response to send
  size_t sent = 0;
  SteadyClock::time_point since;  // accepted, or response started
  bool responding = false;
};

std::string Response(const std::string& status, const std::string& type, const std::string& body,
                     bool head, const std::string& extra = "") {
  std::string r = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                  "\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\nConnection: close\r\n" + extra + "\r\n";
  if (!head) r += body;
  return r;
}

Status Errno(const std::string& address, const std::string& what) {
  return Status(StatusCode::kUnavailable,
                "cannot serve metrics on " + address + ": " + what + ": " + std::strerror(errno));
}

}  // namespace

Result<std::unique_ptr<ScrapeServer>> ScrapeServer::Start(const std::string& address,
                                                          const std::string& path, Render render) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return Status::Invalid("metrics address " + address + " is not HOST:PORT");
  }
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
      rc != 0) {
    return Status::Invalid("cannot serve metrics on " + address + ": " + ::gai_strerror(rc));
  }
  std::unique_ptr<ScrapeServer> s(new ScrapeServer());
  s->listen_ = UniqueFd(
      ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, res->ai_protocol));
  const int one = 1;
  Status bound;
  if (!s->listen_.valid()) {
    bound = Errno(address, "socket");
  } else if (::setsockopt(s->listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one),
             ::bind(s->listen_.get(), res->ai_addr, res->ai_addrlen) != 0) {
    bound = Errno(address, "bind");
  } else if (::listen(s->listen_.get(), 128) != 0) {
    bound = Errno(address, "listen");
  }
  ::freeaddrinfo(res);
  if (!bound.ok()) return bound;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(s->listen_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  s->port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) return Errno(address, "pipe");
  s->wake_read_ = UniqueFd(wake[0]);
  s->wake_write_ = UniqueFd(wake[1]);
  s->path_ = path;
  s->render_ = std::move(render);
  s->thread_ = std::thread([raw = s.get()] { raw->Loop(); });
  return s;
}

ScrapeServer::~ScrapeServer() {
  if (thread_.joinable()) {
    (void)!::write(wake_write_.get(), "x", 1);
    thread_.join();
  }
}

std::string ScrapeServer::Respond(const std::string& request) const {
  const std::string line = request.substr(0, request.find("\r\n"));
  const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 <= sp1 || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
    return Response("400 Bad Request", "text/plain", "bad request line\n", false);
  }
  const std::string method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    return Response("405 Method Not Allowed", "text/plain", "only GET and HEAD\n", false,
                    "Allow: GET, HEAD\r\n");
  }
  if (target != path_) {
    return Response("404 Not Found", "text/plain", "metrics are at " + path_ + "\n", head);
  }
  return Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", render_(), head);
}

void ScrapeServer::Loop() {
  std::vector<Connection> conns;
  std::vector<pollfd> fds;
  for (;;) {
    const auto now = SteadyClock::now();
    int timeout_ms = -1;
    fds.assign({{wake_read_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}});
    for (const auto& c : conns) {
      fds.push_back({c.fd.get(), static_cast<short>(c.responding ? POLLOUT : POLLIN), 0});
      const auto end = c.since + (c.responding ? kWriteTimeout : kRequestTimeout);
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - now).count();
      const int ms = static_cast<int>(std::max<long long>(0, left)) + 1;
      timeout_ms = timeout_ms < 0 ? ms : std::min(timeout_ms, ms);
    }
    if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) return;
    if (fds[0].revents != 0) return;  // stop
    const auto after = SteadyClock::now();
    for (size_t i = 0; i < conns.size(); ++i) {
      Connection& c = conns[i];
      const short ev = fds[i + 2].revents;
      if (!c.responding && ev != 0) {
        char buf[4096];
        const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          c.fd.Close();
          continue;
        }
        if (n > 0) c.in.append(buf, static_cast<size_t>(n));
        if (c.in.find("\r\n\r\n") != std::string::npos) {
          c.out = Respond(c.in);
        } else if (c.in.size() > kMaxRequestBytes) {
          c.out = Response("431 Request Header Fields Too Large", "text/plain",
                           "request larger than " + std::to_string(kMaxRequestBytes) + " bytes\n",
                           false);
        }
        if (!c.out.empty()) {
          c.responding = true;
          c.since = after;
          c.in.clear();
        }
      } else if (c.responding && ev != 0) {
        const ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
          c.fd.Close();
          continue;
        }
        if (n > 0) c.sent += static_cast<size_t>(n);
        if (c.sent == c.out.size()) {
          ::shutdown(c.fd.get(), SHUT_WR);
          c.fd.Close();
          continue;
        }
      }
      if (after >= c.since + (c.responding ? kWriteTimeout : kRequestTimeout)) c.fd.Close();
    }
    conns.erase(std::remove_if(conns.begin(), conns.end(),
                               [](const Connection& c) { return !c.fd.valid(); }),
                conns.end());
    // Newcomers, a bounded number per round; when full, the oldest waiting
    // connection (not one being answered, if any waits) makes room.
    for (int k = 0; k < 16 && fds[1].revents != 0; ++k) {
      UniqueFd fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!fd.valid()) break;
      if (conns.size() >= kMaxConnections) {
        auto victim =
            std::min_element(conns.begin(), conns.end(), [](const auto& a, const auto& b) {
              return std::make_pair(a.responding, a.since) < std::make_pair(b.responding, b.since);
            });
        conns.erase(victim);
      }
      Connection c;
      c.fd = std::move(fd);
      c.since = after;
      conns.push_back(std::move(c));
    }
  }
}

}  // namespace herd::agent
