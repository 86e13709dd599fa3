#include "control/catalog_server.h"

#include <civetweb.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "common/app/catalog.h"
#include "common/hash.h"
#include "common/unique_fd.h"

namespace herd::control {

namespace {

constexpr size_t kPiece = 256 << 10;

// What a request path names: "" when it is none of the catalogue's files.
std::string FileKind(const std::string& uri) {
  if (uri == std::string("/") + app::kIndexFile) return "index";
  if (uri == std::string("/") + app::kIndexSignatureFile) return "signature";
  if (uri == std::string("/") + app::kCatalogPublicKeyFile) return "key";
  const std::string prefix = "/bundles/", suffix = ".herd";
  if (uri.size() == prefix.size() + 64 + suffix.size() && uri.rfind(prefix, 0) == 0 &&
      uri.compare(uri.size() - suffix.size(), suffix.size(), suffix) == 0 &&
      IsSha256Hex(std::string_view(uri).substr(prefix.size(), 64))) {
    return "bundle";
  }
  return "";
}

// Digits only (no sign, no space), at most 19 of them: no overflow.
bool Digits(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

// "bytes=N-" or "bytes=N-M" against `size`: false for anything else (then
// the whole file is sent, as RFC 9110 allows).
bool ParseRange(const char* header, uint64_t size, uint64_t* from, uint64_t* to) {
  if (!header) return false;
  std::string_view h = header;
  if (h.size() > 64 || h.rfind("bytes=", 0) != 0) return false;
  h.remove_prefix(6);
  const auto dash = h.find('-');
  if (dash == std::string_view::npos || !Digits(h.substr(0, dash), from)) return false;
  const std::string_view last = h.substr(dash + 1);
  uint64_t b = 0;
  if (last.empty()) {
    *to = size;
    return true;
  }
  if (!Digits(last, &b) || b < *from) return false;
  *to = b >= size ? size : b + 1;
  return true;
}

}  // namespace

struct CatalogServer::Impl {
  std::string dir;
  mg_context* ctx = nullptr;
  int port = 0;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("herd_catalog_requests_total")
          .Help(
              "Requests by the file they named (index, signature, key, bundle, other) and "
              "HTTP status")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& bytes =
      prometheus::BuildCounter()
          .Name("herd_catalog_bytes_served_total")
          .Help("Bytes of the catalogue's files sent, by file")
          .Register(*registry);
  prometheus::Counter& bundles = prometheus::BuildCounter()
                                     .Name("herd_catalog_bundles_served_total")
                                     .Help("Bundle downloads sent to their end")
                                     .Register(*registry)
                                     .Add({});

  void Count(const std::string& file, int code) {
    requests.Add({{"file", file.empty() ? "other" : file}, {"code", std::to_string(code)}})
        .Increment();
  }

  int Error(mg_connection* c, const std::string& file, int code, const std::string& text) {
    Count(file, code);
    mg_send_http_error(c, code, "%s\n", text.c_str());
    return code;
  }

  int Handle(mg_connection* c) {
    const mg_request_info* ri = mg_get_request_info(c);
    const std::string method = ri->request_method ? ri->request_method : "";
    const std::string uri = ri->local_uri ? ri->local_uri : "";
    if (method != "GET" && method != "HEAD") return Error(c, "", 405, "GET or HEAD only");
    if (uri == "/metrics") {
      Count("metrics", 200);
      const std::string text = prometheus::TextSerializer().Serialize(registry->Collect());
      mg_response_header_start(c, 200);
      mg_response_header_add(c, "Content-Type", "text/plain; version=0.0.4", -1);
      mg_response_header_add(c, "Content-Length", std::to_string(text.size()).c_str(), -1);
      mg_response_header_send(c);
      if (method == "GET") mg_write(c, text.data(), text.size());
      return 200;
    }
    const std::string file = FileKind(uri);
    if (file.empty()) return Error(c, "", 404, "not a file of this catalogue");
    const std::string path = dir + uri;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return Error(c, file, 404, "no such file in the catalogue");
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    uint64_t from = 0, to = size;
    const bool ranged = ParseRange(mg_get_header(c, "Range"), size, &from, &to);
    if (ranged && from >= size) {
      Count(file, 416);
      mg_response_header_start(c, 416);
      mg_response_header_add(c, "Content-Range", fmt::format("bytes */{}", size).c_str(), -1);
      mg_response_header_add(c, "Content-Length", "0", -1);
      mg_response_header_send(c);
      return 416;
    }
    const int code = ranged ? 206 : 200;
    Count(file, code);
    mg_response_header_start(c, code);
    mg_response_header_add(c, "Content-Type",
                           file == "index" ? "application/json" : "application/octet-stream", -1);
    mg_response_header_add(c, "Content-Length", std::to_string(to - from).c_str(), -1);
    mg_response_header_add(c, "Accept-Ranges", "bytes", -1);
    if (file != "bundle") mg_response_header_add(c, "Cache-Control", "no-cache", -1);
    if (ranged) {
      mg_response_header_add(c, "Content-Range",
                             fmt::format("bytes {}-{}/{}", from, to - 1, size).c_str(), -1);
    }
    mg_response_header_send(c);
    if (method == "HEAD") return code;
    std::string buf(kPiece, '\0');
    uint64_t at = from;
    while (at < to) {
      const ssize_t n = ::pread(fd.get(), buf.data(), std::min<uint64_t>(kPiece, to - at),
                                static_cast<off_t>(at));
      if (n <= 0 || mg_write(c, buf.data(), static_cast<size_t>(n)) <= 0) break;
      at += static_cast<uint64_t>(n);
    }
    bytes.Add({{"file", file}}).Increment(static_cast<double>(at - from));
    if (file == "bundle" && at == size) bundles.Increment();
    return code;
  }
};

Result<std::unique_ptr<CatalogServer>> CatalogServer::Start(const std::string& dir,
                                                            const std::string& listen,
                                                            int threads) {
  struct stat st {};
  if (::stat((dir + "/" + app::kIndexFile).c_str(), &st) != 0) {
    return Status::NotFound(dir + " is not a catalogue: no " + app::kIndexFile +
                            " (herd catalog init " + dir + " makes one)");
  }
  static std::once_flag init;
  std::call_once(init, [] { mg_init_library(0); });
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  const std::string nthreads = std::to_string(std::max(1, threads));
  const char* options[] = {
      "listening_ports", listen.c_str(),      "num_threads", nthreads.c_str(), "request_timeout_ms",
      "30000",           "enable_keep_alive", "yes",         nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = [](const mg_connection*, const char* message) {
    spdlog::debug("catalog server: {}", message);
    return 1;
  };
  impl->ctx = mg_start(&callbacks, nullptr, options);
  if (!impl->ctx) {
    return Status(StatusCode::kUnavailable,
                  "cannot listen on " + listen + " (in use, or not HOST:PORT?)");
  }
  mg_set_request_handler(
      impl->ctx, "/",
      [](mg_connection* c, void* self) { return static_cast<Impl*>(self)->Handle(c); }, impl.get());
  mg_server_port ports[1]{};
  if (mg_get_server_ports(impl->ctx, 1, ports) == 1) impl->port = ports[0].port;
  return std::unique_ptr<CatalogServer>(new CatalogServer(std::move(impl)));
}

CatalogServer::CatalogServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CatalogServer::~CatalogServer() {
  if (impl_->ctx) mg_stop(impl_->ctx);
}

int CatalogServer::port() const { return impl_->port; }

std::string CatalogServer::Metrics() const {
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

}  // namespace herd::control
