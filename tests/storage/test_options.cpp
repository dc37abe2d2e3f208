// Options: command line, config file, and the one-line errors that name the flag.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ffb/error.h"
#include "options.h"

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

TEST(Options, HelpReturnsNothing) { EXPECT_FALSE(parse({"seq", "--help"})); }

}  // namespace
