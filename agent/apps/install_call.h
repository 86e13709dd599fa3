// Install: receives a bundle in chunks (herd.v1.Apps/Install) into the app
// store under its digest, then installs it (agent/apps/app_store.h) on the
// slow-work thread. A bundle already installed is answered at once, before
// any of its bytes are read.
#pragma once

#include "agent/apps/app_service.h"

namespace herd::agent {

// Asks for the next Install call. Serving thread (or before it starts).
// An installed version as Install (and InstallFromCatalog) answer it.
void FillInstallReply(const InstalledVersionInfo& v, v1::InstallReply* r);

void ArmInstallCall(rpc::CallQueue& queue, v1::Apps::AsyncService& async, AppsContext& c);

}  // namespace herd::agent
