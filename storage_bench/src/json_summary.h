// The JSON summary of a run (--json FILE, IOR's -O summaryFormat=JSON [-O summaryFile=FILE]),
// made from the same ffb::RunRecord as the HDF5 run, so every number is the same in both.
//
// Layout: IOR's JSON summary where the quantities are IOR's ("Version", "Began", "Command line",
// "Machine", "tests"[0] with "Parameters" and "Results" (one list per repetition, one entry per
// phase: access, bwMiB, iops, latency in s, wrRdTime, totalTime), "max", "summary" (per phase over
// repetitions: bwMaxMIB ... OPsSD, MeanTime, xsizeMiB), "Finished"); ours under their own keys:
// "phases", "ops" (percentiles per operation type), "ranks", "latency" (histogram buckets),
// "metrics" (each a list of row objects, the HDF5 table's columns as keys; NaN is null), "units"
// (per table and column) and "provenance" (every run attribute; "options" as an object).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ffb/results.h"

namespace sb {

nlohmann::json summary_json(const ffb::RunRecord& run);

// Refuses (ffb::UsageError naming `flag`, the value and the fix) a JSON target that cannot be
// written: a directory, or a path whose directory is missing or not writable. Touches nothing.
void check_json_target(const std::string& path, const std::string& flag);

// Atomic: a temporary beside `path`, fsync, rename; no temporary is left on any failure.
void write_json_file(const std::string& path, const nlohmann::json& doc);
void write_json_fd(int fd, const nlohmann::json& doc);

}  // namespace sb
