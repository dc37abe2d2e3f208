// Every option storage_bench takes, in one struct passed by reference (no option globals).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine.h"
#include "samplers.h"

namespace sb {

enum class Workload { seq, loader, checkpoint, kvcache, meta };
std::string_view name_of(Workload w);

struct CommonOptions {
  std::string dir;
  std::string config;
  EngineKind engine = EngineKind::posix;
  unsigned qd = 1;
  unsigned submit_batch = 1;  // io_uring: submit once this many operations are queued
  bool odirect = false;
  bool fsync = false;
  bool verify = false;
  bool drop_cache = false;
  double stonewall_s = 0.0;  // per-phase time limit, 0 = none
  double delay_s = 0.0;      // untimed pause before each timed phase (IOR -d)
  bool wearout = true;       // after a stonewall, every rank finishes the most work any rank did
  int repetitions = 1;
  std::uint64_t seed = 1;
  int shift = -1;  // read-back rank shift; -1 = one node's worth of ranks
  bool keep = false;
  std::string output;
  std::string label;
  double mem_bw_gbps = 0.0;  // per node; 0 = measure at start
  double space_margin = 0.05;
  bool ignore_free_space = false;
  std::string job_name;
  bool job_name_given = false;  // --job-name was given (even empty: refused)
  bool per_rank = false;
  std::uint64_t residency_pages = 4096;  // mincore sample per rank and read phase
  bool self_test_corrupt = false;        // needs --verify (refused without)
  bool check_args = false;               // only check the options, touch no file
  std::string json;                      // --json FILE (or -O summaryFile=FILE): the JSON summary
  std::vector<std::string> ior_directives;  // -O KEY=VALUE as given (IOR's spelling)
  bool json_stdout = false;  // -O summaryFormat=JSON without a file: the JSON goes to stdout
  std::string json_flag = "--json";  // how the JSON file was named, for messages
  // Job name, --self-test-corrupt pairings and the -O directives (which set json/json_stdout).
  void validate();
};

struct SeqOptions {
  std::uint64_t block = 16ull << 20;
  std::uint64_t transfer = 1ull << 20;
  std::uint64_t segments = 1;
  bool file_per_proc = false;
  std::string pattern = "seq";        // --pattern as given
  std::string phases = "write,read";  // --phases as given
  bool random = false;  // --pattern random: every transfer offset once, in a seeded random order
  bool do_write = true, do_read = true;
  void validate(const CommonOptions& c);  // derives random/do_write/do_read; checks the sizes
};

struct LoaderOptions {
  std::uint64_t samples = 4096;
  std::string sample_size = SizeDistribution::kDefault;
  std::uint64_t shard_size = 64ull << 20;
  int epochs = 1;
  std::uint64_t batch = 16;
  double compute_ms = 0.0;
  int prefetch = 2;
  void validate() const;
};

struct CheckpointOptions {
  std::uint64_t ckpt_size = 0;  // per rank; 0 = from the model description (or 64 MiB)
  double model_params = 0.0;
  double bytes_per_param = 2.0;
  double optimizer_factor = 1.0;
  std::uint64_t chunk = 4ull << 20;
  int steps = 1;
  double interval_s = 0.0;
  bool restore = true;
  int restore_ranks = 0;  // 0 = every rank
  std::uint64_t shard_bytes(int nranks) const;
  void validate(const CommonOptions& c) const;
};

struct KvOptions {
  std::uint64_t block_size = 1ull << 20;
  std::uint64_t blocks_per_file = 16;
  std::uint64_t blocks_per_rank = 64;
  int rounds = 4;
  std::uint64_t ops = 64;  // per rank and round
  double write_frac = 0.2;
  double zipf = 0.99;
  double rate = 0.0;  // operations/s per rank, Poisson arrivals; 0 = closed loop
  void validate(const CommonOptions& c) const;
};

struct MetaOptions {
  std::uint64_t files = 1000;  // per rank
  std::uint64_t file_size = 3901;
  bool unique_dir = false;
  std::string phases = "create,stat,read,delete";  // --phases as given
  bool do_create = true, do_stat = true, do_read = true, do_delete = true;
  void validate(const CommonOptions& c);  // derives do_*
};

struct Options {
  Workload workload = Workload::seq;
  CommonOptions common;
  SeqOptions seq;
  LoaderOptions loader;
  CheckpointOptions ckpt;
  KvOptions kv;
  MetaOptions meta;
  std::vector<std::string> argv;   // the command line as given (plus config-file arguments)
  nlohmann::json to_json() const;  // every option after defaults, for the results file
  // What CLI11 cannot check: one line naming the flag, the value and the fix (ffb::UsageError).
  void validate();
};

// Parses argv (and --config FILE). Throws ffb::UsageError with one line naming the flag, the value
// and the fix. After --help or --help-all: no options, and the help text to print.
struct ParsedCommandLine {
  std::optional<Options> options;
  std::string help;
};
ParsedCommandLine parse_command_line(int argc, char** argv);

// The same, printing the help itself (to stdout, when print_help) and returning nullopt then.
std::optional<Options> parse_options(int argc, char** argv, bool print_help);

// Applies a config file's keys (YAML mapping of long option names to values) as command-line
// tokens placed before the user's own, so the command line wins. Exposed for tests.
std::vector<std::string> config_tokens(const std::string& path, std::string* workload);

}  // namespace sb
