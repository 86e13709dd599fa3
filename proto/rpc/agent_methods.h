// Full method names of herd.v1.Agent and herd.v1.Apps (proto/herd/v1/), as gRPC
// routes them, the agent authorises them and the CLI calls them.
#pragma once

namespace herd::rpc::agent_method {

inline constexpr char kInfo[] = "/herd.v1.Agent/Info";
inline constexpr char kFacts[] = "/herd.v1.Agent/Facts";
inline constexpr char kHealth[] = "/herd.v1.Agent/Health";
inline constexpr char kExec[] = "/herd.v1.Agent/Exec";
inline constexpr char kPutFile[] = "/herd.v1.Agent/PutFile";
inline constexpr char kReadAudit[] = "/herd.v1.Agent/ReadAudit";
inline constexpr char kSetRevocations[] = "/herd.v1.Agent/SetRevocations";
inline constexpr char kBeginEnroll[] = "/herd.v1.Agent/BeginEnroll";
inline constexpr char kCompleteEnroll[] = "/herd.v1.Agent/CompleteEnroll";
inline constexpr char kApply[] = "/herd.v1.Agent/Apply";

// Trailing metadata of every Agent reply: the version of the revocation
// list the agent holds (decimal).
inline constexpr char kRevocationVersionKey[] = "herd-revocations";

}  // namespace herd::rpc::agent_method

// Full method names of herd.v1.Apps (proto/herd/v1/app.proto).
namespace herd::rpc::app_method {

inline constexpr char kInstall[] = "/herd.v1.Apps/Install";
inline constexpr char kInstallStatus[] = "/herd.v1.Apps/InstallStatus";
inline constexpr char kInstallFromCatalog[] = "/herd.v1.Apps/InstallFromCatalog";
inline constexpr char kList[] = "/herd.v1.Apps/List";
inline constexpr char kActivate[] = "/herd.v1.Apps/Activate";
inline constexpr char kRemove[] = "/herd.v1.Apps/Remove";
inline constexpr char kLogs[] = "/herd.v1.Apps/Logs";

}  // namespace herd::rpc::app_method
