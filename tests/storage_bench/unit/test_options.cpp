// Options: command line, config file, and the one-line errors that name the flag.
#include <climits>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ffb/error.h"
#include "fsutil.h"
#include "options.h"
#include "workloads/common.h"

namespace {

using namespace sb;

std::optional<Options> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "storage_bench");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parse_options(static_cast<int>(argv.size()), argv.data(), false);
}

std::string usage_error(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const ffb::UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(Options, SeqDefaultsAndIorFlags) {
  auto o = parse({"seq", "-b", "64M", "-t", "4K", "-s", "3", "-F", "--engine", "io_uring", "--qd",
                  "32", "--odirect", "--pattern", "random", "--phases", "read", "/tmp"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->workload, Workload::seq);
  EXPECT_EQ(o->seq.block, 64u << 20);
  EXPECT_EQ(o->seq.transfer, 4096u);
  EXPECT_EQ(o->seq.segments, 3u);
  EXPECT_TRUE(o->seq.file_per_proc);
  EXPECT_TRUE(o->seq.random);
  EXPECT_FALSE(o->seq.do_write);
  EXPECT_TRUE(o->seq.do_read);
  EXPECT_EQ(o->common.engine, EngineKind::io_uring);
  EXPECT_EQ(o->common.qd, 32u);
  EXPECT_TRUE(o->common.odirect);
  EXPECT_EQ(o->common.dir, "/tmp");
  const auto j = o->to_json();
  EXPECT_EQ(j["engine"], "io_uring");
  EXPECT_EQ(j["transfer"], 4096);
  EXPECT_EQ(j["pattern"], "random");
}

TEST(Options, ErrorsNameTheFlagAndTheFix) {
  EXPECT_NE(usage_error({"seq", "-b", "10M", "-t", "3M", "/tmp"}).find("--block"),
            std::string::npos);
  EXPECT_NE(usage_error({"seq", "-b", "lots", "/tmp"}).find("--block"), std::string::npos);
  EXPECT_NE(usage_error({"seq", "--engine", "aio", "/tmp"}).find("--engine"), std::string::npos);
  EXPECT_NE(usage_error({"seq", "--phases", "write,fly", "/tmp"}).find("--phases"),
            std::string::npos);
  EXPECT_NE(usage_error({"loader", "--sample-size", "gauss:1", "/tmp"}).find("--sample-size"),
            std::string::npos);
  EXPECT_NE(usage_error({"checkpoint", "--ckpt-size", "1G", "--model-params", "7e9", "/tmp"})
                .find("--model-params"),
            std::string::npos);
  EXPECT_NE(usage_error({"kvcache", "--block-size", "1K", "/tmp"}).find("--block-size"),
            std::string::npos);
  EXPECT_NE(usage_error({"seq"}).find("DIR"), std::string::npos);
  EXPECT_NE(usage_error({"/tmp"}).find("workload"), std::string::npos);
  EXPECT_FALSE(usage_error({"fly", "/tmp"}).empty());
}

TEST(Options, CheckpointShardFromTheModel) {
  auto o = parse({"checkpoint", "--model-params", "13e9", "--bytes-per-param", "2",
                  "--optimizer-factor", "7", "/tmp"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->ckpt.shard_bytes(64), static_cast<std::uint64_t>(13e9 * 2 * 7 / 64));
  auto d = parse({"checkpoint", "/tmp"});
  EXPECT_EQ(d->ckpt.shard_bytes(4), 64u << 20);
}

TEST(Options, ConfigFileAndTheCommandLineWins) {
  const auto path = std::filesystem::temp_directory_path() / "sb-options-test.yaml";
  {
    std::ofstream f(path);
    f << "workload: seq\ndir: /var/tmp\nblock: 8M\ntransfer: 64K\nfile-per-proc: true\nverify: "
         "true\n"
         "phases: [write, read]\nengine: io_uring\n";
  }
  auto o = parse({"--config", path.string(), "-t", "128K"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->workload, Workload::seq);
  EXPECT_EQ(o->common.dir, "/var/tmp");
  EXPECT_EQ(o->seq.block, 8u << 20);
  EXPECT_EQ(o->seq.transfer, 128u << 10);  // command line wins
  EXPECT_TRUE(o->seq.file_per_proc);
  EXPECT_TRUE(o->common.verify);
  EXPECT_EQ(o->common.engine, EngineKind::io_uring);
  auto p = parse({"seq", "--config", path.string(), "/data"});
  EXPECT_EQ(p->common.dir, "/data");
  {
    std::ofstream f(path);
    f << "block: [1, [2]]\n";
  }
  EXPECT_NE(usage_error({"seq", "--config", path.string(), "/tmp"}).find("--config"),
            std::string::npos);
  {
    std::ofstream f(path);
    f << "no-such-option: 3\n";
  }
  EXPECT_NE(usage_error({"seq", "--config", path.string(), "/tmp"}).find("no-such-option"),
            std::string::npos);
  std::filesystem::remove(path);
  EXPECT_NE(usage_error({"seq", "--config", "/nonexistent.yaml", "/tmp"}).find("/nonexistent.yaml"),
            std::string::npos);
}

// One line that names the flag, shows the value and gives the valid range or the fix.
void expect_refused(std::vector<std::string> args, const std::string& flag,
                    const std::string& value, const std::string& fix) {
  std::string joined;
  for (const auto& a : args) joined += a + " ";
  const std::string e = usage_error(std::move(args));
  ASSERT_FALSE(e.empty()) << "accepted: " << joined;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  EXPECT_NE(e.find(flag), std::string::npos) << joined << "-> " << e;
  EXPECT_NE(e.find(value), std::string::npos) << joined << "-> " << e;
  EXPECT_NE(e.find(fix), std::string::npos) << joined << "-> " << e;
}

TEST(Options, JobNameMustBeABareName) {
  for (const std::string bad : {"../escaped", "/abs/path", "a/b", ".", "..", ""})
    expect_refused({"seq", "--job-name", bad, "/tmp"}, "--job-name", "'" + bad + "'",
                   "bare directory name");
  expect_refused({"seq", "--job-name", std::string(NAME_MAX + 1, 'x'), "/tmp"}, "--job-name",
                 "above NAME_MAX", "1 to 255 bytes");
  std::string with_nul = "a";
  with_nul += '\0';
  with_nul += "b";
  EXPECT_THROW(check_job_name(with_nul), ffb::UsageError);
  EXPECT_NO_THROW(check_job_name(std::string(NAME_MAX, 'x')));
  for (const char* good : {"run1", ".hidden", "a..b", "job-7_x.y"}) {
    auto o = parse({"seq", "--job-name", good, "/tmp"});
    ASSERT_TRUE(o) << good;
    EXPECT_EQ(o->common.job_name, good);
  }
  auto d = parse({"seq", "/tmp"});
  EXPECT_FALSE(d->common.job_name_given);  // generated name
  // From a config file too.
  const auto path = std::filesystem::temp_directory_path() / "sb-options-jobname.yaml";
  std::ofstream(path) << "job-name: ../../etc\n";
  expect_refused({"seq", "--config", path.string(), "/tmp"}, "--job-name", "../../etc", "bare");
  std::filesystem::remove(path);
}

TEST(Options, NumbersOutOfRangeAreRefusedWithTheRange) {
  // The cases: zero, negatives, and CLI11's 300-digit range for doubles.
  expect_refused({"checkpoint", "--ckpt-size", "0", "/tmp"}, "--ckpt-size", "0", "1 B to");
  expect_refused({"seq", "-D", "-1", "/tmp"}, "--stonewall", "-1", "from 0 to 1e+06");
  expect_refused({"kvcache", "--rate", "-1", "/tmp"}, "--rate", "-1", "from 0 to 1e+07");
  EXPECT_LT(usage_error({"kvcache", "--rate", "-1", "/tmp"}).size(), 200u);
  struct Case {
    std::vector<std::string> args;
    std::string flag, value;
  };
  const std::vector<Case> cases = {
      {{"seq", "--qd", "0"}, "--qd", "0"},
      {{"seq", "--qd", "-1"}, "--qd", "-1"},
      {{"seq", "--qd", "99999999999999999999"}, "--qd", "99999999999999999999"},
      {{"seq", "--submit-batch", "0"}, "--submit-batch", "0"},
      {{"seq", "-d", "nan"}, "--delay", "nan"},
      {{"seq", "-d", "1e400"}, "--delay", "1e400"},
      {{"seq", "-D", "inf"}, "--stonewall", "inf"},
      {{"seq", "-i", "0"}, "--repetitions", "0"},
      {{"seq", "--seed", "-1"}, "--seed", "-1"},
      {{"seq", "--shift", "-2"}, "--shift", "-2"},
      {{"seq", "--mem-bw", "nan"}, "--mem-bw", "nan"},
      {{"seq", "--mem-bw", "-3"}, "--mem-bw", "-3"},
      {{"seq", "--residency-pages", "-1"}, "--residency-pages", "-1"},
      {{"seq", "--residency-pages", "0"}, "--residency-pages", "0"},
      {{"seq", "--space-margin", "nan"}, "--space-margin", "nan"},
      {{"seq", "--space-margin", "1"}, "--space-margin", "1"},
      {{"seq", "-b", "0"}, "--block", "0"},
      {{"seq", "-t", "0"}, "--transfer", "0"},
      {{"seq", "-t", "3G"}, "--transfer", "3G"},
      {{"seq", "-s", "0"}, "--segments", "0"},
      {{"seq", "-s", "1e3"}, "--segments", "1e3"},
      {{"seq", "-b", "1000T", "-t", "1M", "-s", "1000"}, "--segments", "1000"},
      {{"loader", "--samples", "0"}, "--samples", "0"},
      {{"loader", "--shard-size", "0"}, "--shard-size", "0"},
      {{"loader", "--epochs", "-1"}, "--epochs", "-1"},
      {{"loader", "--batch", "0"}, "--batch", "0"},
      {{"loader", "--compute-ms", "inf"}, "--compute-ms", "inf"},
      {{"loader", "--prefetch", "0"}, "--prefetch", "0"},
      {{"loader", "--sample-size", "fixed:0"}, "--sample-size", "fixed:0"},
      {{"loader", "--sample-size", "fixed:2G"}, "--sample-size", "fixed:2G"},
      {{"checkpoint", "--model-params", "0"}, "--model-params", "0"},
      {{"checkpoint", "--model-params", "nan"}, "--model-params", "nan"},
      {{"checkpoint", "--model-params", "1e300"}, "--model-params", "1e300"},
      {{"checkpoint", "--bytes-per-param", "0"}, "--bytes-per-param", "0"},
      {{"checkpoint", "--bytes-per-param", "nan"}, "--bytes-per-param", "nan"},
      {{"checkpoint", "--optimizer-factor", "-7"}, "--optimizer-factor", "-7"},
      {{"checkpoint", "--model-params", "1e15", "--bytes-per-param", "64", "--optimizer-factor",
        "100"},
       "--model-params",
       "1e+15"},
      {{"checkpoint", "--chunk", "0"}, "--chunk", "0"},
      {{"checkpoint", "--steps", "0"}, "--steps", "0"},
      {{"checkpoint", "--interval", "-1"}, "--interval", "-1"},
      {{"checkpoint", "--restore-ranks", "-1"}, "--restore-ranks", "-1"},
      {{"kvcache", "--block-size", "1K"}, "--block-size", "1K"},
      {{"kvcache", "--block-size", "2G"}, "--block-size", "2G"},
      {{"kvcache", "--blocks-per-file", "0"}, "--blocks-per-file", "0"},
      {{"kvcache", "--blocks-per-rank", "0"}, "--blocks-per-rank", "0"},
      {{"kvcache", "--rounds", "0"}, "--rounds", "0"},
      {{"kvcache", "--ops", "0"}, "--ops", "0"},
      {{"kvcache", "--write-frac", "nan"}, "--write-frac", "nan"},
      {{"kvcache", "--write-frac", "1.5"}, "--write-frac", "1.5"},
      {{"kvcache", "--zipf", "nan"}, "--zipf", "nan"},
      {{"kvcache", "--rate", "inf"}, "--rate", "inf"},
      {{"kvcache", "--ops", "100", "--blocks-per-rank", "10"}, "--blocks-per-rank", "10"},
      {{"kvcache", "--blocks-per-rank", "4294967296", "--block-size", "1G"},
       "--blocks-per-rank",
       "4294967296"},
      {{"meta", "-n", "0"}, "--files", "0"},
      {{"meta", "-w", "2G"}, "--file-size", "2G"},
  };
  for (const auto& c : cases) {
    auto args = c.args;
    args.push_back("/tmp");
    expect_refused(args, c.flag, c.value, "");
    const std::string e = usage_error(args);
    // Every message names a valid range or the fix, in words (never 300 digits).
    EXPECT_LT(e.size(), 320u) << e;
    EXPECT_TRUE(e.find(" to ") != std::string::npos || e.find("give") != std::string::npos ||
                e.find("lower") != std::string::npos || e.find("raise") != std::string::npos ||
                e.find("use ") != std::string::npos)
        << e;
  }
  // The limits themselves are accepted.
  EXPECT_TRUE(
      parse({"seq", "--qd", "4096", "-D", "1e6", "--seed", "18446744073709551615", "/tmp"}));
  EXPECT_TRUE(parse({"checkpoint", "--ckpt-size", "1", "--chunk", "2G", "/tmp"}));
  EXPECT_TRUE(parse({"kvcache", "--rate", "0", "--write-frac", "0", "/tmp"}));
  EXPECT_TRUE(parse({"meta", "-w", "0", "/tmp"}));
}

TEST(Options, SelfTestCorruptNeedsSomethingThatVerifies) {
  for (const char* w : {"seq", "loader", "checkpoint", "kvcache", "meta"})
    expect_refused({w, "--self-test-corrupt", "/tmp"}, "--self-test-corrupt", "without --verify",
                   "add --verify");
  expect_refused({"seq", "--verify", "--self-test-corrupt", "--phases", "write", "/tmp"},
                 "--self-test-corrupt", "--phases write", "read phase");
  expect_refused({"seq", "--verify", "--self-test-corrupt", "-D", "2", "/tmp"},
                 "--self-test-corrupt", "--stonewall 2", "drop");
  expect_refused({"checkpoint", "--verify", "--self-test-corrupt", "--no-restore", "/tmp"},
                 "--self-test-corrupt", "--no-restore", "drop");
  expect_refused({"meta", "--verify", "--self-test-corrupt", "-w", "0", "/tmp"},
                 "--self-test-corrupt", "--file-size 0", "give a --file-size");
  expect_refused({"meta", "--verify", "--self-test-corrupt", "--phases", "create,stat", "/tmp"},
                 "--self-test-corrupt", "create,stat", "read phase");
  expect_refused(
      {"kvcache", "--verify", "--self-test-corrupt", "--ops", "4", "--write-frac", "1", "/tmp"},
      "--self-test-corrupt", "--write-frac 1", "lower --write-frac");
  for (const char* w : {"seq", "loader", "checkpoint", "kvcache", "meta"})
    EXPECT_TRUE(parse({w, "--verify", "--self-test-corrupt", "/tmp"})) << w;
}

TEST(Options, PlannedBytesAndMemorySaturateInsteadOfWrapping) {
  auto o = parse({"seq", "-b", "1024T", "-t", "1M", "/tmp"});
  ASSERT_TRUE(o);
  EXPECT_EQ(planned_bytes(*o, 1), std::uint64_t{1} << 50);
  EXPECT_EQ(planned_bytes(*o, 1 << 20), UINT64_MAX);  // 2^70 bytes
  auto k = parse({"kvcache", "--blocks-per-rank", "1048576", "--block-size", "1G", "/tmp"});
  ASSERT_TRUE(k);
  EXPECT_EQ(planned_bytes(*k, 1 << 20), UINT64_MAX);
  auto m = parse({"seq", "--qd", "4096", "-t", "2G", "-b", "2G", "/tmp"});
  ASSERT_TRUE(m);
  const auto need = memory_need(*m, 1);
  EXPECT_GE(need.bytes, std::uint64_t{8} << 40);
  EXPECT_NE(need.flags.find("--qd"), std::string::npos);
  auto r = parse({"seq", "-b", "1T", "-t", "4K", "--pattern", "random", "/tmp"});
  EXPECT_GE(memory_need(*r, 1).bytes, (std::uint64_t{1} << 28) * 8);  // the permutation
  auto l = parse({"loader", "--samples", "68719476736", "--sample-size", "fixed:1", "/tmp"});
  EXPECT_GE(memory_need(*l, 1).bytes, std::uint64_t{68719476736} * 36);
  auto small = parse({"seq", "-b", "1M", "-t", "64K", "/tmp"});
  EXPECT_LT(memory_need(*small, 2).bytes, std::uint64_t{64} << 20);
}

TEST(Options, HelpReturnsNothing) { EXPECT_FALSE(parse({"seq", "--help"})); }

}  // namespace
