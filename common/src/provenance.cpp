#include "ffb/provenance.h"

#include <array>
#include <ctime>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ffb/cpu.h"
#include "ffb/features.h"  // generated: the optional features this build has
#include "ffb/link_rate.h"

extern char** environ;  // NOLINT: POSIX

namespace ffb {

std::string iso8601_now() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::array<char, 64> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%S%z", &local);
  const std::string s(buf.data());
  if (s.size() < 5) return s;
  return s.substr(0, s.size() - 2) + ":" + s.substr(s.size() - 2);  // +0000 -> +00:00
}

std::string relevant_environment_json() {
  static constexpr std::array<std::string_view, 7> prefixes{
      "OMPI_MCA_", "NCCL_", "HFREDUCE_", "FFB_", "UCX_", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"};
  static constexpr std::array<std::string_view, 9> slurm_keys{
      "SLURM_JOB_ID",        "SLURM_STEP_ID",      "SLURM_ARRAY_JOB_ID",
      "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NODELIST", "SLURM_NTASKS",
      "SLURM_JOB_NUM_NODES", "SLURM_CLUSTER_NAME", "SLURM_JOB_PARTITION"};
  nlohmann::json env = nlohmann::json::object();
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    const auto key = kv.substr(0, eq);
    bool keep = false;
    for (auto p : prefixes) keep = keep || key.starts_with(p);
    for (auto k : slurm_keys) keep = keep || key == k;
    if (keep) env[std::string(key)] = std::string(kv.substr(eq + 1));
  }
  return env.dump();
}

std::string join_command_line(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && a.find_first_not_of(
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789-_./=:,+@%") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

void add_provenance(RunRecord& run, MPI_Comm comm, const Topology& topo, const std::string& program,
                    const std::string& kind, const std::vector<std::string>& argv,
                    const std::string& device_of_this_rank) {
  const auto pids = allgather_strings(comm, std::to_string(getpid()));
  const auto devices = allgather_strings(comm, device_of_this_rank);
  auto& a = run.attrs;
  a["program"] = program;
  a["kind"] = kind;
  a["suite_version"] = std::string(FFB_VERSION);
  a["git_commit"] = std::string(FFB_GIT_COMMIT);
  a["features"] = std::string(FFB_FEATURES);
  a["date"] = iso8601_now();
  a["command_line"] = join_command_line(argv);
  a["hosts"] = topo.hosts;
  a["nranks"] = static_cast<std::int64_t>(topo.size);
  a["nnodes"] = static_cast<std::int64_t>(topo.nnodes());
  a["ranks_per_node"] = topo.ranks_per_node_text();
  a["mpi_library_version"] = mpi_library_version();
  a["cpu_model"] = cpu_model();
  a["simd_level"] = std::string(name_of(detect_simd_level()));
  a["environment"] = relevant_environment_json();
  const LinkRate link = detect_link_rate();  // this rank's view; rank 0's is the one written
  if (link.gbit) a["link_rate_gbit"] = *link.gbit;
  a["link_rate_source"] = link.source;
  if (!a.contains("label")) a["label"] = std::string();
  if (!a.contains("status")) a["status"] = std::string("complete");

  Table ranks{.name = "ranks", .columns = {}};
  auto& rank = ranks.add_i64("rank", "1");
  auto& host = ranks.add_str("host");
  auto& pid = ranks.add_i64("pid", "1");
  auto& node = ranks.add_i64("node", "1");
  auto& device = ranks.add_str("device");
  for (int r = 0; r < topo.size; ++r) {
    rank.push_back(r);
    host.push_back(topo.hosts[r]);
    pid.push_back(std::stoll(pids[r]));
    node.push_back(topo.node_of_rank[r]);
    device.push_back(devices[r]);
  }
  run.tables.push_back(std::move(ranks));
}

}  // namespace ffb
