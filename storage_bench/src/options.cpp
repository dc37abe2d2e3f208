#include "options.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <limits>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "build_features.h"
#if FFB_HAVE_YAML_CPP
#include <yaml-cpp/yaml.h>
#endif

#include "ffb/error.h"
#include "ffb/sizes.h"
#include "ffb/strings.h"
#include "fsutil.h"

namespace sb {

std::string_view name_of(Workload w) {
  switch (w) {
    case Workload::seq:
      return "seq";
    case Workload::loader:
      return "loader";
    case Workload::checkpoint:
      return "checkpoint";
    case Workload::kvcache:
      return "kvcache";
    case Workload::meta:
      return "meta";
  }
  return "?";
}

std::uint64_t CheckpointOptions::shard_bytes(int nranks) const {
  if (ckpt_size) return ckpt_size;
  if (model_params > 0) {
    const double total = model_params * bytes_per_param * optimizer_factor;
    return static_cast<std::uint64_t>(std::ceil(total / nranks));
  }
  return 64ull << 20;
}

namespace {

constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
constexpr std::uint64_t kPiB = std::uint64_t{1} << 50;

// CLI11's own range checks print a double's range as a 300-digit number and let NaN through.
// These name the value and the range in words and refuse NaN, infinities, signs where none is
// allowed and trailing junk; CLI11 prefixes the flag ("--qd: 0 is not an integer from 1 to 4096").
CLI::Validator int_in(std::int64_t lo, std::uint64_t hi) {
  return {[lo, hi](std::string& s) -> std::string {
            const char* b = s.data();
            const char* e = b + s.size();
            bool ok = false;
            if (!s.empty() && s[0] == '-') {
              std::int64_t v = 0;
              const auto [p, ec] = std::from_chars(b, e, v);
              ok = ec == std::errc() && p == e && v >= lo;
            } else {
              std::uint64_t v = 0;
              const auto [p, ec] = std::from_chars(b, e, v);
              ok = ec == std::errc() && p == e && v <= hi &&
                   (lo <= 0 || v >= static_cast<std::uint64_t>(lo));
            }
            return ok ? std::string()
                      : fmt::format("{} is not an integer from {} to {}", s, lo, hi);
          },
          fmt::format("{} to {}", lo, hi)};
}

// A finite number in [lo, hi] (or (lo, hi] with above_lo).
CLI::Validator real_in(double lo, double hi, bool above_lo = false) {
  const std::string range = above_lo ? fmt::format("above {:g} up to {:g}", lo, hi)
                                     : fmt::format("from {:g} to {:g}", lo, hi);
  return {[lo, hi, above_lo, range](std::string& s) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(s.c_str(), &end);
            const bool ok = !s.empty() && end == s.c_str() + s.size() && std::isfinite(v) &&
                            (above_lo ? v > lo : v >= lo) && v <= hi;
            return ok ? std::string() : fmt::format("{} is not a number {}", s, range);
          },
          range};
}

// Size options are read as text and parsed after CLI11 so errors name the flag (ffb::parse_size)
// and the valid range.
struct SizeOpt {
  CLI::Option* opt;
  std::string flag;
  std::string* text;
  std::uint64_t* target;
  std::uint64_t lo, hi;
};

class Registry {
 public:
  void size(CLI::App& app, const std::string& names, std::uint64_t& target, const std::string& help,
            const std::string& flag, std::uint64_t lo, std::uint64_t hi) {
    texts_.emplace_back(ffb::format_size(target));
    auto* o = app.add_option(names, texts_.back(), help)
                  ->default_str(target ? ffb::format_size(target) : "")
                  ->type_name("SIZE");
    sizes_.push_back({o, flag, &texts_.back(), &target, lo, hi});
  }
  void convert() {
    for (auto& s : sizes_) {
      if (s.opt->count() == 0) continue;
      const std::uint64_t v = ffb::parse_size(*s.text, s.flag);
      if (v < s.lo || v > s.hi)
        throw ffb::UsageError(
            fmt::format("{} {}: give {} to {} (a byte count with an optional K, "
                        "M, G or T suffix)",
                        s.flag, *s.text, ffb::format_size(s.lo), ffb::format_size(s.hi)));
      *s.target = v;
    }
  }

