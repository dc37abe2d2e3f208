#include "model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <span>
#include <sstream>
#include <string_view>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "ffb/error.h"

#ifndef FFB_SOURCE_DIR
#define FFB_SOURCE_DIR "."
#endif

namespace ffb::ddp {

namespace fs = std::filesystem;

std::uint64_t Model::total_params() const {
  std::uint64_t n = 0;
  for (const auto& l : layers) n += l.params;
  return n;
}

double Model::fwd_flops_per_sample() const {
  double f = 0;
  for (const auto& l : layers) f += l.fwd_flops;
  return f;
}

double Model::bwd_flops_per_sample() const {
  double f = 0;
  for (const auto& l : layers) f += l.bwd_flops;
  return f;
}

namespace {

using Keys = std::span<const std::string_view>;
constexpr std::array<std::string_view, 8> kTopKeys{
    "schema", "name", "description", "source", "batch_per_gpu", "conditions", "layers", "notes"};
constexpr std::array<std::string_view, 6> kLayerKeys{"name",      "params", "fwd_flops",
                                                     "bwd_flops", "gemm",   "note"};
constexpr std::array<std::string_view, 3> kRepeatKeys{"repeat", "layers", "note"};
constexpr std::array<std::string_view, 4> kGemmKeys{"m", "n", "k", "count"};

struct Ctx {
  std::string where;
  [[noreturn]] void fail(const std::string& key, const std::string& expected,
                         const std::string& got = "") const {
    throw UsageError(fmt::format("{}: key '{}': expected {}{}", where, key, expected,
                                 got.empty() ? "" : fmt::format(", got '{}'", got)));
  }
};

std::string text_of(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "null";
  if (n.IsScalar()) return n.Scalar();
  std::ostringstream os;
  os << YAML::Dump(n);
  auto s = os.str();
  for (auto& c : s)
    if (c == '\n') c = ' ';
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

void check_keys(const Ctx& c, const YAML::Node& n, Keys allowed, const std::string& where) {
  if (!n.IsMap()) c.fail(where, "a mapping", text_of(n));
  for (const auto& kv : n) {
    const auto k = kv.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) {
        if (!list.empty()) list.append(", ");
        list.append(a);
      }
      c.fail(where.empty() ? k : fmt::format("{}.{}", where, k), fmt::format("one of {}", list), k);
    }
  }
}

std::string bound_text(double v) {
  return v == std::floor(v) && v < 1e15 ? fmt::format("{:.0f}", v) : fmt::format("{:g}", v);
}

double number(const Ctx& c, const YAML::Node& n, const std::string& key, double min_value,
              double max_value) {
  if (!n.IsScalar()) c.fail(key, "a number", text_of(n));
  const std::string& s = n.Scalar();
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0' || !std::isfinite(v)) c.fail(key, "a finite number", s);
  if (v < min_value || v > max_value)
    c.fail(key, fmt::format("a number from {} to {}", bound_text(min_value), bound_text(max_value)),
           s);
  return v;
}

std::uint64_t integer(const Ctx& c, const YAML::Node& n, const std::string& key,
                      std::uint64_t min_value, std::uint64_t max_value) {
  const double v =
      number(c, n, key, static_cast<double>(min_value), static_cast<double>(max_value));
  if (v != std::floor(v)) c.fail(key, "a whole number", n.Scalar());
  return static_cast<std::uint64_t>(v);
}

std::string substitute(std::string s, std::uint64_t i) {
  const std::string tag = "{i}";
  for (auto pos = s.find(tag); pos != std::string::npos; pos = s.find(tag, pos))
    s.replace(pos, tag.size(), std::to_string(i));
  return s;
}

// The GPU engine keeps a k x n weight operand per product: bound it (and the FLOPs it makes).
void check_gemm(const Ctx& c, const GemmShape& g, const std::string& key) {
  if (g.k * g.n > kMaxGemmWeights)
    c.fail(key, fmt::format("k x n at most {} elements (the weight operand)", kMaxGemmWeights),
           fmt::format("{} x {}", g.k, g.n));
}

GemmShape parse_gemm(const Ctx& c, const YAML::Node& n, const std::string& key) {
  GemmShape g;
  if (n.IsSequence()) {
    if (n.size() < 3 || n.size() > 4) c.fail(key, "[m, n, k] or [m, n, k, count]", text_of(n));
    g.m = integer(c, n[0], key + "[0]", 1, kMaxGemmDim);
    g.n = integer(c, n[1], key + "[1]", 1, kMaxGemmDim);
    g.k = integer(c, n[2], key + "[2]", 1, kMaxGemmDim);
    if (n.size() == 4) g.count = integer(c, n[3], key + "[3]", 1, kMaxGemmCount);
    check_gemm(c, g, key);
    return g;
  }
  check_keys(c, n, kGemmKeys, key);
  for (const char* k : {"m", "n", "k"})
    if (!n[k]) c.fail(key + "." + k, "a positive whole number (m, n and k are all required)");
  g.m = integer(c, n["m"], key + ".m", 1, kMaxGemmDim);
  g.n = integer(c, n["n"], key + ".n", 1, kMaxGemmDim);
  g.k = integer(c, n["k"], key + ".k", 1, kMaxGemmDim);
  if (n["count"]) g.count = integer(c, n["count"], key + ".count", 1, kMaxGemmCount);
  check_gemm(c, g, key);
  return g;
}

void parse_layers(const Ctx& c, const YAML::Node& list, const std::string& key,
                  const std::uint64_t* repeat_index, std::vector<Layer>& out) {
  if (!list.IsSequence() || list.size() == 0)
    c.fail(key, "a non-empty list of layers", text_of(list));
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& n = list[i];
    const std::string k = fmt::format("{}[{}]", key, i);
    if (!n.IsMap())
      c.fail(k, "a layer mapping {name, params, fwd_flops, ...} or {repeat, layers}", text_of(n));
    if (n["repeat"]) {
      if (repeat_index != nullptr) c.fail(k + ".repeat", "no nested repeat blocks");
      check_keys(c, n, kRepeatKeys, k);
      const auto times = integer(c, n["repeat"], k + ".repeat", 1, kMaxLayers);
      const auto block = n["layers"].IsSequence() ? n["layers"].size() : 1;
      if (out.size() + times * block > kMaxLayers)
        c.fail(k + ".repeat",
               fmt::format("a count that keeps the model at most {} layers ({} x {} layers "
                           "here, after {})",
                           kMaxLayers, times, block, out.size()),
               n["repeat"].Scalar());
      for (std::uint64_t r = 0; r < times; ++r)
        parse_layers(c, n["layers"], k + ".layers", &r, out);
      continue;
    }
    check_keys(c, n, kLayerKeys, k);
    Layer l;
    if (!n["name"] || !n["name"].IsScalar()) c.fail(k + ".name", "a layer name");
    l.name = n["name"].Scalar();
    if (repeat_index != nullptr) l.name = substitute(l.name, *repeat_index);
    if (!n["params"]) c.fail(k + ".params", "the layer's parameter count (0 for none)");
    l.params = integer(c, n["params"], k + ".params", 0, kMaxLayerParams);
    if (n["gemm"]) {
      const auto& g = n["gemm"];
      // One product ([m, n, k]) or a list of them ([[m, n, k], ...]).
      if (g.IsSequence() && g.size() > 0 && g[0].IsSequence()) {
        for (std::size_t j = 0; j < g.size(); ++j)
          l.gemms.push_back(parse_gemm(c, g[j], fmt::format("{}.gemm[{}]", k, j)));
      } else if (g.IsSequence() && g.size() > 0 && g[0].IsMap()) {
        for (std::size_t j = 0; j < g.size(); ++j)
          l.gemms.push_back(parse_gemm(c, g[j], fmt::format("{}.gemm[{}]", k, j)));
      } else {
        l.gemms.push_back(parse_gemm(c, g, k + ".gemm"));
      }
    }
    if (n["fwd_flops"]) {
      l.fwd_flops = number(c, n["fwd_flops"], k + ".fwd_flops", 0, kMaxLayerFlops);
    } else if (!l.gemms.empty()) {
      for (const auto& g : l.gemms) l.fwd_flops += g.flops();
      if (l.fwd_flops > kMaxLayerFlops)
        c.fail(
            k + ".gemm",
            fmt::format("shapes of at most {:g} FLOPs per sample (2 m n k count)", kMaxLayerFlops),
            fmt::format("{:g}", l.fwd_flops));
    } else {
      c.fail(k + ".fwd_flops", "forward FLOPs per sample (or a gemm shape to derive them from)");
    }
    l.bwd_flops = n["bwd_flops"]
                      ? number(c, n["bwd_flops"], k + ".bwd_flops", 0, 2.0 * kMaxLayerFlops)
                      : 2.0 * l.fwd_flops;
    out.push_back(std::move(l));
  }
}

}  // namespace

