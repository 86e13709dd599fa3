// mTLS, roles and the audit trail, against real agents with the real CLI.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/pki.h"
#include "common/revocation_list.h"
#include "tests/support/agent_stub.h"
#include "tests/support/test_support.h"

using namespace herd::testing;
using namespace std::chrono_literals;

namespace {

struct OneAgent {
  OneAgent() : agent("node1") {
    REQUIRE(agent.ready());
    inventory = WriteInventory(dir, {&agent});
  }
  std::vector<nlohmann::json> Audit() const { return agent.Audit(); }
  bool AuditHas(const std::string& method, const std::string& result_part) const {
    return agent.AuditHas(method, result_part);
  }
  ScopedTempDir dir;
  AgentProcess agent;
  std::string inventory;
};

// A PKI folder trusting the fleet CA and holding an admin identity `name`
// whose certificate is signed by `ca_pem`/`ca_key` and valid for `days`.
std::string IdentityDir(const ScopedTempDir& dir, const std::string& name,
                        const std::string& ca_pem, const std::string& ca_key, int days) {
  auto key = herd::pki::GenerateKeyPem();
  REQUIRE(key.ok());
  herd::pki::CertSpec spec;
  spec.common_name = name;
  spec.role = herd::pki::Role::kAdmin;
  spec.days = days;
  auto cert = herd::pki::IssueCert(ca_pem, ca_key, *herd::pki::PublicKeyPem(*key), spec);
  REQUIRE(cert.ok());
  const std::string pki = dir / ("pki-" + name);
  ::mkdir(pki.c_str(), 0700);
  WriteFile(pki + "/ca.crt", ReadFile(TestPkiDir() + "/ca.crt"));
  WriteFile(pki + "/" + name + ".crt", *cert);
  WriteFile(pki + "/" + name + ".key", *key);
  return pki;
}

}  // namespace