 private:
  std::deque<std::string> texts_;
  std::vector<SizeOpt> sizes_;
};

void add_io_options(CLI::App& app, CommonOptions& c) {
  app.add_option_function<std::string>(
         "--engine",
         [&c](const std::string& v) {
           c.engine = v == "io_uring" ? EngineKind::io_uring : EngineKind::posix;
         },
         "I/O engine: posix (pread/pwrite) or io_uring (liburing)")
      ->check(CLI::IsMember({"posix", "io_uring"}))
      ->type_name("ENGINE")
      ->default_str("posix")
      ->group("I/O");
  app.add_option(
         "--qd", c.qd,
         "queue depth: operations in flight per rank (io_uring: ring slots; posix: threads)")
      ->check(int_in(1, 4096))
      ->default_val(c.qd)
      ->group("I/O");
  app.add_option("--submit-batch", c.submit_batch,
                 "io_uring: submit once this many operations are queued (fio iodepth_batch_submit; "
                 "1 = each at once)")
      ->check(int_in(1, 4096))
      ->default_val(c.submit_batch)
      ->group("I/O");
  app.add_flag("--odirect", c.odirect,
               "O_DIRECT: buffers, offsets and sizes aligned to what statx reports for the file "
               "system")
      ->group("I/O");
  app.add_flag("--fsync", c.fsync,
               "fsync each written file inside the timed region (IOR -e); checkpoint always does")
      ->group("I/O");
  app.add_flag("--verify", c.verify,
               "stamp every block with a header (rank, file, offset, sequence) and checksum; reads "
               "check them; mismatches fail the run")
      ->group("I/O");
  app.add_flag("--drop-cache", c.drop_cache,
               "before every read phase, sync and evict our files from the page cache "
               "(posix_fadvise DONTNEED; never timed)")
      ->group("I/O");
}

void add_timing_options(CLI::App& app, CommonOptions& c) {
  app.add_option("-D,--stonewall", c.stonewall_s,
                 "time limit per phase in seconds (IOR -D); 0 = none")
      ->check(real_in(0, 1e6))
      ->default_val(c.stonewall_s)
      ->group("Timing");
  app.add_option("-d,--delay", c.delay_s,
                 "untimed pause in seconds before each timed phase, after cache preparation, so "
                 "write-back settles (IOR -d)")
      ->check(real_in(0, 86400))
      ->default_val(c.delay_s)
      ->group("Timing");
  app.add_flag("!--no-wearout", c.wearout,
               "after a stonewall, do not let every rank catch up to the most work any rank did")
      ->group("Timing");
  app.add_option("-i,--repetitions", c.repetitions, "repetitions of the timed phases")
      ->check(int_in(1, 100000))
      ->default_val(c.repetitions)
      ->group("Timing");
  app.add_option("--seed", c.seed, "seed for every random choice (shuffles, sizes, Zipf, arrivals)")
      ->check(int_in(0, std::numeric_limits<std::uint64_t>::max()))
      ->default_val(c.seed)
      ->group("Timing");
  app.add_option("--shift", c.shift,
                 "read-back rank shift (IOR -C/-Q): rank r reads what rank r+shift wrote; -1 = one "
                 "node's worth of ranks, 0 = off")
      ->check(int_in(-1, 1u << 30))
      ->default_val(c.shift)
      ->group("Timing");
  app.add_option(
         "--mem-bw", c.mem_bw_gbps,
         "memory bandwidth per node in GB/s for the suspect-read check; 0 = measure at start")
      ->check(real_in(0, 1e6))
      ->default_val(c.mem_bw_gbps)
      ->group("Timing");
  app.add_option("--residency-pages", c.residency_pages,
                 "pages per rank sampled with mincore before each read phase")
      ->check(int_in(1, 1u << 30))
      ->default_val(c.residency_pages)
      ->group("Timing");
}

void add_common(CLI::App& app, CommonOptions& c, std::string& positional_dir) {
  app.add_option("DIR", positional_dir,
                 "directory to work in; storage_bench makes (and removes) its own fresh "
                 "subdirectory there");
  app.add_option("--dir", c.dir, "DIR as an option (for config files); the positional DIR wins");
  app.add_option("--config", c.config,
                 "YAML file of options (long names as keys); the command line wins");
  add_io_options(app, c);
  add_timing_options(app, c);
  app.add_flag("--keep", c.keep, "keep the job directory and its files at the end")
      ->group("Safety");
  app.add_option("--space-margin", c.space_margin,
                 "refuse a planned write volume above free space minus this fraction of the file "
                 "system size")
      ->check(real_in(0, 0.9))
      ->default_val(c.space_margin)
      ->group("Safety");
  app.add_flag("--ignore-free-space", c.ignore_free_space,
               "skip the free-space check (file systems that misreport free space; ENOSPC tests)")
      ->group("Safety");
  app.add_option_function<std::string>(
         "--job-name",
         [&c](const std::string& v) {
           c.job_name = v;
           c.job_name_given = true;
         },
         "name of the job subdirectory made inside DIR: a bare name (no '/'), which must not "
         "exist; "
         "default storage_bench.<job id>.<pid>.<random>")
      ->type_name("NAME")
      ->group("Safety");
  app.add_option("-o,--output", c.output,
                 "append the results to this HDF5 file (results/SCHEMA.md)")
      ->group("Output");
  app.add_option("--label", c.label, "free text stored with the run")->group("Output");
  app.add_option("--json", c.json,
                 "write the JSON summary (IOR's layout plus every phase, percentile and provenance "
                 "field) to this file, atomically")
      ->type_name("FILE")
      ->group("Output");
  app.add_option("-O", c.ior_directives,
                 "IOR directive: summaryFormat=JSON (the JSON summary on stdout, the text on "
                 "stderr) and summaryFile=FILE (the JSON summary to FILE)")
      ->allow_extra_args(false)  // one value per -O, as IOR; DIR may follow
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->type_name("KEY=VALUE")
      ->group("Output");
  app.add_flag("--per-rank", c.per_rank, "print one row per rank and phase too")->group("Output");
  app.add_flag("--self-test-corrupt", c.self_test_corrupt,
               "with --verify: after writing, flip one byte of one block we wrote, so the run "
               "shows --verify catching it (and fails)")
      ->group("Testing");
  app.add_flag("--check-args", c.check_args,
               "only check the options: exit 0 if valid, else 2 with the error (touches no file)")
      ->group("Testing");
}

}  // namespace

