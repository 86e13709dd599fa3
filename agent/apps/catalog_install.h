// Installing an app by name from the catalogues the owner configured
// (apps.catalogs; docs/catalog.md). The device fetches and checks
// everything itself, trusting no transport and no caller:
//
//   1. each catalogue's index and signature, verified with the key in the
//      agent config; an index older than one seen from that key, or a
//      different one with the same sequence, is refused (AppDb::SeenIndex);
//   2. the version: the one asked for, or the newest on the channel; the
//      channel must be one the owner allows, and the version on it and not
//      below the app's minimum;
//   3. the bundle, by digest (bundles/<sha256>.herd): skipped when installed
//      already, resumed when a download was cut short (PartialUpload), at
//      most the index's size, and its SHA-256 must be the index's;
//   4. the bundle's manifest must be the index's app, version and sequence,
//      and a signature must verify with a key both the index allows for
//      the app and the device trusts (apps.publishers);
//   5. then AppStore::Install, as for an upload.
//
// Blocking (network and disk): runs on one of the Activator's threads.
// Thread-safe as AppStore and AppDb are.
#pragma once

#include <string>

#include "agent/apps/app_db.h"
#include "agent/apps/app_store.h"
#include "agent/apps/http_fetch.h"
#include "agent/config.h"
#include "common/app/catalog.h"

namespace herd::agent {

struct CatalogInstallRequest {
  std::string name, version;  // version "": the newest on the channel
  std::string channel;        // "": the first catalogue's first channel
  bool allow_downgrade = false;
  bool resolve_only = false;  // steps 1 and 2 only: which version it would be
};

struct CatalogInstallResult {
  std::string url;  // the catalogue it came from
  uint64_t index_sequence = 0;
  std::string channel;
  app::CatalogVersion entry;
  uint64_t downloaded = 0;         // bytes fetched now
  uint64_t resumed_from = 0;       // a download cut short went on from here
  InstalledVersionInfo installed;  // unless resolve_only
};

Result<CatalogInstallResult> InstallFromCatalog(const AppsSettings& settings, AppStore& store,
                                                AppDb& db, const CatalogInstallRequest& req,
                                                const Cancelled& cancelled);

}  // namespace herd::agent
