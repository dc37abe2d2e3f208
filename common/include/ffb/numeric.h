// Element types and reduction operations shared by the harness, the HFReduce library and the tests.
// Header-only so the HFReduce library can use it without linking the benchmark harness.
#pragma once

#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

namespace ffb {

// New types go last: the enumerator values are stable (progress records and tests store them).
enum class DataType : std::uint8_t {
  f32,
  f64,
  f16,
  bf16,
  i32,
  i64,
  u8,
  f8e4m3,
  f8e5m2,
  i8,
  u32,
  u64
};
enum class ReduceOp : std::uint8_t { sum, prod, max, min, avg };

// The order of `-d all` and of --help: the integers added for nccl-tests' type list (int8, uint32,
// uint64) follow the older ones so that the rows of existing sweeps keep their order.
inline constexpr std::array kAllDataTypes = {DataType::f32,  DataType::f64,    DataType::f16,
                                             DataType::bf16, DataType::i32,    DataType::i64,
                                             DataType::u8,   DataType::i8,     DataType::u32,
                                             DataType::u64,  DataType::f8e4m3, DataType::f8e5m2};
inline constexpr std::array kAllReduceOps = {ReduceOp::sum, ReduceOp::prod, ReduceOp::max,
                                             ReduceOp::min, ReduceOp::avg};

constexpr std::size_t size_of(DataType t) {
  switch (t) {
    case DataType::f64:
    case DataType::i64:
    case DataType::u64:
      return 8;
    case DataType::f32:
    case DataType::i32:
    case DataType::u32:
      return 4;
    case DataType::f16:
    case DataType::bf16:
      return 2;
    case DataType::u8:
    case DataType::i8:
    case DataType::f8e4m3:
    case DataType::f8e5m2:
      return 1;
  }
  return 0;
}

// Names as nccl-tests prints them (float, half, bfloat16, ...).
constexpr std::string_view name_of(DataType t) {
  switch (t) {
    case DataType::f32:
      return "float";
    case DataType::f64:
      return "double";
    case DataType::f16:
      return "half";
    case DataType::bf16:
      return "bfloat16";
    case DataType::i32:
      return "int32";
    case DataType::i64:
      return "int64";
    case DataType::u8:
      return "uint8";
    case DataType::i8:
      return "int8";
    case DataType::u32:
      return "uint32";
    case DataType::u64:
      return "uint64";
    case DataType::f8e4m3:
      return "fp8_e4m3";
    case DataType::f8e5m2:
      return "fp8_e5m2";
  }
  return "?";
}

constexpr std::string_view name_of(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return "sum";
    case ReduceOp::prod:
      return "prod";
    case ReduceOp::max:
      return "max";
    case ReduceOp::min:
      return "min";
    case ReduceOp::avg:
      return "avg";
  }
  return "?";
}

// Accepts the names we print, nccl-tests' spellings (its type name list: int8, uint8, int32,
// uint32, int64, uint64, half, float, double, bfloat16, f8e4m3, f8e5m2; "char" and "int" of its
// pre-2.x list) and the short ones (fp32, f16, bf16, ...).
constexpr std::optional<DataType> parse_data_type(std::string_view s) {
  struct Alias {
    std::string_view name;
    DataType type;
  };
  constexpr std::array<Alias, 30> aliases{{
      {"float", DataType::f32},       {"fp32", DataType::f32},      {"float32", DataType::f32},
      {"f32", DataType::f32},         {"double", DataType::f64},    {"fp64", DataType::f64},
      {"float64", DataType::f64},     {"f64", DataType::f64},       {"half", DataType::f16},
      {"fp16", DataType::f16},        {"float16", DataType::f16},   {"f16", DataType::f16},
      {"bfloat16", DataType::bf16},   {"bf16", DataType::bf16},     {"int32", DataType::i32},
      {"int", DataType::i32},         {"int64", DataType::i64},     {"uint8", DataType::u8},
      {"fp8_e4m3", DataType::f8e4m3}, {"f8e4m3", DataType::f8e4m3}, {"e4m3", DataType::f8e4m3},
      {"fp8_e5m2", DataType::f8e5m2}, {"f8e5m2", DataType::f8e5m2}, {"e5m2", DataType::f8e5m2},
      {"fp8", DataType::f8e4m3},      {"int8u", DataType::u8},      {"int8", DataType::i8},
      {"char", DataType::i8},         {"uint32", DataType::u32},    {"uint64", DataType::u64},
  }};
  for (const auto& a : aliases)
    if (a.name == s) return a.type;
  return std::nullopt;
}

