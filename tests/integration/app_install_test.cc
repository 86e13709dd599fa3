// herd app install and herd apps with the real CLI, real agents and real
// signed bundles: installs, the no-op re-install, refusals with their
// reasons, the audit trail, and SIGKILL of herdd at every step of an install.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "common/hash.h"
#include "tests/integration/app_test_support.h"
#include "tests/support/agent_stub.h"
#include "tests/support/test_support.h"

using namespace herd::testing;
using herd::testing::apps::OneDevice;
using herd::testing::apps::Publisher;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The sequences `herd apps` lists for the one agent in `inv`.
std::vector<uint64_t> Listed(const std::string& inv) {
  auto r = RunHerd({"-i", inv, "-o", "json", "apps", "all"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<uint64_t> seqs;
  const json host = json::parse(Lines(r.out).at(0));
  for (const auto& app : host["data"]["apps"]) {
    for (const auto& v : app["versions"]) seqs.push_back(v["sequence"].get<uint64_t>());
  }
  return seqs;
}

// True when nothing in the store is half done: no temporary or discarded
// folder, every bundle used by a listed version, every version complete.
void CheckConsistent(const std::string& apps_dir, const std::vector<uint64_t>& listed) {
  for (const auto& e : fs::recursive_directory_iterator(apps_dir)) {
    INFO(e.path());
    CHECK(e.path().filename().string()[0] != '.');
  }
  size_t bundles = 0;
  for (const auto& e : fs::directory_iterator(apps_dir + "/bundles"))
    bundles += e.is_regular_file();
  CHECK(bundles == listed.size());
  for (uint64_t seq : listed) {
    CHECK(ReadFile(apps_dir + "/notes/" + std::to_string(seq) + "/files/run.sh") ==
          "echo version " + std::to_string(seq) + "\n");
  }
}

}  // namespace

TEST_CASE("herd app install puts a signed bundle on every device once, and herd apps lists it",
          "[integration][app]") {
  Publisher pub;
  const std::string config = pub.Config();
  AgentProcess a("node1", {"--config", config}), b("node2", {"--config", config});
  REQUIRE((a.ready() && b.ready()));
  ScopedTempDir dir;
  const std::string inv = WriteInventory(dir, {&a, &b});
  const std::string v1 = pub.Bundle(1);

  auto r = RunHerd({"-i", inv, "--no-progress", "app", "install", "all", v1});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("node1: notes 1.1 installed (sequence 1, 2 files") &&
                        Catch::Contains("node2: notes 1.1 installed"));
  for (const auto* agent : {&a, &b}) {
    CHECK(ReadFile(agent->state_dir() + "-apps/notes/1/files/run.sh") == "echo version 1\n");
    CHECK(agent->AuditHas("Install", "ok: notes 1.1 (sequence 1) installed"));
  }
  // The same bundle again: answered before its bytes are sent.
  auto again = RunHerd({"-i", inv, "-o", "json", "app", "install", "node1", v1});
  REQUIRE(again.exit_code == 0);
  const json j = json::parse(Lines(again.out).at(0));
  CHECK(j["data"]["already_installed"] == true);
  CHECK(j["data"]["signers"].size() == 1);

  // Counted by outcome on the agent's /metrics.
  const std::string metrics = HttpGet("http://" + a.metrics_address() + "/metrics");
  CHECK_THAT(metrics,
             Catch::Contains("herd_app_installs_total{outcome=\"installed\"} 1") &&
                 Catch::Contains("herd_app_installs_total{outcome=\"already_installed\"} 1") &&
                 Catch::Contains("herd_app_install_duration_seconds_count 1"));
  REQUIRE(RunHerd({"-i", inv, "app", "install", "all", pub.Bundle(2)}).exit_code == 0);
  auto list = RunHerd({"-i", inv, "--no-progress", "apps", "all"});
  CHECK(list.exit_code == 0);
  CHECK_THAT(list.out, Catch::Contains("node1: notes not activated [1.2 (2), 1.1 (1)]"));
  // A viewer may list but not install.
  auto viewer =
      RunHerd({"-i", inv, "--identity", "viewer", "app", "install", "node1", pub.Bundle(3)});
  CHECK(viewer.exit_code != 0);
  CHECK_THAT(viewer.err, Catch::Contains("InstallStatus needs role operator"));
  CHECK(RunHerd({"-i", inv, "--identity", "viewer", "apps", "node1"}).exit_code == 0);
}

