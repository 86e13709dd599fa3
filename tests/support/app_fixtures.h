// App bundles made by hand, for tests of what a device refuses: a bundle
// whose signed manifest names one file, ok.txt ("hello"), and whose payload
// holds whatever entries the test crafts.
#pragma once

#include <archive_entry.h>

#include <string>
#include <vector>

#include "common/app/manifest.h"

namespace herd::testing {

// One entry of a hand-made payload.
struct Crafted {
  std::string name;
  unsigned type = AE_IFREG;
  unsigned mode = 0644;
  std::string data;
  std::string link;  // symlink target, or hard link source
};

// Writes the bundle to `path` (unsigned) and returns its manifest: what an
// attacker who controls the payload, but not the signed manifest, could send.
herd::app::Manifest CraftBundle(const std::string& path, const std::vector<Crafted>& entries);

// The malicious payloads every reader must refuse, each with a part of the
// reason it must give.
std::vector<std::pair<std::vector<Crafted>, std::string>> MaliciousPayloads();

}  // namespace herd::testing
