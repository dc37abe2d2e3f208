// Command-line options of the collective harness (nccl-tests compatible, plus long forms).
#include <sstream>

#include <fmt/format.h>

#include "collective_internal.h"
#include "ffb/error.h"
#include "ffb/sizes.h"

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

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

std::vector<DataType> parse_types(const std::string& text, const CollectiveBackend& backend,
                                  const std::vector<ReduceOp>& ops) {
  std::vector<DataType> types;
  if (text == "all") {
    for (auto t : kAllDataTypes)
      for (auto op : ops)
        if (backend.supports(t, op)) {
          types.push_back(t);
          break;
        }
    return types;
  }
  for (const auto& name : split_list(text)) {
    const auto t = parse_data_type(name);
    if (!t)
      throw UsageError(fmt::format(
          "-d/--datatype '{}': unknown type; use float, double, half, bfloat16, int32, int64, "
          "uint8, fp8_e4m3, fp8_e5m2 or all",
          name));
    bool any = false;
    for (auto op : ops) any = any || backend.supports(*t, op);
    if (!any)
      throw UsageError(
          fmt::format("-d/--datatype '{}': the {} backend does not support it with "
                      "the requested op(s); pick another type",
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
  std::string min_b = "32M", max_b = "32M", step_b = "1M", dtype = "float", op = "sum";
  int check = 1, average = 3, blocking = 0;
  app.add_option("-b,--minbytes", min_b, "smallest message size (K/M/G binary suffixes)")
      ->capture_default_str();
  app.add_option("-e,--maxbytes", max_b, "largest message size")->capture_default_str();
  app.add_option("-f,--stepfactor", o.step_factor, "multiply the size by this (>1), else add -i")
      ->capture_default_str();
  app.add_option("-i,--stepbytes", step_b, "additive size step when -f is 1")
      ->capture_default_str();
  app.add_option("-n,--iters", o.iters, "timed iterations per size")->capture_default_str();
  app.add_option("-w,--warmup_iters", o.warmup_iters, "warm-up iterations per size and placement")
      ->capture_default_str();
  app.add_option("-c,--check", check, "validate results exactly (1) or not (0)")
      ->capture_default_str();
  app.add_flag("--accuracy", o.accuracy,
               "also run on random normal data and compare with a float64 reference");
  app.add_option("-d,--datatype", dtype,
                 "float|double|half|bfloat16|int32|int64|uint8|fp8_e4m3|fp8_e5m2|all (comma list)")
      ->capture_default_str();
  app.add_option("-o,--op", op, "sum|prod|max|min|avg|all (comma list)")->capture_default_str();
  app.add_option("-a,--average", average,
                 "time column over ranks: 0 rank 0, 1 mean, 2 fastest, 3 slowest")
      ->capture_default_str();
  app.add_option("-z,--blocking", blocking,
                 "1: barrier before every iteration (synchronised start)")
      ->capture_default_str();
  app.add_option("-T,--timeout", o.timeout_s, "seconds before a stuck collective aborts the job")
      ->capture_default_str();
  app.add_option("--output", o.output, "append this run to an HDF5 results file");
  app.add_option("--label", o.label, "free text stored with the run (sweep point key)");
  // Test-only options: hidden (empty group), documented in tests/mpi.
  app.add_option("--inject-corrupt-rank", o.inject_corrupt_rank)->group("");
  app.add_option("--inject-stall-rank", o.inject_stall_rank)->group("");
  app.add_option("--inject-stall-seconds", o.inject_stall_s)->group("");
  backend.add_options(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    parsed.help_text = app.help();
    return parsed;
  } catch (const CLI::ParseError& e) {
    throw UsageError(fmt::format("{} (see --help)", e.what()));
  }

  o.min_bytes = parse_size(min_b, "-b/--minbytes");
  o.max_bytes = parse_size(max_b, "-e/--maxbytes");
  o.step_bytes = parse_size(step_b, "-i/--stepbytes");
  if (o.iters < 1) throw UsageError(fmt::format("-n/--iters {}: give at least 1", o.iters));
  if (o.warmup_iters < 0)
    throw UsageError(fmt::format("-w/--warmup_iters {}: give 0 or more", o.warmup_iters));
  if (check != 0 && check != 1) throw UsageError(fmt::format("-c/--check {}: give 0 or 1", check));
  if (average < 0 || average > 3)
    throw UsageError(
        fmt::format("-a/--average {}: give 0 (rank 0), 1 (mean), 2 (min) or 3 (max)", average));
  if (blocking != 0 && blocking != 1)
    throw UsageError(fmt::format("-z/--blocking {}: give 0 or 1", blocking));
  if (!(o.timeout_s > 0))
    throw UsageError(
        fmt::format("-T/--timeout {}: give a positive number of seconds", o.timeout_s));
  o.check = check == 1;
  o.average = static_cast<AverageMode>(average);
  o.blocking = blocking == 1;
  o.ops = parse_ops(op);
  o.types = parse_types(dtype, backend, o.ops);
  parsed.sizes = size_sweep(o.min_bytes, o.max_bytes, o.step_factor, o.step_bytes);
  return parsed;
}

}  // namespace ffb
