// CatalogServer: `herd catalog serve`, a catalogue folder over plain HTTP
// for a local fleet (any static web server does as well: devices trust
// signatures, not the transport).
//
// Serves GET and HEAD of exactly the catalogue's files (index.json, its
// signature, catalog.pub, bundles/<sha256>.herd), with single byte ranges
// ("Range: bytes=N-" or "bytes=N-M") so that a device resumes a download
// cut short, and /metrics: herd_catalog_requests_total{file,code},
// herd_catalog_bytes_served_total{file} and herd_catalog_bundles_served_total
// (bundles sent to their end). Any other path is 404; nothing outside the
// folder's files can be named.
//
// civetweb's worker threads (`threads` of them) serve the requests; the
// counters are atomic. The destructor stops the server.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace herd::control {

class CatalogServer {
 public:
  // Binds `listen` (HOST:PORT; port 0 picks one) over the folder `dir`.
  static Result<std::unique_ptr<CatalogServer>> Start(const std::string& dir,
                                                      const std::string& listen, int threads);
  ~CatalogServer();
  CatalogServer(const CatalogServer&) = delete;
  CatalogServer& operator=(const CatalogServer&) = delete;

  int port() const;
  // The Prometheus text exposition of the counters.
  std::string Metrics() const;

  struct Impl;

 private:
  explicit CatalogServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace herd::control