constexpr std::optional<ReduceOp> parse_reduce_op(std::string_view s) {
  for (auto op : kAllReduceOps)
    if (name_of(op) == s) return op;
  return std::nullopt;
}

constexpr bool is_floating(DataType t) {
  switch (t) {
    case DataType::i8:
    case DataType::u8:
    case DataType::i32:
    case DataType::u32:
    case DataType::i64:
    case DataType::u64:
      return false;
    default:
      return true;
  }
}
constexpr bool is_signed(DataType t) {
  return t != DataType::u8 && t != DataType::u32 && t != DataType::u64;
}

// Largest N such that every integer in [-N, N] (or [0, N] for unsigned) is exactly representable.
constexpr double exact_integer_limit(DataType t) {
  switch (t) {
    case DataType::f32:
      return 16777216.0;  // 2^24
    case DataType::f64:
      return 9007199254740992.0;  // 2^53
    case DataType::f16:
      return 2048.0;  // 2^11
    case DataType::bf16:
      return 256.0;  // 2^8
    case DataType::i32:
      return 2147483647.0;
    case DataType::i64:
      return 9007199254740992.0;  // limited by the double reference arithmetic
    case DataType::u8:
      return 255.0;
    case DataType::i8:
      return 127.0;
    case DataType::u32:
      return 4294967295.0;
    case DataType::u64:
      return 9007199254740992.0;  // limited by the double reference arithmetic
    case DataType::f8e4m3:
      return 16.0;  // 2^4 (3 mantissa bits)
    case DataType::f8e5m2:
      return 8.0;  // 2^3 (2 mantissa bits)
  }
  return 0.0;
}

// Unit roundoff of the type (half an ulp at 1.0); 0 for integers.
constexpr double unit_roundoff(DataType t) {
  switch (t) {
    case DataType::f32:
      return 0x1p-24;
    case DataType::f64:
      return 0x1p-53;
    case DataType::f16:
      return 0x1p-11;
    case DataType::bf16:
      return 0x1p-8;
    case DataType::f8e4m3:
      return 0x1p-4;
    case DataType::f8e5m2:
      return 0x1p-3;
    default:
      return 0.0;
  }
}

// ---- scalar conversions (round to nearest even); the SIMD kernels must agree with these ----

inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t man = h & 0x3ffu;
  std::uint32_t bits = 0;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((man & 0x400u) == 0) {
        man <<= 1;
        --exp;
      }
      man &= 0x3ffu;
      bits = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  return std::bit_cast<float>(bits);
}

inline std::uint16_t f32_to_f16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u)  // inf or nan
    return static_cast<std::uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow to inf
  if (abs < 0x38800000u) {  // result is subnormal or zero: add a magic number to round
    const float magic = std::bit_cast<float>(0x3f000000u);  // 0.5: aligns the half subnormal ulp
    const float r = std::bit_cast<float>(abs) + magic;
    return static_cast<std::uint16_t>(sign | (std::bit_cast<std::uint32_t>(r) - 0x3f000000u));
  }
  const std::uint32_t mant_odd = (abs >> 13) & 1u;
  std::uint32_t v = abs + 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round
  return static_cast<std::uint16_t>(sign | (v >> 13));
}

inline float bf16_to_f32(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

inline std::uint16_t f32_to_bf16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // nan
  const std::uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>((x + rounding) >> 16);
}

