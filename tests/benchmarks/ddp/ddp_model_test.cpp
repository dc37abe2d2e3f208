// Model files and bucket plans: every parameter in exactly one bucket, buckets in reverse layer
// order, PyTorch DDP's size rule; the shipped models load with the right totals; bad files fail
// with one line naming the key.
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ffb/error.h"
#include "model.h"

using namespace ffb::ddp;

namespace {

std::string models_dir() { return std::string(FFB_TEST_SOURCE_DIR) + "/configs/models"; }

// The invariants every plan must satisfy.
void check_plan(const Model& m, const std::vector<Bucket>& plan, std::size_t esize,
                std::uint64_t cap, std::uint64_t first_cap) {
  ASSERT_FALSE(plan.empty());
  std::vector<int> owner(m.layers.size(), -1);
  std::uint64_t covered = 0, offset = 0;
  int prev_first = static_cast<int>(m.layers.size());
  for (std::size_t b = 0; b < plan.size(); ++b) {
    const auto& bk = plan[b];
    EXPECT_EQ(bk.index, static_cast<int>(b));
    EXPECT_LE(bk.first_layer, bk.last_layer);
    // reverse order: each bucket lies strictly before (in forward order) the previous one
    EXPECT_LT(bk.last_layer, prev_first) << "bucket " << b;
    prev_first = bk.first_layer;
    EXPECT_EQ(bk.offset, offset) << "bucket " << b << " is contiguous in the flat buffer";
    std::uint64_t p = 0;
    for (int l = bk.first_layer; l <= bk.last_layer; ++l) {
      if (m.layers[l].params == 0) continue;
      EXPECT_EQ(owner[l], -1) << "layer " << m.layers[l].name << " in two buckets";
      owner[l] = bk.index;
      p += m.layers[l].params;
    }
    EXPECT_EQ(p, bk.params);
    EXPECT_GT(bk.params, 0u);
    covered += p;
    offset += bk.params;
    // Size rule: a closed bucket reached its limit; without its first (in backward order) layer
    // ... i.e. removing the last-added layer leaves it under the limit.
    const std::uint64_t limit = b == 0 && first_cap ? first_cap : cap;
    if (b + 1 < plan.size()) {
      EXPECT_GE(bk.params * esize, limit) << "bucket " << b << " closed early";
      const auto without_last = bk.params - m.layers[bk.first_layer].params;
      EXPECT_LT(without_last * esize, limit) << "bucket " << b << " should have closed earlier";
    } else {
      EXPECT_LT((bk.params - m.layers[bk.first_layer].params) * esize, limit);
    }
  }
  EXPECT_EQ(covered, m.total_params()) << "every parameter in exactly one bucket";
  for (std::size_t l = 0; l < m.layers.size(); ++l)
    if (m.layers[l].params > 0) {
      EXPECT_GE(owner[l], 0) << m.layers[l].name << " in no bucket";
    }
  // Each bucket becomes ready after the backward pass of its first layer; readiness is ordered.
  const auto ready = bucket_ready_after(m, plan);
  int expect_next = 0;
  for (std::size_t l = m.layers.size(); l-- > 0;)
    if (ready[l] >= 0) {
      EXPECT_EQ(ready[l], expect_next++);
    }
  EXPECT_EQ(expect_next, static_cast<int>(plan.size()));
}

Model small(std::vector<std::uint64_t> params) {
  Model m;
  m.name = "t";
  for (std::size_t i = 0; i < params.size(); ++i)
    m.layers.push_back(Layer{fmt::format("l{}", i), params[i], 1.0, 2.0, {}});
  return m;
}

}  // namespace

TEST(DdpBuckets, PyTorchRuleOnSmallModel) {
  // 4-byte elements, cap 100 B (25 elements), first cap 40 B (10 elements).
  const auto m = small({5, 30, 0, 4, 4, 4, 12, 3});
  const auto plan = plan_buckets(m, 4, 100, 40);
  // backward: l7(3) l6(12) -> 15 >= 10 closes bucket 0; l5 l4 l3 (12) l2(0) l1(30) -> 42 closes;
  // l0(5) is the last bucket.
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].first_layer, 6);
  EXPECT_EQ(plan[0].last_layer, 7);
  EXPECT_EQ(plan[1].first_layer, 1);
  EXPECT_EQ(plan[1].last_layer, 5);
  EXPECT_EQ(plan[1].params, 42u);
  EXPECT_EQ(plan[2].first_layer, 0);
  EXPECT_EQ(plan[2].last_layer, 0);
  check_plan(m, plan, 4, 100, 40);
}

TEST(DdpBuckets, LayerLargerThanCapGetsItsOwnBucket) {
  const auto m = small({1, 1000, 1});
  const auto plan = plan_buckets(m, 4, 64, 0);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].first_layer, 1);  // l2 (1) + l1 (1000) closes at once
  EXPECT_EQ(plan[1].first_layer, 0);
  check_plan(m, plan, 4, 64, 0);
}

TEST(DdpBuckets, ParamlessLayersAtTheEndsBelongToNoBucket) {
  const auto m = small({0, 7, 0, 9, 0});
  const auto plan = plan_buckets(m, 2, 1 << 20, 0);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].first_layer, 1);
  EXPECT_EQ(plan[0].last_layer, 3);
  check_plan(m, plan, 2, 1 << 20, 0);
}