#if FFB_HAVE_YAML_CPP
namespace {

std::string yaml_scalar_token(const std::string& key, const YAML::Node& v,
                              const std::string& path) {
  if (v.IsScalar()) {
    const std::string s = v.Scalar();
    if (s == "true" || s == "True" || s == "yes") return "--" + key;
    if (s == "false" || s == "False" || s == "no") return "--" + key + "=false";
    return "--" + key + "=" + s;
  }
  if (v.IsSequence()) {
    std::string joined;
    for (const auto& item : v) {
      if (!item.IsScalar())
        throw ffb::UsageError(
            fmt::format("--config {}: key '{}' must be a scalar or a list of scalars", path, key));
      joined += (joined.empty() ? "" : ",") + item.Scalar();
    }
    return "--" + key + "=" + joined;
  }
  throw ffb::UsageError(fmt::format("--config {}: key '{}' must be a scalar or a list", path, key));
}

}  // namespace

std::vector<std::string> config_tokens(const std::string& path, std::string* workload) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ffb::UsageError(
        fmt::format("--config {}: cannot read the file; give an existing YAML file", path));
  } catch (const YAML::Exception& e) {
    throw ffb::UsageError(fmt::format("--config {}: not valid YAML ({})", path, e.what()));
  }
  if (!root.IsMap())
    throw ffb::UsageError(fmt::format(
        "--config {}: expected a mapping of option names to values, e.g. 'block: 64M'", path));
  std::vector<std::string> tokens;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (key == "workload") {
      if (workload) *workload = kv.second.as<std::string>();
      continue;
    }
    if (key == "config")
      throw ffb::UsageError(fmt::format("--config {}: a config file cannot name another", path));
    tokens.push_back(yaml_scalar_token(key, kv.second, path));
  }
  return tokens;
}

#else

std::vector<std::string> config_tokens(const std::string& path, std::string* /*workload*/) {
  throw ffb::UsageError(fmt::format(
      "--config {}: this build of storage_bench has no yaml-cpp, so it reads no config files; "
      "give the options on the command line (or rebuild with yaml-cpp)",
      path));
}

#endif  // FFB_HAVE_YAML_CPP