// FP8 (OCP formats). e4m3: bias 7, no infinities, 0x7f/0xff are NaN, max 448; saturating.
// e5m2: bias 15, IEEE-like with infinities, max 57344; saturating to max finite.
inline float f8_to_f32(std::uint8_t v, int exp_bits, int bias) {
  const int man_bits = 7 - exp_bits;
  const bool neg = (v & 0x80u) != 0;
  const int exp = (v >> man_bits) & ((1 << exp_bits) - 1);
  const int man = v & ((1 << man_bits) - 1);
  float r = 0.0f;
  if (exp_bits == 4 && exp == 15 && man == 7) {
    r = std::numeric_limits<float>::quiet_NaN();
  } else if (exp_bits == 5 && exp == 31) {
    r = man == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  } else if (exp == 0) {
    r = std::ldexp(static_cast<float>(man), 1 - bias - man_bits);
  } else {
    r = std::ldexp(static_cast<float>(man + (1 << man_bits)), exp - bias - man_bits);
  }
  return neg ? -r : r;
}

inline std::uint8_t f32_to_f8(float f, int exp_bits, int bias) {
  const int man_bits = 7 - exp_bits;
  const std::uint8_t sign = std::signbit(f) ? 0x80u : 0u;
  if (std::isnan(f)) return static_cast<std::uint8_t>(sign | 0x7fu);
  const float max_finite = exp_bits == 4 ? 448.0f : 57344.0f;
  float a = std::fabs(f);
  if (a >= max_finite) a = max_finite;  // saturate (the usual training convention)
  // Scale so that the representable grid at a's binade becomes the integers, round to nearest even.
  int e = 0;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  int unbiased = e - 1;
  const int min_normal = 1 - bias;
  if (unbiased < min_normal) unbiased = min_normal;  // subnormal grid
  const float q = std::nearbyint(std::ldexp(a, man_bits - unbiased));
  float r = std::ldexp(q, unbiased - man_bits);
  if (r > max_finite) r = max_finite;
  // Re-encode r (exactly representable now).
  if (r == 0.0f) return sign;
  std::frexp(r, &e);
  unbiased = e - 1;
  int biased = unbiased + bias;
  std::uint32_t man = 0;
  if (biased <= 0) {  // subnormal
    biased = 0;
    man = static_cast<std::uint32_t>(std::ldexp(r, man_bits - min_normal));
  } else {
    man = static_cast<std::uint32_t>(std::ldexp(r, man_bits - unbiased)) - (1u << man_bits);
  }
  return static_cast<std::uint8_t>(sign | (static_cast<std::uint32_t>(biased) << man_bits) | man);
}

inline float e4m3_to_f32(std::uint8_t v) { return f8_to_f32(v, 4, 7); }
inline float e5m2_to_f32(std::uint8_t v) { return f8_to_f32(v, 5, 15); }
inline std::uint8_t f32_to_e4m3(float f) { return f32_to_f8(f, 4, 7); }
inline std::uint8_t f32_to_e5m2(float f) { return f32_to_f8(f, 5, 15); }

// Read element i of a buffer of type t as double (exact for every type here but 64-bit integers
// beyond 2^53).
inline double load_as_double(const void* p, DataType t, std::size_t i) {
  const auto* b = static_cast<const unsigned char*>(p);
  switch (t) {
    case DataType::f32: {
      float v;
      std::memcpy(&v, b + i * 4, 4);
      return v;
    }
    case DataType::f64: {
      double v;
      std::memcpy(&v, b + i * 8, 8);
      return v;
    }
    case DataType::f16: {
      std::uint16_t v;
      std::memcpy(&v, b + i * 2, 2);
      return f16_to_f32(v);
    }
    case DataType::bf16: {
      std::uint16_t v;
      std::memcpy(&v, b + i * 2, 2);
      return bf16_to_f32(v);
    }
    case DataType::i32: {
      std::int32_t v;
      std::memcpy(&v, b + i * 4, 4);
      return v;
    }
    case DataType::i64: {
      std::int64_t v;
      std::memcpy(&v, b + i * 8, 8);
      return static_cast<double>(v);
    }
    case DataType::u8:
      return b[i];
    case DataType::i8:
      return static_cast<std::int8_t>(b[i]);
    case DataType::u32: {
      std::uint32_t v;
      std::memcpy(&v, b + i * 4, 4);
      return v;
    }
    case DataType::u64: {
      std::uint64_t v;
      std::memcpy(&v, b + i * 8, 8);
      return static_cast<double>(v);
    }
    case DataType::f8e4m3:
      return e4m3_to_f32(b[i]);
    case DataType::f8e5m2:
      return e5m2_to_f32(b[i]);
  }
  return 0.0;
}

