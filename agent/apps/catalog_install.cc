#include "agent/apps/catalog_install.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "agent/apps/partial_upload.h"
#include "common/app/bundle.h"
#include "common/file.h"
#include "common/hash.h"

namespace herd::agent {
namespace {

Status Refused(const std::string& why) { return Status(StatusCode::kPermissionDenied, why); }

// A fetch that failed on the way: the catalogue's fault (or the call's
// deadline), never the caller's.
Status Unreachable(const Status& s) {
  if (s.code() == StatusCode::kDeadlineExceeded) return s;
  return Status(StatusCode::kUnavailable, s.message());
}

// Step 1: the catalogue's index, verified, and not older than one seen.
Result<app::CatalogIndex> FetchIndex(const CatalogSource& c, AppDb& db,
                                     const Cancelled& cancelled) {
  Result<app::CatalogIndex> index = Status::Internal("not fetched");
  std::string text;
  // Twice at most: a publisher replaces the signature, then the index, so a
  // fetch between the two sees a pair that does not match; the second
  // fetch sees the new pair.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto got = HttpGet(c.url + app::kIndexFile, app::kMaxIndexBytes, cancelled);
    if (!got.ok()) return Unreachable(got.status());
    auto sig = HttpGet(c.url + app::kIndexSignatureFile, 64 << 10, cancelled);
    if (!sig.ok()) return Unreachable(sig.status());
    text = std::move(*got);
    index = app::VerifyIndex(c.key, text, *sig, c.url + app::kIndexFile);
    if (index.ok() || index.status().message().find("bad signature") == std::string::npos) break;
  }
  if (!index.ok()) return index.status();
  const std::string key(reinterpret_cast<const char*>(c.key.key.data()), c.key.key.size());
  Status s = db.AdvanceSeenIndex(Base64Encode(key), {index->sequence, Sha256Hex(text)});
  if (!s.ok()) {
    return Status(s.code(), fmt::format("{}{} (catalogue key {}): {}", c.url, app::kIndexFile,
                                        app::KeyIdHex(c.key.id), s.message()));
  }
  return index;
}

// Step 3: the bundle into the store under its digest (resuming a partial).
// The caller holds the digest's claim.
Status Download(const std::string& url, const app::CatalogVersion& v, AppStore& store,
                const Cancelled& cancelled, CatalogInstallResult* out) {
  const std::string part = store.PartialPath(v.sha256), dest = store.BundlePath(v.sha256);
  if (::access(dest.c_str(), F_OK) == 0) return Status::Ok();  // stored, not yet installed
  uint64_t offset = PartialBytes(part);
  if (offset >= v.size) offset = 0;
  if (offset == 0) {
    (void)TrimPartials(ParentDir(part), kKeepPartials - 1, kPartialMaxAge, &store.uploads());
  }
  std::unique_ptr<PartialUpload> writer;
  // The whole bundle within 5 minutes plus what 32 KiB/s takes for it.
  const auto limit = std::chrono::seconds(300 + v.size / (32 << 10));
  Status s = HttpGetTo(
      url + app::CatalogBundlePath(v.sha256), offset, v.size, limit, cancelled,
      [&](uint64_t from) -> Status {
        auto w = PartialUpload::Open(part, dest, v.size, v.sha256, from);
        if (!w.ok()) return w.status();
        writer = std::move(*w);
        out->resumed_from = from;
        return Status::Ok();
      },
      [&](std::string_view data) { return writer->Write(std::string(data)); });
  if (writer) out->downloaded = writer->written() - out->resumed_from;
  if (!s.ok()) return Unreachable(s);
  if (!writer) return Status(StatusCode::kUnavailable, url + ": the bundle came empty");
  // Bytes that are not the index's digest: the catalogue's fault, refused.
  if (Status c = writer->Commit(); !c.ok()) {
    return Status(StatusCode::kPermissionDenied,
                  "the bundle the catalogue sent is not the one its index signs: " + c.message());
  }
  return Status::Ok();
}

// Step 4: the bundle is the index's entry, signed by a key both the index
// and the device allow for the app.
Status CheckAgainstIndex(const AppsSettings& settings, const std::string& path,
                         const std::string& name, const app::CatalogApp& entry,
                         const app::CatalogVersion& v) {
  auto head = app::ReadHead(path);
  if (!head.ok()) return head.status();
  const app::AppSpec& m = head->manifest.app;
  if (m.name != name || m.version != v.version || m.sequence != v.sequence) {
    return Refused(
        fmt::format("the catalogue lists {} {} (sequence {}) with a bundle of {} {} "
                    "(sequence {}): refused",
                    name, v.version, v.sequence, m.name, m.version, m.sequence));
  }
  std::vector<app::PublicKey> keys;
  std::string ids;
  for (const auto& [id, line] : entry.publishers) {
    ids += (ids.empty() ? "" : ", ") + id;
    auto k = app::ParsePublicKey(line, "publisher " + id);
    if (!k.ok()) continue;
    for (const auto& trusted : settings.publishers) {
      if (trusted.id == k->id && trusted.key == k->key) keys.push_back(*k);
    }
  }
  if (keys.empty()) {
    return Refused(
        fmt::format("the catalogue allows keys {} to sign {}; this device trusts none "
                    "of them (apps.publishers in its agent config)",
                    ids, name));
  }
  auto signers = app::CheckSignatures(*head, keys);
  if (!signers.ok()) {
    return Refused(fmt::format("{} {}: {} (keys the catalogue allows for {}: {})", name, v.version,
                               signers.status().message(), name, ids));
  }
  return Status::Ok();
}

}  // namespace

