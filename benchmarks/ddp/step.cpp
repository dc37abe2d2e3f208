#include "step.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <thread>

#include <fmt/format.h>

#include "ffb/stats.h"
#include "ffb/validation.h"

namespace ffb::ddp {

namespace {

// Owns one allocation of the compute engine's memory.
class Buffer {
 public:
  Buffer(ComputeEngine& c, std::size_t bytes) : c_(c), p_(c.allocate(bytes)), bytes_(bytes) {}
  ~Buffer() { c_.deallocate(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* get() const { return p_; }
  std::size_t bytes() const { return bytes_; }

 private:
  ComputeEngine& c_;
  void* p_;
  std::size_t bytes_;
};

std::vector<double> max_over_ranks(std::vector<double> v, MPI_Comm comm) {
  if (!v.empty())
    MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_MAX, comm);
  return v;
}

}  // namespace

DdpResult run_ddp(const Model& model, const std::vector<Bucket>& buckets, ComputeEngine& compute,
                  GradientAllreduce& backend, MPI_Comm comm, const StepConfig& cfg) {
  int rank = 0, nranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &nranks);
  const std::size_t esize = ffb::size_of(cfg.type);
  const std::uint64_t count = model.total_params();
  const std::size_t bytes = count * esize;

  // Gradients: `send` holds this rank's deterministic per-rank pattern (the stand-in for what the
  // backward pass writes; small integers so every sum is exact), `recv` the allreduced result.
  Buffer send(compute, bytes), recv(compute, bytes);
  {
    std::vector<unsigned char> host;
    void* target = send.get();
    if (compute.device_memory()) {
      host.resize(bytes);
      target = host.data();
    }
    ffb::fill_pattern(target, cfg.type, ReduceOp::sum, nranks, rank, count);
    if (rank == cfg.inject_corrupt_rank && count > 0)
      ffb::store_from_double(target, cfg.type, count / 2,
                             ffb::load_as_double(target, cfg.type, count / 2) + 1.0);
    if (compute.device_memory()) compute.upload(send.get(), host.data(), bytes);
  }
  compute.set_gradients(recv.get());
  const ffb::ExpectedResult expected(cfg.type, ReduceOp::sum, nranks);
  const auto ready = bucket_ready_after(model, buckets);
  const auto* send_p = static_cast<const unsigned char*>(send.get());
  auto* recv_p = static_cast<unsigned char*>(recv.get());

  // Completion trace: which buckets have finished, stamped when first seen.
  std::vector<double> bucket_done_sum(buckets.size(), 0.0);
  int seen_done = 0;
  double step_t0 = 0;
  bool in_timed_step = false;
  auto poll = [&]() {
    const int c = backend.completed();
    for (; seen_done < c; ++seen_done)
      if (in_timed_step) bucket_done_sum[static_cast<std::size_t>(seen_done)] += now_s() - step_t0;
  };
  const bool progress = backend.needs_progress() && cfg.progress;
  Idle idle;
  if (progress && cfg.trace)
    idle = [&]() {
      backend.progress();
      poll();
    };
  else if (progress)
    idle = [&backend]() { backend.progress(); };
  else if (cfg.trace)
    idle = poll;

  DdpResult out;
  out.nodes = backend.nodes();
  const std::size_t nb = buckets.size();
  std::vector<double> bucket_start_sum(nb, 0.0);
  StepSeries mine;
  std::int64_t wrong = 0;

  auto start_bucket = [&](const Bucket& b) {
    backend.start(b.index, send_p + b.offset * esize, recv_p + b.offset * esize, b.params,
                  cfg.type);
  };

  MPI_Barrier(comm);
  const int total = cfg.warmup + cfg.steps;
  for (int s = 0; s < total; ++s) {
    const bool timed = s >= cfg.warmup;
    if (s == cfg.warmup) MPI_Barrier(comm);
    const bool check =
        backend.reduces() && cfg.check && (s == total - 1 || (timed && cfg.check_every_step));
    if (check) {  // poison the result so a missing allreduce cannot pass
      std::vector<unsigned char> poison(std::min<std::size_t>(bytes, 64u << 20), 0xFF);
      for (std::size_t off = 0; off < bytes; off += poison.size())
        compute.upload(recv_p + off, poison.data(), std::min(poison.size(), bytes - off));
    }
    compute.begin_step();
    const double t0 = now_s();
    step_t0 = t0;
    in_timed_step = timed;
    seen_done = 0;
    for (std::size_t l = 0; l < model.layers.size(); ++l) compute.forward(l, idle);
    const double t_fwd = compute.end_forward(idle);
    for (std::size_t l = model.layers.size(); l-- > 0;) {
      compute.backward(l, idle);
      if (ready[l] >= 0) {
        const auto& b = buckets[static_cast<std::size_t>(ready[l])];
        if (timed) bucket_start_sum[static_cast<std::size_t>(b.index)] += now_s() - t0;
        start_bucket(b);
      }
    }
    const double t_bwd = compute.end_backward(idle);
    if (cfg.trace) {
      const double slice = std::max(cfg.trace_interval_s, 1e-6);
      for (;;) {
        if (idle) idle();
        if (seen_done >= static_cast<int>(buckets.size())) break;
        std::this_thread::sleep_for(std::chrono::duration<double>(slice));
      }
    }
    backend.wait_all();
    const double t_comm = now_s();
    compute.optimizer(idle);
    compute.end_step();
    const double t_end = now_s();
    if (timed) {
      mine.step.push_back(t_end - t0);
      mine.forward.push_back(t_fwd - t0);
      mine.backward.push_back(t_bwd - t_fwd);
      mine.compute.push_back(t_bwd - t0);
      mine.exposed.push_back(std::max(0.0, t_comm - t_bwd));
      mine.optimizer.push_back(t_end - t_comm);
    }
    if (check) {
      std::size_t bad = 0;
      if (compute.device_memory()) {
        std::vector<unsigned char> host(bytes);
        compute.download(host.data(), recv_p, bytes);
        bad = expected.count_wrong(host.data(), count);
      } else {
        bad = expected.count_wrong(recv_p, count);
      }
      wrong += static_cast<std::int64_t>(bad);
      ++out.checked_steps;
    }
  }

