#include "proto/rpc/status_map.h"

#include <catch2/catch.hpp>

using herd::Status;
using herd::StatusCode;
using herd::rpc::FromGrpc;
using herd::rpc::ToGrpc;

TEST_CASE("statuses map to gRPC and back in one place, both ways", "[rpc]") {
  for (auto code :
       {StatusCode::kInvalidArgument, StatusCode::kNotFound, StatusCode::kAlreadyExists,
        StatusCode::kPermissionDenied, StatusCode::kUnauthenticated,
        StatusCode::kFailedPrecondition, StatusCode::kResourceExhausted, StatusCode::kUnavailable,
        StatusCode::kDeadlineExceeded, StatusCode::kInternal}) {
    const Status s(code, "why");
    const Status back = FromGrpc(ToGrpc(s));
    CHECK(back.code() == code);
    CHECK(back.message() == "why");
  }
  CHECK(ToGrpc(Status::Ok()).ok());
  CHECK(FromGrpc(grpc::Status::OK).ok());
  CHECK(ToGrpc(Status(StatusCode::kPermissionDenied, "x")).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  // Codes herd has no name for are internal; an empty message says the code.
  CHECK(FromGrpc(grpc::Status(grpc::StatusCode::CANCELLED, "")).code() == StatusCode::kInternal);
  CHECK(FromGrpc(grpc::Status(grpc::StatusCode::DATA_LOSS, "")).message() == "gRPC status 15");
}

TEST_CASE("usual connection failures are explained in plain words", "[rpc]") {
  using herd::rpc::ExplainUnreachable;
  CHECK(ExplainUnreachable("failed to connect to all addresses; last error: UNKNOWN: "
                           "ipv4:127.0.0.1:1: Failed to connect to remote host: Connection "
                           "refused") == "connection refused (is herdd running there?)");
  CHECK(ExplainUnreachable("failed to connect to all addresses; last error: something new") ==
        "failed to connect to all addresses; last error: something new");
  // Set up, then broken: not a set-up problem, whatever the words.
  CHECK(ExplainUnreachable("Socket closed") ==
        "the connection to the agent broke during the call (did herdd stop or restart?): Socket "
        "closed");
}

TEST_CASE("an error message sent to a client is cut at 1 KiB", "[rpc]") {
  const auto s = ToGrpc(Status::Invalid(std::string(100'000, 'x')));
  CHECK(s.error_message().size() < 1100);
  CHECK_THAT(s.error_message(), Catch::Contains("(100000 bytes)"));
}