TEST_CASE("a device refuses unsigned, untrusted, tampered, downgraded and over-policy bundles",
          "[integration][app]") {
  Publisher pub;
  OneDevice device(pub.Config());
  const AgentProcess& a = device.agent;
  const std::string& inv = device.inv;
  REQUIRE(RunHerd({"-i", inv, "app", "install", "all", pub.Bundle(5)}).exit_code == 0);

  const auto refused = [&](const std::string& bundle, const std::string& why,
                           std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"-i", inv, "--no-progress", "app", "install", "all", bundle};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = RunHerd(args);
    INFO(r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.out + r.err, Catch::Contains("node1: [rejected]") && Catch::Contains(why));
  };
  refused(pub.Bundle(6, false), "not signed");
  {
    Publisher other;
    refused(other.Bundle(6), "signed only by keys this device does not trust");
  }
  {
    // One byte of the payload (after zstd's magic number) changed after signing.
    const std::string bundle = pub.Bundle(7);
    std::string raw = ReadFile(bundle);
    const size_t zstd = raw.find("\x28\xb5\x2f\xfd");
    REQUIRE(zstd != std::string::npos);
    raw[zstd + 12] ^= 0x01;
    WriteFile(bundle, raw);
    refused(bundle, "notes 1.7 (sequence 7): bundle: payload: Zstd decompression failed");
  }
  refused(pub.Bundle(4), "older than the installed 1.5 (sequence 5)");
  refused(pub.Bundle(8, true, "permissions: {network: outbound}\n"), "apps.allow_outbound");
  CHECK(Listed(inv) == std::vector<uint64_t>{5});
  CheckConsistent(a.state_dir() + "-apps", {5});
  CHECK(a.AuditHas("Install", "failed: notes 1.4 (sequence 4) is older"));
  CHECK_THAT(HttpGet("http://" + a.metrics_address() + "/metrics"),
             Catch::Contains("herd_app_installs_total{outcome=\"refused\"} 5"));
  // An explicit downgrade is allowed.
  auto down = RunHerd({"-i", inv, "app", "install", "all", pub.Bundle(4), "--allow-downgrade"});
  CHECK(down.exit_code == 0);
  CHECK(Listed(inv) == std::vector<uint64_t>{5, 4});
}

TEST_CASE("herdd killed at any step of an install comes back with each version whole or absent",
          "[integration][app]") {
  Publisher pub;
  const std::string config = pub.Config("  keep_versions: 1\n");
  const std::string v1 = pub.Bundle(1), v2 = pub.Bundle(2);
  // What the store lists after the restart, by the step herdd died at: the
  // old version until the new one is renamed into place, then the new one
  // (the restart prunes to keep_versions).
  const std::vector<std::pair<std::string, std::vector<uint64_t>>> steps = {
      {"install:stored", {1}},    {"install:verified", {1}}, {"install:extracting", {1}},
      {"install:extracted", {1}}, {"install:renamed", {2}},  {"install:pruning", {2}},
  };
  for (const auto& [step, expect] : steps) {
    DYNAMIC_SECTION(step) {
      ScopedTempDir dir;
      const std::string state = dir / "state";
      {
        AgentProcess a("node1", {"--config", config, "--state-dir", state});
        REQUIRE(a.ready());
        REQUIRE(RunHerd({"-i", WriteInventory(dir, {&a}), "app", "install", "all", v1}).exit_code ==
                0);
      }
      {
        ::setenv("HERD_TEST_CRASH_AT", step.c_str(), 1);
        AgentProcess a("node1", {"--config", config, "--state-dir", state});
        ::unsetenv("HERD_TEST_CRASH_AT");
        REQUIRE(a.ready());
        auto r = RunHerd({"-i", WriteInventory(dir, {&a}), "app", "install", "all", v2}, 30s);
        CHECK(r.exit_code != 0);
        const int status = a.Stop();
        CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
      }
      AgentProcess a("node1", {"--config", config, "--state-dir", state});
      REQUIRE(a.ready());
      const std::string inv = WriteInventory(dir, {&a});
      CHECK(Listed(inv) == expect);
      CheckConsistent(state + "-apps", expect);
      // The install that was cut short goes through when sent again.
      REQUIRE(RunHerd({"-i", inv, "app", "install", "all", v2}).exit_code == 0);
      CHECK(Listed(inv) == std::vector<uint64_t>{2});
      CheckConsistent(state + "-apps", {2});
    }
  }
}

