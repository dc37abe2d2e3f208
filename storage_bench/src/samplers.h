// Seeded random sources with fixed, platform-independent algorithms: the same seed gives the same
// shuffle, the same sample sizes and the same Zipf draws on every machine and compiler (std::
// distributions do not promise that).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sb {

// SplitMix64: seeding and stateless hashing of (seed, index) pairs.
std::uint64_t splitmix64(std::uint64_t& state);
std::uint64_t mix64(std::uint64_t a, std::uint64_t b = 0, std::uint64_t c = 0);

// xoshiro256**: the generator every sampler uses.
class Rng {
 public:
  explicit Rng(std::uint64_t seed);
  std::uint64_t next();
  double uniform01();                    // [0, 1), 53 bits
  std::uint64_t below(std::uint64_t n);  // [0, n), unbiased; n > 0
  double exponential(double mean);       // Poisson-process inter-arrival time

 private:
  std::uint64_t s_[4];
};

// Fisher-Yates over [0, n): a seeded permutation.
std::vector<std::uint64_t> permutation(std::uint64_t n, std::uint64_t seed);

// Bounded Zipf over ranks [0, n): P(k) proportional to 1 / (k + 1)^s. s = 0 is uniform.
// Exact inverse-CDF sampling from a table (8 bytes per item).
class ZipfSampler {
 public:
  ZipfSampler(std::uint64_t n, double s);
  std::uint64_t sample(Rng& rng) const;
  double probability(std::uint64_t k) const;  // for tests and reports
  std::uint64_t size() const { return cdf_.size(); }

 private:
  std::vector<double> cdf_;  // normalised, cdf_.back() == 1
};

// Sample-size distribution, parsed from text:
//   fixed:SIZE                                         every sample SIZE bytes
//   uniform:min=SIZE,max=SIZE                          uniform in [min, max]
//   loguniform:min=SIZE,max=SIZE                       log-uniform in [min, max]
//   lognormal:median=SIZE,sigma=X[,min=SIZE][,max=SIZE] (clamped to [min, max])
// Sizes take the K/M/G binary suffixes. size_of(i) is a pure function of (seed, i), so every rank
// computes any sample's size without communication.
class SizeDistribution {
 public:
  static SizeDistribution parse(std::string_view text, std::string_view flag);
  static constexpr const char* kDefault = "lognormal:median=64K,sigma=1.5,min=2K,max=8M";

  std::uint64_t size_of(std::uint64_t seed, std::uint64_t index) const;
  std::uint64_t min_size() const { return min_; }
  std::uint64_t max_size() const { return max_; }
  double mean_estimate() const;  // analytic for fixed/uniform, sampled otherwise
  std::string text() const { return text_; }

 private:
  enum class Kind { fixed, uniform, loguniform, lognormal };
  Kind kind_ = Kind::fixed;
  std::uint64_t min_ = 0, max_ = 0, median_ = 0;
  double sigma_ = 0;
  std::string text_;
};

}  // namespace sb
