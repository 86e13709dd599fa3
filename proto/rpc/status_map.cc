#include "proto/rpc/status_map.h"

#include <utility>

namespace herd::rpc {
namespace {

constexpr size_t kMaxMessage = 1024;

// Codes with the same meaning on both sides; everything else is internal.
constexpr std::pair<StatusCode, grpc::StatusCode> kCodes[] = {
    {StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
    {StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND},
    {StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
    {StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED},
    {StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED},
    {StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION},
    {StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED},
    {StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
    {StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED},
    {StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED},
};

}  // namespace

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // A message never carries a whole input back: it must fit the caller's
  // metadata limit (8 KiB by default), whatever a handler put in it.
  std::string msg = s.message();
  if (msg.size() > kMaxMessage) {
    const size_t full = msg.size();
    msg.resize(kMaxMessage);
    msg += "… (" + std::to_string(full) + " bytes)";
  }
  for (const auto& [herd_code, grpc_code] : kCodes) {
    if (herd_code == s.code()) return grpc::Status(grpc_code, msg);
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, msg);
}

Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return Status::Ok();
  StatusCode code = StatusCode::kInternal;
  for (const auto& [herd_code, grpc_code] : kCodes) {
    if (grpc_code == s.error_code()) code = herd_code;
  }
  std::string msg = s.error_message();
  if (msg.empty()) msg = "gRPC status " + std::to_string(static_cast<int>(s.error_code()));
  return Status(code, std::move(msg));
}

std::string ExplainUnreachable(const std::string& grpc_message) {
  // gRPC's connection errors are long and repetitive; say what happened.
  static const std::pair<const char*, const char*> kPlainWords[] = {
      {"Connection refused", "connection refused (is herdd running there?)"},
      {"certificate verify failed",
       "TLS: the agent's certificate is not from this fleet's CA (not enrolled yet? see herd "
       "enroll)"},
      {"wrong version number",
       "TLS handshake failed: the agent serves plain text (herd --plaintext)"},
      {"is not in peer certificate",
       "TLS: the agent's certificate is for another name (the inventory name must be the name "
       "it was enrolled with)"},
      {"Socket closed",
       "the agent closed the connection during set-up (herd --plaintext to an agent that serves "
       "TLS?)"},
  };
  // gRPC says "failed to connect" when the connection was never set up; a
  // connection that breaks later (the agent killed mid-call) is not a
  // set-up problem, whatever words follow.
  if (grpc_message.find("failed to connect") == std::string::npos) {
    return "the connection to the agent broke during the call (did herdd stop or restart?): " +
           grpc_message;
  }
  for (const auto& [grpc_words, plain] : kPlainWords) {
    if (grpc_message.find(grpc_words) != std::string::npos) return plain;
  }
  return grpc_message;
}

}  // namespace herd::rpc
