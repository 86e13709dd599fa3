// Guardian: ends the commands herdd started when herdd dies, however it dies
// (kill -9 included). A small process forked from herdd before its threads
// start; herdd tells it, over a pipe, each command's process group as it
// starts and ends. When the pipe reaches its end -- herdd is gone -- it kills
// every group still running and exits. herdd's own shutdown stops its
// commands first, so then there is nothing left to kill.
//
// Its name is "herdd-guard"; it ignores SIGTERM, SIGINT and SIGHUP (so that
// `pkill herdd` cannot remove it before herdd) and leaves with herdd.
// Watch and Forget may be called from any thread; they never block.
#pragma once

#include <sys/types.h>

#include <memory>

#include "common/status.h"
#include "common/unique_fd.h"

namespace herd::agent {

class Guardian {
 public:
  // Forks the guardian. Call from main before any thread is started.
  static Result<std::unique_ptr<Guardian>> Start();

  void Watch(pid_t pgid);
  void Forget(pid_t pgid);

 private:
  explicit Guardian(UniqueFd pipe) : pipe_(std::move(pipe)) {}
  void Send(char op, pid_t pgid);
  UniqueFd pipe_;  // write end, close-on-exec: a restart in place closes it too
};

}  // namespace herd::agent
