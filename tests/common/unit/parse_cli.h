// The collective option parser run on a command line as a program's main() runs it: shared by the
// parser's unit tests (test_collective_options.cpp, test_collective_parser.cpp).
#pragma once

#include <string>
#include <vector>

#include "collective_internal.h"
#include "ffb/collective.h"

namespace ffb_test {

// Arguments as a vector (not an initializer_list): callers may keep them in structs, where an
// initializer_list member would point into an array that is gone once the struct is built.
inline ffb::ParsedCommandLine parse_cli(const std::vector<const char*>& args,
                                        ffb::CollectiveBackend& backend) {
  std::vector<std::string> words{"prog"};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return ffb::parse_command_line(static_cast<int>(argv.size()), argv.data(), "prog", backend);
}

}  // namespace ffb_test
