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

PhaseResult aggregate(const Ctx& ctx, RankPhase& mine) {
  const PhaseSpec& spec = mine.spec();
  PhaseResult r;
  r.spec = spec;
  MPI_Comm comm = ctx.comm;

  // Per-rank row: fill missing marks from the operation times.
  if (mine.t_first > 1e299) mine.t_first = 0.0;
  if (mine.t_last < -1e299) mine.t_last = mine.t_first;
  if (mine.t_open > 1e299) mine.t_open = mine.t_first;
  if (mine.t_close < -1e299) mine.t_close = mine.t_last;
  mine.t_open = std::min(mine.t_open, mine.t_first);
  mine.t_close = std::max(mine.t_close, mine.t_last);

  std::uint64_t read_bytes = 0;
  for (std::size_t i = 0; i < spec.ops.size(); ++i)
    if (spec.op_is_read[i]) read_bytes += mine.op(i).bytes;
  const auto& main_lat = mine.op(0).lat;
  constexpr int kFields = 16;
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
  std::vector<double> rows(ctx.rank == 0 ? static_cast<std::size_t>(kFields * ctx.size) : 0);
  MPI_Gather(row, kFields, MPI_DOUBLE, ctx.rank == 0 ? rows.data() : nullptr, kFields, MPI_DOUBLE,
             0, comm);

  // First done: work of all ranks when the fastest active rank closed.
  const double inf = std::numeric_limits<double>::infinity();
  double local_open = mine.active ? mine.t_open : inf,
         local_close = mine.active ? mine.t_close : inf;
  double t0 = 0, first_close = 0;
  MPI_Allreduce(&local_open, &t0, 1, MPI_DOUBLE, MPI_MIN, comm);
  MPI_Allreduce(&local_close, &first_close, 1, MPI_DOUBLE, MPI_MIN, comm);
  double my_work_first =
      mine.active && std::isfinite(first_close) ? mine.work_by(first_close) : 0.0;
  double work_first = 0;
  MPI_Reduce(&my_work_first, &work_first, 1, MPI_DOUBLE, MPI_SUM, 0, comm);

  // Verify errors: totals everywhere, the first message from the lowest failing rank.
  const std::uint64_t verr[2] = {mine.verify_errors, mine.verify_checked};
  std::uint64_t verr_all[2] = {0, 0};
  MPI_Allreduce(verr, verr_all, 2, MPI_UINT64_T, MPI_SUM, comm);
  const std::uint64_t verr_total = verr_all[0];
  r.verify_errors = verr_total;
  r.verify_checked = verr_all[1];
  if (verr_total > 0) {
    const auto msgs = ffb::allgather_strings(comm, mine.verify_first);
    for (int i = 0; i < ctx.size; ++i)
      if (!msgs[static_cast<std::size_t>(i)].empty()) {
        r.verify_first =
            fmt::format("rank {} ({}): {}", i, ctx.topo.hosts[static_cast<std::size_t>(i)],
                        msgs[static_cast<std::size_t>(i)]);
        break;
      }
  }

  // Histograms per operation type, merged exactly on rank 0.
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
  if (ctx.rank != 0) return r;

  // ---- rank 0: the cluster-wide numbers ----
  double t_open = inf, t_first = inf, t_last = -inf, t_close = -inf, res_s = 0, res_r = 0;
  double slowest = -inf;
  int measured = 0;
  std::vector<double> node_read(static_cast<std::size_t>(ctx.topo.nnodes()), 0.0);
  for (int i = 0; i < ctx.size; ++i) {
    const double* x = &rows[static_cast<std::size_t>(i * kFields)];
    RankRow rr;
    rr.rank = i;
    rr.host = ctx.topo.hosts[static_cast<std::size_t>(i)];
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
    r.ranks.push_back(rr);
    r.bytes += rr.bytes;
    r.ops += rr.ops;
    res_s += x[9];
    res_r += x[10];
    measured += x[11] > 0 ? 1 : 0;
    r.stonewalled |= x[12] > 0 ? 1 : 0;
    if (!rr.active) continue;
    ++r.active_ranks;
    t_open = std::min(t_open, rr.t_open);
    t_first = std::min(t_first, rr.t_first);
    t_last = std::max(t_last, rr.t_last);
    t_close = std::max(t_close, rr.t_close);
    if (rr.t_close - rr.t_open > slowest) {
      slowest = rr.t_close - rr.t_open;
      r.slowest_rank = i;
      r.slowest_host = rr.host;
    }
    node_read[static_cast<std::size_t>(ctx.topo.node_of_rank[static_cast<std::size_t>(i)])] += x[7];
  }
  if (r.active_ranks == 0) return r;
  r.time_ior = std::max(0.0, t_close - t_open);
  r.time_data = std::max(0.0, t_last - t_first);
  r.time_first_done = std::max(0.0, first_close - t0);
  const double bytes = static_cast<double>(r.bytes), ops = static_cast<double>(r.ops);
  if (r.time_ior > 0) {
    r.gbps_ior = bytes / r.time_ior / 1e9;
    r.gbps_last_done = r.gbps_ior;
    r.iops = ops / r.time_ior;
  }
  if (r.time_data > 0) r.gbps_data = bytes / r.time_data / 1e9;
  if (r.time_first_done > 0) {
    if (spec.work_in_bytes) {
      r.gbps_first_done = work_first / r.time_first_done / 1e9;
    } else {
      r.ops_first_done = work_first / r.time_first_done;
    }
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
  if (measured > 0 && res_s > 0) r.cache_resident = res_r / res_s;

  // A node reading faster than its memory can copy did not read from storage.
  for (std::size_t n = 0; n < node_read.size(); ++n) {
    if (node_read[n] <= 0 || r.time_ior <= 0 || n >= ctx.node_mem_gbps.size()) continue;
    const double rate = node_read[n] / r.time_ior / 1e9;
    if (ctx.node_mem_gbps[n] > 0 && rate > ctx.node_mem_gbps[n]) {
      r.suspect = 1;
      r.suspect_why = fmt::format(
          "node {} ({}) read at {:.2f} GB/s, above its memory bandwidth {:.2f} GB/s: the data did "
          "not come from storage (cache, sparse or compressed files)",
          n,
          ctx.topo.hosts[static_cast<std::size_t>(std::find(ctx.topo.node_of_rank.begin(),
                                                            ctx.topo.node_of_rank.end(),
                                                            static_cast<int>(n)) -
                                                  ctx.topo.node_of_rank.begin())],
          rate, ctx.node_mem_gbps[n]);
      break;
    }
  }
  return r;
}

}  // namespace sb
