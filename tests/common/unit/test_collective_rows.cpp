// The metrics of a collective row: per-call sums on one rank (MetricSums), their combination over
// ranks (combine_rank_metrics: slowest rank's mean, distinct texts joined with "+"), and what the
// HDF5 table and the printed extras make of them (a text metric is a string column).
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "collective_rows.h"

namespace {

using ffb::Metric;

const ffb::Column& column(const ffb::Table& t, const std::string& name) {
  for (const auto& c : t.columns)
    if (c.name == name) return c;
  throw std::runtime_error("no column " + name);
}

// What one rank sends after `calls` calls reporting `per_call` (rank i's figures).
std::string rank_figures(const std::vector<std::vector<Metric>>& per_call) {
  ffb::MetricSums sums;
  for (const auto& call : per_call) sums.add(call);
  return sums.encode(per_call.size());
}

TEST(CollectiveMetrics, NumbersAreTheSlowestRanksMean) {
  const auto rank0 = rank_figures({{{"stage_wait", "us", 1.0}}, {{"stage_wait", "us", 3.0}}});
  const auto rank1 = rank_figures({{{"stage_wait", "us", 4.0}}, {{"stage_wait", "us", 6.0}}});
  const auto m = ffb::combine_rank_metrics({rank0, rank1});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].name, "stage_wait");
  EXPECT_EQ(m[0].units, "us");
  EXPECT_DOUBLE_EQ(m[0].value, 5.0);  // rank 1's mean; rank 0's is 2
  EXPECT_TRUE(m[0].text.empty());
}

TEST(CollectiveMetrics, TextsAreTheDistinctValuesSortedAndJoined) {
  const Metric ring{"algorithm", "1", 0, "ring"}, tree{"algorithm", "1", 0, "tree"};
  // One value in every call on every rank: that value.
  EXPECT_EQ(ffb::combine_rank_metrics({rank_figures({{ring}, {ring}}), rank_figures({{ring}})})
                .at(0)
                .text,
            "ring");
  // Calls that differed (tree first, then ring) and a rank that saw only one of them.
  const auto m = ffb::combine_rank_metrics(
      {rank_figures({{tree}, {ring}, {tree}}), rank_figures({{ring}, {ring}})});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].text, "ring+tree");
  EXPECT_EQ(m[0].units, "1");
}

TEST(CollectiveMetrics, NamesOutOfOrderOrMissingOnARankStillCombine) {
  // Rank 0 reports a then b, later b alone; rank 1 reports b then a and has c (a leader's stage).
  const auto rank0 = rank_figures({{{"a", "us", 2.0}, {"b", "us", 4.0}}, {{"b", "us", 8.0}}});
  const auto rank1 = rank_figures({{{"b", "us", 1.0}, {"a", "us", 1.0}, {"c", "us", 7.0}}});
  const auto m = ffb::combine_rank_metrics({rank0, rank1});
  ASSERT_EQ(m.size(), 3u);  // sorted by name
  EXPECT_EQ(m[0].name, "a");
  EXPECT_DOUBLE_EQ(m[0].value, 1.0);  // rank 0: 2 over 2 calls; rank 1: 1 over 1 call
  EXPECT_EQ(m[1].name, "b");
  EXPECT_DOUBLE_EQ(m[1].value, 6.0);
  EXPECT_EQ(m[2].name, "c");
  EXPECT_DOUBLE_EQ(m[2].value, 7.0);
}

TEST(CollectiveMetrics, NanIsIgnoredUnlessEveryRankHasIt) {
  const double nan = std::nan("");
  const auto some = ffb::combine_rank_metrics(
      {rank_figures({{{"x", "us", nan}}}), rank_figures({{{"x", "us", 3.0}}})});
  EXPECT_DOUBLE_EQ(some.at(0).value, 3.0);
  const auto none = ffb::combine_rank_metrics({rank_figures({{{"x", "us", nan}}})});
  EXPECT_TRUE(std::isnan(none.at(0).value));
}

TEST(CollectiveMetrics, NoMetricsNoColumns) {
  ffb::MetricSums sums;
  sums.add({});
  EXPECT_TRUE(ffb::combine_rank_metrics({sums.encode(1), sums.encode(1)}).empty());
}

ffb::SweepRow row_with(std::vector<Metric> out_of_place, std::vector<Metric> in_place) {
  ffb::SweepRow row;
  row.bytes = 8;
  row.count = 2;
  for (auto& p : row.place) p.t_max = p.t_min = p.t_avg = p.t_rank0 = {1.0, 2.0};
  row.place[0].metrics = std::move(out_of_place);
  row.place[1].metrics = std::move(in_place);
  return row;
}

TEST(CollectiveTable, ATextMetricIsAStringColumn) {
  const std::vector<ffb::SweepRow> rows{
      row_with({{"algorithm", "1", 0, "mpi"}, {"fallback", "1", 1.0}},
               {{"algorithm", "1", 0, "mpi"}, {"fallback", "1", 1.0}}),
      row_with({{"algorithm", "1", 0, "ring+tree"}, {"fallback", "1", 0.0}},
               {{"fallback", "1", 0.0}})};  // a placement without the text metric
  const ffb::Table t = ffb::collective_table(rows, 2);
  ASSERT_EQ(t.rows(), 4u);
  const auto& algorithm = column(t, "algorithm");
  EXPECT_EQ(algorithm.units, "1");
  EXPECT_EQ(std::get<std::vector<std::string>>(algorithm.data),
            (std::vector<std::string>{"mpi", "mpi", "ring+tree", ""}));
  EXPECT_EQ(std::get<std::vector<double>>(column(t, "fallback").data),
            (std::vector<double>{1, 1, 0, 0}));
}

TEST(CollectiveTable, ATextMetricIsPrintedWithTheExtras) {
  const auto row = row_with({{"algorithm", "1", 0, "intra-node"}}, {{"fallback", "1", 1.0}});
  EXPECT_EQ(ffb::row_extras(row, true, false),
            "  # out-of-place: algorithm=intra-node; in-place: (small path)");
  EXPECT_EQ(ffb::row_extras(row, false, false), "");  // print_metrics() false: not printed
}

}  // namespace
