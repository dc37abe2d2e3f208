// The JSON summary: the table rows as objects (NaN as null), IOR's keys from the phases, and the
// atomic write that leaves no temporary behind when it fails.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "ffb/error.h"
#include "json_summary.h"
#include "report.h"

namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sb-json-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

sb::PhaseResult phase(const std::string& name, int rep, double gbps, bool with_op) {
  sb::PhaseResult p;
  p.spec.workload = "seq";
  p.spec.phase = name;
  p.spec.rep = rep;
  p.spec.ops = {name};
  p.active_ranks = 2;
  p.bytes = 4u << 20;
  p.ops = 16;
  p.time_ior = static_cast<double>(p.bytes) / (gbps * 1e9);
  p.gbps_ior = gbps;
  p.iops = 16 / p.time_ior;
  if (with_op) {
    sb::OpSummary s;
    s.op = name;
    s.ops = 16;
    s.mean_us = 12.5;
    p.op_summaries.push_back(s);
  }
  return p;
}

ffb::RunRecord record_of(const std::vector<sb::PhaseResult>& phases) {
  ffb::RunRecord run;
  run.attrs["engine"] = std::string("posix");
  run.attrs["nranks"] = std::int64_t{2};
  run.attrs["options"] = std::string(R"({"block": 1048576, "transfer": 262144, "segments": 2,
      "file_per_proc": false, "pattern": "seq", "repetitions": 2})");
  for (auto* make :
       {sb::phases_table, sb::ops_table, sb::ranks_table, sb::latency_table, sb::metrics_table})
    run.tables.push_back(make(phases));
  return run;
}

TEST(JsonSummary, RowsCarryTheTableColumnsAndNanIsNull) {
  const auto doc = sb::summary_json(record_of({phase("write", 0, 2.0, false)}));
  ASSERT_EQ(doc["phases"].size(), 1u);
  const auto& row = doc["phases"][0];
  EXPECT_EQ(row["phase"], "write");
  EXPECT_DOUBLE_EQ(row["bw"].get<double>(), 2.0);
  EXPECT_TRUE(row["lat_mean"].is_null());        // no operation summary: NaN in the table
  EXPECT_TRUE(row["cache_resident"].is_null());  // not measured
  EXPECT_EQ(doc["units"]["phases"]["bw"], "GB/s");
  EXPECT_EQ(doc["provenance"]["options"]["block"], 1048576);
}

TEST(JsonSummary, IorKeysFollowThePhases) {
  const auto doc =
      sb::summary_json(record_of({phase("write", 0, 2.0, true), phase("read", 0, 4.0, true),
                                  phase("write", 1, 3.0, true), phase("read", 1, 5.0, true)}));
  const auto& results = doc["tests"][0]["Results"];
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1][1]["access"], "read");
  EXPECT_DOUBLE_EQ(results[1][1]["bwMiB"].get<double>(), 5.0e9 / (1 << 20));
  EXPECT_DOUBLE_EQ(results[0][0]["latency"].get<double>(), 12.5e-6);
  EXPECT_DOUBLE_EQ(results[0][0]["blockKiB"].get<double>(), 1024.0);
  const auto& write = doc["summary"][0];
  EXPECT_EQ(write["operation"], "write");
  EXPECT_DOUBLE_EQ(write["bwMaxMIB"].get<double>(), 3.0e9 / (1 << 20));
  EXPECT_DOUBLE_EQ(write["bwMeanMIB"].get<double>(), 2.5e9 / (1 << 20));
  EXPECT_DOUBLE_EQ(write["bwStdMIB"].get<double>(), 0.5e9 / (1 << 20));  // population sd, as IOR
  EXPECT_DOUBLE_EQ(doc["tests"][0]["max"]["readMB"].get<double>(), 5.0e3);
}

TEST(JsonSummary, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = (dir.path() / "s.json").string();
  { std::ofstream(path) << "old"; }
  sb::write_json_file(path, nlohmann::json{{"a", 1}});
  std::ifstream in(path);
  EXPECT_EQ(nlohmann::json::parse(in)["a"], 1);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}), 1);
}

TEST(JsonSummary, FailedWriteLeavesNoTemporary) {
  TempDir dir;
  fs::create_directory(dir.path() / "taken");  // rename onto a directory fails
  EXPECT_THROW(sb::write_json_file((dir.path() / "taken").string(), nlohmann::json{{"a", 1}}),
               std::runtime_error);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator{}), 1);
}

TEST(JsonSummary, TargetChecksNameTheFlag) {
  TempDir dir;
  try {
    sb::check_json_target((dir.path() / "missing" / "s.json").string(), "--json");
    FAIL() << "accepted a missing directory";
  } catch (const ffb::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sb::check_json_target(dir.path().string(), "--json"), ffb::UsageError);
  EXPECT_NO_THROW(sb::check_json_target((dir.path() / "s.json").string(), "--json"));
}

}  // namespace
