// App bundles: NAME-VERSION.herd. An uncompressed tar (written and read with
// libarchive) whose entries come in a fixed order, so that a device verifies
// the signed manifest before it reads a byte of payload:
//
//   herd-bundle        "herd-app-bundle v1\n": the format marker
//   manifest.json      the canonical manifest (manifest.h): the signed bytes
//   signatures         zero or more minisign signatures of manifest.json
//   payload.tar.zst    the app's files: a tar compressed with zstd, whose
//                      digest, 1 MiB chunk digests and entries the manifest lists
//
// Functions read and write files; no shared state (thread-safe).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/app/manifest.h"
#include "common/app/minisign.h"
#include "common/status.h"

namespace herd::app {

// The payload's limits while it is read: entries and bytes once expanded.
struct PayloadLimits {
  uint64_t max_entries = 10'000;
  uint64_t max_bytes = 1ull << 30;
};

// Packs DIR (which holds app.yaml) into `out`; refuses symbolic links,
// devices, FIFOs and sockets in DIR, and names that are not canonical.
Result<Manifest> Pack(const std::string& dir, const std::string& out);

// What precedes the payload, read and parsed (signatures not yet checked).
struct BundleHead {
  std::string manifest_text;
  Manifest manifest;
  std::vector<std::string> signatures;  // each a minisign signature's text
};
Result<BundleHead> ReadHead(const std::string& path);

// Reads the payload: its digest and every chunk's must match the manifest,
// and its entries must be exactly the manifest's files (canonical relative
// paths, regular files or directories, no links, devices, setuid bits,
// repeats), within `limits`. `on_file` (optional) gets each file's path and
// content in pieces (data empty and last true at its end).
using FileSink = std::function<Status(const FileEntry& file, std::string_view data, bool last)>;
Status VerifyPayload(const std::string& path, const Manifest& manifest,
                     const PayloadLimits& limits = {}, const FileSink& on_file = nullptr);

// The trust decision a device makes on a bundle's head: the key ids (hex)
// of the signatures by `trusted` keys that verify. Refused with the reason:
// kPermissionDenied "not signed" / "signed only by keys this device does not
// trust: ID, ..." / "bad signature by trusted key ID" (a bad signature by a
// trusted key refuses the bundle even when another one verifies).
Result<std::vector<std::string>> CheckSignatures(const BundleHead& head,
                                                 const std::vector<PublicKey>& trusted);

// Replaces the bundle's signatures (the rest is copied unchanged).
Status WriteSignatures(const std::string& path, const std::vector<std::string>& signatures);

// Splits a file of one or more minisign signatures.
std::vector<std::string> SplitSignatures(const std::string& text);

}  // namespace herd::app
