#include "phase.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "context.h"
#include "engine.h"
#include "ffb/mpi_env.h"

namespace sb {

namespace {
constexpr double kTimelineStep = 1e-3;  // seconds between timeline points
}

RankPhase::RankPhase(const PhaseSpec& spec) : spec_(spec), ops_(spec.ops.size()) {
  if (spec_.op_is_read.size() != spec_.ops.size()) spec_.op_is_read.resize(spec_.ops.size(), false);
}

void RankPhase::start() {
  base_ = now_s();
  timeline_.clear();
  timeline_.emplace_back(0.0, 0.0);
  committed_ = 0.0;
  tail_ = false;
}

void RankPhase::mark_open(double t) { t_open = std::min(t_open, rel(t)); }
void RankPhase::mark_close(double t) { t_close = std::max(t_close, rel(t)); }

void RankPhase::record(std::size_t op, double start, double complete, std::uint64_t bytes) {
  OpStats& s = ops_[op];
  const double lat = std::max(0.0, complete - start);
  s.lat.record(static_cast<std::uint64_t>(std::llround(lat * 1e9)));
  ++s.ops;
  s.bytes += bytes;
  const double rs = rel(start), rc = rel(complete);
  t_first = std::min(t_first, rs);
  t_last = std::max(t_last, rc);
  work_ += spec_.work_in_bytes ? static_cast<double>(bytes) : 1.0;
  // Points at least kTimelineStep apart, plus a moving tail point holding the latest completion.
  if (rc - committed_ >= kTimelineStep) {
    if (tail_)
      timeline_.back() = {rc, work_};
    else
      timeline_.emplace_back(rc, work_);
    committed_ = rc;
    tail_ = false;
  } else if (tail_) {
    timeline_.back() = {std::max(rc, timeline_.back().first), work_};
  } else {
    timeline_.emplace_back(std::max(rc, timeline_.back().first), work_);
    tail_ = true;
  }
}

void RankPhase::verify_failed(const std::string& what) {
  if (verify_errors == 0) verify_first = what;
  ++verify_errors;
}

std::uint64_t RankPhase::total_bytes() const {
  std::uint64_t b = 0;
  for (const auto& o : ops_) b += o.bytes;
  return b;
}

std::uint64_t RankPhase::total_ops() const {
  std::uint64_t n = 0;
  for (const auto& o : ops_) n += o.ops;
  return n;
}

double RankPhase::work_by(double t) const {
  if (timeline_.empty()) return 0.0;
  if (t >= timeline_.back().first) return work_;
  auto it = std::upper_bound(timeline_.begin(), timeline_.end(), t,
                             [](double v, const auto& p) { return v < p.first; });
  if (it == timeline_.begin()) return 0.0;
  const auto& [t1, w1] = *it;
  const auto& [t0, w0] = *(it - 1);
  if (t1 <= t0) return w1;
  return w0 + (w1 - w0) * (t - t0) / (t1 - t0);
}

namespace {

constexpr int kFields = 16;  // one rank's row as gathered on rank 0
constexpr double kInf = std::numeric_limits<double>::infinity();

// Per-rank row: fill missing marks from the operation times.
void fill_missing_marks(RankPhase& mine) {
  if (mine.t_first > 1e299) mine.t_first = 0.0;
  if (mine.t_last < -1e299) mine.t_last = mine.t_first;
  if (mine.t_open > 1e299) mine.t_open = mine.t_first;
  if (mine.t_close < -1e299) mine.t_close = mine.t_last;
  mine.t_open = std::min(mine.t_open, mine.t_first);
  mine.t_close = std::max(mine.t_close, mine.t_last);
}

// Every rank's row on rank 0 (kFields doubles per rank; empty elsewhere).
std::vector<double> gather_rows(MPI_Comm comm, int rank, int size, RankPhase& mine) {
  const PhaseSpec& spec = mine.spec();
  std::uint64_t read_bytes = 0;
  for (std::size_t i = 0; i < spec.ops.size(); ++i)
    if (spec.op_is_read[i]) read_bytes += mine.op(i).bytes;
  const auto& main_lat = mine.op(0).lat;
  const double row[kFields] = {mine.active ? 1.0 : 0.0,
                               mine.t_open,
                               mine.t_first,
                               mine.t_last,
                               mine.t_close,
                               static_cast<double>(mine.total_bytes()),
                               static_cast<double>(mine.total_ops()),
                               static_cast<double>(read_bytes),
                               static_cast<double>(mine.verify_errors),
                               static_cast<double>(mine.res_sampled),
                               static_cast<double>(mine.res_resident),
                               mine.residency_measured ? 1.0 : 0.0,
                               mine.stonewalled ? 1.0 : 0.0,
                               main_lat.percentile(50) / 1e3,
                               main_lat.percentile(99) / 1e3,
                               0.0};
  std::vector<double> rows(rank == 0 ? static_cast<std::size_t>(kFields * size) : 0);
  MPI_Gather(row, kFields, MPI_DOUBLE, rank == 0 ? rows.data() : nullptr, kFields, MPI_DOUBLE, 0,
             comm);
  return rows;
}

// First done: the work of all ranks when the fastest active rank closed (rank 0 gets the sum).
struct FirstDone {
  double t0 = 0, first_close = 0, work = 0;
};
FirstDone first_done(MPI_Comm comm, const RankPhase& mine) {
  FirstDone f;
  const double local_open = mine.active ? mine.t_open : kInf;
  const double local_close = mine.active ? mine.t_close : kInf;
  MPI_Allreduce(&local_open, &f.t0, 1, MPI_DOUBLE, MPI_MIN, comm);
  MPI_Allreduce(&local_close, &f.first_close, 1, MPI_DOUBLE, MPI_MIN, comm);
  const double my_work =
      mine.active && std::isfinite(f.first_close) ? mine.work_by(f.first_close) : 0.0;
  MPI_Reduce(&my_work, &f.work, 1, MPI_DOUBLE, MPI_SUM, 0, comm);
  return f;
}

// Verify errors: totals everywhere, the first message from the lowest failing rank.
void merge_verify(MPI_Comm comm, const ffb::Topology& topo, const RankPhase& mine, PhaseResult& r) {
  const std::uint64_t verr[2] = {mine.verify_errors, mine.verify_checked};
  std::uint64_t verr_all[2] = {0, 0};
  MPI_Allreduce(verr, verr_all, 2, MPI_UINT64_T, MPI_SUM, comm);
  r.verify_errors = verr_all[0];
  r.verify_checked = verr_all[1];
  if (r.verify_errors == 0) return;
  const auto msgs = ffb::allgather_strings(comm, mine.verify_first);
  for (std::size_t i = 0; i < msgs.size(); ++i)
    if (!msgs[i].empty()) {
      r.verify_first = fmt::format("rank {} ({}): {}", i, topo.hosts[i], msgs[i]);
      break;
    }
}

// Histograms per operation type, merged exactly on rank 0.
void merge_histograms(MPI_Comm comm, RankPhase& mine, PhaseResult& r) {
  const PhaseSpec& spec = mine.spec();
  for (std::size_t i = 0; i < spec.ops.size(); ++i) {
    OpSummary s;
    s.op = spec.ops[i];
    s.hist = mine.op(i).lat;
    s.hist.reduce(comm, 0);
    std::uint64_t b = mine.op(i).bytes, bsum = 0;
    MPI_Reduce(&b, &bsum, 1, MPI_UINT64_T, MPI_SUM, 0, comm);
    s.bytes = bsum;
    s.ops = s.hist.count();
    r.op_summaries.push_back(std::move(s));
  }
}

// Rank 0: the rank rows into r (totals, active ranks, slowest rank) and the phase's time span.
struct Span {
  double t_open = kInf, t_first = kInf, t_last = -kInf, t_close = -kInf;
  double res_sampled = 0, res_resident = 0;
  int measured = 0;
  std::vector<double> node_read;  // bytes read per node
};
RankRow rank_row(const double* x, int rank, const std::string& host) {
  RankRow rr;
  rr.rank = rank;
  rr.host = host;
  rr.active = x[0] > 0 ? 1 : 0;
  rr.t_open = x[1];
  rr.t_first = x[2];
  rr.t_last = x[3];
  rr.t_close = x[4];
  rr.bytes = static_cast<std::uint64_t>(x[5]);
  rr.ops = static_cast<std::uint64_t>(x[6]);
  rr.gbps = rr.t_close > rr.t_open ? x[5] / (rr.t_close - rr.t_open) / 1e9 : 0.0;
  rr.p50_us = x[13];
  rr.p99_us = x[14];
  return rr;
}
Span merge_rows(const ffb::Topology& topo, const std::vector<double>& rows, PhaseResult& r) {
  Span sp;
  sp.node_read.assign(static_cast<std::size_t>(topo.nnodes()), 0.0);
  double slowest = -kInf;
  for (int i = 0; i < topo.size; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const double* x = &rows[u * kFields];
    const RankRow rr = rank_row(x, i, topo.hosts[u]);
    r.ranks.push_back(rr);
    r.bytes += rr.bytes;
    r.ops += rr.ops;
    sp.res_sampled += x[9];
    sp.res_resident += x[10];
    sp.measured += x[11] > 0 ? 1 : 0;
    r.stonewalled |= x[12] > 0 ? 1 : 0;
    if (!rr.active) continue;
    ++r.active_ranks;
    sp.t_open = std::min(sp.t_open, rr.t_open);
    sp.t_first = std::min(sp.t_first, rr.t_first);
    sp.t_last = std::max(sp.t_last, rr.t_last);
    sp.t_close = std::max(sp.t_close, rr.t_close);
    if (rr.t_close - rr.t_open > slowest) {
      slowest = rr.t_close - rr.t_open;
      r.slowest_rank = i;
      r.slowest_host = rr.host;
    }
    sp.node_read[static_cast<std::size_t>(topo.node_of_rank[u])] += x[7];
  }
  return sp;
}

// Rank 0: times, bandwidths, rates and the per-operation statistics.
void compute_rates(const Span& sp, const FirstDone& fd, bool work_in_bytes, PhaseResult& r) {
  r.time_ior = std::max(0.0, sp.t_close - sp.t_open);
  r.time_data = std::max(0.0, sp.t_last - sp.t_first);
  r.time_first_done = std::max(0.0, fd.first_close - fd.t0);
  const double bytes = static_cast<double>(r.bytes), ops = static_cast<double>(r.ops);
  if (r.time_ior > 0) {
    r.gbps_ior = bytes / r.time_ior / 1e9;
    r.gbps_last_done = r.gbps_ior;
    r.iops = ops / r.time_ior;
  }
  if (r.time_data > 0) r.gbps_data = bytes / r.time_data / 1e9;
  if (r.time_first_done > 0) {
    if (work_in_bytes)
      r.gbps_first_done = fd.work / r.time_first_done / 1e9;
    else
      r.ops_first_done = fd.work / r.time_first_done;
  }
  for (auto& s : r.op_summaries) {
    if (r.time_ior > 0) {
      s.gbps = static_cast<double>(s.bytes) / r.time_ior / 1e9;
      s.iops = static_cast<double>(s.ops) / r.time_ior;
    }
    s.mean_us = s.hist.mean() / 1e3;
    s.p50_us = s.hist.percentile(50) / 1e3;
    s.p99_us = s.hist.percentile(99) / 1e3;
    s.p999_us = s.hist.percentile(99.9) / 1e3;
    s.max_us = static_cast<double>(s.hist.max()) / 1e3;
  }
  if (sp.measured > 0 && sp.res_sampled > 0) r.cache_resident = sp.res_resident / sp.res_sampled;
}

// A node reading faster than its memory can copy did not read from storage.
void flag_suspect(const ffb::Topology& topo, const std::vector<double>& node_mem_gbps,
                  const std::vector<double>& node_read, PhaseResult& r) {
  for (std::size_t n = 0; n < node_read.size(); ++n) {
    if (node_read[n] <= 0 || r.time_ior <= 0 || n >= node_mem_gbps.size()) continue;
    const double rate = node_read[n] / r.time_ior / 1e9;
    if (node_mem_gbps[n] <= 0 || rate <= node_mem_gbps[n]) continue;
    const auto first_rank =
        std::find(topo.node_of_rank.begin(), topo.node_of_rank.end(), static_cast<int>(n)) -
        topo.node_of_rank.begin();
    r.suspect = 1;
    r.suspect_why = fmt::format(
        "node {} ({}) read at {:.2f} GB/s, above its memory bandwidth {:.2f} GB/s: the data did "
        "not come from storage (cache, sparse or compressed files)",
        n, topo.hosts[static_cast<std::size_t>(first_rank)], rate, node_mem_gbps[n]);
    return;
  }
}

}  // namespace

PhaseResult aggregate(const RankSpace& ranks, const ffb::Topology& topo,
                      const std::vector<double>& node_mem_gbps, RankPhase& mine) {
  PhaseResult r;
  r.spec = mine.spec();
  fill_missing_marks(mine);
  const std::vector<double> rows = gather_rows(ranks.comm, ranks.rank, ranks.size, mine);
  const FirstDone fd = first_done(ranks.comm, mine);
  merge_verify(ranks.comm, topo, mine, r);
  merge_histograms(ranks.comm, mine, r);
  if (ranks.rank != 0) return r;
  // ---- rank 0: the cluster-wide numbers ----
  const Span sp = merge_rows(topo, rows, r);
  if (r.active_ranks == 0) return r;
  compute_rates(sp, fd, r.spec.work_in_bytes, r);
  flag_suspect(topo, node_mem_gbps, sp.node_read, r);
  return r;
}

}  // namespace sb