Result<CatalogInstallResult> InstallFromCatalog(const AppsSettings& settings, AppStore& store,
                                                AppDb& db, const CatalogInstallRequest& req,
                                                const Cancelled& cancelled) {
  if (settings.catalogs.empty()) {
    return Status(StatusCode::kFailedPrecondition,
                  "this device has no catalogue (apps.catalogs in its agent config)");
  }
  CatalogInstallResult out;
  out.channel = req.channel.empty() ? settings.catalogs.front().channels.front() : req.channel;
  std::string allowed;
  bool taken = false;
  for (const auto& c : settings.catalogs) {
    for (const auto& ch : c.channels) {
      taken = taken || ch == out.channel;
      if (allowed.find(ch) == std::string::npos) allowed += (allowed.empty() ? "" : ", ") + ch;
    }
  }
  if (!taken) {
    return Refused(
        fmt::format("this device takes channel {} only, not {} (apps.catalogs "
                    "channels in its agent config)",
                    allowed, out.channel));
  }
  // Steps 1 and 2: the first catalogue whose index has the app.
  Status first_error = Status::Ok();
  const CatalogSource* from = nullptr;
  app::CatalogIndex index;
  for (const auto& c : settings.catalogs) {
    if (std::find(c.channels.begin(), c.channels.end(), out.channel) == c.channels.end()) continue;
    auto fetched = FetchIndex(c, db, cancelled);
    // A catalogue that answered and was refused (its key, its signature, a
    // rollback) is not passed over for the next: that would let whoever
    // tampers with one choose another's version.
    if (!fetched.ok() && fetched.status().code() == StatusCode::kPermissionDenied) {
      return fetched.status();
    }
    Result<app::CatalogVersion> v =
        fetched.ok() ? app::ResolveVersion(*fetched, req.name, req.version, out.channel)
                     : Result<app::CatalogVersion>(fetched.status());
    if (v.ok()) {
      from = &c;
      index = std::move(*fetched);
      out.entry = *v;
      break;
    }
    // A refusal or a version on another channel says more than "not here".
    const bool specific = v.status().code() != StatusCode::kNotFound ||
                          (fetched.ok() && fetched->apps.count(req.name));
    if (first_error.ok() || (specific && first_error.code() == StatusCode::kNotFound)) {
      first_error = v.status();
    }
  }
  if (!from) return first_error;
  out.url = from->url;
  out.index_sequence = index.sequence;
  if (req.resolve_only) return out;
  if (out.entry.size > settings.max_bundle_bytes) {
    return Status(
        StatusCode::kResourceExhausted,
        fmt::format("{} {} has {} bytes; this device takes at most {} "
                    "(apps.max_bundle_size)",
                    req.name, out.entry.version, out.entry.size, settings.max_bundle_bytes));
  }
  // A copy: `out` is moved into the return value before `claim` ends.
  const std::string sha = out.entry.sha256;
  // The digest is this call's from the download to the check: no upload of
  // it meanwhile, and a refused bundle is removed before anyone else uses it.
  const UploadClaim claim = UploadClaim::Take(store.uploads(), sha);
  if (!claim.held()) {
    return Status(StatusCode::kFailedPrecondition,
                  "this bundle is being installed on the device by another call; try again "
                  "once that one has ended");
  }
  InstalledVersionInfo same;
  const bool installed = store.Installed(sha, &same);
  if (!installed) {
    if (Status s = Download(from->url, out.entry, store, cancelled, &out); !s.ok()) return s;
  }
  if (Status s = CheckAgainstIndex(settings, store.BundlePath(sha), req.name,
                                   index.apps.at(req.name), out.entry);
      !s.ok()) {
    if (!installed) ::unlink(store.BundlePath(sha).c_str());
    return s;
  }
  auto v = store.Install(sha, req.allow_downgrade);
  if (!v.ok()) return v.status();
  out.installed = *v;
  return out;
}

}  // namespace herd::agent
