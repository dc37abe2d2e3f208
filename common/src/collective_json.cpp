// The -J/--output_file document of a collective run and its atomic write (collective_json.h).
#include "collective_json.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <optional>
#include <stdexcept>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

#include <fmt/format.h>

#include "ffb/error.h"

namespace ffb {
namespace {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

constexpr int kNcclTestsJsonVersion = 3;  // the nccl-tests JSON format version followed
constexpr const char* kFormat = "ffbench-collective-json/1";

// nccl-tests writes its booleans as the strings "true" and "false".
const char* nccl_bool(bool b) { return b ? "true" : "false"; }

// ---- reading the run record ----

const Table* find_table(const RunRecord& record, const std::string& name) {
  for (const auto& t : record.tables)
    if (t.name == name) return &t;
  return nullptr;
}

const Column& column(const Table& t, const std::string& name) {
  for (const auto& c : t.columns)
    if (c.name == name) return c;
  throw std::logic_error(
      fmt::format("collective JSON: table '{}' has no column '{}'", t.name, name));
}

template <typename T>
const std::vector<T>& data_of(const Table& t, const std::string& name) {
  return std::get<std::vector<T>>(column(t, name).data);
}

// Row `row` of a column: its value, or the array of its `width` values (NaN is written as null).
ojson cell(const Column& c, std::size_t row) {
  return std::visit(
      [&](const auto& data) -> ojson {
        if (c.width <= 1) return ojson(data.at(row));
        ojson values = ojson::array();
        for (std::size_t k = 0; k < c.width; ++k) values.push_back(data.at(row * c.width + k));
        return values;
      },
      c.data);
}

std::vector<double> f64_row(const Table& t, const std::string& name, std::size_t row) {
  const auto& c = column(t, name);
  const auto& data = std::get<std::vector<double>>(c.data);
  const auto first = data.begin() + static_cast<std::ptrdiff_t>(row * c.width);
  return {first, first + static_cast<std::ptrdiff_t>(c.width)};
}

ojson attr_json(const AttrValue& v) {
  return std::visit([](const auto& x) { return ojson(x); }, v);
}

// ---- nccl-tests' keys ----

// nccl-tests' -I statistics of one placement's per-iteration times (us, slowest rank per
// iteration, as nccl-tests' times_us): nearest-rank percentiles (p50 the element n/2 of the
// sorted times, pQ the element ceil(n Q / 100) - 1), population standard deviation.
ojson per_iter_json(const std::vector<double>& times) {
  ojson j;
  j["skipped_iterations"] = 0;
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t n = sorted.size();
  if (n > 0) {
    const auto at_percent = [&](std::size_t q) {
      return sorted[std::min(n - 1, (n * q + 99) / 100 - 1)];
    };
    double sum = 0;
    for (double x : sorted) sum += x;
    const double avg = sum / static_cast<double>(n);
    double var = 0;
    for (double x : sorted) var += (x - avg) * (x - avg);
    const double stdev = std::sqrt(var / static_cast<double>(n));
    j["min_us"] = sorted.front();
    j["max_us"] = sorted.back();
    j["avg_us"] = avg;
    j["p50_us"] = sorted[n / 2];
    j["p95_us"] = at_percent(95);
    j["p99_us"] = at_percent(99);
    j["stdev_us"] = stdev;
    j["cv_pct"] = avg > 0 ? stdev / avg * 100.0 : 0.0;
  }
  j["times_us"] = times;
  return j;
}

// nccl-tests' out_of_place / in_place object: time (us), alg_bw, bus_bw (GB/s), nwrong (a
// number, null when not validated).
ojson placement_json(const Table& t, std::size_t row, bool checked) {
  ojson j;
  j["time"] = data_of<double>(t, "time").at(row);
  j["alg_bw"] = data_of<double>(t, "algbw").at(row);
  j["bus_bw"] = data_of<double>(t, "busbw").at(row);
  if (checked)
    j["nwrong"] = static_cast<double>(data_of<std::int64_t>(t, "wrong").at(row));
  else
    j["nwrong"] = nullptr;
  return j;
}

// Every column of the HDF5 table but the row's own keys: the placement's figures as stored.
ojson ffbench_placement_json(const Table& t, std::size_t row) {
  static constexpr std::array<std::string_view, 4> kRowKeys{"size", "count", "type", "redop"};
  ojson j;
  for (const auto& c : t.columns)
    if (std::find(kRowKeys.begin(), kRowKeys.end(), c.name) == kRowKeys.end())
      j[c.name] = cell(c, row);
  return j;
}

// One entry per printed row: the table has the row's out-of-place then its in-place result.
ojson results_json(const Table& t, const CollectiveOptions& opt) {
  const auto& placement = data_of<std::string>(t, "placement");
  if (t.rows() % 2 != 0)
    throw std::logic_error("collective JSON: the table does not hold placement pairs");
  ojson results = ojson::array();
  for (std::size_t i = 0; i < t.rows(); i += 2) {
    if (placement.at(i) != "out-of-place" || placement.at(i + 1) != "in-place")
      throw std::logic_error(
          fmt::format("collective JSON: rows {} and {} are no placement pair", i, i + 1));
    ojson e;
    e["size"] = data_of<std::int64_t>(t, "size").at(i);
    e["count"] = data_of<std::int64_t>(t, "count").at(i);
    e["type"] = data_of<std::string>(t, "type").at(i);
    e["redop"] = data_of<std::string>(t, "redop").at(i);
    e["root"] = fmt::format("{:6}", -1);  // nccl-tests writes the root as its printed cell
    ojson ours;
    for (std::size_t p = 0; p < 2; ++p) {
      const std::string key = p == 0 ? "out_of_place" : "in_place";
      e[key] = placement_json(t, i + p, opt.check);
      e[key + "_per_iter"] = per_iter_json(f64_row(t, "iter_time_max", i + p));
      ours[key] = ffbench_placement_json(t, i + p);
    }
    e["actual_iterations"] = opt.iters;
    e["experiment_name"] = opt.label;
    e["ffbench"] = std::move(ours);
    results.push_back(std::move(e));
  }
  return results;
}

ojson devices_json(const Table& ranks) {
  ojson devices = ojson::array();
  for (std::size_t r = 0; r < ranks.rows(); ++r) {
    const DeviceText d = split_device_text(data_of<std::string>(ranks, "device").at(r));
    ojson j;
    j["rank"] = data_of<std::int64_t>(ranks, "rank").at(r);
    j["group"] = 0;
    j["pid"] = data_of<std::int64_t>(ranks, "pid").at(r);
    j["hostname"] = data_of<std::string>(ranks, "host").at(r);
    j["device"] = d.index;
    j["device_hex"] = d.bus;
    j["device_info"] = d.name;
    devices.push_back(std::move(j));
  }
  return devices;
}

// nccl-tests' "config": one rank per process (nthreads 1, ngpus 1), no aggregation, graphs or
// misalignment; every iteration is timed (per_iter_timing).
ojson config_json(const CollectiveOptions& opt, const RunRecord& record) {
  ojson c;
  c["nthreads"] = 1;
  c["ngpus"] = 1;
  c["minimum_bytes"] = opt.min_bytes;
  c["maximum_bytes"] = opt.max_bytes;
  if (opt.step_factor > 1.0) {
    if (opt.step_factor == std::floor(opt.step_factor) && opt.step_factor < 1e15)
      c["step_factor"] = static_cast<std::uint64_t>(opt.step_factor);
    else
      c["step_factor"] = opt.step_factor;
  } else {
    c["step_bytes"] = opt.step_bytes;
  }
  c["warmup_iters"] = opt.warmup_iters;
  c["iterations"] = opt.iters;
  c["aggregated_iterations"] = 1;
  c["validation"] = opt.check ? 1 : 0;
  c["graph"] = 0;
  c["blocking_collectives"] = nccl_bool(opt.blocking);
  c["per_iter_timing"] = nccl_bool(true);
  c["per_iter_skip"] = 0;
  c["parallel_init"] = nccl_bool(false);
  const Table* ranks = find_table(record, "ranks");
  c["devices"] = ranks != nullptr ? devices_json(*ranks) : ojson::array();
  return c;
}

// nccl-tests lists the whole environment as "KEY=VALUE"; we list the variables that change
// results (the run's `environment` attribute), never credentials that happen to be exported.
ojson env_json(const RunRecord& record) {
  ojson env = ojson::array();
  const auto it = record.attrs.find("environment");
  if (it == record.attrs.end() || !std::holds_alternative<std::string>(it->second)) return env;
  const auto vars = nlohmann::json::parse(std::get<std::string>(it->second), nullptr, false);
  if (!vars.is_object()) return env;
  for (const auto& [key, value] : vars.items())
    if (value.is_string()) env.push_back(key + "=" + value.get<std::string>());
  return env;
}

// NCCL_VERSION_CODE (22803) of the nccl_version attribute ("2.28.3") an NCCL backend records.
std::optional<int> nccl_version_code(const RunRecord& record) {
  const auto it = record.attrs.find("nccl_version");
  if (it == record.attrs.end() || !std::holds_alternative<std::string>(it->second))
    return std::nullopt;
  // "MAJOR.MINOR.PATCH"
  const std::string& text = std::get<std::string>(it->second);
  std::array<int, 3> parts{};
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (std::size_t k = 0; k < parts.size(); ++k) {
    const auto [next, ec] = std::from_chars(p, end, parts[k]);
    if (ec != std::errc() || (k < 2 && (next == end || *next != '.'))) return std::nullopt;
    p = k < 2 ? next + 1 : next;
  }
  const int major = parts[0], minor = parts[1], patch = parts[2];
  return major * 10000 + minor * 100 + patch;
}

// ---- ffbench's keys ----

ojson bandwidth_or_null(double gbps, std::size_t values) {
  return values > 0 && std::isfinite(gbps) ? ojson(gbps) : ojson(nullptr);
}

ojson table_json(const Table& t) {
  ojson j;
  for (const auto& c : t.columns) {
    ojson col;
    col["units"] = c.units;
    col["values"] = std::visit([](const auto& data) { return ojson(data); }, c.data);
    j[c.name] = std::move(col);
  }
  return j;
}

ojson ffbench_json(const RunRecord& record, const Table& table, const JsonRunInfo& info) {
  ojson j;
  j["format"] = kFormat;
  const auto status = record.attrs.find("status");
  j["status"] = status != record.attrs.end() ? attr_json(status->second) : ojson(nullptr);
  const auto& avg = info.averages;
  ojson averages;
  averages["all_sizes"] = {{"bandwidth", bandwidth_or_null(avg.all, avg.all_values)},
                           {"values", avg.all_values}};
  averages["sizes_from_1mib"] = {{"min_bytes", BusbwAverages::kLargeBytes},
                                 {"bandwidth", bandwidth_or_null(avg.large, avg.large_values)},
                                 {"values", avg.large_values}};
  j["busbw_averages"] = std::move(averages);
  if (info.results_file.empty())
    j["results_file"] = nullptr;
  else
    j["results_file"] = {{"path", info.results_file}, {"run", info.results_run}};
  ojson units;
  for (const auto& c : table.columns) units[c.name] = c.units;
  j["units"] = std::move(units);
  ojson attrs;
  for (const auto& [key, value] : record.attrs) attrs[key] = attr_json(value);
  j["attrs"] = std::move(attrs);
  ojson tables;
  for (const auto& t : record.tables)
    if (t.name != "collective") tables[t.name] = table_json(t);
  j["tables"] = std::move(tables);
  return j;
}

// ---- the atomic write ----

std::string errno_text(int err) { return std::generic_category().message(err); }

[[noreturn]] void write_failed(const fs::path& path, const std::string& what, int err) {
  throw std::runtime_error(
      fmt::format("-J/--output_file {}: {}: {}", path.string(), what, errno_text(err)));
}

// The temporary: closed and removed on every path unless released after the rename.
class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  int fd() const { return fd_; }
  void close(const fs::path& target) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) write_failed(target, "close", errno);
  }
  void release() { path_.clear(); }

 private:
  std::string path_;
  int fd_;
};

