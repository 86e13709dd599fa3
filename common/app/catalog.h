// A catalogue of signed apps: a folder that any static web server can serve
// (docs/catalog.md).
//
//   index.json              the index: apps, their versions and publishers
//   index.json.minisig      the index signed with the catalogue's key (minisign)
//   catalog.pub             the catalogue's public key (for people; devices are
//                           configured with it, never take it from here)
//   bundles/<sha256>.herd   the bundles, by digest
//
// The index names, per app, the publisher keys allowed to sign it, its
// minimum sequence, and each version's sequence, bundle digest and size and
// channel. Its own sequence grows by one at every change, so a device can
// refuse an older index than one it has seen (no rollback). A device trusts
// nothing the transport says: it verifies the index's signature with the key
// its owner configured, then the bundle's digest against the index, then the
// bundle's own signatures and manifest against the index's entry.
//
// Pure functions over values and text; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/app/minisign.h"
#include "common/status.h"

namespace herd::app {

inline constexpr const char* kIndexFile = "index.json";
inline constexpr const char* kIndexSignatureFile = "index.json.minisig";
inline constexpr const char* kCatalogPublicKeyFile = "catalog.pub";
inline constexpr size_t kMaxIndexBytes = 8 << 20;  // what a device reads of an index

struct CatalogVersion {
  std::string version;
  uint64_t sequence = 0;
  std::string sha256;  // of the bundle file
  uint64_t size = 0;   // its bytes
  std::string channel = "stable";
  int64_t added_unix = 0;
};

struct CatalogApp {
  // The keys that may sign the app's bundles: key id (hex) to the public
  // key's base64 line.
  std::map<std::string, std::string> publishers;
  uint64_t min_sequence = 0;             // versions below it are not offered
  std::vector<CatalogVersion> versions;  // by sequence, ascending
};

struct CatalogIndex {
  uint64_t sequence = 0;  // +1 at each change
  int64_t updated_unix = 0;
  std::map<std::string, CatalogApp> apps;
};

// The bundle's path in the catalogue folder (and URL, under its root).
std::string CatalogBundlePath(const std::string& sha256);

// The index's text (stable: sorted keys, two-space indent), and back.
// ParseIndex checks every field (names, versions, digests, channels, keys,
// sequences ascending and unique); errors name `source` and the field.
std::string IndexText(const CatalogIndex& index);
Result<CatalogIndex> ParseIndex(std::string_view text, const std::string& source);

// The index, once `signature` verifies with `key`: kPermissionDenied
// naming the key that signed it when that is another one, or for a bad
// signature.
Result<CatalogIndex> VerifyIndex(const PublicKey& key, std::string_view text,
                                 std::string_view signature, const std::string& source);

// Why `channel` is not a channel name ("" when it is): 1 to 32 of a-z, 0-9, '-'.
std::string ChannelError(const std::string& channel);

// The version a device installs for NAME[@VERSION] from `channel`: the one
// named, or the newest on the channel. Refused with what the index has
// instead: an unknown app or version (kNotFound), a version on another
// channel or below the app's minimum (kFailedPrecondition).
Result<CatalogVersion> ResolveVersion(const CatalogIndex& index, const std::string& name,
                                      const std::string& version, const std::string& channel);

// "NAME" or "NAME@VERSION", split and checked.
struct AppRef {
  std::string name, version;
};
Result<AppRef> ParseAppRef(const std::string& text);

}  // namespace herd::app
