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
  std::string chunk_text = "auto";
  std::string depth_text = "auto";
  std::string inter_node_text = "auto";
  bool stages = false;

  void add_to(CLI::App& app) {
    app.add_option("--ranks-per-node", options.ranks_per_node,
                   "form nodes from N consecutive ranks (0: ranks sharing memory)")
        ->capture_default_str();
    app.add_option("--chunk-size", chunk_text,
                   "pipeline chunk (K/M suffixes; auto: chosen from the link at start-up)")
        ->capture_default_str();
    app.add_option("--depth", depth_text,
                   "chunk slots per rank in shared memory (auto: chosen with the chunk)")
        ->capture_default_str();
    app.add_option("--inter-node", inter_node_text,
                   "algorithm between nodes: tree, ring or auto (the cost model picks per size)")
        ->capture_default_str();
    app.add_option("--link-latency", options.link.latency_us,
                   "one-way latency between node leaders in us for the cost model (0: measure)")
        ->capture_default_str();
    app.add_option("--link-gbps", options.link.gbps,
                   "link rate between node leaders in GB/s for the cost model (0: measure)")
        ->capture_default_str();
    app.add_option("--threads", options.reduce_threads, "reduce threads per rank")
        ->capture_default_str();
    app.add_flag("--stages", stages, "print per-stage times (us) after each placement");
  }

  // Parses and checks the values that need no MPI (also under --check-args); one UsageError line
  // naming the flag otherwise. The ranges are the library's (hfreduce::find_option_problem).
  void check() {
    options.chunk_bytes = chunk_text == "auto" ? 0 : parse_size(chunk_text, "--chunk-size");
    if (options.chunk_bytes == 0 && chunk_text != "auto")
      throw UsageError(fmt::format("--chunk-size {}: give auto or {}K to {}G", chunk_text,
                                   hfreduce::kMinChunkBytes >> 10, hfreduce::kMaxChunkBytes >> 30));
    options.pipeline_depth = depth_text == "auto" ? 0 : parse_depth();
    options.inter_node = parse_inter_node();
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

  int parse_depth() const {
    try {
      std::size_t used = 0;
      const int v = std::stoi(depth_text, &used);
      if (used == depth_text.size() && v != 0) return v;
    } catch (const std::exception&) {
    }
    throw UsageError(fmt::format("--depth {}: give auto or {} to {}", depth_text,
                                 hfreduce::kMinPipelineDepth, hfreduce::kMaxPipelineDepth));
  }

  hfreduce::InterNode parse_inter_node() const {
    using hfreduce::InterNode;
    for (auto v : {InterNode::tree, InterNode::ring, InterNode::automatic})
      if (inter_node_text == hfreduce::name_of(v)) return v;
    throw UsageError(fmt::format("--inter-node {}: give tree, ring or auto", inter_node_text));
  }

  // The library's refusal in the words of this program's flags.
  std::string flag_message(hfreduce::OptionField field) const {
    using hfreduce::OptionField;
    switch (field) {
      case OptionField::chunk_bytes:
        return fmt::format("--chunk-size {}: give auto or {}K to {}G", chunk_text,
                           hfreduce::kMinChunkBytes >> 10, hfreduce::kMaxChunkBytes >> 30);
      case OptionField::pipeline_depth:
        return fmt::format("--depth {}: give auto or {} to {}", depth_text,
                           hfreduce::kMinPipelineDepth, hfreduce::kMaxPipelineDepth);
      case OptionField::link:
        return fmt::format(
            "--link-latency {} / --link-gbps {}: give values >= 0 (0: measure at start-up)",
            options.link.latency_us, options.link.gbps);
      case OptionField::nvlink_pairs:
        return "--nvlink-pairs: needs device buffers (hfreduce_gpu_bench)";
      case OptionField::stream_completion:
        return "--stream-completion: needs device buffers (hfreduce_gpu_bench)";
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

  // The options asked for and what the communicator resolved them to (auto chunk, depth and the
  // link figures the cost model uses, measured or given).
  void describe(RunRecord& run, const hfreduce::Communicator& comm) const {
    const auto& layout = comm.layout();
    const auto& used = comm.options();
    run.attrs["hfreduce_chunk_bytes"] = static_cast<std::int64_t>(used.chunk_bytes);
    run.attrs["hfreduce_pipeline_depth"] = static_cast<std::int64_t>(used.pipeline_depth);
    run.attrs["hfreduce_link_latency_us"] = comm.link().latency_us;
    run.attrs["hfreduce_link_gbps"] = comm.link().gbps;
    run.attrs["hfreduce_link_source"] =
        std::string(layout.nnodes == 1                                     ? "none (one node)"
                    : options.link.latency_us > 0 && options.link.gbps > 0 ? "given"
                    : options.link.latency_us > 0 || options.link.gbps > 0 ? "given and measured"
                                                                           : "measured");
    run.attrs["hfreduce_chunk_option"] = chunk_text;
    run.attrs["hfreduce_depth_option"] = depth_text;
    run.attrs["hfreduce_inter_node_option"] = inter_node_text;
    run.attrs["hfreduce_reduce_threads"] = static_cast<std::int64_t>(options.reduce_threads);
    run.attrs["hfreduce_ranks_per_node_option"] = static_cast<std::int64_t>(options.ranks_per_node);
    run.attrs["hfreduce_nodes"] = static_cast<std::int64_t>(layout.nnodes);
  }
};

}  // namespace ffb::bench
