// Certificate renewal's two rounds, on fake agents: keys first, then each
// host its own certificate; reported as one operation.
#include "control/renew.h"

#include <catch2/catch.hpp>

#include "common/pki.h"
#include "control/fanout.h"
#include "herd/v1/agent.pb.h"
#include "tests/support/fakes.h"

using namespace herd::control;
using herd::testing::FakeAgents;
using herd::testing::FakeClock;
using herd::testing::FakeHost;
using herd::testing::RecordingReporter;
using namespace std::chrono_literals;

TEST_CASE("renewal signs each host's own key and reports every host once", "[control][renew]") {
  FakeClock clock;
  FakeAgents agents(clock);
  RecordingReporter reporter(clock);
  auto ca_key = herd::pki::GenerateKeyPem();
  REQUIRE(ca_key.ok());
  auto ca_cert = herd::pki::SelfSignedCa(*ca_key, "test CA", 30);
  REQUIRE(ca_cert.ok());
  const FleetCa ca{*ca_cert, *ca_key};

  std::vector<Host> hosts = {{"h1", "a1", {}, ""}, {"h2", "a2", {}, ""}, {"h3", "a3", {}, ""}};
  std::map<std::string, std::string> public_keys;
  for (const auto& h : hosts) {
    auto key = herd::pki::GenerateKeyPem();
    REQUIRE(key.ok());
    public_keys[h.name] = *herd::pki::PublicKeyPem(*key);
    herd::v1::BeginEnrollReply hello;
    hello.set_agent_nonce("nonce-of-" + h.name);
    hello.set_public_key_pem(public_keys[h.name]);
    hello.set_enrolled(true);
    herd::v1::CompleteEnrollReply done;
    done.set_serial("AB" + h.name);
    done.set_not_after_unix(2000000000);
    FakeHost fake;
    fake.replies["/herd.v1.Agent/BeginEnroll"] = {hello.SerializeAsString()};
    fake.replies["/herd.v1.Agent/CompleteEnroll"] = {done.SerializeAsString()};
    agents.Script(h.address, fake);
  }
  FakeHost refusing;
  refusing.status =
      herd::Status(herd::StatusCode::kPermissionDenied, "BeginEnroll needs role admin");
  agents.Script("a2", refusing);

  ExecutorOptions opts;
  opts.clock = &clock;
  LocalExecutor executor(agents, opts);
  std::vector<const Host*> targets = {&hosts[0], &hosts[1], &hosts[2]};
  auto results = RenewCertificates(executor, targets, ca, 30, 5s, reporter);

  REQUIRE(results.size() == 3);
  CHECK(results[0].outcome == Outcome::kOk);
  CHECK(results[0].summary.find("certificate renewed (serial ABh1") == 0);
  CHECK(results[1].outcome == Outcome::kRejected);
  CHECK(results[1].message == "BeginEnroll needs role admin");
  CHECK(results[2].outcome == Outcome::kOk);
  // h2 was asked once; h1 and h3 twice, the second time with a certificate
  // for their own key, named after them, and their own nonce echoed.
  CHECK(agents.stats().started == 5);
  for (const char* name : {"h1", "h3"}) {
    herd::v1::CompleteEnrollRequest req;
    REQUIRE(req.ParseFromString(agents.stats().requests.at(std::string("a") + (name + 1))));
    CHECK(req.agent_nonce() == std::string("nonce-of-") + name);
    auto info = herd::pki::InspectCert(req.certificate_pem());
    REQUIRE(info.ok());
    CHECK(info->common_name == name);
    CHECK(herd::pki::CertPublicKeyPem(req.certificate_pem()).value_or("") == public_keys[name]);
    CHECK(req.ca_pem() == ca.cert_pem);
  }
  // One operation for the reporter: one start, one result per host, one finish.
  int starts = 0, finishes = 0;
  std::map<std::string, int> per_host;
  for (const auto& ev : reporter.events) {
    starts += ev.kind == "start";
    finishes += ev.kind == "finish";
    if (ev.kind == "result") ++per_host[ev.host];
  }
  CHECK(starts == 1);
  CHECK(finishes == 1);
  CHECK(per_host == std::map<std::string, int>{{"h1", 1}, {"h2", 1}, {"h3", 1}});
}
