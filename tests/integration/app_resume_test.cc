// An upload of a bundle cut short (a broken connection, herdd killed) is
// kept by the device, and the next `herd app install` of the same bundle
// sends only the rest; two uploads of one bundle never share its partial.
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/hash.h"
#include "tests/integration/app_test_support.h"
#include "tests/support/agent_stub.h"
#include "tests/support/test_support.h"

using namespace herd::testing;
using namespace std::chrono_literals;
using herd::testing::apps::OneDevice;
using herd::testing::apps::Publisher;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// An Install call left open: the header, then bytes [from, to) of `bundle`.
struct OpenUpload {
  std::unique_ptr<herd::v1::Apps::Stub> stub;
  std::unique_ptr<grpc::ClientContext> ctx = CallContext(60s);
  herd::v1::InstallReply reply;
  std::unique_ptr<grpc::ClientWriter<herd::v1::InstallMessage>> writer;

  OpenUpload(const AgentProcess& a, const std::string& bundle, uint64_t from, uint64_t to)
      : stub(AppsStub(a)) {
    writer = stub->Install(ctx.get(), &reply);
    herd::v1::InstallMessage m;
    m.mutable_header()->set_size(bundle.size());
    m.mutable_header()->set_sha256(herd::Sha256Hex(bundle));
    m.mutable_header()->set_offset(from);
    REQUIRE(writer->Write(m));
    m.set_chunk(bundle.substr(from, to - from));
    REQUIRE(writer->Write(m));
  }
  // Breaks the connection, as a network fault would.
  grpc::Status Cut() {
    ctx->TryCancel();
    return writer->Finish();
  }
};

herd::v1::InstallStatusReply Held(const AgentProcess& a, const std::string& bundle) {
  herd::v1::InstallStatusRequest req;
  req.set_sha256(herd::Sha256Hex(bundle));
  herd::v1::InstallStatusReply rep;
  auto ctx = CallContext();
  const grpc::Status st = AppsStub(a)->InstallStatus(ctx.get(), req, &rep);
  INFO(st.error_message());
  REQUIRE(st.ok());
  return rep;
}

}  // namespace

TEST_CASE("an install cut short resumes where it ended, also after herdd was killed",
          "[integration][app]") {
  Publisher pub;
  const std::string config = pub.Config();
  ScopedTempDir dir;
  const std::string state = dir / "state";
  const std::string path = pub.Bundle(1);
  const std::string bundle = ReadFile(path);
  const uint64_t n = bundle.size();
  const std::string part = state + "-apps/bundles/" + herd::Sha256Hex(bundle) + ".part";
  {
    AgentProcess a("node1", {"--config", config, "--state-dir", state});
    REQUIRE(a.ready());
    CHECK(Held(a, bundle).have_bytes() == 0);
    OpenUpload first(a, bundle, 0, n / 3);
    REQUIRE(WaitFor([&] { return Held(a, bundle).have_bytes() == n / 3; }, 10s));
    // A second upload of the same bundle meanwhile is refused, naming why.
    {
      OpenUpload second(a, bundle, 0, n / 3);
      const grpc::Status st = second.writer->Finish();
      CHECK(st.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
      CHECK_THAT(st.error_message(), Catch::Contains("being uploaded to the device by another"));
    }
    CHECK(first.Cut().error_code() == grpc::StatusCode::CANCELLED);
    REQUIRE(WaitFor([&] { return a.AuditHas("Install", "cancelled"); }, 10s));
    CHECK(Held(a, bundle).have_bytes() == n / 3);
    CHECK(fs::file_size(part) == n / 3);

    // Resumed by hand to two thirds, then herdd dies with the call open.
    OpenUpload resumed(a, bundle, n / 3, 2 * n / 3);
    REQUIRE(WaitFor([&] { return Held(a, bundle).have_bytes() == 2 * n / 3; }, 10s));
    REQUIRE(::kill(a.pid(), SIGKILL) == 0);
    const int status = a.Stop();
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
  }
  AgentProcess a("node1", {"--config", config, "--state-dir", state});
  REQUIRE(a.ready());
  CHECK(Held(a, bundle).have_bytes() == 2 * n / 3);
  const std::string inv = WriteInventory(dir, {&a});
  auto r = RunHerd({"-i", inv, "-o", "json", "app", "install", "all", path});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const json host = json::parse(Lines(r.out).at(0));
  CHECK(host["data"]["resumed_from"] == 2 * n / 3);
  CHECK(host["data"]["already_installed"] == false);
  CHECK(host["data"]["sequence"] == 1);
  CHECK_FALSE(fs::exists(part));
  const auto after = Held(a, bundle);
  CHECK(after.installed());
  CHECK(after.have_bytes() == 0);
  // Sent again, nothing is resumed: the bundle is there.
  auto again = RunHerd({"-i", inv, "--no-progress", "app", "install", "all", path});
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.out, Catch::Contains("was installed already") && !Catch::Contains("resumed"));
}

TEST_CASE("a resumed upload whose kept bytes are wrong is discarded, and the next starts afresh",
          "[integration][app]") {
  Publisher pub;
  OneDevice device(pub.Config());
  const AgentProcess& a = device.agent;
  const std::string& inv = device.inv;
  const std::string path = pub.Bundle(1);
  std::string bad = ReadFile(path);
  const uint64_t n = bad.size();
  bad[n / 4] ^= 1;  // a partial whose bytes are not the bundle's
  {
    OpenUpload cut(a, bad, 0, n / 2);
    REQUIRE(WaitFor([&] { return Held(a, bad).have_bytes() == n / 2; }, 10s));
    (void)cut.Cut();
  }
  REQUIRE(WaitFor([&] { return a.AuditHas("Install", "cancelled"); }, 10s));
  // The bytes are held under the digest `bad` announced: make them the
  // real bundle's partial, as a disk that lost a write would.
  const std::string bundles = a.state_dir() + "-apps/bundles/";
  const std::string sha = herd::Sha256Hex(ReadFile(path));
  fs::rename(bundles + herd::Sha256Hex(bad) + ".part", bundles + sha + ".part");
  REQUIRE(Held(a, ReadFile(path)).have_bytes() == n / 2);
  auto r = RunHerd({"-i", inv, "--no-progress", "app", "install", "all", path});
  INFO(r.out << r.err);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.out + r.err, Catch::Contains("checksum mismatch") &&
                                Catch::Contains("resumed at byte " + std::to_string(n / 2)));
  CHECK_FALSE(fs::exists(bundles + sha + ".part"));
  auto again = RunHerd({"-i", inv, "--no-progress", "app", "install", "all", path});
  INFO(again.out << again.err);
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.out, Catch::Contains("notes 1.1 installed"));
}
