// herd app install: the bundle to every host, each upload resumed where an
// earlier one to that host was cut short (control/tasks.h); an app from the
// hosts' catalogues, installed or resolved (control/rollout.h).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <memory>

#include "common/app/catalog.h"
#include "control/reporter.h"
#include "control/rollout.h"
#include "control/tasks.h"
#include "herd/v1/app.pb.h"
#include "proto/rpc/agent_methods.h"

namespace herd::control {
namespace {

namespace app_method = rpc::app_method;

Task InstallTask(const InstallSpec& spec, const CopySource& bundle) {
  v1::InstallMessage first;
  v1::InstallHeader& header = *first.mutable_header();
  header.set_size(bundle.size);
  header.set_sha256(bundle.sha256);
  header.set_allow_downgrade(spec.allow_downgrade);
  Operation op = MakeOperation(app_method::kInstall, CallShape::kClientStream, first, spec.timeout);
  op.call.stream = FileChunks(bundle);
  return UnaryTask<v1::InstallReply>(std::move(op), [](const v1::InstallReply& r, const CallEnd&) {
    std::vector<std::string> signers(r.signers().begin(), r.signers().end());
    return OkResult(
        fmt::format(
            "{} {} {} (sequence {}, {} files, {}, signed by {}){}", r.name(), r.version(),
            r.already_installed() ? "was installed already" : "installed", r.sequence(), r.files(),
            Bytes(r.bytes()), fmt::join(signers, ", "),
            r.resumed_from() ? fmt::format(", upload resumed at {}", Bytes(r.resumed_from())) : ""),
        {{"name", r.name()},
         {"version", r.version()},
         {"sequence", r.sequence()},
         {"bundle_sha256", r.bundle_sha256()},
         {"files", r.files()},
         {"bytes", r.bytes()},
         {"signers", signers},
         {"already_installed", r.already_installed()},
         {"resumed_from", r.resumed_from()}});
  });
}

}  // namespace

Task CatalogInstallTask(const CatalogInstallSpec& spec) {
  v1::CatalogInstallRequest req;
  req.set_name(spec.name);
  req.set_version(spec.version);
  req.set_channel(spec.channel);
  req.set_allow_downgrade(spec.allow_downgrade);
  req.set_resolve_only(spec.resolve_only);
  Operation op =
      MakeOperation(app_method::kInstallFromCatalog, CallShape::kUnary, req, spec.timeout);
  return UnaryTask<v1::CatalogInstallReply>(std::move(op), [](const v1::CatalogInstallReply& r,
                                                              const CallEnd&) {
    const v1::InstallReply& i = r.installed();
    std::vector<std::string> signers(i.signers().begin(), i.signers().end());
    nlohmann::json j = {{"name", i.name()},
                        {"version", r.version()},
                        {"sequence", r.sequence()},
                        {"bundle_sha256", r.bundle_sha256()},
                        {"size", r.size()},
                        {"catalog_url", r.catalog_url()},
                        {"index_sequence", r.index_sequence()},
                        {"channel", r.channel()},
                        {"downloaded_bytes", r.downloaded_bytes()},
                        {"resumed_from", r.resumed_from()},
                        {"resolved_only", !r.has_installed()}};
    if (!r.has_installed()) {
      return OkResult(fmt::format("{} is sequence {} on channel {} of {} (index {})", r.version(),
                                  r.sequence(), r.channel(), r.catalog_url(), r.index_sequence()),
                      j);
    }
    j["files"] = i.files();
    j["bytes"] = i.bytes();
    j["signers"] = signers;
    j["already_installed"] = i.already_installed();
    return OkResult(
        fmt::format(
            "{} {} {} from {} (channel {}, index {}; sequence {}, {} files, signed by "
            "{}; {} fetched{})",
            i.name(), i.version(), i.already_installed() ? "was installed already" : "installed",
            r.catalog_url(), r.channel(), r.index_sequence(), i.sequence(), i.files(),
            fmt::join(signers, ", "), Bytes(r.downloaded_bytes()),
            r.resumed_from() ? fmt::format(", resumed at {}", Bytes(r.resumed_from())) : ""),
        j);
  });
}

namespace {

// Hosts are asked first, then sent the bundle: people see one run. A host
// whose first answer is its last is reported at once; the progress counts
// it as done throughout the second run.
class InstallReporter final : public Reporter {
 public:
  explicit InstallReporter(Reporter& out) : out_(out) {}
  void Second(size_t ended) {
    asking_ = false;
    ended_ = ended;
  }
  // The first run's results are decided by InstallApp, not here.
  void OnResult(const HostResult& r) override {
    if (!asking_) out_.OnResult(r);
  }
  void OnOutput(const Host& host, bool is_stderr, std::string_view data) override {
    out_.OnOutput(host, is_stderr, data);
  }
  void OnProgress(const Progress& p) override {
    Progress all = p;
    if (!asking_) {
      all.total += ended_;
      all.done += ended_;
    } else {
      all.done = 0;  // asking is part of each host's install
    }
    out_.OnProgress(all);
  }
  void OnFinish(const std::vector<HostResult>&, std::chrono::milliseconds) override {}
  bool KeepsOutput() const override { return out_.KeepsOutput(); }

