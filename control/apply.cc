#include "control/apply.h"

#include <fmt/format.h>

#include <memory>
#include <set>
#include <tuple>

#include "control/tasks.h"
#include "herd/v1/agent.pb.h"
#include "proto/rpc/agent_methods.h"

namespace herd::control {
namespace {

using nlohmann::json;

json ItemJson(const std::string& kind, const std::string& key, const std::string& outcome,
              const std::string& detail, const std::string& diff = "") {
  json j = {{"kind", kind}, {"key", key}, {"outcome", outcome}, {"detail", detail}};
  if (!diff.empty()) j["diff"] = diff;
  return j;
}

// Counts and the host's line from its items.
void CountItems(HostResult* r, bool check) {
  json& d = r->data;
  size_t ok = 0, changed = 0, failed = 0, skipped = 0;
  std::string failures;
  for (const auto& item : d["items"]) {
    const std::string outcome = item.value("outcome", "");
    ok += outcome == "ok";
    changed += outcome == "changed";
    skipped += outcome == "skipped";
    if (outcome == "failed") {
      ++failed;
      if (failures.size() < 300) {
        failures += fmt::format("{}{} {}: {}", failures.empty() ? "" : "; ", item.value("kind", ""),
                                item.value("key", ""), item.value("detail", ""));
      }
    }
  }
  d["ok"] = ok;
  d["changed"] = changed;
  d["failed"] = failed;
  d["skipped"] = skipped;
  r->summary = fmt::format("{} ok, {} {}{}{}", ok, changed, check ? "to change" : "changed",
                           failed ? fmt::format(", {} failed", failed) : "",
                           skipped ? fmt::format(", {} skipped", skipped) : "");
  if (failed && r->outcome == Outcome::kOk) {
    r->outcome = Outcome::kCommandFailed;
    r->error_code = "failed_items";
  }
  if (failed) r->message = r->summary + " (" + failures + ")";
}

// A key for hosts that roll one app out the same way.
using AppKey = std::tuple<std::string, std::string, std::string, size_t, std::string, long>;

}  // namespace

v1::ApplyRequest ApplyRequestFor(const HostPlan& plan, const Host& host, const ApplyOptions& o) {
  v1::ApplyRequest req;
  for (const auto& [k, v] : plan.labels) (*req.mutable_labels())[k] = v;
  for (const auto& [path, d] : plan.directories) {
    auto* x = req.add_directories();
    x->set_path(path);
    x->set_mode(d.mode);
    x->set_owner(d.owner);
    x->set_group(d.group);
    x->set_root(d.root);
  }
  for (const auto& [path, f] : plan.files) {
    auto* x = req.add_files();
    x->set_path(path);
    x->set_content(f.content);
    x->set_template_(f.templated);
    x->set_secret(f.secret);
    x->set_mode(f.mode);
    x->set_owner(f.owner);
    x->set_group(f.group);
    x->set_root(f.root);
  }
  for (const auto& c : plan.commands) {
    auto* x = req.add_commands();
    x->set_name(c.name);
    for (const auto& a : c.run) x->add_argv(a);
    x->set_shell(c.shell);
    x->set_creates(c.creates);
    x->set_unless(c.unless);
    x->set_onlyif(c.onlyif);
    x->set_root(c.root);
  }
  req.set_host_name(host.name);
  req.set_host_address(host.address);
  for (const auto& [k, v] : host.labels) (*req.mutable_template_labels())[k] = v;
  for (const auto& [k, v] : plan.labels) (*req.mutable_template_labels())[k] = v;
  req.set_check(o.check);
  req.set_diff(o.diff);
  return req;
}

std::string ItemLine(const json& item) {
  const std::string detail = item.value("detail", "");
  return fmt::format("{} {} {}{}{}", item.value("outcome", ""), item.value("kind", ""),
                     item.value("key", ""), detail.empty() ? "" : ": ", detail);
}

Task ApplyTask(const std::map<std::string, v1::ApplyRequest>& requests, const ApplyOptions& o) {
  Operation op =
      MakeOperation(rpc::agent_method::kApply, CallShape::kUnary, v1::ApplyRequest(), o.timeout);
  for (const auto& [host, req] : requests) {
    op.request_for[host] = std::make_shared<const std::string>(req.SerializeAsString());
  }
  const bool check = o.check;
  Task task = UnaryTask<v1::ApplyReply>(
      std::move(op),
      [check](const v1::ApplyReply& r, const CallEnd&) {
        json items = json::array();
        for (const auto& i : r.items()) {
          items.push_back(ItemJson(i.kind(), i.key(), i.outcome(), i.detail(), i.diff()));
        }
        json labels = json::object();
        for (const auto& [k, v] : r.labels()) labels[k] = v;
        HostResult res = OkResult("", {{"items", items}, {"labels", labels}});
        CountItems(&res, check);
        return res;
      },
      [](const v1::ApplyReply& r, const OutputFn& out) {
        for (const auto& i : r.items()) {
          if (i.outcome() == "ok") continue;
          out(false, ItemLine(ItemJson(i.kind(), i.key(), i.outcome(), i.detail())) + "\n");
          if (!i.diff().empty()) out(false, i.diff());
        }
      });
  // Kept for --fold (live text prints the lines as they come).
  task.collect_output_bytes = 1 << 20;
  return task;
}

void ApplyApps(Executor& executor, const std::vector<const Host*>& hosts,
               const std::map<std::string, HostPlan>& plans, const ApplyOptions& o,
               const EventSink& emit, const std::atomic<bool>& stop,
               std::vector<HostResult>* results) {
  std::vector<const Host*> with_apps;
  for (const Host* h : hosts) {
    auto it = plans.find(h->name);
    if (it != plans.end() && !it->second.apps.empty()) with_apps.push_back(h);
  }
  if (with_apps.empty()) return;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < hosts.size(); ++i) index[hosts[i]->name] = i;
  auto add = [&](const std::string& host, const json& item) {
    HostResult& r = (*results)[index.at(host)];
    if (!r.data.contains("items")) r.data["items"] = json::array();
    r.data["items"].push_back(item);
  };
  // Each host's current versions.
  NullReporter quiet;
  const auto listed = RunTask(executor, with_apps, ListAppsTask(o.timeout), quiet);
  std::map<AppKey, std::vector<const Host*>> rollouts;
  std::map<AppKey, SpecApp> settings;
  for (size_t i = 0; i < with_apps.size(); ++i) {
    const Host* h = with_apps[i];
    HostResult& mine = (*results)[index.at(h->name)];
    for (const auto& [name, app] : plans.at(h->name).apps) {
      if (mine.outcome != Outcome::kOk) {
        add(h->name, ItemJson("app", name, "skipped",
                              mine.data.contains("items") ? "an earlier item failed"
                                                          : "the host did not apply"));
        continue;
      }
      if (listed[i].outcome != Outcome::kOk) {
        add(h->name, ItemJson("app", name, "failed", "cannot list apps: " + listed[i].message));
        continue;
      }
      std::string current;
      for (const auto& a : listed[i].data.value("apps", json::array())) {
        if (a.value("name", "") == name) current = a.value("current_version", "");
      }
      if (current == app.version) {
        add(h->name, ItemJson("app", name, "ok", name + " " + app.version));
        continue;
      }
      const std::string change =
          fmt::format("{} -> {}", current.empty() ? "none" : current, app.version);
      if (o.check) {
        add(h->name, ItemJson("app", name, "changed", change));
        continue;
      }
      const AppKey key{name,        app.version,
                       app.channel, app.canary,
                       app.batch,   app.max_failures ? static_cast<long>(*app.max_failures) : -1};
      rollouts[key].push_back(h);
      settings[key] = app;
    }
  }
  for (const auto& [key, targets] : rollouts) {
    const SpecApp& a = settings.at(key);
    RolloutSpec spec;
    spec.bundle = a.name + "@" + a.version;
    spec.catalog = true;
    spec.channel = a.channel;
    spec.canary = a.canary;
    spec.batch = a.batch;
    spec.max_failures = a.max_failures;
    spec.timeout = o.timeout;
    spec.health_timeout = o.health_timeout;
    spec.target = "herd apply";
    app::AppSpec resolved;
    CopySource source;
    std::vector<HostResult> ended;
    if (Status s = ResolveFromCatalog(executor, targets, spec, &resolved, &source); !s.ok()) {
      for (const Host* h : targets) {
        HostResult r;
        r.host = h->name;
        r.outcome = Outcome::kRejected;
        r.message = s.message();
        ended.push_back(r);
      }
    } else if (auto waves = PlanWaves(targets.size(), spec.canary, spec.batch); !waves.ok()) {
      for (const Host* h : targets) {
        HostResult r;
        r.host = h->name;
        r.outcome = Outcome::kRejected;
        r.message = waves.status().message();
        ended.push_back(r);
      }
    } else {
      ended = RunRollout(executor, targets, spec, source, resolved, emit, stop);
    }
    for (size_t i = 0; i < targets.size() && i < ended.size(); ++i) {
      const bool ok = ended[i].outcome == Outcome::kOk;
      add(targets[i]->name,
          ItemJson("app", a.name, ok ? "changed" : "failed",
                   ok ? a.name + " " + a.version + " rolled out" : ended[i].message));
    }
  }
  for (const Host* h : with_apps) CountItems(&(*results)[index.at(h->name)], o.check);
}

size_t PendingItems(const std::vector<HostResult>& results) {
  size_t n = 0;
  for (const auto& r : results) {
    if (!r.data.is_object() || !r.data.contains("items")) continue;
    for (const auto& item : r.data["items"]) n += item.value("outcome", "") != "ok";
  }
  return n;
}

}  // namespace herd::control
