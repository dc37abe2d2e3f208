// The HFReduce flags, checks, stage columns and run attributes that hfreduce_bench (host buffers)
// and hfreduce_gpu_bench (device buffers) share, so the two programs cannot drift apart.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "ffb/collective.h"
#include "ffb/error.h"
#include "ffb/sizes.h"
#include "hfreduce/hfreduce.h"

namespace ffb::bench {

struct HfreduceFlags {
  hfreduce::Options options;
  std::string chunk_text = "1M";
  bool stages = false;

  void add_to(CLI::App& app) {
    app.add_option("--ranks-per-node", options.ranks_per_node,
                   "form nodes from N consecutive ranks (0: ranks sharing memory)")
        ->capture_default_str();
    app.add_option("--chunk-size", chunk_text, "pipeline chunk (K/M suffixes)")
        ->capture_default_str();
    app.add_option("--depth", options.pipeline_depth, "chunk slots per rank in shared memory")
        ->capture_default_str();
    app.add_option("--threads", options.reduce_threads, "reduce threads per rank")
        ->capture_default_str();
    app.add_flag("--stages", stages, "print per-stage times (us) after each placement");
  }

  // Parses and checks the values that need no MPI (also under --check-args); one UsageError line
  // naming the flag otherwise. The ranges are the library's (hfreduce::find_option_problem).
  void check() {
    options.chunk_bytes = parse_size(chunk_text, "--chunk-size");
    if (const auto problem = hfreduce::find_option_problem(options))
      throw UsageError(flag_message(problem->field));
  }

  // Checks again once MPI is up, plus what needs the topology.
  void finish(const BackendContext& ctx) {
    check();
    options.timeout_s = ctx.options->timeout_s;
    if (options.ranks_per_node < 0 || options.ranks_per_node > ctx.topology->size)
      throw UsageError(fmt::format("--ranks-per-node {}: give 0 (shared memory) or 1 to {}",
                                   options.ranks_per_node, ctx.topology->size));
  }

  // The per-stage columns (only with --stages).
  void add_stage_metrics(const hfreduce::StageTimes& s, std::vector<Metric>& m) const {
    if (!stages) return;
    m.push_back({"stage_copy_in", "us", s.copy_in_us});
    m.push_back({"stage_intra_reduce", "us", s.intra_reduce_us});
    m.push_back({"stage_inter_node", "us", s.inter_node_us});
    m.push_back({"stage_copy_out", "us", s.copy_out_us});
    m.push_back({"stage_wait", "us", s.wait_us});
  }

  // The library's refusal in the words of this program's flags.
  std::string flag_message(hfreduce::OptionField field) const {
    using hfreduce::OptionField;
    switch (field) {
      case OptionField::chunk_bytes:
        return fmt::format("--chunk-size {}: give {}K to {}G", chunk_text,
                           hfreduce::kMinChunkBytes >> 10, hfreduce::kMaxChunkBytes >> 30);
      case OptionField::pipeline_depth:
        return fmt::format("--depth {}: give {} to {}", options.pipeline_depth,
                           hfreduce::kMinPipelineDepth, hfreduce::kMaxPipelineDepth);
      case OptionField::reduce_threads:
        return fmt::format("--threads {}: give 1 to {}", options.reduce_threads,
                           hfreduce::kMaxReduceThreads);
      case OptionField::ranks_per_node:
        return fmt::format("--ranks-per-node {}: give 0 (shared memory) or a rank count",
                           options.ranks_per_node);
      case OptionField::timeout_s:
        break;
    }
    return fmt::format("-T/--timeout {}: give seconds > 0", options.timeout_s);
  }

  void describe(RunRecord& run, const hfreduce::Layout& layout) const {
    run.attrs["hfreduce_chunk_bytes"] = static_cast<std::int64_t>(options.chunk_bytes);
    run.attrs["hfreduce_pipeline_depth"] = static_cast<std::int64_t>(options.pipeline_depth);
    run.attrs["hfreduce_reduce_threads"] = static_cast<std::int64_t>(options.reduce_threads);
    run.attrs["hfreduce_ranks_per_node_option"] = static_cast<std::int64_t>(options.ranks_per_node);
    run.attrs["hfreduce_nodes"] = static_cast<std::int64_t>(layout.nnodes);
  }
};

}  // namespace ffb::bench