 private:
  Reporter& out_;
  bool asking_ = true;
  size_t ended_ = 0;
};

}  // namespace

std::vector<HostResult> InstallApp(Executor& executor, const std::vector<const Host*>& hosts,
                                   const InstallSpec& spec, const CopySource& bundle,
                                   Reporter& reporter) {
  const auto t0 = std::chrono::steady_clock::now();
  reporter.OnStart(hosts.size());
  InstallReporter forward(reporter);

  // What each host holds of the bundle.
  v1::InstallStatusRequest ask;
  ask.set_sha256(bundle.sha256);
  auto held = std::make_shared<std::map<std::string, uint64_t>>();
  Task status = UnaryTask<v1::InstallStatusReply>(
      MakeOperation(app_method::kInstallStatus, CallShape::kUnary, ask, spec.timeout),
      [](const v1::InstallStatusReply&, const CallEnd&) { return OkResult("", {}); });
  status.make_reader = [held](const Host& host) {
    const std::string who = host.name;
    return std::make_unique<UnaryReader<v1::InstallStatusReply>>(
        [held, who](const v1::InstallStatusReply& r, const CallEnd&) {
          if (!r.installed()) (*held)[who] = r.have_bytes();
          return OkResult("", {});
        });
  };
  const auto asked = RunTask(executor, hosts, status, forward);

  // The bundle to every host that answered (or does not know the question),
  // from where its last upload ended.
  std::map<std::string, HostResult> ended;
  std::vector<const Host*> send;
  Task install = InstallTask(spec, bundle);
  v1::InstallMessage first;
  first.ParseFromString(*install.op.call.request);
  for (size_t i = 0; i < hosts.size(); ++i) {
    const HostResult& r = asked[i];
    if (r.outcome != Outcome::kOk && r.error_code != "unimplemented") {
      ended.emplace(hosts[i]->name, r);
      reporter.OnResult(r);
      continue;
    }
    send.push_back(hosts[i]);
    const auto it = held->find(hosts[i]->name);
    if (it == held->end() || it->second == 0 || it->second > bundle.size) continue;
    first.mutable_header()->set_offset(it->second);
    install.op.request_for[hosts[i]->name] =
        std::make_shared<const std::string>(first.SerializeAsString());
    install.op.stream_for[hosts[i]->name] = FileChunks(bundle, it->second);
  }
  forward.Second(ended.size());
  std::vector<HostResult> sent;
  if (!send.empty()) sent = RunTask(executor, send, install, forward);

  std::vector<HostResult> results;
  results.reserve(hosts.size());
  for (size_t i = 0, j = 0; i < hosts.size(); ++i) {
    const auto it = ended.find(hosts[i]->name);
    results.push_back(it != ended.end() ? it->second : std::move(sent[j++]));
  }
  reporter.OnFinish(results, std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - t0));
  return results;
}

Status ResolveFromCatalog(Executor& executor, const std::vector<const Host*>& hosts,
                          const RolloutSpec& spec, app::AppSpec* app, CopySource* bundle) {
  auto ref = app::ParseAppRef(spec.bundle);
  if (!ref.ok()) return ref.status();
  if (ref->version.empty()) {
    return Status::Invalid("a rollout from a catalogue names the version: " + ref->name +
                           "@VERSION");
  }
  CatalogInstallSpec cs;
  cs.name = ref->name;
  cs.version = ref->version;
  cs.channel = spec.channel;
  cs.resolve_only = true;
  cs.timeout = spec.timeout;
  const Task task = CatalogInstallTask(cs);
  NullReporter quiet;
  std::string tried;
  for (size_t i = 0; i < hosts.size() && i < 3; ++i) {
    const auto r = RunTask(executor, {hosts[i]}, task, quiet);
    if (r.at(0).outcome == Outcome::kOk) {
      const nlohmann::json& d = r[0].data;
      app->name = ref->name;
      app->version = ref->version;
      app->sequence = d.value("sequence", uint64_t{0});
      bundle->sha256 = d.value("bundle_sha256", "");
      bundle->size = d.value("size", uint64_t{0});
      return Status::Ok();
    }
    tried += fmt::format("{}{}: {}", tried.empty() ? "" : "; ", hosts[i]->name, r[0].message);
  }
  return Status(StatusCode::kNotFound,
                fmt::format("{}@{}: no host could resolve it from its catalogues ({})", ref->name,
                            ref->version, tried));
}

}  // namespace herd::control
