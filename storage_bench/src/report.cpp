#include "report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "ffb/provenance.h"
#include "ffb/results.h"
#include "ffb/sizes.h"
#include "ffb/stats.h"
#include "fsutil.h"
#include "json_summary.h"
#include "options.h"

namespace sb {

namespace {

std::string rate_text(const PhaseResult& r, bool first) {
  if (r.spec.work_in_bytes)
    return fmt::format("{:.3f}", first ? r.gbps_first_done : r.gbps_last_done);
  return fmt::format("{:.0f}op/s", first ? r.ops_first_done : r.iops);
}

std::string cached_text(double f) { return f < 0 ? "-" : fmt::format("{:.0f}%", f * 100.0); }

std::string short_size(std::uint64_t b) { return ffb::format_size(b); }

}  // namespace

std::string Report::header_line() {
  return fmt::format(
      "{:<18} {:>3} {:>5} {:>12} {:>9} {:>9} {:>10} {:>11} {:>11} {:>10} {:>9} {:>9} {:>9} {:>6}  "
      "{}",
      "# phase", "rep", "ranks", "bytes", "time(s)", "GB/s", "GB/s-data", "first-done", "last-done",
      "ops/s", "p50(us)", "p99(us)", "p99.9(us)", "cached", "slowest rank");
}

std::string Report::row_of(const PhaseResult& r) {
  const OpSummary* m = r.op_summaries.empty() ? nullptr : &r.op_summaries.front();
  std::string flags;
  if (r.stonewalled) flags += " stonewall";
  if (r.suspect) flags += " SUSPECT";
  if (r.verify_errors) flags += fmt::format(" VERIFY-ERRORS={}", r.verify_errors);
  return fmt::format(
      "  {:<16} {:>3} {:>5} {:>12} {:>9.4f} {:>9.3f} {:>10.3f} {:>11} {:>11} {:>10.0f} {:>9.1f} "
      "{:>9.1f} {:>9.1f} {:>6}  {} ({}){}",
      r.spec.phase, r.spec.rep, r.active_ranks, short_size(r.bytes), r.time_ior, r.gbps_ior,
      r.gbps_data, rate_text(r, true), rate_text(r, false), r.iops, m ? m->p50_us : 0.0,
      m ? m->p99_us : 0.0, m ? m->p999_us : 0.0, cached_text(r.cache_resident), r.slowest_rank,
      r.slowest_host, flags);
}

void Report::preamble(const std::vector<std::string>& lines) {
  if (rank_ != 0) return;
  for (const auto& l : lines) std::printf("# %s\n", l.c_str());
  std::fflush(stdout);
}

void Report::note(const std::string& line) {
  if (rank_ != 0) return;
  notes_.push_back(line);
  std::printf("# %s\n", line.c_str());
  std::fflush(stdout);
}

void Report::add(PhaseResult r) {
  verify_errors_ += r.verify_errors;
  verify_checked_ += r.verify_checked;
  if (rank_ != 0) return;
  if (!header_printed_) {
    std::printf("%s\n", header_line().c_str());
    header_printed_ = true;
  }
  std::printf("%s\n", row_of(r).c_str());
  print_op_rows(r);
  if (per_rank_) print_rank_rows(r);
  for (const auto& m : r.metrics)
    std::printf("    %-30s %14.4f %s\n", (r.spec.phase + "." + m.name).c_str(), m.value,
                m.units.c_str());
  if (r.suspect) std::printf("# SUSPECT %s: %s\n", r.spec.phase.c_str(), r.suspect_why.c_str());
  if (r.verify_errors)
    std::printf("# VERIFY %s: %llu bad block(s); first: %s\n", r.spec.phase.c_str(),
                static_cast<unsigned long long>(r.verify_errors), r.verify_first.c_str());
  std::fflush(stdout);
  phases_.push_back(std::move(r));
}

void Report::summary(bool verify_requested) {
  if (rank_ != 0) return;
  // Over repetitions, per phase name: the bandwidth statistics IOR prints.
  std::map<std::string, std::vector<double>> bw, ops;
  std::vector<std::string> order;
  int max_rep = 0;
  for (const auto& p : phases_) {
    if (!bw.count(p.spec.phase)) order.push_back(p.spec.phase);
    bw[p.spec.phase].push_back(p.spec.work_in_bytes ? p.gbps_ior : 0.0);
    ops[p.spec.phase].push_back(p.iops);
    max_rep = std::max(max_rep, p.spec.rep);
  }
  if (max_rep > 0) {
    std::printf("# summary over repetitions (GB/s: IOR semantics; ops/s)\n");
    std::printf("%-18s %6s %10s %10s %10s %10s %12s %12s\n", "# phase", "reps", "GB/s-max",
                "GB/s-min", "GB/s-mean", "GB/s-p50", "ops/s-mean", "ops/s-p50");
    for (const auto& name : order) {
      const auto sb = ffb::summarize(bw[name]);
      const auto so = ffb::summarize(ops[name]);
      std::printf("  %-16s %6zu %10.3f %10.3f %10.3f %10.3f %12.0f %12.0f\n", name.c_str(), sb.n,
                  sb.max, sb.min, sb.mean, sb.p50, so.mean, so.p50);
    }
  }
  std::string verdict;
  if (verify_errors_ > 0)
    verdict = fmt::format("{} bad block(s) of {} checked: FAILED", verify_errors_, verify_checked_);
  else if (verify_checked_ > 0)
    verdict = fmt::format("0 errors in {} block(s) checked", verify_checked_);
  else if (verify_requested)
    verdict = "nothing was read back, so nothing was checked";
  else
    verdict = "off (no --verify): nothing was checked";
  std::printf("# verify: %s\n", verdict.c_str());
  std::fflush(stdout);
}

// Extra rows for phases with several operation types (kvcache: read, write, delete).
void Report::print_op_rows(const PhaseResult& r) const {
  std::size_t used = 0;
  for (const auto& s : r.op_summaries) used += s.ops > 0 ? 1 : 0;
  if (used <= 1 && !(r.op_summaries.size() > 1 && r.op_summaries.front().ops == 0)) return;
  for (const auto& s : r.op_summaries) {
    if (s.ops == 0) continue;
    std::printf("%s\n", fmt::format("    {:<14} {:>3} {:>5} {:>12} {:>9} {:>9.3f} {:>10} {:>11} "
                                    "{:>11} {:>10.0f} {:>9.1f} {:>9.1f} {:>9.1f}",
                                    "." + s.op, r.spec.rep, "", short_size(s.bytes), "", s.gbps, "",
                                    "", "", s.iops, s.p50_us, s.p99_us, s.p999_us)
                            .c_str());
  }
}

void Report::print_rank_rows(const PhaseResult& r) const {
  for (const auto& rr : r.ranks)
    std::printf(
        "%s\n",
        fmt::format("    rank {:<5} {:<16} {:>12} open {:.4f} first {:.4f} last {:.4f} close "
                    "{:.4f} s  {:.3f} GB/s  p50 {:.1f} us  p99 {:.1f} us{}",
                    rr.rank, rr.host, short_size(rr.bytes), rr.t_open, rr.t_first, rr.t_last,
                    rr.t_close, rr.gbps, rr.p50_us, rr.p99_us, rr.active ? "" : "  (inactive)")
            .c_str());
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

const OpSummary* main_op(const PhaseResult& p) {
  return p.op_summaries.empty() ? nullptr : &p.op_summaries.front();
}

// The bandwidth and rate columns of storage_phases: a first-done rate is in bytes or in
// operations, never both (the other is NaN).
void add_phase_rates(ffb::Table& t, const std::vector<PhaseResult>& phases) {
  auto& bw = t.add_f64("bw", "GB/s");
  auto& bw_data = t.add_f64("bw_data", "GB/s");
  auto& bw_first = t.add_f64("bw_first_done", "GB/s");
  auto& bw_last = t.add_f64("bw_last_done", "GB/s");
  auto& iops = t.add_f64("ops_rate", "ops/s");
  auto& iops_first = t.add_f64("ops_rate_first_done", "ops/s");
  for (const auto& p : phases) {
    bw.push_back(p.gbps_ior);
    bw_data.push_back(p.gbps_data);
    bw_first.push_back(p.spec.work_in_bytes ? p.gbps_first_done : kNaN);
    bw_last.push_back(p.gbps_last_done);
    iops.push_back(p.iops);
    iops_first.push_back(p.spec.work_in_bytes ? kNaN : p.ops_first_done);
  }
}

// The main operation's latency columns of storage_phases (NaN for a phase without operations).
void add_phase_latency(ffb::Table& t, const std::vector<PhaseResult>& phases) {
  auto& op = t.add_str("main_op");
  auto& mean = t.add_f64("lat_mean", "us");
  auto& p50 = t.add_f64("lat_p50", "us");
  auto& p99 = t.add_f64("lat_p99", "us");
  auto& p999 = t.add_f64("lat_p999", "us");
  auto& max = t.add_f64("lat_max", "us");
  for (const auto& p : phases) {
    const OpSummary* m = main_op(p);
    op.push_back(m ? m->op : "");
    mean.push_back(m ? m->mean_us : kNaN);
    p50.push_back(m ? m->p50_us : kNaN);
    p99.push_back(m ? m->p99_us : kNaN);
    p999.push_back(m ? m->p999_us : kNaN);
    max.push_back(m ? m->max_us : kNaN);
  }
}

// The run's attributes beside the provenance: what ran, where, and the file system's facts.
void add_run_attrs(ffb::RunRecord& run, const RunFacts& facts, const std::string& status,
                   std::uint64_t verify_errors, const std::vector<std::string>& notes) {
  const auto& o = facts.opt;
  const auto& fs = facts.fs;
  const auto i64 = [](auto v) { return static_cast<std::int64_t>(v); };
  auto& a = run.attrs;
  a["label"] = o.common.label;
  a["options"] = o.to_json().dump();
  a["status"] = status;
  a["workload"] = std::string(name_of(o.workload));
  a["engine"] = std::string(name_of(o.common.engine));
  a["qd"] = i64(o.common.qd);
  a["odirect"] = i64(o.common.odirect);
  a["dir"] = fs.path;
  a["job_dir"] = facts.job_dir;
  a["fs_type"] = fs.fs_type;
  a["fs_magic"] = fs.fs_magic;
  a["mount_point"] = fs.mount_point;
  a["mount_options"] = fs.mount_options;
  a["device"] = fs.device;
  a["fs_total_bytes"] = i64(fs.total_bytes);
  a["fs_free_bytes"] = i64(fs.free_bytes);
  a["page_cache_bytes"] = i64(fs.page_cache_bytes);
  a["mem_total_bytes"] = i64(fs.mem_total_bytes);
  a["dio_mem_align"] = i64(fs.dio_mem_align);
  a["dio_offset_align"] = i64(fs.dio_offset_align);
  a["dio_supported"] = i64(fs.dio_supported);
  a["read_shift"] = i64(facts.read_shift);
  const auto& mem = facts.node_mem_gbps;
  a["node_mem_bw_gbps"] = mem.empty() ? 0.0 : *std::min_element(mem.begin(), mem.end());
  a["node_mem_bw_size_rule"] = facts.node_mem_rule;
  a["verify_errors"] = i64(verify_errors);
  a["histogram_max_relative_error"] = ffb::LogLinearHistogram::max_relative_error();
  a["notes"] = notes;
}

}  // namespace

ffb::Table phases_table(const std::vector<PhaseResult>& phases) {
  ffb::Table t;
  t.name = "storage_phases";
  auto& workload = t.add_str("workload");
  auto& phase = t.add_str("phase");
  auto& rep = t.add_i64("rep", "1");
  auto& ranks = t.add_i64("ranks", "count");
  auto& bytes = t.add_i64("bytes", "B");
  auto& ops = t.add_i64("ops", "count");
  auto& t_ior = t.add_f64("time", "s");
  auto& t_data = t.add_f64("time_data", "s");
  auto& t_first = t.add_f64("time_first_done", "s");
  for (const auto& p : phases) {
    workload.push_back(p.spec.workload);
    phase.push_back(p.spec.phase);
    rep.push_back(p.spec.rep);
    ranks.push_back(p.active_ranks);
    bytes.push_back(static_cast<std::int64_t>(p.bytes));
    ops.push_back(static_cast<std::int64_t>(p.ops));
    t_ior.push_back(p.time_ior);
    t_data.push_back(p.time_data);
    t_first.push_back(p.time_first_done);
  }
  add_phase_rates(t, phases);
  add_phase_latency(t, phases);
  auto& cached = t.add_f64("cache_resident", "1");
  auto& suspect = t.add_i64("suspect", "1");
  auto& verr = t.add_i64("verify_errors", "count");
  auto& sw = t.add_i64("stonewalled", "1");
  auto& slow_r = t.add_i64("slowest_rank", "1");
  auto& slow_h = t.add_str("slowest_host");
  for (const auto& p : phases) {
    cached.push_back(p.cache_resident < 0 ? kNaN : p.cache_resident);
    suspect.push_back(p.suspect);
    verr.push_back(static_cast<std::int64_t>(p.verify_errors));
    sw.push_back(p.stonewalled);
    slow_r.push_back(p.slowest_rank);
    slow_h.push_back(p.slowest_host);
  }
  return t;
}

ffb::Table ops_table(const std::vector<PhaseResult>& phases) {
  ffb::Table t;
  t.name = "storage_ops";
  auto& pi = t.add_i64("phase_index", "1");
  auto& op = t.add_str("op");
  auto& n = t.add_i64("ops", "count");
  auto& b = t.add_i64("bytes", "B");
  auto& bw = t.add_f64("bw", "GB/s");
  auto& rate = t.add_f64("ops_rate", "ops/s");
  auto& lm = t.add_f64("lat_mean", "us");
  auto& l50 = t.add_f64("lat_p50", "us");
  auto& l99 = t.add_f64("lat_p99", "us");
  auto& l999 = t.add_f64("lat_p999", "us");
  auto& lmax = t.add_f64("lat_max", "us");
  for (std::size_t i = 0; i < phases.size(); ++i)
    for (const auto& s : phases[i].op_summaries) {
      pi.push_back(static_cast<std::int64_t>(i));
      op.push_back(s.op);
      n.push_back(static_cast<std::int64_t>(s.ops));
      b.push_back(static_cast<std::int64_t>(s.bytes));
      bw.push_back(s.gbps);
      rate.push_back(s.iops);
      lm.push_back(s.mean_us);
      l50.push_back(s.p50_us);
      l99.push_back(s.p99_us);
      l999.push_back(s.p999_us);
      lmax.push_back(s.max_us);
    }
  return t;
}

ffb::Table ranks_table(const std::vector<PhaseResult>& phases) {
  ffb::Table t;
  t.name = "storage_ranks";
  auto& pi = t.add_i64("phase_index", "1");
  auto& r = t.add_i64("rank", "1");
  auto& h = t.add_str("host");
  auto& act = t.add_i64("active", "1");
  auto& to = t.add_f64("t_open", "s");
  auto& tf = t.add_f64("t_first", "s");
  auto& tl = t.add_f64("t_last", "s");
  auto& tc = t.add_f64("t_close", "s");
  auto& b = t.add_i64("bytes", "B");
  auto& n = t.add_i64("ops", "count");
  auto& bw = t.add_f64("bw", "GB/s");
  auto& l50 = t.add_f64("lat_p50", "us");
  auto& l99 = t.add_f64("lat_p99", "us");
  for (std::size_t i = 0; i < phases.size(); ++i)
    for (const auto& row : phases[i].ranks) {
      pi.push_back(static_cast<std::int64_t>(i));
      r.push_back(row.rank);
      h.push_back(row.host);
      act.push_back(row.active);
      to.push_back(row.t_open);
      tf.push_back(row.t_first);
      tl.push_back(row.t_last);
      tc.push_back(row.t_close);
      b.push_back(static_cast<std::int64_t>(row.bytes));
      n.push_back(static_cast<std::int64_t>(row.ops));
      bw.push_back(row.gbps);
      l50.push_back(row.p50_us);
      l99.push_back(row.p99_us);
    }
  return t;
}

ffb::Table latency_table(const std::vector<PhaseResult>& phases) {
  ffb::Table t;
  t.name = "storage_latency";
  auto& pi = t.add_i64("phase_index", "1");
  auto& op = t.add_str("op");
  auto& lo = t.add_i64("bucket_low", "ns");
  auto& hi = t.add_i64("bucket_high", "ns");
  auto& cnt = t.add_i64("count", "count");
  for (std::size_t i = 0; i < phases.size(); ++i)
    for (const auto& s : phases[i].op_summaries) {
      const auto& c = s.hist.counts();
      for (std::size_t b = 0; b < c.size(); ++b) {
        if (!c[b]) continue;
        pi.push_back(static_cast<std::int64_t>(i));
        op.push_back(s.op);
        lo.push_back(static_cast<std::int64_t>(ffb::LogLinearHistogram::bucket_low(b)));
        hi.push_back(static_cast<std::int64_t>(ffb::LogLinearHistogram::bucket_high(b)));
        cnt.push_back(static_cast<std::int64_t>(c[b]));
      }
    }
  return t;
}

ffb::Table metrics_table(const std::vector<PhaseResult>& phases) {
  ffb::Table t;
  t.name = "storage_metrics";
  auto& pi = t.add_i64("phase_index", "1");
  auto& name = t.add_str("name");
  auto& value = t.add_f64("value", "see units column");
  auto& units = t.add_str("units");
  for (std::size_t i = 0; i < phases.size(); ++i)
    for (const auto& m : phases[i].metrics) {
      pi.push_back(static_cast<std::int64_t>(i));
      name.push_back(m.name);
      value.push_back(m.value);
      units.push_back(m.units);
    }
  return t;
}

ffb::RunRecord Report::record(MPI_Comm comm, const ffb::Topology& topo, const RunFacts& facts,
                              const std::string& status) const {
  ffb::RunRecord run;
  ffb::add_provenance(run, comm, topo, "storage_bench", "storage", facts.opt.argv);
  if (rank_ != 0) return run;
  add_run_attrs(run, facts, status, verify_errors_, notes_);
  for (auto* make : {phases_table, ops_table, ranks_table, latency_table, metrics_table})
    run.tables.push_back(make(phases_));
  return run;
}

void Report::write_results(MPI_Comm comm, const ffb::Topology& topo, const RunFacts& facts,
                           const std::string& status, const ResultTargets& to) const {
  const ffb::RunRecord run = record(comm, topo, facts, status);
  if (rank_ != 0) return;
  if (!to.hdf5.empty()) {
    const std::string id = ffb::append_run(to.hdf5, run);
    std::printf("# results: %s run %s\n", to.hdf5.c_str(), id.c_str());
    std::fflush(stdout);
  }
  if (!to.json_path.empty() || to.json_fd >= 0) {
    const nlohmann::json doc = summary_json(run);
    if (!to.json_path.empty()) write_json_file(to.json_path, doc);
    if (to.json_fd >= 0) write_json_fd(to.json_fd, doc);
  }
}

}  // namespace sb