TEST_CASE("hostile Install streams get client errors and leave nothing in the store",
          "[integration][app]") {
  Publisher pub;
  AgentProcess a("node1", {"--config", pub.Config("  max_bundle_size: 1M\n")});
  REQUIRE(a.ready());
  auto stub = herd::testing::AppsStub(a);
  const std::string real = ReadFile(pub.Bundle(1));
  const std::string sha = herd::Sha256Hex(real);
  // Sends `messages` (a header when `size` is set, else a chunk) and finishes.
  struct Msg {
    bool header;
    uint64_t size;
    std::string sha_or_data;
    uint64_t offset = 0;
  };
  const auto send = [&](const std::vector<Msg>& messages) {
    auto ctx = CallContext();
    herd::v1::InstallReply reply;
    auto writer = stub->Install(ctx.get(), &reply);
    for (const auto& m : messages) {
      herd::v1::InstallMessage msg;
      if (m.header) {
        msg.mutable_header()->set_size(m.size);
        msg.mutable_header()->set_sha256(m.sha_or_data);
        msg.mutable_header()->set_offset(m.offset);
      } else {
        msg.set_chunk(m.sha_or_data);
      }
      if (!writer->Write(msg)) break;  // the agent has answered already
    }
    writer->WritesDone();
    return writer->Finish();
  };
  const auto refused = [&](const std::vector<Msg>& messages, grpc::StatusCode code,
                           const std::string& why) {
    const grpc::Status st = send(messages);
    INFO(st.error_message());
    CHECK(st.error_code() == code);
    CHECK_THAT(st.error_message(), Catch::Contains(why));
  };
  using grpc::StatusCode;
  const uint64_t n = real.size();
  refused({{false, 0, "data"}}, StatusCode::INVALID_ARGUMENT, "data before the header");
  refused({{true, n, sha}, {true, n, sha}}, StatusCode::INVALID_ARGUMENT, "header sent twice");
  refused({{true, n, std::string(64, 'A')}}, StatusCode::INVALID_ARGUMENT, "lower-case hex");
  refused({{true, n, sha.substr(0, 63) + std::string(1, '\0')}}, StatusCode::INVALID_ARGUMENT,
          "lower-case hex");
  refused({{true, 0, sha}}, StatusCode::INVALID_ARGUMENT, "an empty bundle");
  refused({{true, 2 << 20, sha}}, StatusCode::RESOURCE_EXHAUSTED, "apps.max_bundle_size");
  refused({{true, n, sha}, {false, 0, real.substr(0, n / 2)}}, StatusCode::INVALID_ARGUMENT,
          "received " + std::to_string(n / 2) + " of");
  // What was received is kept for a resume, and only that can be resumed.
  const std::string part = a.state_dir() + "-apps/bundles/" + sha + ".part";
  CHECK(fs::file_size(part) == n / 2);
  refused({{true, n, sha, n / 2 + 1}}, StatusCode::FAILED_PRECONDITION,
          "holds " + std::to_string(n / 2) + " bytes of this bundle");
  refused({{true, n, sha, n + 1}}, StatusCode::INVALID_ARGUMENT, "is not inside the bundle");
  CHECK(fs::file_size(part) == n / 2);
  refused({{true, n, sha}, {false, 0, real + "x"}}, StatusCode::INVALID_ARGUMENT,
          "more data than the announced");
  std::string flipped = real;
  flipped[n / 2] ^= 1;
  refused({{true, n, sha}, {false, 0, flipped}}, StatusCode::FAILED_PRECONDITION,
          "checksum mismatch");
  // Bytes that match their digest but are no bundle.
  const std::string junk(4096, 'j');
  refused({{true, junk.size(), herd::Sha256Hex(junk)}, {false, 0, junk}},
          StatusCode::INVALID_ARGUMENT, "not a herd app bundle");
  // Nothing of it stayed, and the agent still serves.
  CHECK(fs::is_empty(a.state_dir() + "-apps/bundles"));
  CHECK(send({{true, n, sha}, {false, 0, real}}).ok());
  CheckConsistent(a.state_dir() + "-apps", {1});
}

TEST_CASE("herd app install goes through herd mux, the answer without upload too",
          "[integration][app]") {
  Publisher pub;
  AgentProcess a("node1", {"--config", pub.Config()});
  REQUIRE(a.ready());
  ScopedTempDir dir;
  const std::string inv = WriteInventory(dir, {&a});
  const std::string pki = dir / "pki";
  fs::copy(TestPkiDir(), pki);
  const std::map<std::string, std::string> env = {{"HERD_PKI_DIR", pki}};
  REQUIRE(RunHerd({"mux", "start", "--idle", "5m"}, 30s, env).exit_code == 0);
  const pid_t mux = std::stoi(ReadFile(pki + "/mux-admin.sock.pid"));
  const std::string v1 = pub.Bundle(1);
  auto first = RunHerd({"-i", inv, "--no-progress", "app", "install", "all", v1}, 60s, env);
  INFO(first.out << first.err);
  CHECK(first.exit_code == 0);
  CHECK_THAT(first.out, Catch::Contains("node1: notes 1.1 installed"));
  auto again = RunHerd({"-i", inv, "--no-progress", "app", "install", "all", v1}, 60s, env);
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.out, Catch::Contains("node1: notes 1.1 was installed already"));
  // They did go through the mux: frozen, it answers nothing.
  REQUIRE(::kill(mux, SIGSTOP) == 0);
  auto frozen = RunHerd({"-i", inv, "-t", "2s", "app", "install", "all", v1}, 60s, env);
  CHECK(frozen.exit_code == 4);
  REQUIRE(::kill(mux, SIGCONT) == 0);
  CHECK(RunHerd({"mux", "stop"}, 30s, env).exit_code == 0);
}