Model parse_model(const std::string& yaml_text, const std::string& where) {
  Ctx c{where};
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw UsageError(fmt::format("{}: not valid YAML: {}", where, e.what()));
  }
  if (!root.IsMap()) c.fail("(top level)", "a mapping with schema, name, batch_per_gpu, layers");
  check_keys(c, root, kTopKeys, "");
  if (!root["schema"] || root["schema"].as<std::string>() != "ffbench-model/1")
    c.fail("schema", "ffbench-model/1", text_of(root["schema"]));
  Model m;
  m.source = where;
  if (!root["name"] || !root["name"].IsScalar() || root["name"].Scalar().empty())
    c.fail("name", "the model's name, e.g. vgg16");
  m.name = root["name"].Scalar();
  if (root["description"]) m.description = root["description"].as<std::string>();
  if (!root["batch_per_gpu"]) c.fail("batch_per_gpu", "samples per GPU per step, e.g. 50");
  m.batch_per_gpu =
      static_cast<int>(integer(c, root["batch_per_gpu"], "batch_per_gpu", 1, kMaxBatchPerGpu));
  if (root["conditions"]) {
    const auto& cond = root["conditions"];
    if (!cond.IsMap()) c.fail("conditions", "a mapping of scalars", text_of(cond));
    for (const auto& kv : cond) {
      const auto k = kv.first.as<std::string>();
      if (!kv.second.IsScalar()) c.fail("conditions." + k, "a scalar", text_of(kv.second));
      const auto s = kv.second.Scalar();
      char* end = nullptr;
      const long long iv = std::strtoll(s.c_str(), &end, 10);
      if (end != s.c_str() && *end == '\0') {
        m.conditions[k] = static_cast<std::int64_t>(iv);
        continue;
      }
      const double dv = std::strtod(s.c_str(), &end);
      if (end != s.c_str() && *end == '\0')
        m.conditions[k] = dv;
      else
        m.conditions[k] = s;
    }
  }
  if (!root["layers"]) c.fail("layers", "a list of layers in forward order");
  parse_layers(c, root["layers"], "layers", nullptr, m.layers);
  std::set<std::string> names;
  for (const auto& l : m.layers)
    if (!names.insert(l.name).second)
      c.fail("layers", "distinct layer names (use {i} inside repeat blocks)", l.name);
  if (m.total_params() == 0) c.fail("layers", "at least one layer with parameters");
  if (m.total_params() > kMaxModelParams)
    c.fail("layers", fmt::format("at most {:g} parameters in all", double(kMaxModelParams)),
           std::to_string(m.total_params()));
  if (const double f = m.fwd_flops_per_sample() + m.bwd_flops_per_sample(); f > kMaxModelFlops)
    c.fail("layers",
           fmt::format("at most {:g} FLOPs per sample in all (forward + backward)", kMaxModelFlops),
           fmt::format("{:g}", f));
  return m;
}