nlohmann::json Options::to_json() const {
  nlohmann::json j;
  const auto& c = common;
  j["workload"] = name_of(workload);
  j["dir"] = c.dir;
  j["engine"] = name_of(c.engine);
  j["qd"] = c.qd;
  j["submit_batch"] = c.submit_batch;
  j["odirect"] = c.odirect;
  j["fsync"] = c.fsync;
  j["verify"] = c.verify;
  j["drop_cache"] = c.drop_cache;
  j["stonewall_s"] = c.stonewall_s;
  j["delay_s"] = c.delay_s;
  j["wearout"] = c.wearout;
  j["repetitions"] = c.repetitions;
  j["seed"] = c.seed;
  j["shift"] = c.shift;
  j["keep"] = c.keep;
  j["output"] = c.output;
  j["json"] = c.json;
  j["label"] = c.label;
  j["mem_bw_gbps"] = c.mem_bw_gbps;
  j["space_margin"] = c.space_margin;
  j["ignore_free_space"] = c.ignore_free_space;
  j["job_name"] = c.job_name;
  j["residency_pages"] = c.residency_pages;
  j["config"] = c.config;
  switch (workload) {
    case Workload::seq:
      j["block"] = seq.block;
      j["transfer"] = seq.transfer;
      j["segments"] = seq.segments;
      j["file_per_proc"] = seq.file_per_proc;
      j["pattern"] = seq.random ? "random" : "seq";
      j["phases"] = std::string(seq.do_write ? "write" : "") +
                    (seq.do_write && seq.do_read ? "," : "") + (seq.do_read ? "read" : "");
      break;
    case Workload::loader:
      j["samples"] = loader.samples;
      j["sample_size"] = loader.sample_size;
      j["shard_size"] = loader.shard_size;
      j["epochs"] = loader.epochs;
      j["batch"] = loader.batch;
      j["compute_ms"] = loader.compute_ms;
      j["prefetch"] = loader.prefetch;
      break;
    case Workload::checkpoint:
      j["ckpt_size"] = ckpt.ckpt_size;
      j["model_params"] = ckpt.model_params;
      j["bytes_per_param"] = ckpt.bytes_per_param;
      j["optimizer_factor"] = ckpt.optimizer_factor;
      j["chunk"] = ckpt.chunk;
      j["steps"] = ckpt.steps;
      j["interval_s"] = ckpt.interval_s;
      j["restore"] = ckpt.restore;
      j["restore_ranks"] = ckpt.restore_ranks;
      break;
    case Workload::kvcache:
      j["block_size"] = kv.block_size;
      j["blocks_per_file"] = kv.blocks_per_file;
      j["blocks_per_rank"] = kv.blocks_per_rank;
      j["rounds"] = kv.rounds;
      j["ops"] = kv.ops;
      j["write_frac"] = kv.write_frac;
      j["zipf"] = kv.zipf;
      j["rate"] = kv.rate;
      break;
    case Workload::meta:
      j["files"] = meta.files;
      j["file_size"] = meta.file_size;
      j["unique_dir"] = meta.unique_dir;
      j["phases"] = std::string(meta.do_create ? "create," : "") + (meta.do_stat ? "stat," : "") +
                    (meta.do_read ? "read," : "") + (meta.do_delete ? "delete" : "");
      break;
  }
  return j;
}

