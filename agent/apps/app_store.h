// AppStore: the apps installed on this device, on disk (docs/apps.md).
//
//   <dir>/bundles/<sha256>.herd      bundles, kept by digest
//   <dir>/bundles/<sha256>.part      uploads cut short, kept to resume them
//   <dir>/<name>/<sequence>/files/   a version's files, as its payload lists them
//   <dir>/<name>/<sequence>/manifest.json, install.json
//   <dir>/<name>/data/               the app's data (one folder, never per version)
//   <dir>/uids                       "NAME UID" per app: its uid, stable
//
// Install takes a bundle already stored under its digest and decides, in
// this order: signatures (the publishers the owner's config trusts), the
// owner's policy (network, memory, pids), the sequence (no downgrade unless
// asked; one bundle per sequence), then verifies and extracts the payload.
// A version appears only complete: it is extracted into a temporary folder
// that is renamed into place after an fsync; removed versions are renamed
// away before they are deleted. Open() removes what a killed herdd left, so
// after SIGKILL at any step a version is either fully there or absent.
//
// Thread-safe: Install and Prune serialise on a mutex; List may run
// alongside them (it sees versions only once renamed into place).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agent/apps/partial_upload.h"
#include "agent/config.h"
#include "common/status.h"

namespace herd::agent {

struct InstalledVersionInfo {
  std::string name, version;
  uint64_t sequence = 0;
  std::string bundle_sha256;
  uint64_t files = 0, bytes = 0;
  int64_t installed_unix = 0;
  std::vector<std::string> signers;  // key ids (hex)
  bool already_installed = false;    // Install: the same bundle was there
};

class AppStore {
 public:
  AppStore(const AppsSettings& settings, std::string dir);

  // Creates the folders, removes what an interrupted install or prune left
  // (temporary and discarded folders, bundles no version uses) and prunes
  // every app to keep_versions.
  Status Open();

  const std::string& dir() const { return dir_; }
  // Where the bundle with this digest is (or goes once uploaded).
  std::string BundlePath(const std::string& sha256) const;
  // Where an upload of it cut short is kept (agent/apps/partial_upload.h).
  std::string PartialPath(const std::string& sha256) const {
    return dir_ + "/bundles/" + sha256 + ".part";
  }
  // One upload per digest at a time.
  UploadClaims& uploads() { return uploads_; }
  // The installed version that came from this bundle, if any.
  bool Installed(const std::string& sha256, InstalledVersionInfo* out) const;

  // Installs the stored bundle `sha256`. Refusals (kPermissionDenied for
  // trust and policy, kFailedPrecondition for a downgrade, kAlreadyExists
  // for another bundle of the same sequence, kInvalidArgument for a bundle
  // that does not match its manifest) leave the store as it was, but for
  // the stored bundle, which is removed unless a version uses it.
  Result<InstalledVersionInfo> Install(const std::string& sha256, bool allow_downgrade);

  // Versions Prune never removes (the current and previous of each app,
  // and one being activated), whatever keep_versions says.
  void SetProtected(std::function<std::set<uint64_t>(const std::string& name)> fn);
  // Removes every version of `name` and the bundles only they used, and
  // its data folder too when `purge`.
  Status RemoveApp(const std::string& name, bool purge);

  // Every installed version, by app name, highest sequence first.
  std::vector<InstalledVersionInfo> List() const;

  // The app's own uid (and gid, the same number): allocated once from
  // apps.uid_base upwards, skipping ids this machine's accounts and groups
  // use, and kept in <dir>/uids so that it never changes.
  Result<uid_t> AppUid(const std::string& name);
  // The host port of the app's `listen` socket named `listen`: allocated
  // once from apps.port_base upwards and kept in <dir>/ports.
  Result<int> AppPort(const std::string& name, const std::string& listen);
  // <dir>/<name>/data, made on first use: 0700, owned by the app's uid.
  Result<std::string> DataDir(const std::string& name);

 private:
  std::vector<InstalledVersionInfo> Versions(const std::string& name) const;
  void Prune(const std::string& name);
  void RemoveUnusedBundle(const std::string& sha256);

  const AppsSettings& settings_;
  const std::string dir_;
  mutable std::mutex mu_;  // Install and Prune
  UploadClaims uploads_;
  std::function<std::set<uint64_t>(const std::string&)> protected_;
};

// Test-only crash injection: herdd kills itself with SIGKILL when it
// reaches the step named by the environment variable HERD_TEST_CRASH_AT
// (steps: install:stored, install:verified, install:extracting,
// install:extracted, install:renamed, install:pruning).
void CrashPoint(const char* step);

}  // namespace herd::agent
