// ReleaseStartupPages: drops this process's page-table entries for clean,
// read-only, file-backed mappings (program and library code, read-only data),
// so that the pages only start-up touched (gRPC's plugin registration, config
// parsing, OpenSSL's provider set-up) stop counting towards the agent's RSS.
// The pages stay in the page cache; whatever runs later faults its own pages
// back in. Writable mappings and any mapping holding private (anonymous)
// pages, such as relocated RELRO data, are never touched.
//
// Call it once start-up is over. Safe while other threads run: it only
// unmaps pages that are identical to the file behind them.
#pragma once

#include <cstdint>

#include "common/status.h"

namespace herd::agent {

// Returns how many bytes of resident pages it released.
Result<uint64_t> ReleaseStartupPages();

}  // namespace herd::agent