namespace {

// What the parser fills besides Options: the positional DIR (it wins over --dir).
struct Texts {
  std::string positional_dir;
};

void add_seq(CLI::App& app, Options& o, Registry& reg, Texts& t) {
  auto* seq =
      app.add_subcommand("seq", "IOR pattern: block/transfer/segments, write then read back");
  add_common(*seq, o.common, t.positional_dir);
  reg.size(*seq, "-b,--block", o.seq.block, "contiguous bytes per rank per segment (IOR -b)",
           "--block", 1, kPiB);
  reg.size(*seq, "-t,--transfer", o.seq.transfer, "bytes per I/O call (IOR -t)", "--transfer", 1,
           2 * kGiB);
  seq->add_option("-s,--segments", o.seq.segments, "segments (IOR -s)")
      ->check(int_in(1, std::uint64_t{1} << 40))
      ->default_val(o.seq.segments);
  seq->add_flag("-F,--file-per-proc", o.seq.file_per_proc,
                "one file per rank (IOR -F); default one shared file");
  seq->add_option("--pattern", o.seq.pattern,
                  "seq: ascending offsets; random: every transfer offset once in a seeded random "
                  "order (IOR -z, fio rw=randread/randwrite)")
      ->check(CLI::IsMember({"seq", "random"}))
      ->default_val(o.seq.pattern);
  seq->add_option("--phases", o.seq.phases,
                  "write,read | write | read (read alone lays the data out untimed first)")
      ->default_val(o.seq.phases);
}

void add_loader(CLI::App& app, Options& o, Registry& reg, Texts& t) {
  auto* loader = app.add_subcommand(
      "loader", "training-data reader over packed shards, seeded global shuffle");
  add_common(*loader, o.common, t.positional_dir);
  loader->add_option("--samples", o.loader.samples, "samples in the dataset (all ranks)")
      ->check(int_in(1, std::uint64_t{1} << 36))
      ->default_val(o.loader.samples);
  loader
      ->add_option("--sample-size", o.loader.sample_size,
                   "size distribution: fixed:S | uniform:min=S,max=S | loguniform:min=S,max=S | "
                   "lognormal:median=S,sigma=X[,min=S][,max=S]")
      ->default_val(o.loader.sample_size);
  reg.size(*loader, "--shard-size", o.loader.shard_size, "target bytes per shard file",
           "--shard-size", 1, kPiB);
  loader->add_option("--epochs", o.loader.epochs, "epochs")
      ->check(int_in(1, 1000000))
      ->default_val(o.loader.epochs);
  loader->add_option("--batch", o.loader.batch, "samples per batch per rank")
      ->check(int_in(1, std::uint64_t{1} << 24))
      ->default_val(o.loader.batch);
  loader->add_option("--compute-ms", o.loader.compute_ms, "emulated compute time per batch (ms)")
      ->check(real_in(0, 3.6e6))
      ->default_val(o.loader.compute_ms);
  loader->add_option("--prefetch", o.loader.prefetch, "batches the loader may run ahead of compute")
      ->check(int_in(1, 1024))
      ->default_val(o.loader.prefetch);
}

void add_checkpoint(CLI::App& app, Options& o, Registry& reg, Texts& t) {
  auto* ckpt = app.add_subcommand(
      "checkpoint", "file-per-rank checkpoint: temp dir, fsync, rename commit, restore");
  add_common(*ckpt, o.common, t.positional_dir);
  reg.size(*ckpt, "--ckpt-size", o.ckpt.ckpt_size,
           "bytes per rank (default 64 MiB unless --model-params)", "--ckpt-size", 1, kPiB);
  ckpt->add_option("--model-params", o.ckpt.model_params,
                   "model parameters (e.g. 13e9): shard = params x bytes x factor / ranks")
      ->check(real_in(0, 1e15, true));
  ckpt->add_option("--bytes-per-param", o.ckpt.bytes_per_param, "bytes per parameter (2 for bf16)")
      ->check(real_in(0, 64, true))
      ->default_val(o.ckpt.bytes_per_param);
  ckpt->add_option(
          "--optimizer-factor", o.ckpt.optimizer_factor,
          "multiplier for optimizer state (1 weights only; 7 for bf16 + fp32 master + Adam m, v)")
      ->check(real_in(0, 100, true))
      ->default_val(o.ckpt.optimizer_factor);
  reg.size(*ckpt, "--chunk", o.ckpt.chunk, "bytes per write/read call", "--chunk", 1, 2 * kGiB);
  ckpt->add_option("--steps", o.ckpt.steps, "checkpoints to save")
      ->check(int_in(1, 1000000))
      ->default_val(o.ckpt.steps);
  ckpt->add_option("--interval", o.ckpt.interval_s, "seconds between checkpoint starts")
      ->check(real_in(0, 86400))
      ->default_val(o.ckpt.interval_s);
  ckpt->add_flag("!--no-restore", o.ckpt.restore, "skip the restore (read-back) phase");
  ckpt->add_option("--restore-ranks", o.ckpt.restore_ranks,
                   "ranks that restore (each takes a byte range across shards); 0 = all")
      ->check(int_in(0, 1u << 30))
      ->default_val(o.ckpt.restore_ranks);
}

void add_kvcache(CLI::App& app, Options& o, Registry& reg, Texts& t) {
  auto* kv =
      app.add_subcommand("kvcache", "KV-cache block store: Zipf reads, new blocks, GC deletes");
  add_common(*kv, o.common, t.positional_dir);
  reg.size(*kv, "--block-size", o.kv.block_size,
           "bytes per block (KV blocks are usually 64 KiB to a few MiB)", "--block-size", 4096,
           kGiB);
  kv->add_option("--blocks-per-file", o.kv.blocks_per_file, "blocks per file")
      ->check(int_in(1, std::uint64_t{1} << 20))
      ->default_val(o.kv.blocks_per_file);
  kv->add_option("--blocks-per-rank", o.kv.blocks_per_rank, "live blocks per rank (store capacity)")
      ->check(int_in(1, std::uint64_t{1} << 32))
      ->default_val(o.kv.blocks_per_rank);
  kv->add_option("--rounds", o.kv.rounds, "rounds (the live set is fixed within a round)")
      ->check(int_in(1, 1000000))
      ->default_val(o.kv.rounds);
  kv->add_option("--ops", o.kv.ops, "block operations per rank per round")
      ->check(int_in(1, std::uint64_t{1} << 40))
      ->default_val(o.kv.ops);
  kv->add_option("--write-frac", o.kv.write_frac, "fraction of operations that write a new block")
      ->check(real_in(0, 1))
      ->default_val(o.kv.write_frac);
  kv->add_option("--zipf", o.kv.zipf, "Zipf exponent of read popularity (0 = uniform)")
      ->check(real_in(0, 10))
      ->default_val(o.kv.zipf);
  kv->add_option("--rate", o.kv.rate,
                 "target operations/s per rank with Poisson arrivals; 0 = as fast as possible")
      ->check(real_in(0, 1e7))
      ->default_val(o.kv.rate);
}

void add_meta(CLI::App& app, Options& o, Registry& reg, Texts& t) {
  auto* meta = app.add_subcommand("meta", "mdtest-like create/stat/read/delete of small files");
  add_common(*meta, o.common, t.positional_dir);
  meta->add_option("-n,--files", o.meta.files, "files per rank")
      ->check(int_in(1, std::uint64_t{1} << 32))
      ->default_val(o.meta.files);
  reg.size(*meta, "-w,--file-size", o.meta.file_size, "bytes written into each file (mdtest -w)",
           "--file-size", 0, kGiB);
  meta->add_flag("-u,--unique-dir", o.meta.unique_dir,
                 "one directory per rank (mdtest -u); default one shared directory");
  meta->add_option("--phases", o.meta.phases,
                   "any of create,stat,read,delete (create is always run)")
      ->default_val(o.meta.phases);
}

// --config: its keys become tokens right after the workload name, before the user's own.
std::vector<std::string> with_config(std::vector<std::string> args,
                                     std::vector<std::string>& argv) {
  std::string config_path;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) config_path = args[i + 1];
    if (args[i].rfind("--config=", 0) == 0) config_path = args[i].substr(9);
  }
  if (config_path.empty()) return args;
  std::string cfg_workload;
  auto tokens = config_tokens(config_path, &cfg_workload);
  const bool has_workload =
      !args.empty() && (args[0] == "seq" || args[0] == "loader" || args[0] == "checkpoint" ||
                        args[0] == "kvcache" || args[0] == "meta");
  if (!has_workload) {
    if (cfg_workload.empty())
      throw ffb::UsageError(fmt::format(
          "no workload: give one of seq, loader, checkpoint, kvcache, meta first, or 'workload:' "
          "in --config {}",
          config_path));
    args.insert(args.begin(), cfg_workload);
  }
  args.insert(args.begin() + 1, tokens.begin(), tokens.end());
  argv.resize(1);
  argv.insert(argv.end(), args.begin(), args.end());
  return args;
}

}  // namespace

