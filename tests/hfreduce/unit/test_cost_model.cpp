// The inter-node cost model (hfreduce/src/inter_node/cost_model.h): the golden cases that the
// Python model is tested against too, and the properties the rule must keep.
#include <cmath>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "inter_node/cost_model.h"

namespace hfreduce::inter_node {
namespace {

TEST(CostModel, GoldenCasesSharedWithThePythonModel) {
  std::ifstream in(std::string(FFB_TEST_DATA_DIR) + "/hfreduce_inter_node_cases.json");
  ASSERT_TRUE(in.good());
  const auto doc = nlohmann::json::parse(in);
  int rings = 0, trees = 0;
  for (const auto& c : doc.at("cases")) {
    const LinkModel link{c.at("latency_us").get<double>(), c.at("gbps").get<double>()};
    const int n = c.at("nodes").get<int>();
    const auto bytes = c.at("bytes").get<std::size_t>();
    const auto chunk = c.at("chunk_bytes").get<std::size_t>();
    const auto k = estimate(n, bytes, link, chunk);
    const std::string where = "n=" + std::to_string(n) + " S=" + std::to_string(bytes);
    EXPECT_NEAR(k.tree_us, c.at("t_tree_us").get<double>(), 1e-6 * k.tree_us + 1e-6) << where;
    EXPECT_NEAR(k.ring_us, c.at("t_ring_us").get<double>(), 1e-6 * k.ring_us + 1e-6) << where;
    const auto choice = choose(n, bytes, link, chunk);
    EXPECT_EQ(name_of(choice), c.at("choice").get<std::string>()) << where;
    (choice == Algorithm::ring ? rings : trees) += 1;
  }
  // The file exercises both answers (a rule that always says one thing would fail here).
  EXPECT_GT(rings, 10);
  EXPECT_GT(trees, 10);
}

TEST(CostModel, RingForLargeMessagesOnFewNodesTreeAtScale) {
  const LinkModel ib{3.0, 25.0};  // 200 Gbit/s, 3 us
  EXPECT_EQ(choose(4, 256u << 20, ib, 256u << 10), Algorithm::ring);
  EXPECT_EQ(choose(1250, 256u << 20, ib, 256u << 10), Algorithm::tree);
  // At scale the ring's 2(n-1) latency steps outweigh its bandwidth advantage.
  const auto k = estimate(1250, 256u << 20, ib, 256u << 10);
  EXPECT_GT(k.ring_us, k.tree_us);
}

TEST(CostModel, TreeDepthIsCeilLog2) {
  EXPECT_EQ(tree_depth(1), 0);
  EXPECT_EQ(tree_depth(2), 1);
  EXPECT_EQ(tree_depth(3), 2);
  EXPECT_EQ(tree_depth(4), 2);
  EXPECT_EQ(tree_depth(5), 3);
  EXPECT_EQ(tree_depth(1250), 11);
}

TEST(CostModel, ChunkPlanKeepsWhatTheUserGave) {
  const LinkModel link{50, 0.119};
  const auto one = plan_chunks(1, link, 0, 0);
  EXPECT_EQ(one.chunk_bytes, 1u << 20);
  EXPECT_EQ(one.depth, 4);
  const auto given = plan_chunks(4, link, 64u << 10, 7);
  EXPECT_EQ(given.chunk_bytes, 64u << 10);
  EXPECT_EQ(given.depth, 7);
  const auto multi = plan_chunks(4, link, 0, 0);
  EXPECT_GE(multi.depth, 2);
  EXPECT_LE(multi.depth, kMaxPipelineDepth);
  EXPECT_GE(multi.chunk_bytes, kMinChunkBytes);
}

}  // namespace
}  // namespace hfreduce::inter_node
