// A unified diff of two texts, line by line (Myers' algorithm), as
// `diff -u` prints it: for herd apply --diff. Stateless.
#pragma once

#include <cstddef>
#include <string>

namespace herd {

// "--- PATH\n+++ PATH\n@@ -a,b +c,d @@\n..." with `context` lines around
// each change; "" when the texts are equal. Texts of more than
// kMaxDiffLines lines, or more than kMaxDiffEdits changed lines, get one
// line saying how they differ in size instead.
inline constexpr size_t kMaxDiffLines = 100'000;
inline constexpr size_t kMaxDiffEdits = 1'000;
std::string UnifiedDiff(const std::string& before, const std::string& after,
                        const std::string& path, size_t context = 3);

}  // namespace herd