void write_all(int fd, const std::string& text, const fs::path& target) {
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      write_failed(target, "write", errno);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

// The mode a plain create would give (0666 less the umask): mkstemp makes 0600.
mode_t creation_mode() {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return 0666 & ~mask;
}

}  // namespace

DeviceText split_device_text(const std::string& text) {
  DeviceText d;
  d.name = text;
  // "GPU<index> <name> [<bus id>]"
  if (!text.starts_with("GPU")) return d;
  std::size_t i = 3;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) != 0) ++i;
  const auto open = text.rfind(" [");
  if (i == 3 || i >= text.size() || text[i] != ' ' || open == std::string::npos || open < i ||
      text.back() != ']')
    return d;
  int index = -1;
  const auto [ptr, ec] = std::from_chars(text.data() + 3, text.data() + i, index);
  if (ec != std::errc() || ptr != text.data() + i) return d;
  d.index = index;
  d.name = open > i ? text.substr(i + 1, open - i - 1) : std::string();
  d.bus = text.substr(open + 2, text.size() - open - 3);
  return d;
}

std::string nccl_tests_time_now() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::array<char, 64> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S", &local);
  return buf.data();
}

nlohmann::ordered_json collective_json(const RunRecord& record, const CollectiveOptions& opt,
                                       const JsonRunInfo& info) {
  const Table* table = find_table(record, "collective");
  if (table == nullptr) throw std::logic_error("collective JSON: the run has no collective table");
  ojson doc;
  doc["version"] = kNcclTestsJsonVersion;
  doc["start_time"] = info.start_time;
  doc["args"] = info.argv;
  doc["env"] = env_json(record);
  if (const auto code = nccl_version_code(record)) doc["nccl_version"] = *code;
  doc["config"] = config_json(opt, record);
  doc["results"] = results_json(*table, opt);
  doc["out_of_bounds"] = {{"count", opt.check ? info.total_wrong : std::int64_t{-1}},
                          {"okay", nccl_bool(info.ok)}};
  const auto& avg = info.averages;
  // nccl-tests writes a NaN as the string "nan" (its mean over no rows).
  doc["average_bus_bandwidth"] = {{"bandwidth", avg.all_values > 0 ? ojson(avg.all) : ojson("nan")},
                                  {"okay", "unchecked"}};
  doc["errors"] = ojson::array();
  doc["end_time"] = info.end_time;
  doc["ffbench"] = ffbench_json(record, *table, info);
  return doc;
}

