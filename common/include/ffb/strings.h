// Small text helpers every option layer uses.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ffb {

// "a,b,,c" -> {"a", "b", "c"}: comma-separated items, empty ones dropped, no trimming (a flag
// value with spaces is the user's to quote).
std::vector<std::string> split_list(std::string_view text, char separator = ',');

}  // namespace ffb
