// herd catalog init | add | list | show: the publisher's side of a
// catalogue folder (common/app/catalog.h), as records for the output layer.
// Local files only; `herd catalog serve` is control/catalog_server.h.
//
// Every change verifies the index it starts from with the catalogue's key,
// adds or changes one thing, raises the index's sequence by one, signs it,
// and replaces index.json.minisig and index.json (each atomically). A
// bundle goes in as bundles/<sha256>.herd before the index names it.
#pragma once

#include <string>
#include <vector>

#include "common/app/catalog.h"
#include "common/status.h"
#include "control/output.h"

namespace herd::control {

// The secret key's default place: beside the folder, never in it (the
// folder is served): DIR.key.
std::string DefaultCatalogKey(const std::string& dir);

// Makes DIR a catalogue: bundles/, an empty signed index (sequence 1) and
// catalog.pub. Uses the secret key at `key_path`, made there (0600) when
// it does not exist. Refuses a folder that already holds an index.
Result<Record> CatalogInit(const std::string& dir, const std::string& key_path);

struct CatalogAddSpec {
  std::string dir, bundle, key_path;
  std::string channel = "stable";
  // Public key files allowed to sign the app: needed for an app's first
  // version; later ones add keys.
  std::vector<std::string> publishers;
  bool min = false;  // this version becomes the app's minimum: older ones are no longer offered
};
// Adds a signed bundle (or moves a version already there to `channel`).
// The bundle must verify with one of the app's publisher keys; a version
// or sequence already taken by another bundle is refused.
Result<Record> CatalogAdd(const CatalogAddSpec& spec);

// The index, verified with DIR/catalog.pub.
Result<app::CatalogIndex> LoadCatalog(const std::string& dir);
// Every app, or (with `name`) one app's versions, as records.
std::vector<Record> CatalogRecords(const app::CatalogIndex& index, const std::string& name);

}  // namespace herd::control