// ---- validation that CLI11 cannot express: one line naming the flag, the value and the fix ----

void SeqOptions::validate(const CommonOptions& c) {
  random = pattern == "random";
  const auto ph = ffb::split_list(phases);
  do_write = do_read = false;
  for (const auto& p : ph) {
    if (p == "write")
      do_write = true;
    else if (p == "read")
      do_read = true;
    else
      throw ffb::UsageError(
          fmt::format("--phases {}: unknown phase '{}'; use write,read, write or read", phases, p));
  }
  if (ph.empty()) throw ffb::UsageError("--phases: empty; use write,read, write or read");
  if (block % transfer != 0)
    throw ffb::UsageError(
        fmt::format("--block {} is not a multiple of --transfer {}: make the block a whole "
                    "number of transfers (IOR's rule)",
                    ffb::format_size(block), ffb::format_size(transfer)));
  if (segments > kPiB / block)
    throw ffb::UsageError(
        fmt::format("--block {} x --segments {}: above 1 PiB per rank; lower --segments or --block",
                    ffb::format_size(block), segments));
  if (c.self_test_corrupt && !do_read)
    throw ffb::UsageError(fmt::format(
        "--self-test-corrupt with --phases {}: nothing is read back, so the corruption could not "
        "be caught; add the read phase or drop --self-test-corrupt",
        phases));
}

