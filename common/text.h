// Checks and quotes for text a client or a user sent: what may go into a
// command line, a path or an environment, and how much of it a message may
// repeat. Stateless.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace herd {

// What a message may say of a value it did not choose: at most `max` bytes
// of it, control characters written \xNN, and "… (N bytes)" when cut, so an
// error never echoes a 100 KB input back.
std::string Excerpt(std::string_view value, size_t max = 80);

// kInvalidArgument naming `what` when `value` holds a NUL byte (which would
// cut it short where the system takes it) or is longer than `max_bytes`.
Status CheckText(std::string_view value, std::string_view what, size_t max_bytes);

// A portable environment variable name: [A-Za-z_][A-Za-z0-9_]*, at most 256.
bool IsEnvName(std::string_view name);

// A rollout ID as herd makes them: at most 64 of A-Z a-z 0-9 . _ - (empty
// is "no rollout").
bool IsRolloutId(std::string_view id);

// An absolute path the kernel can take: no NUL, at most 4095 bytes, each
// component at most 255. Errors are kInvalidArgument naming `what`.
Status CheckAbsolutePath(std::string_view path, std::string_view what);

}  // namespace herd