  out.timed.step = max_over_ranks(mine.step, comm);
  out.timed.forward = max_over_ranks(mine.forward, comm);
  out.timed.backward = max_over_ranks(mine.backward, comm);
  out.timed.compute = max_over_ranks(mine.compute, comm);
  out.timed.exposed = max_over_ranks(mine.exposed, comm);
  out.timed.optimizer = max_over_ranks(mine.optimizer, comm);
  for (auto& v : bucket_start_sum) v /= std::max(cfg.steps, 1);
  out.bucket_start = max_over_ranks(bucket_start_sum, comm);
  if (cfg.trace) {
    for (auto& v : bucket_done_sum) v /= std::max(cfg.steps, 1);
    out.bucket_done = max_over_ranks(bucket_done_sum, comm);
  } else {
    out.bucket_done.assign(buckets.size(), std::numeric_limits<double>::quiet_NaN());
  }
  if (out.checked_steps > 0) {
    MPI_Allreduce(&wrong, &out.wrong, 1, MPI_INT64_T, MPI_SUM, comm);
  }

  // Communication only: every bucket's allreduce back to back, nothing to hide behind.
  std::vector<double> alone;
  if (backend.reduces()) {
    for (int c = 0; c < cfg.comm_steps + (cfg.comm_steps > 0 ? 1 : 0); ++c) {
      MPI_Barrier(comm);
      compute.begin_step();
      const double t0 = now_s();
      for (const auto& b : buckets) start_bucket(b);
      backend.wait_all();
      compute.end_step();
      if (c > 0) alone.push_back(now_s() - t0);  // the first repetition warms up
    }
  } else {
    alone.assign(static_cast<std::size_t>(std::max(cfg.comm_steps, 0)), 0.0);
  }
  out.comm_alone = max_over_ranks(alone, comm);

  // Compute only: the same step without any allreduce.
  std::vector<double> calone;
  for (int c = 0; c < cfg.comm_steps + (cfg.comm_steps > 0 ? 1 : 0); ++c) {
    MPI_Barrier(comm);
    compute.begin_step();
    const double t0 = now_s();
    for (std::size_t l = 0; l < model.layers.size(); ++l) compute.forward(l, Idle{});
    for (std::size_t l = model.layers.size(); l-- > 0;) compute.backward(l, Idle{});
    compute.end_backward(Idle{});
    compute.optimizer(Idle{});
    compute.end_step();
    if (c > 0) calone.push_back(now_s() - t0);
  }
  out.compute_alone = max_over_ranks(calone, comm);
  return out;
}

DdpSummary summarize(const DdpResult& r) {
  DdpSummary s;
  const auto st = ffb::summarize(r.timed.step);
  s.step_mean = st.mean;
  s.step_p50 = st.p50;
  s.step_p99 = st.p99;
  s.step_min = st.min;
  s.step_max = st.max;
  auto mean = [](const std::vector<double>& v) {
    return v.empty() ? 0.0
                     : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  s.forward = mean(r.timed.forward);
  s.backward = mean(r.timed.backward);
  s.compute = mean(r.timed.compute);
  s.exposed = mean(r.timed.exposed);
  s.optimizer = mean(r.timed.optimizer);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (r.comm_alone.empty() || r.compute_alone.empty()) {
    s.comm_alone = s.compute_alone = s.overhead = s.hidden = s.overlap = nan;
  } else {
    s.comm_alone = mean(r.comm_alone);
    s.compute_alone = mean(r.compute_alone);
    s.overhead = s.step_mean - s.compute_alone;
    s.hidden = std::max(0.0, s.comm_alone - std::max(0.0, s.overhead));
    s.overlap = s.comm_alone > 0 ? std::clamp(s.hidden / s.comm_alone, 0.0, 1.0) : nan;
  }
  return s;
}

}  // namespace ffb::ddp