TEST(DdpModels, ShippedModelsLoadWithTheirTotals) {
  struct Want {
    const char* name;
    std::uint64_t params;
    int batch;
    double fwd_gflop_min, fwd_gflop_max;
  };
  for (const auto& w : {Want{"vgg16", 138357544ull, 50, 30.9, 31.0},
                        Want{"gpt2-medium", 354823168ull, 32, 187.0, 188.0},
                        Want{"llama-13b", 13015864320ull, 1, 56000.0, 56200.0}}) {
    const auto m = load_model(models_dir() + "/" + w.name + ".yaml");
    EXPECT_EQ(m.name, w.name);
    EXPECT_EQ(m.total_params(), w.params) << w.name;
    EXPECT_EQ(m.batch_per_gpu, w.batch) << w.name;
    EXPECT_GE(m.fwd_flops_per_sample() / 1e9, w.fwd_gflop_min) << w.name;
    EXPECT_LE(m.fwd_flops_per_sample() / 1e9, w.fwd_gflop_max) << w.name;
    for (std::size_t esize : {2u, 4u})
      for (auto [cap, first] : {std::pair<std::uint64_t, std::uint64_t>{25u << 20, 1u << 20},
                                {25u << 20, 0},
                                {1u << 20, 0},
                                {100u << 20, 1u << 20}})
        check_plan(m, plan_buckets(m, esize, cap, first), esize, cap, first);
  }
}

TEST(DdpModels, ScaledModelKeepsEveryLayerAndItsBucketPlan) {
  const auto m = load_model(models_dir() + "/vgg16.yaml");
  const auto s = scaled(m, 0.01, 0.5);
  ASSERT_EQ(s.layers.size(), m.layers.size());
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    EXPECT_GE(s.layers[i].params, 1u);
    EXPECT_DOUBLE_EQ(s.layers[i].fwd_flops, 0.5 * m.layers[i].fwd_flops);
  }
  const auto full = plan_buckets(m, 4, 25u << 20, 1u << 20);
  const auto small_plan = plan_buckets(s, 4, (25u << 20) / 100, (1u << 20) / 100);
  ASSERT_EQ(full.size(), small_plan.size());
  for (std::size_t b = 0; b < full.size(); ++b) {
    EXPECT_EQ(full[b].first_layer, small_plan[b].first_layer);
    EXPECT_EQ(full[b].last_layer, small_plan[b].last_layer);
  }
}

TEST(DdpModels, RepeatBlocksAndDerivedFlops) {
  const auto m = parse_model(R"(
schema: ffbench-model/1
name: tiny
batch_per_gpu: 4
conditions: {context: 16, note: hello, ratio: 0.5}
layers:
  - {name: embed, params: 10, fwd_flops: 0}
  - repeat: 3
    layers:
      - {name: "b{i}.fc", params: 6, gemm: [16, 2, 3]}
      - {name: "b{i}.attn", params: 0, gemm: [[16, 16, 4, 2], {m: 16, n: 4, k: 16, count: 2}]}
)",
                             "inline");
  ASSERT_EQ(m.layers.size(), 7u);
  EXPECT_EQ(m.layers[1].name, "b0.fc");
  EXPECT_EQ(m.layers[6].name, "b2.attn");
  EXPECT_DOUBLE_EQ(m.layers[1].fwd_flops, 2.0 * 16 * 2 * 3);
  EXPECT_DOUBLE_EQ(m.layers[1].bwd_flops, 2.0 * m.layers[1].fwd_flops);
  EXPECT_DOUBLE_EQ(m.layers[2].fwd_flops, 2.0 * 16 * 16 * 4 * 2 * 2);
  EXPECT_EQ(m.total_params(), 28u);
  EXPECT_EQ(std::get<std::int64_t>(m.conditions.at("context")), 16);
  EXPECT_EQ(std::get<std::string>(m.conditions.at("note")), "hello");
  EXPECT_DOUBLE_EQ(std::get<double>(m.conditions.at("ratio")), 0.5);
}

TEST(DdpModels, BadFilesFailWithTheKey) {
  auto fails_with = [](const std::string& text, const std::string& needle) {
    try {
      parse_model(text, "bad.yaml");
    } catch (const ffb::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
      return;
    }
    ADD_FAILURE() << "no error for: " << text;
  };
  const std::string head = "schema: ffbench-model/1\nname: x\nbatch_per_gpu: 2\n";
  auto with = [&](const char* rest) { return fmt::format("{}{}", head, rest); };
  fails_with("name: x\nbatch_per_gpu: 1\nlayers: [{name: a, params: 1, fwd_flops: 1}]\n",
             "key 'schema'");
  fails_with(with("layers: [{name: a, params: -3, fwd_flops: 1}]\n"), "layers[0].params");
  fails_with(with("layers: [{name: a, params: 3}]\n"), "layers[0].fwd_flops");
  fails_with(with("layers: [{name: a, params: 3, fwd_flops: lots}]\n"), "got 'lots'");
  fails_with(with("layers: [{name: a, params: 3, fwd_flop: 1}]\n"), "layers[0].fwd_flop");
  fails_with(with("layers: [{name: a, params: 1, fwd_flops: 1}, {name: a, params: 1, "
                  "fwd_flops: 1}]\n"),
             "distinct layer names");
  fails_with(with("layers: [{name: a, params: 0, fwd_flops: 1}]\n"), "at least one layer with");
  fails_with(with("layers: [{name: a, params: 1, gemm: [1, 2]}]\n"), "layers[0].gemm");
  fails_with(with("colour: blue\nlayers: [{name: a, params: 1, fwd_flops: 1}]\n"), "colour");
  fails_with("schema: ffbench-model/1\nname: x\nlayers: [{name: a, params: 1, fwd_flops: 1}]\n",
             "batch_per_gpu");
  fails_with("[unclosed", "not valid YAML");
  EXPECT_THROW(load_model("/nonexistent/model.yaml"), ffb::UsageError);
  EXPECT_THROW(load_model("no-such-model-name"), ffb::UsageError);
}