void LoaderOptions::validate() const {
  const auto d = SizeDistribution::parse(sample_size, "--sample-size");
  if (d.max_size() > kGiB)
    throw ffb::UsageError(fmt::format(
        "--sample-size {}: samples above 1 GiB are not supported; give a max= of at most 1G",
        sample_size));
  if (d.mean_estimate() * static_cast<double>(samples) > static_cast<double>(kPiB))
    throw ffb::UsageError(fmt::format(
        "--samples {} x --sample-size {}: a dataset above 1 PiB; give fewer or smaller samples",
        samples, sample_size));
}

void CheckpointOptions::validate(const CommonOptions& c) const {
  if (ckpt_size && model_params > 0)
    throw ffb::UsageError(
        "--ckpt-size and --model-params both given: give one (the shard size directly, or the "
        "model to derive it)");
  const double total = model_params * bytes_per_param * optimizer_factor;
  if (total > static_cast<double>(std::uint64_t{1} << 60))
    throw ffb::UsageError(fmt::format(
        "--model-params {:g} x --bytes-per-param {:g} x --optimizer-factor {:g} = {:.3g} bytes: "
        "above 1 EiB; give a smaller model or factor",
        model_params, bytes_per_param, optimizer_factor, total));
  if (c.self_test_corrupt && !restore)
    throw ffb::UsageError(
        "--self-test-corrupt with --no-restore: nothing is read back, so the corruption could not "
        "be caught; drop --no-restore or --self-test-corrupt");
}

void KvOptions::validate(const CommonOptions& c) const {
  const auto wblocks =
      static_cast<std::uint64_t>(std::llround(static_cast<double>(ops) * write_frac));
  if (wblocks >= blocks_per_rank)
    throw ffb::UsageError(
        fmt::format("--write-frac {} x --ops {} = {} new blocks per rank and round, not below "
                    "--blocks-per-rank {}: the store would turn over completely every round; raise "
                    "--blocks-per-rank or lower --write-frac",
                    write_frac, ops, wblocks, blocks_per_rank));
  if (blocks_per_rank > kPiB / block_size)
    throw ffb::UsageError(
        fmt::format("--blocks-per-rank {} x --block-size {}: above 1 PiB per rank; lower either",
                    blocks_per_rank, ffb::format_size(block_size)));
  if (c.self_test_corrupt && wblocks >= ops)
    throw ffb::UsageError(fmt::format(
        "--self-test-corrupt with --write-frac {}: no operation reads a block, so the corruption "
        "could not be caught; lower --write-frac or drop --self-test-corrupt",
        write_frac));
}

void MetaOptions::validate(const CommonOptions& c) {
  do_create = true;
  do_stat = do_read = do_delete = false;
  for (const auto& p : ffb::split_list(phases)) {
    if (p == "create") continue;
    if (p == "stat")
      do_stat = true;
    else if (p == "read")
      do_read = true;
    else if (p == "delete")
      do_delete = true;
    else
      throw ffb::UsageError(fmt::format(
          "--phases {}: unknown phase '{}'; use any of create,stat,read,delete", phases, p));
  }
  if (c.self_test_corrupt && (!do_read || file_size == 0))
    throw ffb::UsageError(fmt::format(
        "--self-test-corrupt with {}: no file content is read back, so the corruption could not "
        "be caught; {} or drop --self-test-corrupt",
        file_size == 0 ? "--file-size 0" : "--phases " + phases,
        file_size == 0 ? "give a --file-size" : "add the read phase"));
}

namespace {

// IOR's -O KEY=VALUE directives that storage_bench takes: summaryFormat=JSON, summaryFile=FILE.
void apply_ior_directives(CommonOptions& c) {
  std::string summary_file;
  bool json_format = false;
  for (const auto& d : c.ior_directives) {
    const auto eq = d.find('=');
    const std::string key = d.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : d.substr(eq + 1);
    if (key == "summaryFormat" && (value == "JSON" || value == "json"))
      json_format = true;
    else if (key == "summaryFormat")
      throw ffb::UsageError(fmt::format(
          "-O {}: storage_bench writes only a JSON summary; use -O summaryFormat=JSON", d));
    else if (key == "summaryFile" && !value.empty())
      summary_file = value;
    else
      throw ffb::UsageError(
          fmt::format("-O {}: unknown directive; storage_bench takes -O summaryFormat=JSON and -O "
                      "summaryFile=FILE",
                      d));
  }
  if (!summary_file.empty() && !json_format)
    throw ffb::UsageError(fmt::format(
        "-O summaryFile={}: without -O summaryFormat=JSON there is no summary to write; add "
        "-O summaryFormat=JSON or use --json {}",
        summary_file, summary_file));
  if (!summary_file.empty() && !c.json.empty() && summary_file != c.json)
    throw ffb::UsageError(fmt::format(
        "-O summaryFile={} and --json {}: two JSON files; give one of them", summary_file, c.json));
  if (!summary_file.empty() && c.json.empty()) c.json_flag = "-O summaryFile";
  if (!summary_file.empty()) c.json = summary_file;
  c.json_stdout = json_format && c.json.empty();
}

}  // namespace

