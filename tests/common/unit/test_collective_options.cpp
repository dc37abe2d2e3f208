// The collective option parser (common/src/collective_options.cpp): every bad value is one
// UsageError line naming the flag and the value; the help text and `-d all` follow what the
// backend can reduce; --check-args stops after validating. No MPI needed: parsing never
// communicates.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "collective_internal.h"
#include "ffb/collective.h"
#include "ffb/error.h"
#include "parse_cli.h"

namespace {

using ffb::DataType;
using ffb::ReduceOp;

// Like mpi_allreduce_bench: everything but fp8.
class NoFp8 : public ffb::CollectiveBackend {
 public:
  std::string name() const override { return "host"; }
  bool supports(DataType t, ReduceOp /*op*/) const override {
    return t != DataType::f8e4m3 && t != DataType::f8e5m2;
  }
  void run(const void*, void*, std::size_t, DataType, ReduceOp) override {}
};

// Like nccl_allreduce_bench before setup(): fp8 only on some devices, so supports() says no but
// may_support() says yes.
class MaybeFp8 final : public NoFp8 {
 public:
  std::string name() const override { return "device"; }
  bool may_support(DataType /*t*/, ReduceOp /*op*/) const override { return true; }
};

// A backend with a flag of its own whose value it checks in check_options().
class WithFlag final : public NoFp8 {
 public:
  void add_options(CLI::App& app) override { app.add_option("--depth", depth_); }
  void check_options(const ffb::CollectiveOptions& /*o*/) override {
    if (depth_ < 2) throw ffb::UsageError("--depth " + std::to_string(depth_) + ": give 2 to 64");
  }

