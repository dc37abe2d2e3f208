#include "samplers.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <numbers>

#include <fmt/format.h>

#include "ffb/error.h"
#include "ffb/sizes.h"

namespace sb {

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t mix64(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  std::uint64_t s = a;
  std::uint64_t h = splitmix64(s);
  s = h ^ b;
  h = splitmix64(s);
  s = h ^ c;
  return splitmix64(s);
}

Rng::Rng(std::uint64_t seed) {
  std::uint64_t s = seed;
  for (auto& x : s_) x = splitmix64(s);
}

std::uint64_t Rng::next() {
  const std::uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = std::rotl(s_[3], 45);
  return result;
}

double Rng::uniform01() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

std::uint64_t Rng::below(std::uint64_t n) {
  // Rejection of the short top range makes the modulo unbiased.
  const std::uint64_t threshold = (0 - n) % n;
  for (;;) {
    const std::uint64_t x = next();
    if (x >= threshold) return x % n;
  }
}

double Rng::exponential(double mean) {
  double u = uniform01();
  return -mean * std::log1p(-u);
}

std::vector<std::uint64_t> permutation(std::uint64_t n, std::uint64_t seed) {
  std::vector<std::uint64_t> p(n);
  for (std::uint64_t i = 0; i < n; ++i) p[i] = i;
  Rng rng(seed);
  for (std::uint64_t i = n; i > 1; --i) std::swap(p[i - 1], p[rng.below(i)]);
  return p;
}

ZipfSampler::ZipfSampler(std::uint64_t n, double s) : cdf_(n) {
  double acc = 0.0;
  for (std::uint64_t k = 0; k < n; ++k) {
    acc += s == 0.0 ? 1.0 : std::pow(static_cast<double>(k + 1), -s);
    cdf_[k] = acc;
  }
  for (auto& c : cdf_) c /= acc;
  if (n) cdf_.back() = 1.0;
}

std::uint64_t ZipfSampler::sample(Rng& rng) const {
  const double u = rng.uniform01();
  const auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
  return static_cast<std::uint64_t>(
      std::min<std::ptrdiff_t>(it - cdf_.begin(), static_cast<std::ptrdiff_t>(cdf_.size()) - 1));
}

double ZipfSampler::probability(std::uint64_t k) const {
  if (k >= cdf_.size()) return 0.0;
  return k == 0 ? cdf_[0] : cdf_[k] - cdf_[k - 1];
}

namespace {

std::map<std::string, std::string> parse_kv(std::string_view body, std::string_view flag,
                                            std::string_view whole) {
  std::map<std::string, std::string> kv;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t comma = body.find(',', pos);
    if (comma == std::string_view::npos) comma = body.size();
    const std::string_view item = body.substr(pos, comma - pos);
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      throw ffb::UsageError(fmt::format("{} {}: expected key=value in '{}'; example: {}", flag,
                                        whole, item, SizeDistribution::kDefault));
    kv[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
    pos = comma + 1;
  }
  return kv;
}

}  // namespace

SizeDistribution SizeDistribution::parse(std::string_view text, std::string_view flag) {
  SizeDistribution d;
  d.text_ = std::string(text);
  const std::size_t colon = text.find(':');
  const std::string_view kind = text.substr(0, colon);
  const std::string_view body = colon == std::string_view::npos ? "" : text.substr(colon + 1);
  auto bad = [&](std::string_view why) {
    return ffb::UsageError(
        fmt::format("{} {}: {}; use fixed:SIZE, uniform:min=S,max=S, loguniform:min=S,max=S or "
                    "lognormal:median=S,sigma=X[,min=S][,max=S] (default {})",
                    flag, text, why, kDefault));
  };
  if (kind == "fixed") {
    d.kind_ = Kind::fixed;
    d.min_ = d.max_ = ffb::parse_size(body, flag);
  } else if (kind == "uniform" || kind == "loguniform" || kind == "lognormal") {
    auto kv = parse_kv(body, flag, text);
    auto size_key = [&](const char* key, std::uint64_t fallback) -> std::uint64_t {
      auto it = kv.find(key);
      if (it == kv.end()) return fallback;
      const auto v = ffb::parse_size(it->second, flag);
      kv.erase(it);
      return v;
    };
    if (kind == "lognormal") {
      d.kind_ = Kind::lognormal;
      d.median_ = size_key("median", 0);
      if (d.median_ == 0) throw bad("lognormal needs median=SIZE > 0");
      auto it = kv.find("sigma");
      if (it == kv.end()) throw bad("lognormal needs sigma=X");
      try {
        d.sigma_ = std::stod(it->second);
      } catch (const std::exception&) {
        throw bad(fmt::format("sigma '{}' is not a number", it->second));
      }
      if (!(d.sigma_ >= 0.0 && d.sigma_ < 10.0)) throw bad("sigma must be in [0, 10)");
      kv.erase(it);
      d.min_ = size_key("min", 1);
      d.max_ = size_key("max", std::uint64_t{1} << 40);
    } else {
      d.kind_ = kind == "uniform" ? Kind::uniform : Kind::loguniform;
      d.min_ = size_key("min", 0);
      d.max_ = size_key("max", 0);
      if (d.min_ == 0 || d.max_ == 0)
        throw bad(fmt::format("{} needs min=SIZE and max=SIZE", kind));
    }
    if (!kv.empty()) throw bad(fmt::format("unknown key '{}'", kv.begin()->first));
  } else {
    throw bad(fmt::format("unknown distribution '{}'", kind));
  }
  if (d.min_ == 0) throw bad("sizes must be at least 1 byte");
  if (d.min_ > d.max_) throw bad("min is larger than max");
  return d;
}

std::uint64_t SizeDistribution::size_of(std::uint64_t seed, std::uint64_t index) const {
  if (kind_ == Kind::fixed) return min_;
  const std::uint64_t h1 = mix64(seed, index, 0x5a5a);
  const std::uint64_t h2 = mix64(seed, index, 0xa5a5);
  const double u1 = (static_cast<double>(h1 >> 11) + 0.5) * 0x1.0p-53;  // (0, 1)
  const double u2 = static_cast<double>(h2 >> 11) * 0x1.0p-53;
  double v = 0.0;
  const double lo = static_cast<double>(min_), hi = static_cast<double>(max_);
  switch (kind_) {
    case Kind::uniform:
      v = lo + u1 * (hi - lo + 1.0);
      break;
    case Kind::loguniform:
      v = std::exp(std::log(lo) + u1 * (std::log(hi + 1.0) - std::log(lo)));
      break;
    case Kind::lognormal: {
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
      v = static_cast<double>(median_) * std::exp(sigma_ * z);
      break;
    }
    case Kind::fixed:
      break;
  }
  const auto s = static_cast<std::uint64_t>(std::floor(std::clamp(v, lo, hi)));
  return std::clamp(s, min_, max_);
}

double SizeDistribution::mean_estimate() const {
  if (kind_ == Kind::fixed) return static_cast<double>(min_);
  if (kind_ == Kind::uniform) return (static_cast<double>(min_) + static_cast<double>(max_)) / 2.0;
  double acc = 0.0;
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i)
    acc += static_cast<double>(size_of(12345, static_cast<std::uint64_t>(i)));
  return acc / kN;
}

}  // namespace sb
