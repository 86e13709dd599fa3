#include "agent/apps/http_fetch.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include <mutex>

#include "common/text.h"

namespace herd::agent {
namespace {

// The few libcurl functions herd calls, looked up once.
struct Curl {
  CURLcode (*global_init)(long) = nullptr;
  CURL* (*easy_init)() = nullptr;
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...) = nullptr;
  CURLcode (*easy_perform)(CURL*) = nullptr;
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...) = nullptr;
  void (*easy_cleanup)(CURL*) = nullptr;
  const char* (*easy_strerror)(CURLcode) = nullptr;
  std::string error;  // why it could not be loaded
};

template <class F>
bool Find(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(::dlsym(lib, name));
  return *out != nullptr;
}

const Curl& LoadCurl() {
  static Curl curl;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      curl.error = std::string("cannot load libcurl.so.4 (Debian's libcurl4): ") + ::dlerror();
      return;
    }
    if (!Find(lib, "curl_global_init", &curl.global_init) ||
        !Find(lib, "curl_easy_init", &curl.easy_init) ||
        !Find(lib, "curl_easy_setopt", &curl.easy_setopt) ||
        !Find(lib, "curl_easy_perform", &curl.easy_perform) ||
        !Find(lib, "curl_easy_getinfo", &curl.easy_getinfo) ||
        !Find(lib, "curl_easy_cleanup", &curl.easy_cleanup) ||
        !Find(lib, "curl_easy_strerror", &curl.easy_strerror)) {
      curl.error = "libcurl.so.4 lacks a function herd needs";
      curl.easy_init = nullptr;
      return;
    }
    if (curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      curl.error = "libcurl would not initialise";
      curl.easy_init = nullptr;
    }
  });
  return curl;
}

struct Transfer {
  const Curl& curl;
  CURL* h = nullptr;
  uint64_t offset = 0, max_bytes = 0, received = 0;
  long limit_ms = 60'000;
  bool started = false;
  Status error = Status::Ok();
  const Cancelled* cancelled = nullptr;
  const std::function<Status(uint64_t)>* on_start = nullptr;
  const std::function<Status(std::string_view)>* sink = nullptr;

  static size_t OnData(char* data, size_t, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    if (!t->started) {
      t->started = true;
      long code = 0;
      t->curl.easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &code);
      const uint64_t from = code == 206 ? t->offset : 0;
      if (t->on_start) t->error = (*t->on_start)(from);
      if (!t->error.ok()) return 0;
    }
    t->received += n;
    if (t->received > t->max_bytes) {
      t->error = Status(StatusCode::kResourceExhausted,
                        fmt::format("more than the {} bytes expected", t->max_bytes));
      return 0;
    }
    t->error = (*t->sink)(std::string_view(data, n));
    return t->error.ok() ? n : 0;
  }
  static int OnProgress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(self);
    return t->cancelled && *t->cancelled && (*t->cancelled)() ? 1 : 0;
  }
};

Status Run(const std::string& url, Transfer& t) {
  const Curl& curl = t.curl;
  if (!curl.easy_init) return Status(StatusCode::kUnavailable, curl.error);
  t.h = curl.easy_init();
  if (!t.h) return Status(StatusCode::kUnavailable, "libcurl: no handle");
  CURL* h = t.h;
  const bool https = url.rfind("https://", 0) == 0;
  // Only http(s), and no step down from https on a redirect: refused when
  // this libcurl cannot be told so (before 7.85).
  if (curl.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
      curl.easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https") !=
          CURLE_OK) {
    curl.easy_cleanup(h);
    t.h = nullptr;
    return Status(StatusCode::kUnavailable,
                  "this libcurl cannot restrict protocols (7.85+ needed)");
  }
  curl.easy_setopt(h, CURLOPT_URL, url.c_str());
  curl.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl.easy_setopt(h, CURLOPT_TIMEOUT_MS, t.limit_ms);
  curl.easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl.easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
  curl.easy_setopt(h, CURLOPT_FAILONERROR, 1L);
  curl.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10'000L);
  curl.easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl.easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
  curl.easy_setopt(h, CURLOPT_USERAGENT, "herdd/" HERD_VERSION);
  curl.easy_setopt(h, CURLOPT_WRITEFUNCTION, &Transfer::OnData);
  curl.easy_setopt(h, CURLOPT_WRITEDATA, &t);
  curl.easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl.easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &Transfer::OnProgress);
  curl.easy_setopt(h, CURLOPT_XFERINFODATA, &t);
  const std::string range = fmt::format("{}-", t.offset);
  if (t.offset > 0) curl.easy_setopt(h, CURLOPT_RANGE, range.c_str());
  const CURLcode rc = curl.easy_perform(h);
  long code = 0;
  curl.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl.easy_cleanup(h);
  t.h = nullptr;
  if (!t.error.ok()) return Status(t.error.code(), Excerpt(url, 200) + ": " + t.error.message());
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    return Status(StatusCode::kDeadlineExceeded,
                  Excerpt(url, 200) + ": cancelled (the call's deadline, or the agent stopping)");
  }
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    return Status(StatusCode::kUnavailable,
                  fmt::format("{}: too slow (more than {} s, or below 1 KiB/s for 30 s)",
                              Excerpt(url, 200), t.limit_ms / 1000));
  }
  if (rc == CURLE_HTTP_RETURNED_ERROR) {
    return Status(code == 404 ? StatusCode::kNotFound : StatusCode::kUnavailable,
                  fmt::format("{}: HTTP {}", Excerpt(url, 200), code));
  }
  if (rc != CURLE_OK) {
    return Status(StatusCode::kUnavailable,
                  fmt::format("{}: {}", Excerpt(url, 200), curl.easy_strerror(rc)));
  }
  if (!t.started && t.on_start) {
    // An empty body: the start is still news.
    if (Status s = (*t.on_start)(t.offset); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> HttpGet(const std::string& url, size_t max_bytes, const Cancelled& cancelled) {
  std::string body;
  const std::function<Status(std::string_view)> sink = [&body](std::string_view d) {
    body.append(d);
    return Status::Ok();
  };
  Transfer t{LoadCurl()};
  t.max_bytes = max_bytes;
  t.cancelled = &cancelled;
  t.sink = &sink;
  if (Status s = Run(url, t); !s.ok()) return s;
  return body;
}

Status HttpGetTo(const std::string& url, uint64_t offset, uint64_t max_bytes,
                 std::chrono::seconds limit, const Cancelled& cancelled,
                 const std::function<Status(uint64_t from)>& on_start,
                 const std::function<Status(std::string_view data)>& sink) {
  Transfer t{LoadCurl()};
  t.limit_ms = static_cast<long>(std::chrono::milliseconds(limit).count());
  t.offset = offset;
  t.max_bytes = max_bytes;
  t.cancelled = &cancelled;
  t.on_start = &on_start;
  t.sink = &sink;
  return Run(url, t);
}

}  // namespace herd::agent
