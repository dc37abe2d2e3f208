// Fault injection for the fault tests (tests/faults): a named moment at which a process kills
// itself, so a SIGKILL lands exactly there instead of by timing luck.
//
//   FFB_FAULT=<point>[@<rank>]   e.g. FFB_FAULT=hfreduce.segment_created@0
//
// fault_point("hfreduce.segment_created", rank) raises SIGKILL in the process whose world rank is
// <rank> (any process when "@<rank>" is omitted; a caller that passes no rank never matches a
// named one) when <point> equals FFB_FAULT's point. Without
// FFB_FAULT set it costs one getenv per call; the points sit on set-up and write paths, never
// inside timed loops.
#pragma once

#include <csignal>
#include <cstdlib>
#include <string>
#include <string_view>

namespace ffb {

inline void fault_point(std::string_view point, int rank = -1) {
  const char* spec = std::getenv("FFB_FAULT");
  if (spec == nullptr || *spec == '\0') return;
  std::string_view s(spec);
  const auto at = s.find('@');
  if (s.substr(0, at) != point) return;
  if (at != std::string_view::npos) {
    const int want = std::atoi(std::string(s.substr(at + 1)).c_str());
    if (rank < 0 || want != rank) return;  // a named rank fires only where the caller knows it
  }
  std::raise(SIGKILL);
}

}  // namespace ffb
