// The scalar conversions of ffb/numeric.h (which every SIMD level must reproduce) against an
// independent reference built from the format definitions: exhaustive round trips of every f16,
// bf16 and fp8 code, and round-to-nearest-even (ties, neighbours of ties, random values,
// overflow and fp8 saturation) for f32 -> narrow.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ffb/numeric.h"

namespace {

// A binary floating-point format described by its fields.
struct Format {
  std::string name;
  int exp_bits;
  int man_bits;
  int bias;
  bool ieee_specials;  // all-ones exponent = inf/NaN (f16, bf16, e5m2); else only S.1111.111 = NaN
  bool saturating;     // f32 -> format clamps to the largest finite value (fp8)
  std::uint32_t (*encode)(float);
  float (*decode)(std::uint32_t);

  std::uint32_t sign_bit() const { return 1u << (exp_bits + man_bits); }
  std::uint32_t num_magnitudes() const { return sign_bit(); }  // codes with the sign bit clear
  bool is_nan_code(std::uint32_t c) const {
    const std::uint32_t mag = c & (sign_bit() - 1);
    const std::uint32_t exp = mag >> man_bits;
    const std::uint32_t man = mag & ((1u << man_bits) - 1);
    if (ieee_specials) return exp == (1u << exp_bits) - 1 && man != 0;
    return mag == sign_bit() - 1;
  }
  bool is_inf_code(std::uint32_t c) const {
    const std::uint32_t mag = c & (sign_bit() - 1);
    return ieee_specials && mag == ((1u << exp_bits) - 1) << man_bits;
  }
  // Exact value of a finite code, from the definition (double holds every one exactly).
  double value(std::uint32_t c) const {
    const std::uint32_t mag = c & (sign_bit() - 1);
    const int exp = static_cast<int>(mag >> man_bits);
    const double man = static_cast<double>(mag & ((1u << man_bits) - 1));
    const double v = exp == 0 ? std::ldexp(man, 1 - bias - man_bits)
                              : std::ldexp(man + std::ldexp(1.0, man_bits), exp - bias - man_bits);
    return (c & sign_bit()) != 0 ? -v : v;
  }
};

const std::vector<Format>& formats() {
  static const std::vector<Format> kFormats = {
      {"f16", 5, 10, 15, true, false, [](float f) -> std::uint32_t { return ffb::f32_to_f16(f); },
       [](std::uint32_t c) { return ffb::f16_to_f32(static_cast<std::uint16_t>(c)); }},
      {"bf16", 8, 7, 127, true, false, [](float f) -> std::uint32_t { return ffb::f32_to_bf16(f); },
       [](std::uint32_t c) { return ffb::bf16_to_f32(static_cast<std::uint16_t>(c)); }},
      {"e4m3", 4, 3, 7, false, true, [](float f) -> std::uint32_t { return ffb::f32_to_e4m3(f); },
       [](std::uint32_t c) { return ffb::e4m3_to_f32(static_cast<std::uint8_t>(c)); }},
      {"e5m2", 5, 2, 15, true, true, [](float f) -> std::uint32_t { return ffb::f32_to_e5m2(f); },
       [](std::uint32_t c) { return ffb::e5m2_to_f32(static_cast<std::uint8_t>(c)); }},
  };
  return kFormats;
}

// Round-to-nearest-even reference for f32 -> format, by search over the sorted finite grid.
class RoundingReference {
 public:
  explicit RoundingReference(const Format& fmt) : fmt_(fmt) {
    for (std::uint32_t c = 0; c < fmt.num_magnitudes(); ++c) {
      if (fmt.is_nan_code(c) || fmt.is_inf_code(c)) break;  // specials sit at the top
      grid_.push_back(fmt.value(c));                        // code c == index c
    }
  }

  std::uint32_t expected(float f) const {
    const std::uint32_t sign = std::signbit(f) ? fmt_.sign_bit() : 0u;
    if (std::isnan(f)) return sign | (fmt_.sign_bit() - 1);  // only the NaN-ness is compared
    const double a = std::fabs(static_cast<double>(f));
    const auto max_code = static_cast<std::uint32_t>(grid_.size() - 1);
    const double max = grid_.back();
    if (a > max) {
      if (fmt_.saturating) return sign | max_code;
      // IEEE: round to the grid extended by one step; that step is infinity, whose code is even.
      const double next = max + (max - grid_[grid_.size() - 2]);
      return sign | ((a - max < next - a) ? max_code : max_code + 1);
    }
    const auto hi_it = std::lower_bound(grid_.begin(), grid_.end(), a);
    const auto hi = static_cast<std::uint32_t>(hi_it - grid_.begin());
    if (grid_[hi] == a || hi == 0) return sign | hi;
    const std::uint32_t lo = hi - 1;
    const double below = a - grid_[lo];  // exact: a has 24 bits, the grid a few
    const double above = grid_[hi] - a;
    if (below < above) return sign | lo;
    if (above < below) return sign | hi;
    return sign | ((lo % 2 == 0) ? lo : hi);  // tie: the even code
  }

  const std::vector<double>& grid() const { return grid_; }