 private:
  int depth_ = 4;
};

ffb::ParsedCommandLine parse(const std::vector<const char*>& args,
                             ffb::CollectiveBackend&& backend = NoFp8()) {
  return ffb_test::parse_cli(args, backend);
}

// The UsageError message of a bad command line (fails the test when it is accepted).
std::string error_of(const std::vector<const char*>& args,
                     ffb::CollectiveBackend&& backend = NoFp8()) {
  try {
    parse(args, std::move(backend));
  } catch (const ffb::UsageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

TEST(CollectiveOptions, DefaultsAndSizes) {
  const auto p = parse({});
  EXPECT_TRUE(p.help_text.empty());
  EXPECT_EQ(p.sizes, std::vector<std::uint64_t>{32ull << 20});
  EXPECT_EQ(p.options.iters, 20);
  EXPECT_EQ(p.options.warmup_iters, 5);
  EXPECT_FALSE(p.options.check_args);
  EXPECT_EQ(parse({"-b", "1K", "-e", "4K", "-f", "2"}).sizes,
            (std::vector<std::uint64_t>{1024, 2048, 4096}));
  EXPECT_EQ(parse({"-b", "0", "-e", "8", "-f", "1", "-i", "4"}).sizes,
            (std::vector<std::uint64_t>{0, 4, 8}));
  EXPECT_EQ(parse({"-b", "8", "-e", "8", "-f", "1", "-i", "0"}).sizes,
            std::vector<std::uint64_t>{8});
  const auto bounds = parse({"-n", "1000000", "-w", "0", "-T", "604800"});
  EXPECT_EQ(bounds.options.iters, 1000000);
  EXPECT_EQ(bounds.options.timeout_s, 604800.0);
}

struct BadCase {
  std::vector<const char*> args;
  const char* needle;  // the flag and the value, as the message must name them
};

TEST(CollectiveOptions, BadValuesAreOneLineNamingTheFlag) {
  const std::vector<BadCase> cases{
      {{"-n", "0"}, "-n/--iters 0"},
      {{"-n", "-3"}, "-n/--iters -3"},
      {{"-n", "1000001"}, "-n/--iters 1000001"},
      {{"-n", "abc"}, "--iters"},
      {{"-w", "-1"}, "-w/--warmup_iters -1"},
      {{"-w", "2000000"}, "-w/--warmup_iters 2000000"},
      {{"-T", "0"}, "-T/--timeout 0"},
      {{"-T", "-5"}, "-T/--timeout -5"},
      {{"-T", "nan"}, "-T/--timeout nan"},
      {{"-T", "inf"}, "-T/--timeout inf"},
      {{"-f", "0.5"}, "-f/--stepfactor 0.5"},
      {{"-f", "0"}, "-f/--stepfactor 0"},
      {{"-f", "-2"}, "-f/--stepfactor -2"},
      {{"-f", "nan"}, "-f/--stepfactor nan"},
      {{"-f", "inf"}, "-f/--stepfactor inf"},
      {{"-b", "2M", "-e", "1M"}, "-b/--minbytes 2M is larger than -e/--maxbytes 1M"},
      {{"-b", "-1"}, "-b/--minbytes '-1'"},
      {{"-e", "lots"}, "-e/--maxbytes 'lots'"},
      {{"-b", "1", "-e", "2", "-f", "1", "-i", "0"}, "-i/--stepbytes 0"},
      {{"-b", "0", "-e", "1G", "-f", "1", "-i", "1"}, "-i/--stepbytes"},
      {{"-b", "1", "-e", "1G", "-f", "1.000001"}, "-f/--stepfactor"},
      {{"-c", "2"}, "-c/--check 2"},
      {{"-a", "4"}, "-a/--average 4"},
      {{"-z", "-1"}, "-z/--blocking -1"},
      {{"-d", "float17"}, "-d/--datatype 'float17'"},
      {{"-d", ","}, "-d/--datatype"},
      {{"-o", "mean"}, "-o/--op 'mean'"},
      {{"--no-such-flag", "1"}, "--no-such-flag"},
      {{"--threads", "2"}, "--threads"},
      {{"--inject-stall-seconds", "-1"}, "--inject-stall-seconds -1"},
      {{"--inject-corrupt-rank", "-2"}, "--inject-"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> words{"prog"};
    words.insert(words.end(), c.args.begin(), c.args.end());
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    NoFp8 backend;
    std::string msg;
    try {
      ffb::parse_command_line(static_cast<int>(argv.size()), argv.data(), "prog", backend);
      ADD_FAILURE() << "accepted: " << c.needle;
      continue;
    } catch (const ffb::UsageError& e) {
      msg = e.what();
    }
    EXPECT_NE(msg.find(c.needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
}

TEST(CollectiveOptions, HelpListsWhatTheBackendReduces) {
  const auto help = parse({"--help"}).help_text;
  EXPECT_NE(help.find("float|double|half|bfloat16|int32|int64|uint8|int8|uint32|uint64|all"),
            std::string::npos)
      << help;
  EXPECT_EQ(help.find("fp8"), std::string::npos) << help;
  EXPECT_NE(help.find("--check-args"), std::string::npos) << help;
  const auto maybe = parse({"--help"}, MaybeFp8()).help_text;
  EXPECT_NE(maybe.find("fp8_e4m3|fp8_e5m2|all"), std::string::npos) << maybe;
}

TEST(CollectiveOptions, TypesFollowTheBackend) {
  const auto all = parse({"-d", "all"}).options.types;
  EXPECT_EQ(all.size(), 10u);
  for (auto t : all) EXPECT_TRUE(t != DataType::f8e4m3 && t != DataType::f8e5m2);
  EXPECT_EQ(parse({"-d", "all"}, MaybeFp8()).options.types.size(), 12u);
  EXPECT_EQ(parse({"-d", "fp8_e4m3"}, MaybeFp8()).options.types,
            std::vector<DataType>{DataType::f8e4m3});
  const auto msg = error_of({"-d", "fp8_e4m3"});
  EXPECT_NE(msg.find("-d/--datatype 'fp8_e4m3': the host backend cannot reduce it"),
            std::string::npos)
      << msg;
  EXPECT_NE(
      msg.find(
          "use float, double, half, bfloat16, int32, int64, uint8, int8, uint32, uint64 or all"),
      std::string::npos)
      << msg;
  const auto unknown = error_of({"-d", "float17"});
  EXPECT_EQ(unknown.find("fp8"), std::string::npos) << unknown;
  EXPECT_EQ(parse({"-d", "float,half", "-o", "sum,max"}).options.types.size(), 2u);
}

TEST(CollectiveOptions, CheckArgsStopsAfterValidating) {
  const auto ok = parse({"--check-args", "-b", "1K", "-e", "1M", "-f", "4", "-d", "all"});
  EXPECT_TRUE(ok.options.check_args);
  // collective_main returns 0 once help_text is set; at most one line.
  EXPECT_FALSE(ok.help_text.empty());
  EXPECT_EQ(ok.help_text.find('\n'), ok.help_text.size() - 1) << ok.help_text;
  const auto msg = error_of({"--check-args", "-n", "0"});
  EXPECT_NE(msg.find("-n/--iters 0"), std::string::npos) << msg;
  EXPECT_NE(error_of({"--check-args", "--no-such-flag", "1"}).find("--no-such-flag"),
            std::string::npos);
}

TEST(CollectiveOptions, BackendChecksItsOwnFlags) {
  EXPECT_EQ(parse({"--depth", "8"}, WithFlag()).options.iters, 20);
  const auto msg = error_of({"--depth", "1", "--check-args"}, WithFlag());
  EXPECT_NE(msg.find("--depth 1"), std::string::npos) << msg;
}

}  // namespace
