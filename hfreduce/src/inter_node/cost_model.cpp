#include "inter_node/cost_model.h"

#include <algorithm>
#include <cmath>

namespace hfreduce::inter_node {

int tree_depth(int nnodes) {
  int d = 0;
  while ((1 << d) < nnodes) ++d;
  return d;
}

Costs estimate(int nnodes, std::size_t bytes, const LinkModel& link, std::size_t chunk_bytes) {
  const double n = nnodes;
  const double s = static_cast<double>(bytes);
  const double c = static_cast<double>(chunk_bytes);
  const double bytes_per_us = link.gbps * 1e3;  // GB/s = 1e3 B/us
  const double alpha = link.latency_us;
  const double d = tree_depth(nnodes);
  Costs k;
  k.tree_us = 2.0 * s / bytes_per_us + 2.0 * d * alpha + d * c / bytes_per_us;
  k.ring_us = 2.0 * (n - 1.0) / n * s / bytes_per_us + 2.0 * (n - 1.0) * alpha;
  return k;
}

Algorithm choose(int nnodes, std::size_t bytes, const LinkModel& link, std::size_t chunk_bytes) {
  const auto k = estimate(nnodes, bytes, link, chunk_bytes);
  return k.ring_us < k.tree_us ? Algorithm::ring : Algorithm::tree;
}

ChunkPlan plan_chunks(int nnodes, const LinkModel& /*link*/, std::size_t chunk_bytes, int depth) {
  ChunkPlan p;
  // Several nodes: 256 KiB chunks, whose 128 KiB tree halves (and smaller ring pieces) stay under
  // Open MPI's TCP put threshold (docs/models.md), with 16 slots: the same 4 MiB of slots per rank
  // as 1 MiB x 4, and enough chunks in flight to fill a tree of depth log2 n.
  const bool multi = nnodes > 1;
  p.chunk_bytes = chunk_bytes != 0 ? chunk_bytes : multi ? std::size_t{256} << 10 : 1u << 20;
  if (depth != 0) {
    p.depth = depth;
  } else {
    const std::size_t slots_bytes = std::size_t{4} << 20;
    p.depth = static_cast<int>(std::clamp<std::size_t>(
        slots_bytes / p.chunk_bytes, static_cast<std::size_t>(kMinPipelineDepth), multi ? 16 : 4));
  }
  return p;
}

}  // namespace hfreduce::inter_node
