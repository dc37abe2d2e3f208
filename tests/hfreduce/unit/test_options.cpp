// HFReduce's one check of its Options (hfreduce::find_option_problem / validate_options): the
// Communicator and the programs' flag layers (benchmarks/hfreduce_flags.h) use the same ranges,
// so a value one accepts the other cannot refuse.
#include <string>

#include <gtest/gtest.h>

#include "hfreduce/hfreduce.h"

namespace {

using hfreduce::OptionField;
using hfreduce::Options;

TEST(HfreduceOptions, DefaultsAndLimitsAreValid) {
  EXPECT_FALSE(hfreduce::find_option_problem(Options{}));
  Options o;
  o.chunk_bytes = hfreduce::kMinChunkBytes;
  o.pipeline_depth = hfreduce::kMinPipelineDepth;
  o.reduce_threads = 1;
  EXPECT_FALSE(hfreduce::find_option_problem(o));
  o.chunk_bytes = hfreduce::kMaxChunkBytes;
  o.pipeline_depth = hfreduce::kMaxPipelineDepth;
  o.reduce_threads = hfreduce::kMaxReduceThreads;
  EXPECT_FALSE(hfreduce::find_option_problem(o));
  EXPECT_NO_THROW(hfreduce::validate_options(o));
  // 0 means auto for the chunk and the depth (chosen per communicator), and measure for the link.
  o.chunk_bytes = 0;
  o.pipeline_depth = 0;
  o.link = {};
  EXPECT_FALSE(hfreduce::find_option_problem(o));
  EXPECT_EQ(Options{}.inter_node, hfreduce::InterNode::automatic);
  EXPECT_STREQ(hfreduce::name_of(hfreduce::InterNode::automatic), "auto");
  EXPECT_STREQ(hfreduce::name_of(hfreduce::Algorithm::intra_node), "intra-node");
}

TEST(HfreduceOptions, EachRangeNamesItsField) {
  struct Case {
    void (*spoil)(Options&);
    OptionField field;
    std::string needle;
  };
  const Case cases[] = {
      {[](Options& o) { o.chunk_bytes = hfreduce::kMinChunkBytes - 1; }, OptionField::chunk_bytes,
       "chunk_bytes 4095"},
      {[](Options& o) { o.chunk_bytes = hfreduce::kMaxChunkBytes + 1; }, OptionField::chunk_bytes,
       "chunk_bytes"},
      {[](Options& o) { o.pipeline_depth = 1; }, OptionField::pipeline_depth, "pipeline_depth 1"},
      {[](Options& o) { o.pipeline_depth = 65; }, OptionField::pipeline_depth, "pipeline_depth 65"},
      {[](Options& o) { o.reduce_threads = 0; }, OptionField::reduce_threads, "reduce_threads 0"},
      {[](Options& o) { o.reduce_threads = 257; }, OptionField::reduce_threads,
       "reduce_threads 257"},
      {[](Options& o) { o.timeout_s = 0; }, OptionField::timeout_s, "timeout_s"},
      {[](Options& o) { o.ranks_per_node = -1; }, OptionField::ranks_per_node, "ranks_per_node"},
      {[](Options& o) { o.link.latency_us = -1; }, OptionField::link, "link.latency_us"},
      {[](Options& o) { o.link.gbps = -0.5; }, OptionField::link, "link.gbps"},
      {[](Options& o) { o.nvlink_pairs = hfreduce::NvlinkPairs::force; }, OptionField::nvlink_pairs,
       "nvlink_pairs needs device_buffers"},
      {[](Options& o) { o.stream_completion = hfreduce::StreamCompletion::stream_wait; },
       OptionField::stream_completion, "stream_completion needs device_buffers"},
  };
  for (const auto& c : cases) {
    Options o;
    c.spoil(o);
    const auto problem = hfreduce::find_option_problem(o);
    ASSERT_TRUE(problem) << c.needle;
    EXPECT_EQ(problem->field, c.field) << c.needle;
    EXPECT_NE(problem->message.find(c.needle), std::string::npos) << problem->message;
    try {
      hfreduce::validate_options(o);
      ADD_FAILURE() << "accepted: " << c.needle;
    } catch (const hfreduce::Error& e) {
      EXPECT_EQ(e.status(), hfreduce::Status::invalid_argument);
      EXPECT_EQ(std::string(e.what()), problem->message);
    }
  }
}

}  // namespace