std::string resolve_model_path(const std::string& name_or_path) {
  if (name_or_path.empty()) throw UsageError("--model: give a model file or name, e.g. vgg16");
  const bool looks_like_path = name_or_path.find('/') != std::string::npos ||
                               name_or_path.ends_with(".yaml") || name_or_path.ends_with(".yml");
  if (looks_like_path) {
    if (!fs::exists(name_or_path))
      throw UsageError(fmt::format("--model {}: no such file", name_or_path));
    return name_or_path;
  }
  std::vector<fs::path> dirs;
  if (const char* root = std::getenv("FFB_ROOT");  // NOLINT(concurrency-mt-unsafe): start-up only
      root != nullptr && *root != '\0')
    dirs.emplace_back(fs::path(root) / "configs" / "models");
  dirs.emplace_back(fs::path("configs") / "models");
  dirs.emplace_back(fs::path(FFB_SOURCE_DIR) / "configs" / "models");
  for (const auto& d : dirs) {
    const auto p = d / (name_or_path + ".yaml");
    if (fs::exists(p)) return p.string();
  }
  throw UsageError(fmt::format(
      "--model {}: no configs/models/{}.yaml under $FFB_ROOT, the current directory or {}; give "
      "a path",
      name_or_path, name_or_path, FFB_SOURCE_DIR));
}

Model load_model(const std::string& name_or_path) {
  const auto path = resolve_model_path(name_or_path);
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("--model {}: cannot read {}", name_or_path, path));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_model(text.str(), path);
}

Model scaled(const Model& m, double param_scale, double compute_scale) {
  Model s = m;
  for (auto& l : s.layers) {
    if (l.params > 0)
      l.params = std::max<std::uint64_t>(
          1, static_cast<std::uint64_t>(std::ceil(static_cast<double>(l.params) * param_scale)));
    l.fwd_flops *= compute_scale;
    l.bwd_flops *= compute_scale;
  }
  return s;
}

std::vector<Bucket> plan_buckets(const Model& m, std::size_t elem_bytes, std::uint64_t bucket_bytes,
                                 std::uint64_t first_bucket_bytes) {
  std::vector<Bucket> out;
  Bucket open;
  bool has_open = false;
  std::uint64_t offset = 0;
  auto limit = [&]() {
    return out.empty() && first_bucket_bytes > 0 ? first_bucket_bytes : bucket_bytes;
  };
  for (int i = static_cast<int>(m.layers.size()) - 1; i >= 0; --i) {
    const auto& l = m.layers[static_cast<std::size_t>(i)];
    if (l.params == 0) continue;
    if (!has_open) {
      open = Bucket{};
      open.index = static_cast<int>(out.size());
      open.last_layer = i;
      open.offset = offset;
      has_open = true;
    }
    open.first_layer = i;
    open.params += l.params;
    if (open.params * elem_bytes >= limit()) {
      offset += open.params;
      out.push_back(open);
      has_open = false;
    }
  }
  if (has_open) out.push_back(open);
  return out;
}

std::vector<int> bucket_ready_after(const Model& m, const std::vector<Bucket>& buckets) {
  std::vector<int> ready(m.layers.size(), -1);
  for (const auto& b : buckets) ready[static_cast<std::size_t>(b.first_layer)] = b.index;
  return ready;
}

}  // namespace ffb::ddp
