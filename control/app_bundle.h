// herd app keygen | pack | sign | inspect: the publisher's side of app
// bundles (common/app/bundle.h), as records for the output layer. Local
// files only; no network.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "control/output.h"

namespace herd::control {

// NAME.key (0600) and NAME.pub in `dir`; never overwrites either.
Result<Record> KeygenApp(const std::string& dir, const std::string& name);
// Packs DIR into `out` (default NAME-VERSION.herd in the working directory).
Result<Record> PackApp(const std::string& dir, const std::string& out);
// Adds a signature: made here with a herd key (`key_path`), or made
// elsewhere by minisign over the manifest (`minisig_path`).
Result<Record> SignApp(const std::string& bundle, const std::string& key_path,
                       const std::string& minisig_path);
// The manifest, digests and which signatures verify against `keys`
// (public key files); the payload is checked against the manifest.
// `manifest_out` / `signatures_out` (optional) receive the signed bytes and
// the signatures, for checking them with minisign.
Result<Record> InspectApp(const std::string& bundle, const std::vector<std::string>& keys,
                          const std::string& manifest_out, const std::string& signatures_out);

}  // namespace herd::control
