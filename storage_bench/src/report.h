// The stdout summary table and the HDF5 run record (rank 0 prints and writes).
#pragma once

#include <string>
#include <vector>

#include "phase.h"

namespace sb {

struct Ctx;
struct Options;

class Report {
 public:
  Report(int rank, bool per_rank) : rank_(rank), per_rank_(per_rank) {}

  void preamble(const Ctx& ctx, const std::vector<std::string>& lines);
  void note(const std::string& line);  // "# line" on rank 0
  void add(PhaseResult r);             // prints its rows; keeps it for the summary and the file
  // Statistics over repetitions (IOR's summary) and the verify line, which says how many blocks
  // were checked, or that nothing was (never "0 errors" when nothing was read back and checked).
  void summary(bool verify_requested);

  // Collective (provenance gathers from every rank); rank 0 appends the run to `path`.
  void write_hdf5(const Ctx& ctx, const std::string& status,
                  const std::vector<std::string>& extra_notes);

  std::uint64_t verify_errors() const { return verify_errors_; }
  std::uint64_t verify_checked() const { return verify_checked_; }
  const std::vector<PhaseResult>& phases() const { return phases_; }
  static std::string header_line();
  static std::string row_of(const PhaseResult& r);

 private:
  int rank_;
  bool per_rank_ = false;
  bool header_printed_ = false;
  std::uint64_t verify_errors_ = 0;
  std::uint64_t verify_checked_ = 0;
  std::vector<PhaseResult> phases_;
  std::vector<std::string> notes_;
};

}  // namespace sb
