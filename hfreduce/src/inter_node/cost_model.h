// The inter-node cost model: which algorithm (double binary tree or ring) a message of S bytes
// takes between n node leaders, and the chunk size and depth a communicator pipelines with. Pure
// functions of the link figures (docs/hfreduce.md, "Choosing the inter-node algorithm"); the
// Python model (python/ffbench/models) implements the same rule and both are tested against
// tests/data/hfreduce_inter_node_cases.json.
#pragma once

#include <cstddef>

#include "hfreduce/hfreduce.h"

namespace hfreduce::inter_node {

struct Costs {
  double tree_us = 0;
  double ring_us = 0;
};

// T_tree = 2 S/B + 2 d alpha + d C/B and T_ring = 2 (n-1)/n S/B + 2 (n-1) alpha, in us, with
// d = ceil(log2 n). nnodes >= 2 and a link with latency_us >= 0 and gbps > 0.
Costs estimate(int nnodes, std::size_t bytes, const LinkModel& link, std::size_t chunk_bytes);

// tree or ring for nnodes >= 2 (ties go to the tree, the paper's algorithm).
Algorithm choose(int nnodes, std::size_t bytes, const LinkModel& link, std::size_t chunk_bytes);

int tree_depth(int nnodes);  // ceil(log2 nnodes)

struct ChunkPlan {
  std::size_t chunk_bytes = 0;
  int depth = 0;
};

// The chunk and depth for Options::chunk_bytes / pipeline_depth = 0 (auto); a value the user gave
// is kept. One node: 1 MiB x 4. Several nodes: see the definition (docs/hfreduce.md).
ChunkPlan plan_chunks(int nnodes, const LinkModel& link, std::size_t chunk_bytes, int depth);

}  // namespace hfreduce::inter_node