TEST_CASE("a viewer may read but not run or copy, and refusals are audited",
          "[integration][security]") {
  OneAgent f;
  const std::map<std::string, std::string> viewer = {{"HERD_IDENTITY", "viewer"}};
  CHECK(RunHerd({"-i", f.inventory, "ping", "all"}, 30s, viewer).exit_code == 0);
  auto run = RunHerd({"-i", f.inventory, "run", "all", "--", "true"}, 30s, viewer);
  CHECK(run.exit_code == 2);
  CHECK_THAT(run.err,
             Catch::Contains("[rejected] Exec needs role operator; 'viewer' has role viewer"));
  WriteFile(f.dir / "src", "data");
  auto copy =
      RunHerd({"-i", f.inventory, "copy", "all", f.dir / "src", f.dir / "dst"}, 30s, viewer);
  CHECK(copy.exit_code == 2);
  CHECK_THAT(copy.err, Catch::Contains("PutFile needs role operator"));
  CHECK(::access((f.dir / "dst").c_str(), F_OK) != 0);
  CHECK(f.AuditHas("Exec", "denied: Exec needs role operator"));
  CHECK(f.AuditHas("PutFile", "denied: PutFile needs role operator"));
  // an operator may run, and the run is on record with who did it
  auto op = RunHerd({"-i", f.inventory, "run", "all", "--", "true"}, 30s,
                    {{"HERD_IDENTITY", "operator"}});
  CHECK(op.exit_code == 0);
  bool found = false;
  for (const auto& e : f.Audit()) {
    found =
        found || (e["method"] == "Exec" && e["caller"] == "operator" && e["role"] == "operator" &&
                  e["args"] == "argv[0]=true args=0 as=root" && e["result"] == "ok exit=0");
  }
  CHECK(found);
  struct stat st {};
  REQUIRE(::stat((f.agent.state_dir() + "/audit.log").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("certificates from another CA or expired ones are refused and audited",
          "[integration][security]") {
  OneAgent f;
  // Another fleet's CA signs mallory.
  auto other_key = herd::pki::GenerateKeyPem();
  REQUIRE(other_key.ok());
  auto other_ca = herd::pki::SelfSignedCa(*other_key, "other fleet", 30);
  REQUIRE(other_ca.ok());
  auto pki = IdentityDir(f.dir, "mallory", *other_ca, *other_key, 30);
  auto r = RunHerd({"-i", f.inventory, "--pki-dir", pki, "--identity", "mallory", "ping", "all"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("'mallory' is not valid for this fleet"));
  CHECK(f.AuditHas("Info", "denied: client certificate 'mallory' is not valid"));

  // The fleet's own CA, but expired yesterday.
  auto opki = IdentityDir(f.dir, "oldtimer", ReadFile(TestPkiDir() + "/ca.crt"),
                          ReadFile(TestPkiDir() + "/ca.key"), -1);
  auto e = RunHerd({"-i", f.inventory, "--pki-dir", opki, "--identity", "oldtimer", "ping", "all"});
  CHECK(e.exit_code == 2);
  CHECK_THAT(e.err, Catch::Contains("expired"));
  CHECK(f.AuditHas("Info", "expired"));
}

TEST_CASE("a TLS client without a certificate is refused with UNAUTHENTICATED",
          "[integration][security]") {
  OneAgent f;
  WriteFile(f.dir / "frame", std::string(5, '\0'));  // an empty gRPC message
  auto r =
      RunProgram("curl",
                 {"-sk", "-v", "--http2", "-o", "/dev/null", "-H", "content-type: application/grpc",
                  "-H", "te: trailers", "--data-binary", "@" + f.dir / "frame",
                  "https://" + f.agent.grpc_address() + "/herd.v1.Agent/Info"},
                 30s);
  CHECK_THAT(r.err, Catch::Contains("grpc-status: 16"));
  CHECK(f.AuditHas("Info", "denied: no client certificate"));
}

TEST_CASE("plain text is refused off loopback and cannot reach a TLS agent",
          "[integration][security]") {
  ScopedTempDir dir;
  auto r = RunProgram(
      HerddBinary(),
      {"--plaintext", "--listen", "0.0.0.0:0", "--metrics-listen", "", "--state-dir", dir / "s"},
      30s);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("refusing plain-text gRPC on 0.0.0.0:0"));

  OneAgent f;
  auto plain = RunHerd({"-i", f.inventory, "--plaintext", "ping", "all"});
  CHECK(plain.exit_code == 4);
  CHECK_THAT(plain.err, Catch::Contains("herd --plaintext to an agent that serves TLS?"));
  auto noid = RunHerd({"-i", f.inventory, "--identity", "nobody", "ping", "all"});
  CHECK(noid.exit_code == 1);
  CHECK_THAT(noid.err, Catch::Contains("no identity 'nobody'"));
  // Broken local credentials are named, not reported as unreachable hosts.
  const std::string pk = dir / "pk";
  std::filesystem::create_directory(pk);
  for (const char* f : {"ca.crt", "admin.crt"}) {
    std::filesystem::copy_file(TestPkiDir() + "/" + f, pk + "/" + f);
  }
  std::filesystem::copy_file(TestPkiDir() + "/operator.key", pk + "/admin.key");
  auto wrongkey = RunHerd({"-i", f.inventory, "--pki-dir", pk, "ping", "all"});
  CHECK(wrongkey.exit_code == 1);
  CHECK_THAT(wrongkey.err,
             Catch::Contains(pk + "/admin.key is not the key of " + pk + "/admin.crt"));

  AgentProcess dev("dev", {"--plaintext"});
  REQUIRE(dev.ready());
  // A second herdd on the same state dir is refused (join token, audit log).
  auto twin = RunProgram(HerddBinary(),
                         {"--plaintext", "--listen", "127.0.0.1:0", "--metrics-listen", "",
                          "--state-dir", dev.state_dir()},
                         30s);
  CHECK(twin.exit_code == 1);
  CHECK_THAT(twin.err, Catch::Contains("is in use by another herdd"));
  auto inv = WriteInventory(dir, {&dev});
  CHECK(RunHerd({"-i", inv, "--plaintext", "run", "all", "--", "true"}).exit_code == 0);
  auto tls_to_plain = RunHerd({"-i", inv, "ping", "all"});
  CHECK(tls_to_plain.exit_code == 4);
  CHECK_THAT(tls_to_plain.err, Catch::Contains("the agent serves plain text (herd --plaintext)"));
}

TEST_CASE("a revoked certificate is refused at once, and audit reads the trail",
          "[integration][security]") {
  OneAgent f;
  // A fresh identity in a copy of the test PKI, so revoking it touches no other test.
  ScopedTempDir pki_copy;
  const std::string pki = pki_copy / "pki";
  std::filesystem::copy(TestPkiDir(), pki);
  const std::map<std::string, std::string> env = {{"HERD_PKI_DIR", pki}};
  REQUIRE(RunHerd({"cert", "issue", "carol", "--role", "operator"}, 30s, env).exit_code == 0);
  auto carol = env;
  carol["HERD_IDENTITY"] = "carol";
  CHECK(RunHerd({"-i", f.inventory, "run", "all", "--", "true"}, 30s, carol).exit_code == 0);
  // Only an admin may revoke and push: herd refuses before it changes the
  // folder's list. (Agents take a newer signed list from any member of the
  // fleet: the CA's signature is its authority.)
  auto by_operator = RunHerd({"-i", f.inventory, "cert", "revoke", "carol", "all"}, 30s, carol);
  CHECK(by_operator.exit_code == 1);
  CHECK_THAT(by_operator.err, Catch::Contains("needs an admin identity"));
  CHECK(ReadFile(pki + "/revocations").empty());
  auto revoke = RunHerd({"-i", f.inventory, "cert", "revoke", "carol", "all"}, 30s, env);
  CHECK(revoke.exit_code == 0);
  CHECK_THAT(revoke.out, Catch::Contains("node1: revocation list updated (1 serial)"));
  auto refused = RunHerd({"-i", f.inventory, "run", "all", "--", "true"}, 30s, carol);
  CHECK(refused.exit_code == 2);
  CHECK_THAT(refused.err, Catch::Contains("'carol'"));
  CHECK_THAT(refused.err, Catch::Contains("is revoked"));

  auto audit =
      RunHerd({"-i", f.inventory, "-o", "json", "audit", "all", "--since", "1h"}, 30s, env);
  CHECK(audit.exit_code == 0);
  auto host = nlohmann::json::parse(Lines(audit.out).at(0));
  std::vector<std::string> seen;
  for (const auto& e : host["data"]["entries"]) {
    seen.push_back(e["caller"].get<std::string>() + " " + e["method"].get<std::string>() + " " +
                   e["result"].get<std::string>().substr(0, 6));
  }
  CHECK(std::find(seen.begin(), seen.end(), "carol Exec ok exi") != seen.end());
  CHECK(std::find(seen.begin(), seen.end(), "admin SetRevocations ok") != seen.end());
  CHECK(std::find(seen.begin(), seen.end(), "carol Exec denied") != seen.end());
}

namespace {

// A copy of the test PKI with an operator identity `name`, so that revoking
// it touches no other test.
struct PrivatePki {
  explicit PrivatePki(const std::string& name) {
    std::filesystem::copy(TestPkiDir(), path);
    REQUIRE(RunHerd({"cert", "issue", name, "--role", "operator"}, 30s, admin).exit_code == 0);
    user = admin;
    user["HERD_IDENTITY"] = name;
  }
  ScopedTempDir dir;
  const std::string path = dir / "pki";
  std::map<std::string, std::string> admin = {{"HERD_PKI_DIR", path}};
  std::map<std::string, std::string> user;
};

}  // namespace

TEST_CASE("an agent enrolled after a revocation refuses the revoked certificate",
          "[integration][security]") {
  PrivatePki pki("dave");
  // Revoked while no agent exists: nothing is pushed anywhere.
  auto revoke = RunHerd({"cert", "revoke", "dave"}, 30s, pki.admin);
  REQUIRE(revoke.exit_code == 0);
  CHECK_THAT(revoke.err, Catch::Contains("version 1"));
  AgentProcess late("late", {}, /*enrolled=*/false);
  REQUIRE(late.ready());
  const std::string inventory = pki.dir / "inv.yaml";
  auto enrolled = RunHerd({"-i", inventory, "enroll", late.grpc_address(), "--token",
                           late.join_token(), "--name", "late"},
                          60s, pki.admin);
  INFO(enrolled.err);
  REQUIRE(enrolled.exit_code == 0);
  CHECK(late.AuditHas("CompleteEnroll", "ok"));
  auto refused = RunHerd({"-i", inventory, "run", "all", "--", "true"}, 30s, pki.user);
  CHECK(refused.exit_code == 2);
  CHECK_THAT(refused.err, Catch::Contains("'dave' (serial"));
  CHECK_THAT(refused.err, Catch::Contains("is revoked"));
  auto ping = RunHerd({"-i", inventory, "-o", "json", "ping", "all"}, 30s, pki.admin);
  CHECK_THAT(ping.out, Catch::Contains("\"revocation_version\":1"));
}

TEST_CASE("an agent that missed a revocation takes it on the next command that reaches it",
          "[integration][security]") {
  PrivatePki pki("erin");
  AgentProcess agent("node1");
  REQUIRE(agent.ready());
  const std::string inventory = WriteInventory(pki.dir, {&agent});
  CHECK(RunHerd({"-i", inventory, "run", "all", "--", "true"}, 30s, pki.user).exit_code == 0);
  // Revoked without a push, as if the agent had been offline.
  REQUIRE(RunHerd({"cert", "revoke", "erin"}, 30s, pki.admin).exit_code == 0);
  // Any command by anyone holding the newer list passes it on, erin's own
  // included: the call itself was taken, the next one is not.
  auto run = RunHerd({"-i", inventory, "run", "all", "--", "true"}, 30s, pki.user);
  CHECK(run.exit_code == 0);
  CHECK_THAT(run.err, Catch::Contains("revocation list version 1 passed on to node1"));
  auto refused = RunHerd({"-i", inventory, "run", "all", "--", "true"}, 30s, pki.user);
  CHECK(refused.exit_code == 2);
  CHECK_THAT(refused.err, Catch::Contains("is revoked"));
  // Once current, nothing more is pushed, and the install is on record once.
  auto again = RunHerd({"-i", inventory, "ping", "all"}, 30s, pki.admin);
  CHECK_THAT(again.err, !Catch::Contains("passed on"));
  int installs = 0;
  for (const auto& e : agent.Audit()) {
    installs += e["method"] == "SetRevocations" && e["result"] == "ok";
  }
  CHECK(installs == 1);
}

TEST_CASE("a revocation list that is unsigned, forged, edited or older is refused",
          "[integration][security]") {
  PrivatePki pki("frank");
  AgentProcess agent("node1");
  REQUIRE(agent.ready());
  const std::string inventory = WriteInventory(pki.dir, {&agent});
  REQUIRE(RunHerd({"cert", "revoke", "frank"}, 30s, pki.admin).exit_code == 0);
  const std::string v1 = ReadFile(pki.path + "/revocations");
  REQUIRE(RunHerd({"cert", "revoke", "0A:BC:01"}, 30s, pki.admin).exit_code == 0);
  const std::string v2 = ReadFile(pki.path + "/revocations");
  // The serial was written as herd writes serials: no separators, no leading zero.
  CHECK_THAT(v2, Catch::Contains("revoke ABC01\n"));
  // A viewer may pass a list on: its signature is the authority.
  auto stub = AgentStub(agent, "viewer");
  herd::v1::SetRevocationsReply reply;
  auto push = [&](const std::string& list) {
    herd::v1::SetRevocationsRequest req;
    req.set_signed_list(list);
    return stub->SetRevocations(CallContext().get(), req, &reply);
  };
  herd::v1::SetRevocationsRequest unsigned_req;
  unsigned_req.add_serials("ABC01");
  auto unsigned_status = stub->SetRevocations(CallContext().get(), unsigned_req, &reply);
  CHECK(unsigned_status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(unsigned_status.error_message(), Catch::Contains("unsigned"));
  // Edited after signing: a serial removed.
  std::string edited = v2;
  edited.replace(edited.find("revoke ABC01\n"), 13, "");
  CHECK(push(edited).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(push(v2).ok());
  CHECK(reply.installed());
  CHECK(reply.version() == 2);
  CHECK(reply.count() == 2);
  CHECK(push(v2).ok());  // the same version again changes nothing
  CHECK_FALSE(reply.installed());
  auto older = push(v1);
  CHECK(older.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(older.error_message(),
             Catch::Contains("older than the one this agent holds (version 2)"));
  CHECK(push("herd-revocations 1\nversion 9\n").error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  // Signed by another CA: a forged list.
  auto other_key = herd::pki::GenerateKeyPem();
  REQUIRE(other_key.ok());
  auto forged = herd::SignRevocationList(50, {}, 0, *other_key);
  REQUIRE(forged.ok());
  CHECK(push(forged->Text()).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  auto ping = RunHerd({"-i", inventory, "-o", "json", "ping", "all"}, 30s, pki.admin);
  CHECK_THAT(ping.out, Catch::Contains("\"revocation_version\":2"));
}

TEST_CASE("a flood of refusals leaves what was done on record, and --verify finds an edit",
          "[integration][security]") {
  OneAgent f;
  REQUIRE(RunHerd({"-i", f.inventory, "run", "all", "--", "true"}).exit_code == 0);
  // 2,000 refused calls with a fleet certificate, as fast as a client can.
  auto viewer = AgentStub(f.agent, "viewer");
  herd::v1::ExecRequest req;
  req.add_argv("true");
  for (int i = 0; i < 2000; ++i) {
    auto ctx = CallContext();
    auto reader = viewer->Exec(ctx.get(), req);
    herd::v1::ExecEvent ev;
    while (reader->Read(&ev)) {
    }
    REQUIRE(reader->Finish().error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  // The command run before the flood is still on record; the refusals went
  // to their own file, at most 20 for this caller.
  auto done = f.agent.Audit(/*refusals=*/false);
  REQUIRE(done.size() == 2);
  CHECK(done[0]["result"] == "started");
  int refusals = 0;
  for (const auto& e : f.agent.Audit()) refusals += e["caller"] == "viewer";
  CHECK(refusals == 20);
  CHECK_FALSE(std::filesystem::exists(f.agent.state_dir() + "/audit.log.1"));

  auto intact = RunHerd({"-i", f.inventory, "audit", "all", "--verify"});
  CHECK(intact.exit_code == 0);
  CHECK_THAT(intact.out, Catch::Contains("node1: audit chain intact: 2 entries, seq 1-2, head "));
  // An entry changed by hand (and another command after it).
  const std::string log = f.agent.state_dir() + "/audit.log";
  std::string text = ReadFile(log);
  text.replace(text.find("\"result\":\"started\""), 18, "\"result\":\"nothing\"");
  WriteFile(log, text);
  REQUIRE(RunHerd({"-i", f.inventory, "run", "all", "--", "true"}).exit_code == 0);
  auto broken = RunHerd({"-i", f.inventory, "-o", "json", "audit", "all", "--verify"});
  CHECK(broken.exit_code == 2);
  auto host = nlohmann::json::parse(Lines(broken.out).at(0));
  CHECK(host["data"]["intact"] == false);
  CHECK(host["data"]["problems"][0] ==
        "seq 2: the entry before it (seq 1) was changed after it was written");
}

TEST_CASE("a name from a certificate the agent refused is marked unverified and shown escaped",
          "[integration][security]") {
  OneAgent f;
  auto key = herd::pki::GenerateKeyPem();
  REQUIRE(key.ok());
  auto other_ca = herd::pki::SelfSignedCa(*key, "other fleet", 30);
  REQUIRE(other_ca.ok());
  herd::pki::CertSpec spec;
  spec.common_name = "\x1b[2J\x1b[Hadmin";  // clears a terminal, then poses as admin
  spec.role = herd::pki::Role::kAdmin;
  auto cert = herd::pki::IssueCert(*other_ca, *key, *herd::pki::PublicKeyPem(*key), spec);
  REQUIRE(cert.ok());
  const std::string pki = f.dir / "pki-evil";
  ::mkdir(pki.c_str(), 0700);
  WriteFile(pki + "/ca.crt", ReadFile(TestPkiDir() + "/ca.crt"));
  WriteFile(pki + "/evil.crt", *cert);
  WriteFile(pki + "/evil.key", *key);
  auto r = RunHerd({"-i", f.inventory, "--pki-dir", pki, "--identity", "evil", "ping", "all"});
  CHECK(r.exit_code == 2);
  auto audit = RunHerd({"-i", f.inventory, "audit", "all", "--since", "1h"});
  CHECK(audit.exit_code == 0);
  CHECK(audit.out.find('\x1b') == std::string::npos);
  CHECK_THAT(audit.out, Catch::Contains("unverified:\\x1b[2J\\x1b[Hadmin () Info"));
}

TEST_CASE(
    "a command is on the audit trail before it runs: an agent killed mid-command "
    "leaves its trace",
    "[integration][security]") {
  OneAgent f;
  const std::string pid_file = f.dir / "cmd.pid";
  const std::string shell = "echo $$ > " + pid_file + "; exec sleep 60";
  REQUIRE(f.agent.pid() > 0);
  CliResult run;
  std::thread cli([&] {
    run = RunHerd({"-i", f.inventory, "-t", "60s", "run", "all", "--shell", shell}, 90s);
  });
  struct Joiner {  // joined on every way out, so a failed check cannot abort the binary
    std::thread& t;
    ~Joiner() {
      if (t.joinable()) t.join();
    }
  } joiner{cli};
  const bool started =
      WaitFor([&] { return f.AuditHas("Exec", "started") && !ReadFile(pid_file).empty(); }, 30s);
  CHECK(started);
  ::kill(f.agent.pid(), SIGKILL);
  cli.join();
  // The command outlived its agent (its own process group): stop it here.
  const pid_t cmd = static_cast<pid_t>(std::atoi(ReadFile(pid_file).c_str()));
  if (cmd > 0) ::kill(cmd, SIGKILL);
  CHECK(run.exit_code == 4);  // the host is unreachable once its agent is gone
  bool trace = false;
  for (const auto& e : f.Audit()) {
    trace = trace || (e["method"] == "Exec" && e["caller"] == "admin" &&
                      e["args"] == "shell (" + std::to_string(shell.size()) + " chars) as=root" &&
                      e["result"] == "started");
  }
  CHECK(trace);
}

TEST_CASE("an operator's command cannot read the agent's key or write its audit log",
          "[integration][security]") {
  if (::geteuid() != 0) return;  // herdd can only switch accounts as root (the CI is root)
  ScopedTempDir dir;
  // The folders above the agent's files are open: only the agent's own
  // modes protect them.
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  const std::string state = dir / "state", config = dir / "agent.yaml";
  WriteFile(config, "exec:\n  allow_root: true\n");  // run_as: the default
  AgentProcess agent("node1", {"--config", config, "--state-dir", state}, false);
  REQUIRE(agent.ready());
  // Enrolled through the real flow: its key sits in the state directory.
  const std::string inventory = dir / "inventory.yaml";
  auto enrolled = RunHerd({"-i", inventory, "enroll", agent.grpc_address(), "--name", "node1",
                           "--token", agent.join_token()},
                          60s);
  INFO(enrolled.err);
  REQUIRE(enrolled.exit_code == 0);
  REQUIRE(WaitFor([&] { return std::filesystem::exists(state + "/tls/agent.key"); }, 20s));
  const std::map<std::string, std::string> as_operator = {{"HERD_IDENTITY", "operator"}};
  auto herd = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"-i", inventory, "--no-progress", "-o", "json"});
    return RunHerd(args, 60s, as_operator);
  };
  REQUIRE(WaitFor([&] { return herd({"ping", "all"}).exit_code == 0; }, 20s));

  auto who = herd({"run", "all", "--", "id", "-un"});
  CHECK(who.exit_code == 0);
  CHECK_THAT(who.out, Catch::Contains("\"stdout\":\"herd-run\\n\""));
  auto key = herd({"run", "all", "--", "cat", state + "/tls/agent.key"});
  CHECK(key.exit_code == 2);
  CHECK_THAT(key.out, Catch::Contains("Permission denied"));
  CHECK_THAT(key.out, !Catch::Contains("PRIVATE KEY"));
  auto forge = herd({"run", "all", "--shell", "echo forged >> " + state + "/audit.log"});
  CHECK(forge.exit_code == 2);
  CHECK(ReadFile(state + "/audit.log").find("forged") == std::string::npos);
  // A copy as the account cannot put a file where it may not write.
  const std::string src = dir / "src";
  WriteFile(src, "payload");
  auto copy = herd({"copy", "all", src, dir / "planted"});
  CHECK(copy.exit_code == 2);
  CHECK_FALSE(std::filesystem::exists(dir / "planted"));

  // Root on request: the device allows it, and it is on record as such.
  auto root = herd({"run", "all", "--root", "--", "id", "-u"});
  CHECK(root.exit_code == 0);
  CHECK_THAT(root.out, Catch::Contains("\"stdout\":\"0\\n\""));
  auto rooted = herd({"copy", "all", src, dir / "planted", "--root"});
  CHECK(rooted.exit_code == 0);
  CHECK(ReadFile(dir / "planted") == "payload");
  bool on_record = false;
  for (const auto& e : agent.Audit(false)) {
    on_record =
        on_record || (e["method"] == "Exec" && e["caller"] == "operator" &&
                      e["args"] == "argv[0]=id args=1 as=root" && e["result"] == "ok exit=0");
  }
  CHECK(on_record);
  // The audit log still verifies: nothing was appended behind the agent.
  auto verify = RunHerd({"-i", inventory, "audit", "all", "--verify"}, 60s);
  CHECK(verify.exit_code == 0);
}

TEST_CASE("root is refused where the device does not allow it", "[integration][security]") {
  ScopedTempDir dir;
  const std::string config = dir / "agent.yaml";
  WriteFile(config, "exec:\n  run_as: root\n");  // commands as root, but none may ask for it
  AgentProcess agent("node1", {"--config", config});
  REQUIRE(agent.ready());
  const std::string inventory = WriteInventory(dir, {&agent});
  auto r = RunHerd({"-i", inventory, "--no-progress", "run", "all", "--root", "--", "true"}, 30s);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err + r.out, Catch::Contains("this device does not allow root (exec.allow_root"));
  CHECK(agent.AuditHas("Exec", "denied: this device does not allow root"));
  const std::string src = dir / "src";
  WriteFile(src, "x");
  auto c =
      RunHerd({"-i", inventory, "--no-progress", "copy", "all", src, dir / "dst", "--root"}, 30s);
  CHECK(c.exit_code == 2);
  CHECK_FALSE(std::filesystem::exists(dir / "dst"));
  // The same commands without --root run.
  CHECK(RunHerd({"-i", inventory, "--no-progress", "run", "all", "--", "true"}, 30s).exit_code ==
        0);
}