// double -> float with round-to-odd: narrowing the result once more to f16/bf16/fp8 then rounds
// correctly (a plain double -> float cast would round twice).
inline float f64_to_f32_round_to_odd(double v) {
  const auto f = static_cast<float>(v);
  if (!std::isfinite(v) || static_cast<double>(f) == v) return f;
  // Inexact: take the candidate toward zero and make its last bit 1 ("sticky").
  float toward_zero = f;
  if (std::fabs(static_cast<double>(f)) > std::fabs(v)) toward_zero = std::nextafter(f, 0.0f);
  return std::bit_cast<float>(std::bit_cast<std::uint32_t>(toward_zero) | 1u);
}

// Integers saturate to the type's range (the casts are otherwise undefined out of range).
template <class Int>
Int saturate_to(double v) {
  if (std::isnan(v)) return 0;
  constexpr auto lo = static_cast<double>(std::numeric_limits<Int>::min());
  constexpr auto hi = static_cast<double>(std::numeric_limits<Int>::max());
  if (v <= lo) return std::numeric_limits<Int>::min();
  if (v >= hi) return std::numeric_limits<Int>::max();
  return static_cast<Int>(v);
}

// Store v: rounded to nearest even once for floating types, truncated toward zero (saturating)
// for integers.
inline void store_from_double(void* p, DataType t, std::size_t i, double v) {
  auto* b = static_cast<unsigned char*>(p);
  switch (t) {
    case DataType::f32: {
      const auto x = static_cast<float>(v);
      std::memcpy(b + i * 4, &x, 4);
      break;
    }
    case DataType::f64:
      std::memcpy(b + i * 8, &v, 8);
      break;
    case DataType::f16: {
      const auto x = f32_to_f16(f64_to_f32_round_to_odd(v));
      std::memcpy(b + i * 2, &x, 2);
      break;
    }
    case DataType::bf16: {
      const auto x = f32_to_bf16(f64_to_f32_round_to_odd(v));
      std::memcpy(b + i * 2, &x, 2);
      break;
    }
    case DataType::i32: {
      const auto x = saturate_to<std::int32_t>(v);
      std::memcpy(b + i * 4, &x, 4);
      break;
    }
    case DataType::i64: {
      const auto x = saturate_to<std::int64_t>(v);
      std::memcpy(b + i * 8, &x, 8);
      break;
    }
    case DataType::u8:
      b[i] = saturate_to<std::uint8_t>(v);
      break;
    case DataType::i8:
      b[i] = static_cast<unsigned char>(saturate_to<std::int8_t>(v));
      break;
    case DataType::u32: {
      const auto x = saturate_to<std::uint32_t>(v);
      std::memcpy(b + i * 4, &x, 4);
      break;
    }
    case DataType::u64: {
      const auto x = saturate_to<std::uint64_t>(v);
      std::memcpy(b + i * 8, &x, 8);
      break;
    }
    case DataType::f8e4m3:
      b[i] = f32_to_e4m3(f64_to_f32_round_to_odd(v));
      break;
    case DataType::f8e5m2:
      b[i] = f32_to_e5m2(f64_to_f32_round_to_odd(v));
      break;
  }
}

}  // namespace ffb
