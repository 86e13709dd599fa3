// HTTP(S) GETs for catalogue installs, with libcurl. libcurl (and the ~30
// libraries it brings) is loaded with dlopen at the first fetch, not at
// start: a device that never installs from a catalogue never maps it, which
// keeps herdd's idle footprint (bench/README.md).
//
// Bounded whatever the server does: http and https only (redirects too, at
// most 3, and never from https down to http), a connect timeout, a
// transfer below 1 KiB/s for 30 s is cut, and so is one past its time
// limit or beyond its byte limit; `cancelled` is polled while waiting
// (kDeadlineExceeded).
// Thread-safe (each call has its own handle).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace herd::agent {

using Cancelled = std::function<bool()>;

// The body of `url`, at most `max_bytes` (more is an error). Errors name the
// URL and what failed (HTTP status, or the transport's reason): kNotFound
// for 404, kUnavailable otherwise.
// At most 60 s.
Result<std::string> HttpGet(const std::string& url, size_t max_bytes, const Cancelled& cancelled);

// Streams `url` from byte `offset` on into `sink` ("Range: bytes=OFFSET-"
// when OFFSET > 0), at most `max_bytes` in all. Before the first bytes,
// `on_start` learns where they start: OFFSET, or 0 when the server ignored
// the range and sends the whole file. An error of either ends the transfer
// with that error. At most `limit` in all.
Status HttpGetTo(const std::string& url, uint64_t offset, uint64_t max_bytes,
                 std::chrono::seconds limit, const Cancelled& cancelled,
                 const std::function<Status(uint64_t from)>& on_start,
                 const std::function<Status(std::string_view data)>& sink);

}  // namespace herd::agent