void CommonOptions::validate() {
  check_engine_available(engine);
  if (job_name_given) check_job_name(job_name);
  if (self_test_corrupt && !verify)
    throw ffb::UsageError(
        "--self-test-corrupt without --verify: it flips a byte to show that --verify catches it, "
        "and nothing would check it; add --verify");
  if (self_test_corrupt && stonewall_s > 0)
    throw ffb::UsageError(fmt::format(
        "--self-test-corrupt with --stonewall {:g}: the corrupted block might never be read "
        "back; drop --stonewall or --self-test-corrupt",
        stonewall_s));
  apply_ior_directives(*this);
  if (!json.empty() && json == output)
    throw ffb::UsageError(fmt::format(
        "{} {}: the same file as --output; give the JSON summary its own file", json_flag, json));
}

void Options::validate() {
  common.validate();
  switch (workload) {
    case Workload::seq:
      seq.validate(common);
      break;
    case Workload::loader:
      loader.validate();
      break;
    case Workload::checkpoint:
      ckpt.validate(common);
      break;
    case Workload::kvcache:
      kv.validate(common);
      break;
    case Workload::meta:
      meta.validate(common);
      break;
  }
}

ParsedCommandLine parse_command_line(int argc, char** argv) {
  Options o;
  o.argv.assign(argv, argv + argc);

  CLI::App app{
      "storage_bench: MPI-parallel storage loads shaped like AI training (Fire-Flyer / 3FS):\n"
      "IOR-style bandwidth, a sample-level data loader, checkpoint commit and restore, a KV-cache\n"
      "block store and mdtest-style metadata, with exact cluster-wide latency percentiles.\n"
      "Run: storage_bench WORKLOAD [options] DIR; storage_bench WORKLOAD --help lists its options.",
      "storage_bench"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.require_subcommand(1, 1);
  app.set_help_all_flag("--help-all", "options of every workload");

  Registry reg;
  Texts t;
  add_seq(app, o, reg, t);
  add_loader(app, o, reg, t);
  add_checkpoint(app, o, reg, t);
  add_kvcache(app, o, reg, t);
  add_meta(app, o, reg, t);

  const auto args = with_config({argv + 1, argv + argc}, o.argv);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    return {std::nullopt,
            app.get_subcommands().empty() ? app.help() : app.get_subcommands().front()->help()};
  } catch (const CLI::CallForAllHelp&) {
    return {std::nullopt, app.help("", CLI::AppFormatMode::All)};
  } catch (const CLI::ParseError& e) {
    std::string sub =
        app.get_subcommands().empty() ? "" : " " + app.get_subcommands().front()->get_name();
    std::string what = e.what();
    if (what.find("subcommand") != std::string::npos && sub.empty())
      what = "give a workload: seq, loader, checkpoint, kvcache or meta";
    throw ffb::UsageError(fmt::format("{}; see storage_bench{} --help", what, sub));
  }
  reg.convert();
  if (!t.positional_dir.empty()) o.common.dir = t.positional_dir;
  if (o.common.dir.empty())
    throw ffb::UsageError(fmt::format(
        "DIR is required: give the directory to work in, e.g. storage_bench {} /mnt/fs/bench",
        app.get_subcommands().front()->get_name()));

  const std::string w = app.get_subcommands().front()->get_name();
  if (w == "seq") o.workload = Workload::seq;
  if (w == "loader") o.workload = Workload::loader;
  if (w == "checkpoint") o.workload = Workload::checkpoint;
  if (w == "kvcache") o.workload = Workload::kvcache;
  if (w == "meta") o.workload = Workload::meta;
  o.validate();
  return {std::move(o), ""};
}

std::optional<Options> parse_options(int argc, char** argv, bool print_help) {
  auto parsed = parse_command_line(argc, argv);
  if (print_help && !parsed.options) std::cout << parsed.help;
  return std::move(parsed.options);
}

}  // namespace sb
