// Enrolment and certificate renewal, against real agents with the real CLI.
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/pki.h"
#include "tests/support/test_support.h"

using namespace herd::testing;
using namespace std::chrono_literals;

TEST_CASE("enrolment end to end: wrong token, right token, reused token", "[integration]") {
  ScopedTempDir dir;
  AgentProcess fresh("attic", {}, /*enrolled=*/false);
  REQUIRE(fresh.ready());
  const std::string token = fresh.join_token();
  REQUIRE(token.size() == 32);
  const std::string inventory = dir / "enrolled.yaml";
  const std::string key_before = ReadFile(fresh.state_dir() + "/tls/agent.key");

  // Not enrolled: it answers nothing but enrolment.
  auto listed = WriteInventory(dir, {&fresh});
  auto early = RunHerd({"-i", listed, "ping", "all"});
  CHECK(early.exit_code == 4);

  // Names the inventory or the certificate would refuse are refused before
  // the device is asked anything: the token stays good.
  for (const char* name : {"all", "a@b", "-rf"}) {
    auto bad = RunHerd(
        {"-i", inventory, "enroll", fresh.grpc_address(), "--token", token, "--name", name});
    CHECK(bad.exit_code == 1);
    CHECK_THAT(bad.err, Catch::Contains("is not a host name the inventory takes"));
  }
  CHECK_FALSE(fresh.AuditHas("BeginEnroll", "ok"));

  auto wrong = RunHerd({"-i", inventory, "enroll", fresh.grpc_address(), "--token",
                        "not-the-token-not-the-token", "--name", "attic"});
  CHECK(wrong.exit_code == 2);
  CHECK_THAT(wrong.err, Catch::Contains("wrong join token"));
  CHECK(fresh.AuditHas("BeginEnroll", "denied: wrong join token"));

  auto ok = RunHerd({"-i", inventory, "enroll", fresh.grpc_address(), "--token", token, "--name",
                     "attic", "--labels", "role=nas,zone=home"});
  INFO(ok.err);
  REQUIRE(ok.exit_code == 0);
  CHECK_THAT(ok.out, Catch::Contains("enrolled attic at " + fresh.grpc_address()));
  CHECK_THAT(ok.out, Catch::Contains("serving mTLS"));
  CHECK(fresh.AuditHas("CompleteEnroll", "ok"));
  // The device kept its key; the certificate is for it and signed by the fleet CA.
  const std::string cert = ReadFile(fresh.state_dir() + "/tls/agent.crt");
  CHECK(ReadFile(fresh.state_dir() + "/tls/agent.key") == key_before);
  CHECK(herd::pki::CertPublicKeyPem(cert).value_or("") ==
        herd::pki::PublicKeyPem(key_before).value_or("-"));
  CHECK(herd::pki::VerifyCert(ReadFile(TestPkiDir() + "/ca.crt"), cert).ok());
  CHECK(ReadFile(fresh.state_dir() + "/join-token").empty());

  // It is in the inventory, labels and all, and answers mTLS.
  auto sel = RunHerd({"-i", inventory, "inventory", "role=nas"});
  INFO(sel.err);
  CHECK(sel.exit_code == 0);
  CHECK_THAT(sel.out, Catch::Contains("attic"));
  auto ping = RunHerd({"-i", inventory, "ping", "attic"});
  CHECK(ping.exit_code == 0);

  auto reused = RunHerd(
      {"-i", inventory, "enroll", fresh.grpc_address(), "--token", token, "--name", "attic"});
  CHECK(reused.exit_code == 2);
  CHECK_THAT(reused.err, Catch::Contains("already enrolled"));
  CHECK(fresh.AuditHas("BeginEnroll", "denied: this agent is already enrolled"));
}

TEST_CASE("guessing the join token is rate limited", "[integration]") {
  ScopedTempDir dir;
  AgentProcess fresh("guess", {}, /*enrolled=*/false);
  REQUIRE(fresh.ready());
  const std::string inventory = dir / "inventory.yaml";
  auto attempt = [&](const std::string& token) {
    return RunHerd({"-i", inventory, "enroll", fresh.grpc_address(), "--token", token, "--name",
                    "guess", "--no-wait"});
  };
  for (int i = 0; i < 6; ++i) {  // five are free, the sixth locks
    auto r = attempt("guess-" + std::to_string(i) + "-guess-guess-guess");
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("wrong join token"));
  }
  // Locked out now, the right token included.
  auto locked = attempt(fresh.join_token());
  CHECK(locked.exit_code == 2);
  CHECK_THAT(locked.err, Catch::Contains("too many failed enrolment attempts"));
  CHECK(fresh.AuditHas("BeginEnroll", "denied: too many failed enrolment attempts"));
  // The lock lapses (2 s after the sixth failure) and the right token works.
  CliResult later;
  CHECK(WaitFor(
      [&] {
        later = attempt(fresh.join_token());
        return later.exit_code == 0;
      },
      30s));
  CHECK_THAT(later.out, Catch::Contains("enrolled guess"));
}

TEST_CASE("an operator cannot enrol or renew, an admin renews without a restart", "[integration]") {
  ScopedTempDir dir;
  // Renewals are picked up by the file watcher: re-read every second here.
  const std::string config = dir / "agent.yaml";
  { std::ofstream(config) << "tls:\n  reload_interval: 1s\n"; }
  AgentProcess agent("node1", {"--config", config});
  REQUIRE(agent.ready());
  const std::string inventory = WriteInventory(dir, {&agent});
  const std::map<std::string, std::string> op = {{"HERD_IDENTITY", "operator"}};
  auto denied = RunHerd({"-i", inventory, "cert", "renew", "all"}, 60s, op);
  CHECK(denied.exit_code == 2);
  CHECK_THAT(denied.out + denied.err, Catch::Contains("BeginEnroll needs role admin"));
  CHECK(agent.AuditHas("BeginEnroll", "denied: BeginEnroll needs role admin"));

  const std::string before = ServedCertificate(agent.grpc_address());
  REQUIRE_FALSE(before.empty());
  auto renew = RunHerd({"-i", inventory, "-o", "json", "cert", "renew", "all", "--days", "30"});
  INFO(renew.err);
  REQUIRE(renew.exit_code == 0);
  auto line = nlohmann::json::parse(Lines(renew.out).front());
  const std::string serial = line["data"]["serial"];
  CHECK(agent.AuditHas("CompleteEnroll", "ok"));
  // Every ping succeeds while the agent switches to the new certificate.
  int pings = 0, failed = 0;
  CHECK(WaitFor(
      [&] {
        ++pings;
        if (RunHerd({"-i", inventory, "ping", "all"}).exit_code != 0) ++failed;
        auto info = herd::pki::InspectCert(ServedCertificate(agent.grpc_address()));
        return info.ok() && info->serial == serial;
      },
      60s));
  CHECK(failed == 0);
  CHECK(pings >= 1);
  CHECK(::kill(agent.pid(), 0) == 0);  // same process: no restart
}
