#include "options.h"

#include <cmath>
#include <deque>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "ffb/error.h"
#include "ffb/sizes.h"

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

// Size options are read as text and parsed after CLI11 so errors name the flag (ffb::parse_size).
struct SizeOpt {
  CLI::Option* opt;
  std::string flag;
  std::string* text;
  std::uint64_t* target;
};

class Registry {
 public:
  void size(CLI::App& app, const std::string& names, std::uint64_t& target, const std::string& help,
            const std::string& flag) {
    texts_.emplace_back(ffb::format_size(target));
    auto* o = app.add_option(names, texts_.back(), help)
                  ->default_str(target ? ffb::format_size(target) : "")
                  ->type_name("SIZE");
    sizes_.push_back({o, flag, &texts_.back(), &target});
  }
  void convert() {
    for (auto& s : sizes_)
      if (s.opt->count() > 0) *s.target = ffb::parse_size(*s.text, s.flag);
  }

 private:
  std::deque<std::string> texts_;
  std::vector<SizeOpt> sizes_;
};

void add_common(CLI::App& app, CommonOptions& c, Registry& reg, std::string& positional_dir) {
  (void)reg;
  app.add_option("DIR", positional_dir,
                 "directory to work in; storage_bench makes (and removes) its own fresh "
                 "subdirectory there");
  app.add_option("--dir", c.dir, "DIR as an option (for config files); the positional DIR wins");
  app.add_option("--config", c.config,
                 "YAML file of options (long names as keys); the command line wins");
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
      ->check(CLI::Range(1u, 4096u))
      ->default_val(c.qd)
      ->group("I/O");
  app.add_option("--submit-batch", c.submit_batch,
                 "io_uring: submit once this many operations are queued (fio iodepth_batch_submit; "
                 "1 = each at once)")
      ->check(CLI::Range(1u, 4096u))
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
  app.add_option("-D,--stonewall", c.stonewall_s,
                 "time limit per phase in seconds (IOR -D); 0 = none")
      ->check(CLI::NonNegativeNumber)
      ->default_val(c.stonewall_s)
      ->group("Timing");
  app.add_option("-d,--delay", c.delay_s,
                 "untimed pause in seconds before each timed phase, after cache preparation, so "
                 "write-back settles (IOR -d)")
      ->check(CLI::NonNegativeNumber)
      ->default_val(c.delay_s)
      ->group("Timing");
  app.add_flag("!--no-wearout", c.wearout,
               "after a stonewall, do not let every rank catch up to the most work any rank did")
      ->group("Timing");
  app.add_option("-i,--repetitions", c.repetitions, "repetitions of the timed phases")
      ->check(CLI::Range(1, 100000))
      ->default_val(c.repetitions)
      ->group("Timing");
  app.add_option("--seed", c.seed, "seed for every random choice (shuffles, sizes, Zipf, arrivals)")
      ->default_val(c.seed)
      ->group("Timing");
  app.add_option("--shift", c.shift,
                 "read-back rank shift (IOR -C/-Q): rank r reads what rank r+shift wrote; -1 = one "
                 "node's worth of ranks, 0 = off")
      ->check(CLI::Range(-1, 1 << 30))
      ->default_val(c.shift)
      ->group("Timing");
  app.add_option(
         "--mem-bw", c.mem_bw_gbps,
         "memory bandwidth per node in GB/s for the suspect-read check; 0 = measure at start")
      ->check(CLI::NonNegativeNumber)
      ->default_val(c.mem_bw_gbps)
      ->group("Timing");
  app.add_option("--residency-pages", c.residency_pages,
                 "pages per rank sampled with mincore before each read phase")
      ->default_val(c.residency_pages)
      ->group("Timing");
  app.add_flag("--keep", c.keep, "keep the job directory and its files at the end")
      ->group("Safety");
  app.add_option("--space-margin", c.space_margin,
                 "refuse a planned write volume above free space minus this fraction of the file "
                 "system size")
      ->check(CLI::Range(0.0, 0.9))
      ->default_val(c.space_margin)
      ->group("Safety");
  app.add_flag("--ignore-free-space", c.ignore_free_space,
               "skip the free-space check (file systems that misreport free space; ENOSPC tests)")
      ->group("Safety");
  app.add_option("--job-name", c.job_name,
                 "name of the job subdirectory (must not exist); default "
                 "storage_bench.<job id>.<pid>.<random>")
      ->group("Safety");
  app.add_option("-o,--output", c.output,
                 "append the results to this HDF5 file (results/SCHEMA.md)")
      ->group("Output");
  app.add_option("--label", c.label, "free text stored with the run")->group("Output");
  app.add_flag("--per-rank", c.per_rank, "print one row per rank and phase too")->group("Output");
  app.add_flag(
         "--self-test-corrupt", c.self_test_corrupt,
         "after writing, flip one byte of one block we wrote, to prove --verify catches it (seq, "
         "loader, checkpoint, meta)")
      ->group("Testing");
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

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

std::optional<Options> parse_options(int argc, char** argv, bool print_help) {
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
  std::string positional_dir;
  std::string seq_phases = "write,read", seq_pattern = "seq";
  std::string meta_phases = "create,stat,read,delete";

  auto* seq =
      app.add_subcommand("seq", "IOR pattern: block/transfer/segments, write then read back");
  add_common(*seq, o.common, reg, positional_dir);
  reg.size(*seq, "-b,--block", o.seq.block, "contiguous bytes per rank per segment (IOR -b)",
           "--block");
  reg.size(*seq, "-t,--transfer", o.seq.transfer, "bytes per I/O call (IOR -t)", "--transfer");
  seq->add_option("-s,--segments", o.seq.segments, "segments (IOR -s)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40))
      ->default_val(o.seq.segments);
  seq->add_flag("-F,--file-per-proc", o.seq.file_per_proc,
                "one file per rank (IOR -F); default one shared file");
  seq->add_option("--pattern", seq_pattern,
                  "seq: ascending offsets; random: every transfer offset once in a seeded random "
                  "order (IOR -z, fio rw=randread/randwrite)")
      ->check(CLI::IsMember({"seq", "random"}))
      ->default_val(seq_pattern);
  seq->add_option("--phases", seq_phases,
                  "write,read | write | read (read alone lays the data out untimed first)")
      ->default_val(seq_phases);

  auto* loader = app.add_subcommand(
      "loader", "training-data reader over packed shards, seeded global shuffle");
  add_common(*loader, o.common, reg, positional_dir);
  loader->add_option("--samples", o.loader.samples, "samples in the dataset (all ranks)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 36))
      ->default_val(o.loader.samples);
  loader
      ->add_option("--sample-size", o.loader.sample_size,
                   "size distribution: fixed:S | uniform:min=S,max=S | loguniform:min=S,max=S | "
                   "lognormal:median=S,sigma=X[,min=S][,max=S]")
      ->default_val(o.loader.sample_size);
  reg.size(*loader, "--shard-size", o.loader.shard_size, "target bytes per shard file",
           "--shard-size");
  loader->add_option("--epochs", o.loader.epochs, "epochs")
      ->check(CLI::Range(1, 1000000))
      ->default_val(o.loader.epochs);
  loader->add_option("--batch", o.loader.batch, "samples per batch per rank")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 24))
      ->default_val(o.loader.batch);
  loader->add_option("--compute-ms", o.loader.compute_ms, "emulated compute time per batch (ms)")
      ->check(CLI::NonNegativeNumber)
      ->default_val(o.loader.compute_ms);
  loader->add_option("--prefetch", o.loader.prefetch, "batches the loader may run ahead of compute")
      ->check(CLI::Range(1, 1024))
      ->default_val(o.loader.prefetch);

  auto* ckpt = app.add_subcommand(
      "checkpoint", "file-per-rank checkpoint: temp dir, fsync, rename commit, restore");
  add_common(*ckpt, o.common, reg, positional_dir);
  reg.size(*ckpt, "--ckpt-size", o.ckpt.ckpt_size,
           "bytes per rank (default 64 MiB unless --model-params)", "--ckpt-size");
  ckpt->add_option("--model-params", o.ckpt.model_params,
                   "model parameters (e.g. 13e9): shard = params x bytes x factor / ranks")
      ->check(CLI::NonNegativeNumber);
  ckpt->add_option("--bytes-per-param", o.ckpt.bytes_per_param, "bytes per parameter (2 for bf16)")
      ->check(CLI::PositiveNumber)
      ->default_val(o.ckpt.bytes_per_param);
  ckpt->add_option(
          "--optimizer-factor", o.ckpt.optimizer_factor,
          "multiplier for optimizer state (1 weights only; 7 for bf16 + fp32 master + Adam m, v)")
      ->check(CLI::PositiveNumber)
      ->default_val(o.ckpt.optimizer_factor);
  reg.size(*ckpt, "--chunk", o.ckpt.chunk, "bytes per write/read call", "--chunk");
  ckpt->add_option("--steps", o.ckpt.steps, "checkpoints to save")
      ->check(CLI::Range(1, 1000000))
      ->default_val(o.ckpt.steps);
  ckpt->add_option("--interval", o.ckpt.interval_s, "seconds between checkpoint starts")
      ->check(CLI::NonNegativeNumber)
      ->default_val(o.ckpt.interval_s);
  ckpt->add_flag("!--no-restore", o.ckpt.restore, "skip the restore (read-back) phase");
  ckpt->add_option("--restore-ranks", o.ckpt.restore_ranks,
                   "ranks that restore (each takes a byte range across shards); 0 = all")
      ->check(CLI::Range(0, 1 << 30))
      ->default_val(o.ckpt.restore_ranks);

  auto* kv =
      app.add_subcommand("kvcache", "KV-cache block store: Zipf reads, new blocks, GC deletes");
  add_common(*kv, o.common, reg, positional_dir);
  reg.size(*kv, "--block-size", o.kv.block_size, "bytes per block", "--block-size");
  kv->add_option("--blocks-per-file", o.kv.blocks_per_file, "blocks per file")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 20))
      ->default_val(o.kv.blocks_per_file);
  kv->add_option("--blocks-per-rank", o.kv.blocks_per_rank, "live blocks per rank (store capacity)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32))
      ->default_val(o.kv.blocks_per_rank);
  kv->add_option("--rounds", o.kv.rounds, "rounds (the live set is fixed within a round)")
      ->check(CLI::Range(1, 1000000))
      ->default_val(o.kv.rounds);
  kv->add_option("--ops", o.kv.ops, "block operations per rank per round")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40))
      ->default_val(o.kv.ops);
  kv->add_option("--write-frac", o.kv.write_frac, "fraction of operations that write a new block")
      ->check(CLI::Range(0.0, 1.0))
      ->default_val(o.kv.write_frac);
  kv->add_option("--zipf", o.kv.zipf, "Zipf exponent of read popularity (0 = uniform)")
      ->check(CLI::Range(0.0, 10.0))
      ->default_val(o.kv.zipf);
  kv->add_option("--rate", o.kv.rate,
                 "target operations/s per rank with Poisson arrivals; 0 = as fast as possible")
      ->check(CLI::NonNegativeNumber)
      ->default_val(o.kv.rate);

  auto* meta = app.add_subcommand("meta", "mdtest-like create/stat/read/delete of small files");
  add_common(*meta, o.common, reg, positional_dir);
  meta->add_option("-n,--files", o.meta.files, "files per rank")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32))
      ->default_val(o.meta.files);
  reg.size(*meta, "-w,--file-size", o.meta.file_size, "bytes written into each file (mdtest -w)",
           "--file-size");
  meta->add_flag("-u,--unique-dir", o.meta.unique_dir,
                 "one directory per rank (mdtest -u); default one shared directory");
  meta->add_option("--phases", meta_phases, "any of create,stat,read,delete (create is always run)")
      ->default_val(meta_phases);

  // --config: its keys become tokens right after the workload name, before the user's own.
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string config_path;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) config_path = args[i + 1];
    if (args[i].rfind("--config=", 0) == 0) config_path = args[i].substr(9);
  }
  if (!config_path.empty()) {
    std::string cfg_workload;
    auto tokens = config_tokens(config_path, &cfg_workload);
    const bool has_workload =
        !args.empty() && (args[0] == "seq" || args[0] == "loader" || args[0] == "checkpoint" ||
                          args[0] == "kvcache" || args[0] == "meta");
    std::size_t insert_at = 1;
    if (!has_workload) {
      if (cfg_workload.empty())
        throw ffb::UsageError(fmt::format(
            "no workload: give one of seq, loader, checkpoint, kvcache, meta first, or 'workload:' "
            "in --config {}",
            config_path));
      args.insert(args.begin(), cfg_workload);
    }
    args.insert(args.begin() + static_cast<std::ptrdiff_t>(insert_at), tokens.begin(),
                tokens.end());
    o.argv.resize(1);
    o.argv.insert(o.argv.end(), args.begin(), args.end());
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    if (print_help)
      std::cout << (app.get_subcommands().empty() ? app.help()
                                                  : app.get_subcommands().front()->help());
    return std::nullopt;
  } catch (const CLI::CallForAllHelp&) {
    if (print_help) std::cout << app.help("", CLI::AppFormatMode::All);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    std::string sub =
        app.get_subcommands().empty() ? "" : " " + app.get_subcommands().front()->get_name();
    std::string what = e.what();
    if (what.find("subcommand") != std::string::npos && sub.empty())
      what = "give a workload: seq, loader, checkpoint, kvcache or meta";
    throw ffb::UsageError(fmt::format("{}; see storage_bench{} --help", what, sub));
  }
  reg.convert();
  if (!positional_dir.empty()) o.common.dir = positional_dir;
  if (o.common.dir.empty())
    throw ffb::UsageError(fmt::format(
        "DIR is required: give the directory to work in, e.g. storage_bench {} /mnt/fs/bench",
        app.get_subcommands().front()->get_name()));

  const auto* chosen = app.get_subcommands().front();
  const std::string w = chosen->get_name();
  if (w == "seq") o.workload = Workload::seq;
  if (w == "loader") o.workload = Workload::loader;
  if (w == "checkpoint") o.workload = Workload::checkpoint;
  if (w == "kvcache") o.workload = Workload::kvcache;
  if (w == "meta") o.workload = Workload::meta;

  // ---- validation that CLI11 cannot express: one line naming the flag, the value and the fix ----
  if (o.workload == Workload::seq) {
    o.seq.random = seq_pattern == "random";
    const auto ph = split_list(seq_phases);
    o.seq.do_write = o.seq.do_read = false;
    for (const auto& p : ph) {
      if (p == "write")
        o.seq.do_write = true;
      else if (p == "read")
        o.seq.do_read = true;
      else
        throw ffb::UsageError(fmt::format(
            "--phases {}: unknown phase '{}'; use write,read, write or read", seq_phases, p));
    }
    if (ph.empty()) throw ffb::UsageError("--phases: empty; use write,read, write or read");
    if (o.seq.transfer == 0)
      throw ffb::UsageError("--transfer 0: give a transfer size of at least 1 byte, e.g. 1M");
    if (o.seq.block % o.seq.transfer != 0)
      throw ffb::UsageError(
          fmt::format("--block {} is not a multiple of --transfer {}: make the block a whole "
                      "number of transfers (IOR's rule)",
                      ffb::format_size(o.seq.block), ffb::format_size(o.seq.transfer)));
    if (o.seq.transfer > (1ull << 31))
      throw ffb::UsageError(
          fmt::format("--transfer {}: at most 2 GiB per call", ffb::format_size(o.seq.transfer)));
  }
  if (o.workload == Workload::loader) {
    const auto d = SizeDistribution::parse(o.loader.sample_size, "--sample-size");
    if (d.max_size() > (1ull << 30))
      throw ffb::UsageError(fmt::format("--sample-size {}: samples above 1 GiB are not supported",
                                        o.loader.sample_size));
    if (o.loader.shard_size == 0)
      throw ffb::UsageError("--shard-size 0: give a shard size, e.g. 256M");
  }
  if (o.workload == Workload::checkpoint) {
    if (o.ckpt.ckpt_size && o.ckpt.model_params > 0)
      throw ffb::UsageError(
          "--ckpt-size and --model-params both given: give one (the shard size directly, or the "
          "model to derive it)");
    if (o.ckpt.chunk == 0 || o.ckpt.chunk > (1ull << 31))
      throw ffb::UsageError(
          fmt::format("--chunk {}: give 1 byte to 2 GiB, e.g. 4M", ffb::format_size(o.ckpt.chunk)));
  }
  if (o.workload == Workload::kvcache) {
    if (o.kv.block_size < 4096 || o.kv.block_size > (1ull << 30))
      throw ffb::UsageError(fmt::format(
          "--block-size {}: give 4 KiB to 1 GiB (KV blocks are usually 64 KiB to a few MiB)",
          ffb::format_size(o.kv.block_size)));
  }
  if (o.workload == Workload::meta) {
    o.meta.do_create = true;
    o.meta.do_stat = o.meta.do_read = o.meta.do_delete = false;
    for (const auto& p : split_list(meta_phases)) {
      if (p == "create") continue;
      if (p == "stat")
        o.meta.do_stat = true;
      else if (p == "read")
        o.meta.do_read = true;
      else if (p == "delete")
        o.meta.do_delete = true;
      else
        throw ffb::UsageError(fmt::format(
            "--phases {}: unknown phase '{}'; use any of create,stat,read,delete", meta_phases, p));
    }
  }
  if (o.common.engine == EngineKind::io_uring && o.common.qd > 4096)
    throw ffb::UsageError("--qd: at most 4096 with io_uring");
  return o;
}

}  // namespace sb
