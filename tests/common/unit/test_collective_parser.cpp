// The collective option parser, value by value (common/src/collective_options.cpp): the good
// values land in CollectiveOptions as given, every refusal is one line naming the flag and the
// value, the short and long spellings are one option, and the type names of nccl-tests are
// aliases (issue #16). test_collective_options.cpp has the broader cases; no MPI needed here.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "collective_internal.h"
#include "ffb/collective.h"
#include "ffb/error.h"
#include "parse_cli.h"

namespace {

using ffb::AverageMode;
using ffb::DataType;
using ffb::ReduceOp;

// Every type and op (like hfreduce_bench).
class Everything : public ffb::CollectiveBackend {
 public:
  std::string name() const override { return "any"; }
  bool supports(DataType /*t*/, ReduceOp /*op*/) const override { return true; }
  void run(const void*, void*, std::size_t, DataType, ReduceOp) override {}
};

// Integers only with sum (a backend whose support depends on the op).
class SumOnlyIntegers final : public Everything {
 public:
  bool supports(DataType t, ReduceOp op) const override {
    return ffb::is_floating(t) || op == ReduceOp::sum;
  }
};

ffb::ParsedCommandLine parse(const std::vector<const char*>& args,
                             ffb::CollectiveBackend&& backend = Everything()) {
  return ffb_test::parse_cli(args, backend);
}

std::string refusal(const std::vector<const char*>& args,
                    ffb::CollectiveBackend&& backend = Everything()) {
  try {
    parse(args, std::move(backend));
  } catch (const ffb::UsageError& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(CollectiveParser, GoodValuesLandAsGiven) {
  const auto o =
      parse({"-b", "4K", "-e", "1M", "-f", "4",  "-n",   "7",       "-w",  "0",         "-c",
             "0",  "-a", "1",  "-z", "1",  "-T", "12.5", "--label", "x=1", "--accuracy"})
          .options;
  EXPECT_EQ(o.min_bytes, 4096u);
  EXPECT_EQ(o.max_bytes, 1u << 20);
  EXPECT_EQ(o.step_factor, 4.0);
  EXPECT_EQ(o.iters, 7);
  EXPECT_EQ(o.warmup_iters, 0);
  EXPECT_FALSE(o.check);
  EXPECT_EQ(o.average, AverageMode::avg);
  EXPECT_TRUE(o.blocking);
  EXPECT_EQ(o.timeout_s, 12.5);
  EXPECT_EQ(o.label, "x=1");
  EXPECT_TRUE(o.accuracy);
  EXPECT_EQ(parse({"-b", "4K", "-e", "1M", "-f", "4"}).sizes,
            (std::vector<std::uint64_t>{4096, 16384, 65536, 262144, 1048576}));
  // The limits themselves are good values.
  EXPECT_EQ(parse({"-n", "1000000"}).options.iters, 1000000);
  EXPECT_EQ(parse({"-w", "1000000"}).options.warmup_iters, 1000000);
  EXPECT_EQ(parse({"-T", "604800"}).options.timeout_s, 604800.0);
  EXPECT_EQ(parse({"-a", "0"}).options.average, AverageMode::rank0);
  EXPECT_EQ(parse({"-a", "2"}).options.average, AverageMode::min);
  EXPECT_EQ(parse({"-a", "3"}).options.average, AverageMode::max);
}

TEST(CollectiveParser, LongAndShortSpellingsAreOneOption) {
  const auto s = parse({"-b", "1K", "-e", "8K", "-f", "2",  "-n", "3",  "-w",   "1",  "-c",
                        "0",  "-a", "2",  "-z", "1",  "-T", "9",  "-d", "half", "-o", "max"});
  const auto l =
      parse({"--minbytes",     "1K", "--maxbytes", "8K",   "--stepfactor", "2",  "--iters",    "3",
             "--warmup_iters", "1",  "--check",    "0",    "--average",    "2",  "--blocking", "1",
             "--timeout",      "9",  "--datatype", "half", "--op",         "max"});
  EXPECT_EQ(s.sizes, l.sizes);
  EXPECT_EQ(s.options.to_json(), l.options.to_json());
  EXPECT_EQ(parse({"-i", "1K", "-f", "1", "-b", "1K", "-e", "3K"}).sizes,
            parse({"--stepbytes", "1K", "--stepfactor", "1", "-b", "1K", "-e", "3K"}).sizes);
}

// Issue #16: nccl-tests' spellings of every type, and the short ones, name the suite's types.
TEST(CollectiveParser, TypeAliases) {
  const std::vector<std::pair<const char*, DataType>> aliases{
      {"int8", DataType::i8},       {"char", DataType::i8},        {"uint8", DataType::u8},
      {"int32", DataType::i32},     {"int", DataType::i32},        {"uint32", DataType::u32},
      {"int64", DataType::i64},     {"uint64", DataType::u64},     {"float16", DataType::f16},
      {"fp16", DataType::f16},      {"half", DataType::f16},       {"bfloat16", DataType::bf16},
      {"bf16", DataType::bf16},     {"float32", DataType::f32},    {"float", DataType::f32},
      {"float64", DataType::f64},   {"double", DataType::f64},     {"f8e4m3", DataType::f8e4m3},
      {"f8e5m2", DataType::f8e5m2}, {"fp8_e4m3", DataType::f8e4m3}};
  for (const auto& [name, type] : aliases) {
    EXPECT_EQ(ffb::parse_data_type(name), type) << name;
    EXPECT_EQ(parse({"-d", name}).options.types, std::vector<DataType>{type}) << name;
  }
  // Printed names are nccl-tests' and parse back to themselves.
  for (auto t : ffb::kAllDataTypes) EXPECT_EQ(ffb::parse_data_type(ffb::name_of(t)), t);
  EXPECT_EQ(ffb::name_of(DataType::i8), "int8");
  EXPECT_EQ(ffb::name_of(DataType::u32), "uint32");
  EXPECT_EQ(ffb::name_of(DataType::u64), "uint64");
}

TEST(CollectiveParser, AllTypesFollowTheOps) {
  EXPECT_EQ(parse({"-d", "all"}).options.types.size(), ffb::kAllDataTypes.size());
  // With prod only, the integer types drop out of `all` and are refused by name.
  const auto floats = parse({"-d", "all", "-o", "prod"}, SumOnlyIntegers()).options.types;
  for (auto t : floats) EXPECT_TRUE(ffb::is_floating(t)) << ffb::name_of(t);
  const auto msg = refusal({"-d", "uint64", "-o", "prod"}, SumOnlyIntegers());
  EXPECT_NE(msg.find("-d/--datatype 'uint64'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("requested op(s)"), std::string::npos) << msg;
  EXPECT_EQ(parse({"-o", "all"}).options.ops.size(), ffb::kAllReduceOps.size());
  EXPECT_EQ(parse({"-o", "sum,,avg"}).options.ops,
            (std::vector<ReduceOp>{ReduceOp::sum, ReduceOp::avg}));
}

// Every refusal of the parser: the flag (both spellings where it has two), the value, one line.
TEST(CollectiveParser, EveryRefusalNamesTheFlagAndValue) {
  struct Case {
    std::vector<const char*> args;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases{
      {{"-n", "0"}, {"-n/--iters 0", "give 1 to 1000000"}},
      {{"-w", "-1"}, {"-w/--warmup_iters -1", "give 0 to 1000000"}},
      {{"-c", "3"}, {"-c/--check 3", "give 0 or 1"}},
      {{"-a", "-1"}, {"-a/--average -1", "3 (max)"}},
      {{"-z", "2"}, {"-z/--blocking 2", "give 0 or 1"}},
      {{"-T", "604801"}, {"-T/--timeout 604801", "at most 604800"}},
      {{"--inject-corrupt-rank", "-5"}, {"--inject-*-rank", "-1 for none"}},
      {{"--inject-stall-seconds", "1e9"}, {"--inject-stall-seconds", "give 0 to"}},
      {{"-b", "1X"}, {"-b/--minbytes", "1X"}},
      {{"-e", "-4"}, {"-e/--maxbytes", "-4"}},
      {{"-i", "zz", "-f", "1"}, {"-i/--stepbytes", "zz"}},
      {{"-f", "0.9"}, {"-f/--stepfactor 0.9", "give a factor > 1"}},
      {{"-b", "8K", "-e", "4K"}, {"-b/--minbytes 8K", "-e/--maxbytes 4K"}},
      {{"-b", "0", "-e", "4K", "-f", "1", "-i", "0"}, {"-i/--stepbytes 0", "-f > 1"}},
      {{"-b", "1", "-e", "1G", "-f", "1", "-i", "1"}, {"more than 10000 message sizes", "-i"}},
      {{"-d", "int9"}, {"-d/--datatype 'int9'", "unknown type", "or all"}},
      {{"-d", ""}, {"-d/--datatype", "empty list"}},
      {{"-o", "xor"}, {"-o/--op 'xor'", "unknown op"}},
      {{"-o", ",,"}, {"-o/--op", "empty list"}},
      {{"-n"}, {"--iters", "see --help"}},
      {{"--bogus"}, {"--bogus", "see --help"}},
  };
  for (const auto& c : cases) {
    const std::string msg = refusal(c.args);
    for (const auto& needle : c.needles)
      EXPECT_NE(msg.find(needle), std::string::npos) << "'" << needle << "' in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
}

TEST(CollectiveParser, HelpNamesEveryTypeTheBackendReduces) {
  const auto help = parse({"--help"}).help_text;
  for (auto t : ffb::kAllDataTypes)
    EXPECT_NE(help.find(std::string(ffb::name_of(t))), std::string::npos) << ffb::name_of(t);
  for (const char* flag : {"--minbytes", "--maxbytes", "--stepfactor", "--stepbytes", "--iters",
                           "--warmup_iters", "--check", "--datatype", "--op", "--average",
                           "--blocking", "--timeout", "--output", "--label", "--check-args"})
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  // Test-only fault injection stays out of the help.
  EXPECT_EQ(help.find("--inject"), std::string::npos) << help;
}

}  // namespace