void check_json_name(const std::string& path, const std::string& hdf5_output) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext != ".json")
    throw UsageError(fmt::format(
        "-J/--output_file '{}': give a file name ending in .json (JSON is the only format "
        "written)",
        path));
  if (!hdf5_output.empty() &&
      fs::path(path).lexically_normal() == fs::path(hdf5_output).lexically_normal())
    throw UsageError(fmt::format(
        "-J/--output_file '{}': the same file as --output; give the JSON document a name of "
        "its own",
        path));
}

void check_json_output(const std::string& path, const std::string& hdf5_output) {
  check_json_name(path, hdf5_output);
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  const auto st = fs::status(dir, ec);
  if (!fs::exists(st))
    throw UsageError(fmt::format(
        "-J/--output_file '{}': directory '{}' does not exist; create it or give another path",
        path, dir.string()));
  if (!fs::is_directory(st))
    throw UsageError(fmt::format(
        "-J/--output_file '{}': '{}' is not a directory; give another path", path, dir.string()));
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw UsageError(fmt::format(
        "-J/--output_file '{}': cannot create files in '{}' ({}); give a writable directory", path,
        dir.string(), errno_text(errno)));
  if (fs::is_directory(fs::status(p, ec)))
    throw UsageError(fmt::format(
        "-J/--output_file '{}': is a directory; give a file name ending in .json", path));
  if (!hdf5_output.empty()) {
    std::error_code ec_json, ec_hdf5;
    const auto a = fs::weakly_canonical(p, ec_json);
    const auto b = fs::weakly_canonical(fs::path(hdf5_output), ec_hdf5);
    if (!ec_json && !ec_hdf5 && a == b)
      throw UsageError(fmt::format(
          "-J/--output_file '{}': the same file as --output; give the JSON document a name of "
          "its own",
          path));
  }
}

void write_json_atomically(const fs::path& path, const nlohmann::ordered_json& doc) {
  // Invalid UTF-8 (a host name, an argument) is replaced, never a reason to lose the run.
  const std::string text =
      doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::string tmp = (dir / ("." + path.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0)
    write_failed(path, fmt::format("cannot create a temporary in {}", dir.string()), errno);
  TempFile guard(tmp, fd);
  if (::fchmod(fd, creation_mode()) != 0) write_failed(path, "fchmod", errno);
  write_all(fd, text, path);
  if (::fsync(fd) != 0) write_failed(path, "fsync", errno);
  guard.close(path);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    write_failed(path, fmt::format("cannot rename {} over it", tmp), errno);
  guard.release();
  // Make the rename durable; a directory that cannot be opened or synced loses nothing written.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace ffb
