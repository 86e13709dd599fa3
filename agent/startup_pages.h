// ReleaseStartupPages: drops this process's page-table entries for the
// read-only segments of herdd and the libraries it loaded (code and
// read-only data), so that the pages only start-up touched (gRPC's plugin
// registration, config parsing, OpenSSL's provider set-up) stop counting
// towards the agent's RSS. The pages stay in the page cache; whatever runs
// later faults its own pages back in. It changes RSS, not what the kernel
// could reclaim anyway: these pages are clean copies of files.
//
// Only PT_LOAD segments without write permission are released, minus the
// RELRO range (relocated at load time, so its pages are private copies), and
// never in an object with text relocations or in the vDSO. The segments come
// from dl_iterate_phdr, which holds the loader's lock: no object can be
// unloaded (and its range reused) while its pages are released.
//
// Call it once start-up is over; safe while other threads run.
#pragma once

#include <cstdint>

#include "common/status.h"

namespace herd::agent {

// Returns how many bytes of address space it released (resident or not).
Result<uint64_t> ReleaseStartupPages();

// The same after one-off work (an install, an activation, a removal): the
// code it ran does not run again until the next one, and the heap it used
// is free. Releases those pages and returns the free heap pages to the
// system (malloc_trim). `what` names the work in the debug log.
void ReleaseAfterWork(const char* what);

}  // namespace herd::agent
