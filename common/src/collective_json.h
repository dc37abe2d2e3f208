// The -J/--output_file document of a collective run: nccl-tests' JSON layout (its `-J`, format
// version 3) where the quantities are the same, ffbench's own fields under "ffbench" keys. It is
// built from the run record that the HDF5 file gets (whose "collective" table the runner built
// from the same rows it printed), so the table, the HDF5 run and the JSON cannot disagree.
// Internal to the harness (collective_runner.cpp), not a public API.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ffb/collective.h"
#include "ffb/results.h"

namespace ffb {

// The footer's two averages of busbw (GB/s), both over the printed rows and both placements:
// nccl-tests' `# Avg bus bandwidth` (every row: it adds each placement's busbw once) and ours
// over the rows of size >= kLargeBytes only. `values` counts the placement results averaged.
struct BusbwAverages {
  static constexpr std::uint64_t kLargeBytes = 1ull << 20;
  double all = 0;
  std::size_t all_values = 0;
  double large = 0;
  std::size_t large_values = 0;
};

// What the document needs beyond the run record and the options.
struct JsonRunInfo {
  std::vector<std::string> argv;
  std::string start_time, end_time;  // nccl-tests' "%Y-%m-%d %H:%M:%S", local time
  BusbwAverages averages;
  std::int64_t total_wrong = 0;  // summed #wrong of every row (0 when -c 0)
  bool ok = true;                // the footer's OK / FAILED
  std::string results_file;      // --output ("" = none) and the run written there
  std::string results_run;
};

// A rank's device text ("GPU0 NVIDIA H100 80GB HBM3 [0000:18:00.0]", "-" for host memory)
// split as nccl-tests prints and writes it: device index (-1: none), bus id, name.
struct DeviceText {
  int index = -1;
  std::string bus;
  std::string name;
};
DeviceText split_device_text(const std::string& text);

// Local time now in nccl-tests' start_time / end_time format.
std::string nccl_tests_time_now();

nlohmann::ordered_json collective_json(const RunRecord& record, const CollectiveOptions& opt,
                                       const JsonRunInfo& info);

// -J/--output_file checks, each throwing UsageError with one line naming the flag and the value.
// The syntax (every rank, at parse time): a name ending in .json, not --output's name.
void check_json_name(const std::string& path, const std::string& hdf5_output);
// The file system (rank 0, or every process under --check-args): the directory exists and this
// user may create files in it; the path is not a directory; it is not the --output file.
void check_json_output(const std::string& path, const std::string& hdf5_output);

// Writes doc to path atomically: a temporary in the same directory, fsync, rename over path,
// fsync of the directory. Throws std::runtime_error naming the path; leaves no temporary behind.
void write_json_atomically(const std::filesystem::path& path, const nlohmann::ordered_json& doc);

}  // namespace ffb
