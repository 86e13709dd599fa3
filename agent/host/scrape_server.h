// ScrapeServer: the plain-HTTP endpoint Prometheus scrapes. One thread and
// poll(), so no client can hold a worker that a scrape needs: a thread per
// connection (civetweb's model) is blinded by as many idle connections as it
// has threads.
//
// Bounded whatever clients do: at most kMaxConnections are open (when full,
// the one that has waited longest is closed to admit the newcomer); a request
// must arrive whole within kRequestTimeout and fit in kMaxRequestBytes; a
// response must drain within kWriteTimeout. Every response closes its
// connection. GET and HEAD of `path`; anything else is 404 or 405.
//
// `render` runs on the server's thread, once per scrape. The destructor stops
// the thread and closes every connection.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "common/unique_fd.h"

namespace herd::agent {

class ScrapeServer {
 public:
  static constexpr size_t kMaxConnections = 64;
  static constexpr size_t kMaxRequestBytes = 8192;
  static constexpr std::chrono::seconds kRequestTimeout{5};
  static constexpr std::chrono::seconds kWriteTimeout{10};

  using Render = std::function<std::string()>;

  // Binds `address` (host:port, [v6]:port; port 0 picks one) and starts serving.
  static Result<std::unique_ptr<ScrapeServer>> Start(const std::string& address,
                                                     const std::string& path, Render render);
  ~ScrapeServer();
  ScrapeServer(const ScrapeServer&) = delete;
  ScrapeServer& operator=(const ScrapeServer&) = delete;

  int port() const { return port_; }

 private:
  ScrapeServer() = default;
  void Loop();
  std::string Respond(const std::string& request) const;

  UniqueFd listen_, wake_read_, wake_write_;
  int port_ = 0;
  std::string path_;
  Render render_;
  std::thread thread_;
};

}  // namespace herd::agent