 private:
  const Format& fmt_;
  std::vector<double> grid_;
};

class Conversions : public ::testing::TestWithParam<Format> {};

TEST_P(Conversions, EveryCodeDecodesExactlyAndRoundTrips) {
  const Format& fmt = GetParam();
  for (std::uint32_t c = 0; c < 2 * fmt.num_magnitudes(); ++c) {
    const float f = fmt.decode(c);
    const bool negative = (c & fmt.sign_bit()) != 0;
    ASSERT_EQ(std::signbit(f), negative) << fmt.name << " code " << c;
    if (fmt.is_nan_code(c)) {
      ASSERT_TRUE(std::isnan(f)) << fmt.name << " code " << c;
      const std::uint32_t back = fmt.encode(f);
      ASSERT_TRUE(fmt.is_nan_code(back)) << fmt.name << " NaN code " << c << " -> " << back;
      ASSERT_EQ((back & fmt.sign_bit()) != 0, negative);  // NaN payload aside
      continue;
    }
    if (fmt.is_inf_code(c)) {
      ASSERT_TRUE(std::isinf(f)) << fmt.name << " code " << c;
      // The fp8 convention saturates: e5m2 infinity encodes as the largest finite value.
      const std::uint32_t max_finite = (c & fmt.sign_bit()) | ((c & (fmt.sign_bit() - 1)) - 1);
      ASSERT_EQ(fmt.encode(f), fmt.saturating ? max_finite : c) << fmt.name << " code " << c;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), fmt.value(c)) << fmt.name << " code " << c;
    ASSERT_EQ(fmt.encode(f), c) << fmt.name << " code " << c;
  }
}

TEST_P(Conversions, RoundsToNearestEvenLikeTheReference) {
  const Format& fmt = GetParam();
  const RoundingReference ref(fmt);
  std::vector<float> values;
  // Every grid point and every midpoint (a tie), both signs, and their f32 neighbours; including
  // the midpoint past the largest finite value (overflow threshold / saturation).
  const auto& grid = ref.grid();
  for (std::size_t i = 0; i < grid.size(); ++i) {
    const double next = i + 1 < grid.size() ? grid[i + 1] : grid[i] + (grid[i] - grid[i - 1]);
    for (const double v : {grid[i], (grid[i] + next) / 2, next * 4}) {
      const auto f = static_cast<float>(v);
      if (static_cast<double>(f) != v && v == (grid[i] + next) / 2) {
        FAIL() << fmt.name << ": midpoint not exact in f32";
      }
      for (const float w : {f, -f}) {
        values.push_back(w);
        values.push_back(std::nextafter(w, 0.0f));
        values.push_back(std::nextafter(w, w < 0 ? -INFINITY : INFINITY));
      }
    }
  }
  // Random f32 bit patterns (all exponents, so overflow and underflow too) and special values.
  std::mt19937 rng(12345);
  for (int i = 0; i < 1'000'000; ++i)
    values.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(rng())));
  for (const float f : {0.0f,
                        -0.0f,
                        INFINITY,
                        -INFINITY,
                        std::numeric_limits<float>::max(),
                        std::numeric_limits<float>::denorm_min(),
                        -std::numeric_limits<float>::denorm_min(),
                        std::numeric_limits<float>::min(),
                        1e10f,
                        -1e10f,
                        65504.0f,
                        65519.99f,
                        65520.0f,
                        448.0f,
                        449.0f,
                        464.0f,
                        465.0f,
                        57344.0f,
                        61439.0f,
                        61440.0f,
                        1e30f}) {
    values.push_back(f);
  }

  for (const float f : values) {
    const std::uint32_t got = fmt.encode(f);
    const std::uint32_t want = ref.expected(f);
    if (std::isnan(f)) {
      ASSERT_TRUE(fmt.is_nan_code(got)) << fmt.name << " NaN -> " << got;
      continue;
    }
    ASSERT_EQ(got, want) << fmt.name << " f32 bits 0x" << std::hex
                         << std::bit_cast<std::uint32_t>(f) << " (" << f << ")";
  }
}

TEST(Fp8Saturation, ClampsToTheLargestFiniteValue) {
  EXPECT_EQ(ffb::f32_to_e4m3(448.0f), 0x7eu);
  EXPECT_EQ(ffb::f32_to_e4m3(1e6f), 0x7eu);
  EXPECT_EQ(ffb::f32_to_e4m3(-INFINITY), 0xfeu);
  EXPECT_EQ(ffb::f32_to_e4m3(464.0f), 0x7eu);  // the tie toward the (NaN) code 0x7f saturates
  EXPECT_EQ(ffb::f32_to_e5m2(57344.0f), 0x7bu);
  EXPECT_EQ(ffb::f32_to_e5m2(INFINITY), 0x7bu);
  EXPECT_EQ(ffb::f32_to_e5m2(-1e9f), 0xfbu);
  EXPECT_EQ(ffb::f32_to_e4m3(std::numeric_limits<float>::quiet_NaN()) & 0x7fu, 0x7fu);
}

std::string format_name(const ::testing::TestParamInfo<Format>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(AllNarrowFormats, Conversions, ::testing::ValuesIn(formats()),
                         format_name);

}  // namespace
