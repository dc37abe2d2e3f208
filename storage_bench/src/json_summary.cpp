#include "json_summary.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <sys/utsname.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ffb/error.h"
#include "ffb/provenance.h"

namespace sb {

namespace {

using nlohmann::json;

constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kKiB = 1024.0;

json value_of(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json attr_json(const ffb::AttrValue& v) {
  return std::visit(
      [](const auto& x) -> json {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, double>)
          return value_of(x);
        else
          return json(x);
      },
      v);
}

// One row object per table row, the columns as keys (2-D columns as lists).
json rows_of(const ffb::Table& t) {
  json rows = json::array();
  const std::size_t n = t.rows();
  for (std::size_t r = 0; r < n; ++r) {
    json row = json::object();
    for (const auto& c : t.columns)
      std::visit(
          [&](const auto& data) {
            if (c.width == 1) {
              if constexpr (std::is_same_v<std::decay_t<decltype(data)>, std::vector<double>>)
                row[c.name] = value_of(data[r]);
              else
                row[c.name] = data[r];
              return;
            }
            json cells = json::array();
            for (std::size_t k = 0; k < c.width; ++k) {
              if constexpr (std::is_same_v<std::decay_t<decltype(data)>, std::vector<double>>)
                cells.push_back(value_of(data[r * c.width + k]));
              else
                cells.push_back(data[r * c.width + k]);
            }
            row[c.name] = cells;
          },
          c.data);
    rows.push_back(std::move(row));
  }
  return rows;
}

const ffb::Table* find_table(const ffb::RunRecord& run, const std::string& name) {
  for (const auto& t : run.tables)
    if (t.name == name) return &t;
  return nullptr;
}

std::string attr_text(const ffb::RunRecord& run, const std::string& key) {
  const auto it = run.attrs.find(key);
  if (it == run.attrs.end()) return "";
  if (const auto* s = std::get_if<std::string>(&it->second)) return *s;
  return "";
}

std::string machine() {
  utsname u{};
  if (uname(&u) != 0) return "Unknown";
  return fmt::format("{} {}", u.sysname, u.nodename);
}

json null_to(const json& v, double fallback) { return v.is_null() ? json(fallback) : v; }

// IOR's per-repetition result entry for one phase row (bandwidth in MiB/s, latency in s).
json ior_result(const json& row, const json& opt) {
  json r = {{"access", row["phase"]},
            {"bwMiB", row["bw"].get<double>() * 1e9 / kMiB},
            {"iops", row["ops_rate"]},
            {"latency", row["lat_mean"].is_null() ? json(nullptr)
                                                  : json(row["lat_mean"].get<double>() * 1e-6)},
            {"wrRdTime", row["time_data"]},
            {"totalTime", row["time"]}};
  if (opt.contains("block")) r["blockKiB"] = opt["block"].get<double>() / kKiB;
  if (opt.contains("transfer")) r["xferKiB"] = opt["transfer"].get<double>() / kKiB;
  return r;
}

// IOR's statistics over repetitions: population standard deviation, as IOR computes it.
struct Stats {
  double max = 0, min = 0, mean = 0, sd = 0;
};
Stats stats_of(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  s.max = s.min = v.front();
  for (double x : v) {
    s.max = std::max(s.max, x);
    s.min = std::min(s.min, x);
    s.mean += x;
  }
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = std::sqrt(s.sd / static_cast<double>(v.size()));
  return s;
}

// IOR's "summary": one entry per phase name over its repetitions, in first-seen order.
json ior_summary(const json& phases, const json& params) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<double>> bw, ops, time, bytes;
  for (const auto& row : phases) {
    const std::string name = row["phase"];
    if (!bw.count(name)) order.push_back(name);
    bw[name].push_back(row["bw"].get<double>() * 1e9);
    ops[name].push_back(null_to(row["ops_rate"], 0.0).get<double>());
    time[name].push_back(row["time"].get<double>());
    bytes[name].push_back(row["bytes"].get<double>());
  }
  json out = json::array();
  for (const auto& name : order) {
    const Stats b = stats_of(bw[name]), o = stats_of(ops[name]), t = stats_of(time[name]);
    json e = {{"operation", name},
              {"API", params["api"]},
              {"TestID", 0},
              {"numTasks", params["numTasks"]},
              {"repetitions", bw[name].size()},
              {"bwMaxMIB", b.max / kMiB},
              {"bwMinMIB", b.min / kMiB},
              {"bwMeanMIB", b.mean / kMiB},
              {"bwStdMIB", b.sd / kMiB},
              {"OPsMax", o.max},
              {"OPsMin", o.min},
              {"OPsMean", o.mean},
              {"OPsSD", o.sd},
              {"MeanTime", t.mean},
              {"xsizeMiB", bytes[name].front() / kMiB}};
    for (const char* k : {"segmentCount", "blockSize", "transferSize", "filePerProc"})
      if (params.contains(k)) e[k] = params[k];
    out.push_back(std::move(e));
  }
  return out;
}

// IOR's test "Parameters", where storage_bench has the same quantity.
json ior_parameters(const ffb::RunRecord& run, const json& opt) {
  json p = {{"api", attr_text(run, "engine")},
            {"testFileName", attr_text(run, "job_dir")},
            {"repetitions", opt.value("repetitions", 1)},
            {"fsync", opt.value("fsync", false) ? 1 : 0},
            {"deadlineForStonewall", opt.value("stonewall_s", 0.0)},
            {"stoneWallingWearOut", opt.value("wearout", true) ? 1 : 0}};
  if (const auto it = run.attrs.find("nranks"); it != run.attrs.end())
    p["numTasks"] = attr_json(it->second);
  if (const auto it = run.attrs.find("nnodes"); it != run.attrs.end())
    p["nodes"] = attr_json(it->second);
  if (opt.contains("block")) {
    p["blockSize"] = opt["block"];
    p["transferSize"] = opt["transfer"];
    p["segmentCount"] = opt["segments"];
    p["filePerProc"] = opt["file_per_proc"].get<bool>() ? 1 : 0;
    p["randomOffset"] = opt["pattern"] == "random" ? 1 : 0;
  }
  return p;
}

json ior_results(const json& phases, const json& opt) {
  json results = json::array();
  for (const auto& row : phases) {
    const auto rep = row["rep"].get<std::size_t>();
    while (results.size() <= rep) results.push_back(json::array());
    results[rep].push_back(ior_result(row, opt));
  }
  return results;
}

// IOR's "max": the best write and read bandwidth in MiB/s and MB/s.
json ior_max(const json& phases) {
  json m = json::object();
  for (const char* access : {"write", "read"}) {
    double best = -1;
    for (const auto& row : phases)
      if (row["phase"] == access) best = std::max(best, row["bw"].get<double>() * 1e9);
    if (best < 0) continue;
    m[std::string(access) + "MiB"] = best / kMiB;
    m[std::string(access) + "MB"] = best / 1e6;
  }
  return m;
}

// Every run attribute; "options" (stored as JSON text) as an object.
json provenance_of(const ffb::RunRecord& run, json& options) {
  json prov = json::object();
  for (const auto& [key, value] : run.attrs) prov[key] = attr_json(value);
  if (prov.contains("options") && prov["options"].is_string())
    prov["options"] = options = json::parse(prov["options"].get<std::string>());
  return prov;
}

}  // namespace

