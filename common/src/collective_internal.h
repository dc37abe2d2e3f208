// Pieces of the collective harness shared between its translation units (not a public API).
#pragma once

#include <string>
#include <vector>

#include "ffb/collective.h"

namespace ffb {

struct ParsedCommandLine {
  CollectiveOptions options;
  std::vector<std::uint64_t> sizes;  // bytes, before rounding to the element size
  std::string help_text;             // non-empty: --help was asked for
};

ParsedCommandLine parse_command_line(int argc, char** argv, const std::string& program,
                                     CollectiveBackend& backend);
std::vector<ReduceOp> parse_ops(const std::string& text);
std::vector<DataType> parse_types(const std::string& text, const CollectiveBackend& backend,
                                  const std::vector<ReduceOp>& ops);

}  // namespace ffb
