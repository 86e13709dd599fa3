// PartialUpload: a bundle upload that survives being cut short. The bytes go
// to <bundles>/<sha256>.part and stay there when the connection breaks or
// herdd is killed, so that the next Install of the same digest sends only
// what is missing (InstallStatus says how much is held). Commit checks the
// size and the SHA-256 of the whole file, then renames it to the bundle's
// path; a digest that does not match removes the partial, so the next
// attempt starts afresh. AppStore::Open and TrimPartials bound how many
// partials stay, and for how long (docs/apps.md). One instance per upload;
// not thread-safe. Two uploads of one digest at once are refused by
// AppStore::ClaimUpload, not here.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "common/hash.h"
#include "common/status.h"

namespace herd::agent {

class PartialUpload {
 public:
  // Continues the partial at `part` from `offset` (0: starts afresh). An
  // offset beyond what the partial holds is refused (kFailedPrecondition);
  // bytes after it are dropped.
  static Result<std::unique_ptr<PartialUpload>> Open(const std::string& part,
                                                     const std::string& dest, uint64_t size,
                                                     const std::string& sha256, uint64_t offset);
  // Keeps what was written (an empty partial is removed).
  ~PartialUpload();
  PartialUpload(const PartialUpload&) = delete;
  PartialUpload& operator=(const PartialUpload&) = delete;

  Status Write(const std::string& chunk);
  // Verifies size and digest (reading the resumed part again), then fsyncs
  // and renames the partial to `dest`.
  Status Commit();
  uint64_t offset() const { return offset_; }
  uint64_t written() const { return written_; }  // of the whole bundle, offset included

 private:
  PartialUpload() = default;
  Result<std::string> Digest();

  std::string part_, dest_, sha256_;
  uint64_t size_ = 0, offset_ = 0, written_ = 0;
  int fd_ = -1;
  bool committed_ = false;
  Sha256 hash_;  // of the bytes this upload wrote; used when offset_ is 0
};

// The bytes of the partial at `part` (0 when there is none).
uint64_t PartialBytes(const std::string& part);

// How many partials a device keeps, and for how long: a partial older than
// a day is from an install nobody is coming back for.
inline constexpr size_t kKeepPartials = 4;
inline constexpr std::chrono::hours kPartialMaxAge{24};

class UploadClaims;
// Keeps the `keep` newest partials (*.part) in `bundles_dir` that are no
// older than `max_age` and removes the others, but never one whose digest
// `claims` holds (being written). Returns how many it removed.
int TrimPartials(const std::string& bundles_dir, size_t keep, std::chrono::seconds max_age,
                 UploadClaims* claims = nullptr);

// The digests being uploaded right now: one upload per digest at a time, so
// that two never write one partial. Thread-safe.
class UploadClaims {
 public:
  bool Claim(const std::string& sha256);  // false: another upload holds it
  void Release(const std::string& sha256);
  bool Held(const std::string& sha256);

 private:
  std::mutex mu_;
  std::set<std::string> held_;
};

// One call's hold on a digest in UploadClaims, let go when it ends (or at
// Reset). It keeps its own copy of the digest.
class UploadClaim {
 public:
  UploadClaim() = default;
  // held() is false when another call holds the digest.
  static UploadClaim Take(UploadClaims& claims, std::string sha256);
  UploadClaim(UploadClaim&& o) noexcept { *this = std::move(o); }
  UploadClaim& operator=(UploadClaim&& o) noexcept;
  UploadClaim(const UploadClaim&) = delete;
  UploadClaim& operator=(const UploadClaim&) = delete;
  ~UploadClaim() { Reset(); }

  bool held() const { return claims_ != nullptr; }
  void Reset();

 private:
  UploadClaims* claims_ = nullptr;
  std::string sha256_;
};

}  // namespace herd::agent
