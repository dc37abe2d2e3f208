#include "ddp_report.h"

#include <cmath>
#include <cstdio>
#include <variant>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ffb/sizes.h"

namespace ffb::ddp {
namespace {

constexpr const char* kProgram = "ddp_bench";

std::string fmt_ms(double s) {
  if (std::isnan(s)) return "-";
  return fmt::format("{:.2f}", s * 1e3);
}

std::string fmt_flops(double f) {
  if (f >= 1e12) return fmt::format("{:.3g} TFLOP", f / 1e12);
  if (f >= 1e9) return fmt::format("{:.3g} GFLOP", f / 1e9);
  return fmt::format("{:.3g} MFLOP", f / 1e6);
}

std::string fmt_count(double n) {
  if (n >= 1e9) return fmt::format("{:.3g}B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.3g}M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.3g}K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

}  // namespace

void describe_run(RunRecord& record, const Cli& o, const Settings& st, const Plan& plan,
                  const std::string& compute_kind, const ComputeEngine& compute) {
  record.attrs["label"] = o.label;
  nlohmann::json options = {{"model", plan.model.source},
                            {"backend", st.backend_names},
                            {"compute", compute_kind},
                            {"tflops", o.tflops},
                            {"gemm", o.gemm},
                            {"efficiency", o.efficiency},
                            {"batch", st.batch},
                            {"scale", st.scale},
                            {"compute_scale", o.compute_scale},
                            {"bucket_size", st.bucket_cap},
                            {"first_bucket_size", st.first_bucket_cap},
                            {"scale_buckets", !o.no_scale_buckets},
                            {"dtype", std::string(ffb::name_of(st.dtype))},
                            {"steps", o.steps},
                            {"warmup", o.warmup},
                            {"comm_steps", o.comm_steps},
                            {"optimizer", o.optimizer},
                            {"device_membw", o.device_membw},
                            {"check", !o.no_check},
                            {"check_every_step", o.check_every_step},
                            {"progress_us", o.progress_us},
                            {"trace", o.trace},
                            {"ranks_per_node", o.ranks_per_node},
                            {"chunk_size", st.hs.options.chunk_bytes},
                            {"depth", o.depth},
                            {"threads", o.threads},
                            {"fallback_bytes", st.hs.options.fallback_bytes},
                            {"baseline_step_ms", o.baseline}};
  record.attrs["options"] = options.dump();
  // Model conditions (image_size, context, ...) are run attrs so configs/reference can match them.
  for (const auto& [k, v] : st.full.conditions) {
    if (std::holds_alternative<std::int64_t>(v))
      record.attrs[k] = std::get<std::int64_t>(v);
    else if (std::holds_alternative<double>(v))
      record.attrs[k] = std::get<double>(v);
    else
      record.attrs[k] = std::get<std::string>(v);
  }
  record.attrs["model"] = plan.model.name;
  record.attrs["model_file"] = plan.model.source;
  record.attrs["compute"] = compute_kind;
  record.attrs["compute_emulated"] = static_cast<std::int64_t>(compute.emulated() ? 1 : 0);
  record.attrs["compute_description"] = compute.describe();
  record.attrs["emulated_tflops"] = compute.emulated() ? o.tflops : std::nan("");
  record.attrs["emulated_efficiency"] = compute.emulated() ? o.efficiency : std::nan("");
  record.attrs["param_scale"] = st.scale;
  record.attrs["compute_scale"] = o.compute_scale;
  record.attrs["dtype"] = std::string(ffb::name_of(st.dtype));
  record.attrs["bucket_bytes"] = static_cast<std::int64_t>(plan.bucket_bytes);
  record.attrs["first_bucket_bytes"] = static_cast<std::int64_t>(plan.first_bucket_bytes);
  record.attrs["optimizer"] = o.optimizer;
}

void print_header(const Cli& o, const Settings& st, const Plan& plan, const Topology& topo,
                  const ComputeEngine& compute) {
  fmt::print("# ffbench {} (git {}): {}\n", kProgram, FFB_GIT_COMMIT_TEXT, plan.model.name);
  fmt::print(
      "# model {}: {} params ({} in the file), {} forward / {} backward per sample, "
      "{} layers; batch {} per rank\n",
      plan.model.source, fmt_count(static_cast<double>(plan.params)),
      fmt_count(static_cast<double>(st.full.total_params())),
      fmt_flops(plan.model.fwd_flops_per_sample()), fmt_flops(plan.model.bwd_flops_per_sample()),
      plan.model.layers.size(), st.batch);
  fmt::print("# compute: {}\n", compute.describe());
  if (compute.emulated())
    fmt::print("# compute per step (emulated, nominal): {:.2f} ms\n",
               compute.nominal_step_compute_s() * 1e3);
  if (st.scale != 1.0 || o.compute_scale != 1.0)
    fmt::print("# SCALED: parameters x {:.4g}, FLOPs x {:.4g} (not the paper's model size)\n",
               st.scale, o.compute_scale);
  fmt::print(
      "# gradients: {} {} per rank ({}), {} buckets (first {}, then {}{}; PyTorch DDP's "
      "assignment, reverse layer order), optimizer {}\n",
      fmt_count(static_cast<double>(plan.params)), ffb::name_of(st.dtype),
      format_size(static_cast<std::uint64_t>(plan.grad_bytes)), plan.buckets.size(),
      plan.first_bucket_bytes ? format_size(plan.first_bucket_bytes) : "-",
      format_size(plan.bucket_bytes),
      plan.cap_scale != 1.0 ? fmt::format(": the caps x {:.4g} like the parameters", plan.cap_scale)
                            : "",
      o.optimizer);
  fmt::print(
      "# {} ranks on {} host{} ({} per host); steps {} (+{} warm-up), comm-only {}; "
      "times: per step the slowest rank\n",
      topo.size, topo.nnodes(), topo.nnodes() == 1 ? "" : "s", topo.ranks_per_node_text(), o.steps,
      o.warmup, o.comm_steps);
  if (o.print_buckets) {
    fmt::print("# bucket  layers (backward order)                       params        bytes\n");
    for (const auto& b : plan.buckets)
      fmt::print("# {:6}  {:>18} .. {:<22} {:>10} {:>12}\n", b.index,
                 plan.model.layers[static_cast<std::size_t>(b.last_layer)].name,
                 plan.model.layers[static_cast<std::size_t>(b.first_layer)].name, b.params,
                 format_size(b.params * plan.esize));
  }
  fmt::print(
      "#\n# {:>8} {:>5} {:>5} {:>8} {:>8} {:>8} {:>10} {:>10} {:>11} {:>8} {:>7} {:>9} "
      "{:>8} {:>6}\n",
      "backend", "ranks", "nodes", "step_ms", "p50_ms", "p99_ms", "compute_ms", "exposed_ms",
      "overhead_ms", "comm_ms", "overlap", "samples/s", "weak_eff", "check");
  std::fflush(stdout);
}

void print_row(const Cli& o, const Plan& plan, const Topology& topo, const BackendOutcome& out) {
  const auto& r = out.result;
  const auto& s = out.summary;
  const auto& name = out.name;
  const double sps = out.samples_per_s, eff = out.efficiency;
  const std::string check = r.wrong < 0    ? "n/a"
                            : r.wrong == 0 ? "OK"
                                           : fmt::format("{} wrong", r.wrong);
  fmt::print(
      "  {:>8} {:>5} {:>5} {:>8} {:>8} {:>8} {:>10} {:>10} {:>11} {:>8} {:>7} {:>9.1f} "
      "{:>8} {:>6}\n",
      name, topo.size, r.nodes, fmt_ms(s.step_mean), fmt_ms(s.step_p50), fmt_ms(s.step_p99),
      fmt_ms(s.compute), fmt_ms(s.exposed), fmt_ms(s.overhead), fmt_ms(s.comm_alone),
      std::isnan(s.overlap) ? "-" : fmt::format("{:.2f}", s.overlap), sps,
      std::isnan(eff) ? "-" : fmt::format("{:.3f}", eff), check);
  if (o.print_buckets && o.trace) {
    std::string line;
    for (const auto& b : plan.buckets)
      line += fmt::format("{}{}: {:.1f} -> {:.1f}", line.empty() ? "" : ", ", b.index,
                          r.bucket_start[static_cast<std::size_t>(b.index)] * 1e3,
                          r.bucket_done[static_cast<std::size_t>(b.index)] * 1e3);
    fmt::print("#   {} buckets, ms from step start (allreduce start -> done): {}\n", name, line);
  }
  std::fflush(stdout);
}

Table ddp_table(const Cli& o, const Settings& st, const Plan& plan, const std::string& compute_kind,
                const Topology& topo, const std::vector<BackendOutcome>& outcomes) {
  Table table{.name = "ddp", .columns = {}};
  auto& c_model = table.add_str("model");
  auto& c_backend = table.add_str("backend");
  auto& c_compute = table.add_str("compute");
  auto& c_ranks = table.add_i64("ranks", "count");
  auto& c_nodes = table.add_i64("nodes", "count");
  auto& c_batch = table.add_i64("batch_per_gpu", "count");
  auto& c_params = table.add_i64("params", "count");
  auto& c_gbytes = table.add_i64("grad_bytes", "B");
  auto& c_nbuckets = table.add_i64("buckets", "count");
  auto& c_step = table.add_f64("step_time", "s");
  auto& c_p50 = table.add_f64("step_time_p50", "s");
  auto& c_p99 = table.add_f64("step_time_p99", "s");
  auto& c_min = table.add_f64("step_time_min", "s");
  auto& c_max = table.add_f64("step_time_max", "s");
  auto& c_fwd = table.add_f64("forward_time", "s");
  auto& c_bwd = table.add_f64("backward_time", "s");
  auto& c_compute_t = table.add_f64("compute_time", "s");
  auto& c_exposed = table.add_f64("exposed_comm", "s");
  auto& c_opt = table.add_f64("optimizer_time", "s");
  auto& c_alone = table.add_f64("comm_alone", "s");
  auto& c_calone = table.add_f64("compute_alone", "s");
  auto& c_overhead = table.add_f64("comm_overhead", "s");
  auto& c_hidden = table.add_f64("hidden_comm", "s");
  auto& c_overlap = table.add_f64("overlap", "1");
  auto& c_sps = table.add_f64("samples_per_s", "samples/s");
  auto& c_base = table.add_f64("baseline_step_time", "s");
  auto& c_eff = table.add_f64("weak_scaling_efficiency", "1");
  auto& c_pscale = table.add_f64("param_scale", "1");
  auto& c_cscale = table.add_f64("compute_scale", "1");
  auto& c_wrong = table.add_i64("wrong", "count");
  auto& c_steps = table.add_f64("step_times", "s", static_cast<std::size_t>(o.steps));
  auto& c_exps = table.add_f64("exposed_comms", "s", static_cast<std::size_t>(o.steps));
  for (const auto& out : outcomes) {
    const auto& r = out.result;
    const auto& s = out.summary;
    const auto& name = out.name;
    const double sps = out.samples_per_s, base = out.baseline, eff = out.efficiency;
    c_model.push_back(plan.model.name);
    c_backend.push_back(name);
    c_compute.push_back(compute_kind);
    c_ranks.push_back(topo.size);
    c_nodes.push_back(r.nodes);
    c_batch.push_back(st.batch);
    c_params.push_back(static_cast<std::int64_t>(plan.params));
    c_gbytes.push_back(static_cast<std::int64_t>(plan.grad_bytes));
    c_nbuckets.push_back(static_cast<std::int64_t>(plan.buckets.size()));
    c_step.push_back(s.step_mean);
    c_p50.push_back(s.step_p50);
    c_p99.push_back(s.step_p99);
    c_min.push_back(s.step_min);
    c_max.push_back(s.step_max);
    c_fwd.push_back(s.forward);
    c_bwd.push_back(s.backward);
    c_compute_t.push_back(s.compute);
    c_exposed.push_back(s.exposed);
    c_opt.push_back(s.optimizer);
    c_alone.push_back(s.comm_alone);
    c_calone.push_back(s.compute_alone);
    c_overhead.push_back(s.overhead);
    c_hidden.push_back(s.hidden);
    c_overlap.push_back(s.overlap);
    c_sps.push_back(sps);
    c_base.push_back(base);
    c_eff.push_back(eff);
    c_pscale.push_back(st.scale);
    c_cscale.push_back(o.compute_scale);
    c_wrong.push_back(r.wrong);
    c_steps.insert(c_steps.end(), r.timed.step.begin(), r.timed.step.end());
    c_exps.insert(c_exps.end(), r.timed.exposed.begin(), r.timed.exposed.end());
  }
  return table;
}

Table bucket_table(const Plan& plan, const std::vector<BackendOutcome>& outcomes) {
  Table btable{.name = "ddp_buckets", .columns = {}};
  auto& b_backend = btable.add_str("backend");
  auto& b_index = btable.add_i64("bucket", "1");
  auto& b_first = btable.add_str("first_layer");
  auto& b_last = btable.add_str("last_layer");
  auto& b_params = btable.add_i64("params", "count");
  auto& b_bytes = btable.add_i64("bytes", "B");
  auto& b_start = btable.add_f64("start_offset", "s");
  auto& b_done = btable.add_f64("done_offset", "s");
  for (const auto& out : outcomes) {
    const auto& r = out.result;
    const auto& name = out.name;
    for (const auto& b : plan.buckets) {
      b_backend.push_back(name);
      b_index.push_back(b.index);
      b_first.push_back(plan.model.layers[static_cast<std::size_t>(b.first_layer)].name);
      b_last.push_back(plan.model.layers[static_cast<std::size_t>(b.last_layer)].name);
      b_params.push_back(static_cast<std::int64_t>(b.params));
      b_bytes.push_back(static_cast<std::int64_t>(b.params * plan.esize));
      b_start.push_back(r.bucket_start[static_cast<std::size_t>(b.index)]);
      b_done.push_back(r.bucket_done[static_cast<std::size_t>(b.index)]);
    }
  }
  return btable;
}

void print_footer(const Cli& o, bool all_ok) {
  fmt::print(
      "#\n# step_ms: mean step time (p50, p99 over steps; each step's slowest rank); "
      "compute_ms: forward + backward as the host saw it; exposed_ms: waiting for allreduces "
      "after the backward pass; overhead_ms: step minus the same step without communication "
      "({} repetitions); comm_ms: the allreduces alone, back to back; overlap = 1 - "
      "overhead / comm; weak_eff = baseline step / step\n",
      o.comm_steps);
  fmt::print("# check: {}\n", all_ok ? "OK (allreduced gradients equal the reference sum)"
                                     : "FAILED (allreduced gradients differ from the reference "
                                       "sum)");
}

}  // namespace ffb::ddp
