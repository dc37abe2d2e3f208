// Command-line options of the collective harness (nccl-tests compatible, plus long forms).
#include <cmath>

#include <fmt/format.h>

#include "collective_internal.h"
#include "ffb/error.h"
#include "ffb/sizes.h"
#include "ffb/strings.h"

namespace ffb {

nlohmann::json CollectiveOptions::to_json() const {
  nlohmann::json j;
  j["minbytes"] = min_bytes;
  j["maxbytes"] = max_bytes;
  j["stepfactor"] = step_factor;
  j["stepbytes"] = step_bytes;
  j["iters"] = iters;
  j["warmup_iters"] = warmup_iters;
  j["check"] = check;
  j["accuracy"] = accuracy;
  std::vector<std::string> tn, on;
  for (auto t : types) tn.emplace_back(name_of(t));
  for (auto o : ops) on.emplace_back(name_of(o));
  j["datatype"] = tn;
  j["op"] = on;
  j["average"] = static_cast<int>(average);
  j["blocking"] = blocking;
  j["timeout"] = timeout_s;
  j["output"] = output;
  j["label"] = label;
  return j;
}

namespace {

// Sane bounds of the numeric options (documented in --help): a value outside is a typo, and a
// huge one would only run out of memory (per-iteration times are kept) or overflow a timer.
constexpr int kMaxIters = 1000000;
constexpr double kMaxTimeoutS = 7 * 24 * 3600.0;
constexpr std::uint64_t kMaxSizes = 10000;  // message sizes of one sweep (-b .. -e)

bool may_support_type(const CollectiveBackend& backend, DataType t) {
  for (auto op : kAllReduceOps)
    if (backend.may_support(t, op)) return true;
  return false;
}

bool may_support_op(const CollectiveBackend& backend, ReduceOp op) {
  for (auto t : kAllDataTypes)
    if (backend.may_support(t, op)) return true;
  return false;
}

// "float, double, ..." or "float|double|..." (sep): the types the backend can reduce.
std::string type_names(const CollectiveBackend& backend, const char* sep) {
  std::string out;
  for (auto t : kAllDataTypes)
    if (may_support_type(backend, t))
      out += fmt::format("{}{}", out.empty() ? "" : sep, name_of(t));
  return out;
}

std::string op_names(const CollectiveBackend& backend, const char* sep) {
  std::string out;
  for (auto op : kAllReduceOps)
    if (may_support_op(backend, op))
      out += fmt::format("{}{}", out.empty() ? "" : sep, name_of(op));
  return out;
}

// How many sizes the sweep from min to max makes (as size_sweep steps), stopping past `limit`.
std::uint64_t count_sizes(const CollectiveOptions& o, std::uint64_t limit) {
  if (o.step_factor <= 1.0) {
    if (o.step_bytes == 0) return 1;
    return (o.max_bytes - o.min_bytes) / o.step_bytes + 1;
  }
  std::uint64_t n = 0;
  for (std::uint64_t s = o.min_bytes; s <= o.max_bytes && n <= limit; ++n) {
    const auto next =
        s == 0 ? 1 : static_cast<std::uint64_t>(std::ceil(static_cast<double>(s) * o.step_factor));
    if (next <= s) break;
    s = next;
  }
  return n;
}

// The values given as text or as ints that the struct keeps in another form.
struct RawOptions {
  std::string min_b = "32M", max_b = "32M", step_b = "1M", dtype = "float", op = "sum";
  int check = 1, average = 3, blocking = 0;
};

void add_harness_options(CLI::App& app, CollectiveOptions& o, RawOptions& r,
                         const CollectiveBackend& backend) {
  app.add_option("-b,--minbytes", r.min_b, "smallest message size (K/M/G binary suffixes)")
      ->capture_default_str();
  app.add_option("-e,--maxbytes", r.max_b, "largest message size (at least -b)")
      ->capture_default_str();
  app.add_option("-f,--stepfactor", o.step_factor,
                 "multiply the size by this (> 1), else (1) add -i; at most 10000 sizes")
      ->capture_default_str();
  app.add_option("-i,--stepbytes", r.step_b, "additive size step when -f is 1 (> 0 unless -b = -e)")
      ->capture_default_str();
  app.add_option("-n,--iters", o.iters, "timed iterations per size (1 to 1000000)")
      ->capture_default_str();
  app.add_option("-w,--warmup_iters", o.warmup_iters,
                 "warm-up iterations per size and placement (0 to 1000000)")
      ->capture_default_str();
  app.add_option("-c,--check", r.check, "validate results exactly (1) or not (0)")
      ->capture_default_str();
  app.add_flag("--accuracy", o.accuracy,
               "also run on random normal data and compare with a float64 reference");
  app.add_option("-d,--datatype", r.dtype,
                 fmt::format("{}|all (comma list; what the {} backend reduces)",
                             type_names(backend, "|"), backend.name()))
      ->capture_default_str();
  app.add_option("-o,--op", r.op, fmt::format("{}|all (comma list)", op_names(backend, "|")))
      ->capture_default_str();
  app.add_option("-a,--average", r.average,
                 "time column over ranks: 0 rank 0, 1 mean, 2 fastest, 3 slowest")
      ->capture_default_str();
  app.add_option("-z,--blocking", r.blocking,
                 "1: barrier before every iteration (synchronised start)")
      ->capture_default_str();
  app.add_option("-T,--timeout", o.timeout_s,
                 "seconds before a stuck collective aborts the job (up to 604800)")
      ->capture_default_str();
  app.add_option("--output", o.output, "append this run to an HDF5 results file");
  app.add_option("--label", o.label, "free text stored with the run (sweep point key)");
  app.add_flag("--check-args", o.check_args,
               "only check the options as a run would: exit 0 if valid, else 2 with the error");
  // Test-only options: hidden (empty group), documented in tests/mpi.
  app.add_option("--inject-corrupt-rank", o.inject_corrupt_rank)->group("");
  app.add_option("--inject-stall-rank", o.inject_stall_rank)->group("");
  app.add_option("--inject-stall-seconds", o.inject_stall_s)->group("");
}

void check_counts(const CollectiveOptions& o, const RawOptions& r) {
  if (o.iters < 1 || o.iters > kMaxIters)
    throw UsageError(fmt::format("-n/--iters {}: give 1 to {}", o.iters, kMaxIters));
  if (o.warmup_iters < 0 || o.warmup_iters > kMaxIters)
    throw UsageError(fmt::format("-w/--warmup_iters {}: give 0 to {}", o.warmup_iters, kMaxIters));
  if (r.check != 0 && r.check != 1)
    throw UsageError(fmt::format("-c/--check {}: give 0 or 1", r.check));
  if (r.average < 0 || r.average > 3)
    throw UsageError(
        fmt::format("-a/--average {}: give 0 (rank 0), 1 (mean), 2 (min) or 3 (max)", r.average));
  if (r.blocking != 0 && r.blocking != 1)
    throw UsageError(fmt::format("-z/--blocking {}: give 0 or 1", r.blocking));
  if (!(o.timeout_s > 0 && o.timeout_s <= kMaxTimeoutS))
    throw UsageError(fmt::format("-T/--timeout {}: give seconds > 0 and at most {:g}", o.timeout_s,
                                 kMaxTimeoutS));
  if (o.inject_corrupt_rank < -1 || o.inject_stall_rank < -1)
    throw UsageError("--inject-*-rank: give a rank (0 or more), or -1 for none");
  if (!(o.inject_stall_s >= 0 && o.inject_stall_s <= kMaxTimeoutS))
    throw UsageError(
        fmt::format("--inject-stall-seconds {}: give 0 to {:g}", o.inject_stall_s, kMaxTimeoutS));
}

std::vector<std::uint64_t> checked_sizes(CollectiveOptions& o, const RawOptions& r) {
  o.min_bytes = parse_size(r.min_b, "-b/--minbytes");
  o.max_bytes = parse_size(r.max_b, "-e/--maxbytes");
  o.step_bytes = parse_size(r.step_b, "-i/--stepbytes");
  if (!(std::isfinite(o.step_factor) && o.step_factor >= 1.0))
    throw UsageError(fmt::format(
        "-f/--stepfactor {}: give a factor > 1, or 1 for additive steps of -i", o.step_factor));
  if (o.min_bytes > o.max_bytes)
    throw UsageError(fmt::format("-b/--minbytes {} is larger than -e/--maxbytes {}; give -b <= -e",
                                 r.min_b, r.max_b));
  if (o.step_factor == 1.0 && o.step_bytes == 0 && o.min_bytes != o.max_bytes)
    throw UsageError("-i/--stepbytes 0 with -f 1 never reaches -e; give -i > 0 or -f > 1");
  if (const auto n = count_sizes(o, kMaxSizes); n > kMaxSizes)
    throw UsageError(fmt::format(
        "-b {} -e {} with {}: more than {} message sizes; give a larger {} or a narrower range",
        r.min_b, r.max_b,
        o.step_factor > 1.0 ? fmt::format("-f {}", o.step_factor) : fmt::format("-i {}", r.step_b),
        kMaxSizes, o.step_factor > 1.0 ? "-f/--stepfactor" : "-i/--stepbytes"));
  return size_sweep(o.min_bytes, o.max_bytes, o.step_factor, o.step_bytes);
}

}  // namespace

std::vector<DataType> parse_types(const std::string& text, const CollectiveBackend& backend,
                                  const std::vector<ReduceOp>& ops) {
  std::vector<DataType> types;
  if (text == "all") {
    for (auto t : kAllDataTypes)
      for (auto op : ops)
        if (backend.may_support(t, op)) {
          types.push_back(t);
          break;
        }
    if (types.empty())
      throw UsageError(
          fmt::format("-d/--datatype all: the {} backend reduces no type with the "
                      "requested op(s); pick other ops",
                      backend.name()));
    return types;
  }
  for (const auto& name : split_list(text)) {
    const auto t = parse_data_type(name);
    if (!t || !may_support_type(backend, *t))
      throw UsageError(
          fmt::format("-d/--datatype '{}': {}; use {} or all", name,
                      t ? fmt::format("the {} backend cannot reduce it", backend.name())
                        : std::string("unknown type"),
                      type_names(backend, ", ")));
    bool any = false;
    for (auto op : ops) any = any || backend.may_support(*t, op);
    if (!any)
      throw UsageError(
          fmt::format("-d/--datatype '{}': the {} backend does not support it with "
                      "the requested op(s); pick another type or op",
                      name, backend.name()));
    types.push_back(*t);
  }
  if (types.empty()) throw UsageError("-d/--datatype: empty list; give a type name or all");
  return types;
}

std::vector<ReduceOp> parse_ops(const std::string& text) {
  if (text == "all") return {kAllReduceOps.begin(), kAllReduceOps.end()};
  std::vector<ReduceOp> ops;
  for (const auto& name : split_list(text)) {
    const auto op = parse_reduce_op(name);
    if (!op)
      throw UsageError(
          fmt::format("-o/--op '{}': unknown op; use sum, prod, max, min, avg or all", name));
    ops.push_back(*op);
  }
  if (ops.empty()) throw UsageError("-o/--op: empty list; give an op name or all");
  return ops;
}

ParsedCommandLine parse_command_line(int argc, char** argv, const std::string& program,
                                     CollectiveBackend& backend) {
  ParsedCommandLine parsed;
  auto& o = parsed.options;
  CLI::App app{fmt::format("{}: {} {} benchmark (nccl-tests compatible flags; GB = 1e9 B)", program,
                           backend.name(), backend.collective()),
               program};
  app.get_formatter()->column_width(34);
  RawOptions raw;
  add_harness_options(app, o, raw, backend);
  backend.add_options(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    parsed.help_text = app.help();
    return parsed;
  } catch (const CLI::ParseError& e) {
    throw UsageError(fmt::format("{} (see --help)", e.what()));
  }

  check_counts(o, raw);
  parsed.sizes = checked_sizes(o, raw);
  o.check = raw.check == 1;
  o.average = static_cast<AverageMode>(raw.average);
  o.blocking = raw.blocking == 1;
  o.ops = parse_ops(raw.op);
  o.types = parse_types(raw.dtype, backend, o.ops);
  backend.check_options(o);
  // A valid --check-args ends here. collective_main returns 0 after printing help_text; it prints
  // nothing once it tests options.check_args before help_text (see collective_runner.cpp).
  if (o.check_args)
    parsed.help_text = fmt::format("{}: --check-args: the options are valid\n", program);
  return parsed;
}

}  // namespace ffb