json summary_json(const ffb::RunRecord& run) {
  json opt = json::object();
  json doc = json::object();
  const json prov = provenance_of(run, opt);
  static const std::pair<const char*, const char*> kTables[] = {{"phases", "storage_phases"},
                                                                {"ops", "storage_ops"},
                                                                {"ranks", "storage_ranks"},
                                                                {"latency", "storage_latency"},
                                                                {"metrics", "storage_metrics"}};
  json units = json::object();
  json ours = json::object();
  for (const auto& [key, table] : kTables) {
    const ffb::Table* t = find_table(run, table);
    ours[key] = t ? rows_of(*t) : json::array();
    json u = json::object();
    if (t)
      for (const auto& c : t->columns) u[c.name] = c.units;
    units[key] = u;
  }
  const json params = ior_parameters(run, opt);
  doc["Version"] = "storage_bench " + attr_text(run, "suite_version");
  doc["Began"] = attr_text(run, "date");
  doc["Command line"] = attr_text(run, "command_line");
  doc["Machine"] = machine();
  doc["tests"] = json::array({json{{"TestID", 0},
                                   {"StartTime", attr_text(run, "date")},
                                   {"Path", attr_text(run, "dir")},
                                   {"Parameters", params},
                                   {"Results", ior_results(ours["phases"], opt)},
                                   {"max", ior_max(ours["phases"])}}});
  doc["summary"] = ior_summary(ours["phases"], params);
  doc["Finished"] = ffb::iso8601_now();
  for (auto& [key, rows] : ours.items()) doc[key] = rows;
  doc["units"] = units;
  doc["provenance"] = prov;
  return doc;
}

void check_json_target(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw ffb::UsageError(
        fmt::format("{} {}: is a directory; give a file name for the JSON summary", flag, path));
  const fs::path dir =
      fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
  if (!fs::is_directory(dir, ec))
    throw ffb::UsageError(fmt::format(
        "{} {}: the directory {} does not exist; create it or give a path in an existing one", flag,
        path, dir.string()));
  if (::access(dir.c_str(), W_OK) != 0)
    throw ffb::UsageError(fmt::format(
        "{} {}: the directory {} is not writable; give a path in a directory you can write", flag,
        path, dir.string()));
}

namespace {

void write_all(int fd, const std::string& text, const std::string& what) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(fmt::format("{}: write: {}", what, std::strerror(errno)));
    done += static_cast<std::size_t>(n);
  }
}

// The temporary of an atomic write: removed unless commit() renamed it into place.
class TempFile {
 public:
  explicit TempFile(const std::string& target)
      : target_(target), path_(fmt::format("{}.tmp.{}", target, ::getpid())) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw std::runtime_error(fmt::format("--json {}: {}", path_, std::strerror(errno)));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  int fd() const { return fd_; }
  void commit() {
    if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
      fd_ = -1;
      throw std::runtime_error(fmt::format("--json {}: {}", path_, std::strerror(errno)));
    }
    fd_ = -1;
    if (::rename(path_.c_str(), target_.c_str()) != 0)
      throw std::runtime_error(
          fmt::format("--json {}: rename into place: {}", target_, std::strerror(errno)));
    committed_ = true;
  }

 private:
  std::string target_, path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void write_json_file(const std::string& path, const json& doc) {
  TempFile tmp(path);
  write_all(tmp.fd(), doc.dump(2) + "\n", "--json " + path);
  tmp.commit();
}

void write_json_fd(int fd, const json& doc) { write_all(fd, doc.dump(2) + "\n", "JSON summary"); }

}  // namespace sb
