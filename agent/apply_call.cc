#include "agent/apply_call.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>

#include "agent/apply/apply.h"

namespace herd::agent {
namespace {

// Runs `spec` on the agent's runner and waits for its end: exit code and
// the end of its output.
CommandRun RunAndWait(ExecRunner& runner, const ExecSpec& spec) {
  auto done = std::make_shared<std::promise<ExecOutcome>>();
  auto output = std::make_shared<std::string>();
  auto ended = done->get_future();
  auto id = runner.Start(
      spec,
      [output](bool, std::string data) {
        *output += data;
        if (output->size() > 2048) output->erase(0, output->size() - 1024);
        return true;
      },
      [done](ExecOutcome o) { done->set_value(std::move(o)); });
  CommandRun r;
  if (!id.ok()) {
    r.error = id.status().message();
    return r;
  }
  const ExecOutcome o = ended.get();
  if (output->size() > 1024) output->erase(0, output->size() - 1024);
  while (!output->empty() && (output->back() == '\n' || output->back() == ' ')) output->pop_back();
  r.output = *output;
  if (!o.error.empty()) {
    r.error = o.error;
  } else if (o.timed_out) {
    r.error = fmt::format("timed out after {} ms", spec.timeout.count());
  } else if (o.signal) {
    r.error = fmt::format("killed by signal {}", o.signal);
  } else {
    r.exit_code = o.exit_code;
  }
  return r;
}

}  // namespace

Status HandleApply(AgentContext& c, const Caller& who, const v1::ApplyRequest& req,
                   v1::ApplyReply* reply) {
  AuditEntry e = EntryFor(who, method::kApply);
  e.args = fmt::format("{} labels, {} directories, {} files, {} commands{}", req.labels_size(),
                       req.directories_size(), req.files_size(), req.commands_size(),
                       req.check() ? ", check" : "");
  // On the one slow-work thread: applies on a device run one after another.
  const Status s = CheckApplyRequest(req);
  if (s.ok()) {
    ApplyEnv env;
    env.account = [&c](bool root) { return ActingAccount(c, root); };
    env.run = [&c](const ExecSpec& spec) { return RunAndWait(c.runner, spec); };
    env.labels = c.labels;
    env.owner_labels = &c.config.labels;
    // The host's facts only for a spec that templates files.
    if (std::any_of(req.files().begin(), req.files().end(),
                    [](const v1::ApplyFile& f) { return f.template_(); })) {
      env.facts = TemplateFacts(c.config.state_dir);
    }
    env.command_timeout = c.config.exec.default_timeout;
    RunApply(req, env, reply);
  }
  if (!s.ok()) {
    e.result = "refused: " + s.message();
    (void)c.audit.AppendRefusal(e, who.serial);
    return s;
  }
  int changed = 0, failed = 0;
  for (const auto& item : reply->items()) {
    changed += item.outcome() == "changed";
    failed += item.outcome() == "failed";
  }
  e.result = fmt::format("{}: {} {}, {} failed", failed ? "failed" : "ok", changed,
                         req.check() ? "to change" : "changed", failed);
  // A check that found nothing is not on record (cron jobs run it often).
  if (!req.check() || changed || failed) (void)c.audit.Append(e);
  if (changed && !req.check()) spdlog::info("apply by {}: {}", who.name, e.result);
  return Status::Ok();
}

}  // namespace herd::agent
