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

// One run_ddp call: the gradient buffers, the completion trace and the three phases (timed steps,
// communication only, compute only). Collective over `comm` in every phase.
class StepRunner {
 public:
  StepRunner(const Model& model, const std::vector<Bucket>& buckets, ComputeEngine& compute,
             GradientAllreduce& backend, MPI_Comm comm, const StepConfig& cfg)
      : model_(model),
        buckets_(buckets),
        compute_(compute),
        backend_(backend),
        comm_(comm),
        cfg_(cfg),
        esize_(ffb::size_of(cfg.type)),
        count_(model.total_params()),
        bytes_(count_ * esize_),
        send_(compute, bytes_),
        recv_(compute, bytes_),
        expected_(cfg.type, ReduceOp::sum, comm_size(comm)),
        ready_(bucket_ready_after(model, buckets)),
        bucket_start_sum_(buckets.size(), 0.0),
        bucket_done_sum_(buckets.size(), 0.0) {
    fill_gradients();
    compute.set_gradients(recv_.get());
    idle_ = make_idle();
  }

  // The warm-up and timed steps: per-step times (slowest rank), bucket offsets, the check.
  void timed_phase(DdpResult& out);

  // Communication only: every bucket's allreduce back to back, nothing to hide behind.
  std::vector<double> comm_alone();

  // Compute only: the same step without any allreduce.
  std::vector<double> compute_alone();

 private:
  static int comm_size(MPI_Comm comm) {
    int n = 1;
    MPI_Comm_size(comm, &n);
    return n;
  }

  // The reference phases run comm_steps repetitions after one that warms up (none for 0).
  int reference_repetitions() const { return cfg_.comm_steps + (cfg_.comm_steps > 0 ? 1 : 0); }

  // `send` holds this rank's deterministic per-rank pattern (the stand-in for what the backward
  // pass writes; small integers so every sum is exact), `recv` the allreduced result.
  void fill_gradients();

  // Completion trace: which buckets have finished, stamped when first seen.
  void poll();

  // What the compute engine calls while it waits: MPI progress and/or the trace's poll.
  Idle make_idle();

  void start_bucket(const Bucket& b);

  // Poisons the result so a missing allreduce cannot pass the check.
  void poison_result();

  std::size_t count_wrong();

  // One training step: forward, backward with each ready bucket's allreduce started, (with the
  // trace: wait for every completion to be seen), wait, optimizer.
  void step(bool timed, StepSeries& mine);

  const Model& model_;
  const std::vector<Bucket>& buckets_;
  ComputeEngine& compute_;
  GradientAllreduce& backend_;
  MPI_Comm comm_;
  const StepConfig& cfg_;
  const std::size_t esize_;
  const std::uint64_t count_;
  const std::size_t bytes_;
  Buffer send_, recv_;
  const ffb::ExpectedResult expected_;
  const std::vector<int> ready_;
  std::vector<double> bucket_start_sum_;
  std::vector<double> bucket_done_sum_;
  int seen_done_ = 0;
  double step_t0_ = 0;
  bool in_timed_step_ = false;
  Idle idle_;
};

void StepRunner::timed_phase(DdpResult& out) {
  StepSeries mine;
  std::int64_t wrong = 0;
  MPI_Barrier(comm_);
  const int total = cfg_.warmup + cfg_.steps;
  for (int s = 0; s < total; ++s) {
    const bool timed = s >= cfg_.warmup;
    if (s == cfg_.warmup) MPI_Barrier(comm_);
    const bool check =
        backend_.reduces() && cfg_.check && (s == total - 1 || (timed && cfg_.check_every_step));
    if (check) poison_result();
    step(timed, mine);
    if (check) {
      wrong += static_cast<std::int64_t>(count_wrong());
      ++out.checked_steps;
    }
  }
  out.timed.step = max_over_ranks(mine.step, comm_);
  out.timed.forward = max_over_ranks(mine.forward, comm_);
  out.timed.backward = max_over_ranks(mine.backward, comm_);
  out.timed.compute = max_over_ranks(mine.compute, comm_);
  out.timed.exposed = max_over_ranks(mine.exposed, comm_);
  out.timed.optimizer = max_over_ranks(mine.optimizer, comm_);
  for (auto& v : bucket_start_sum_) v /= std::max(cfg_.steps, 1);
  out.bucket_start = max_over_ranks(bucket_start_sum_, comm_);
  if (cfg_.trace) {
    for (auto& v : bucket_done_sum_) v /= std::max(cfg_.steps, 1);
    out.bucket_done = max_over_ranks(bucket_done_sum_, comm_);
  } else {
    out.bucket_done.assign(buckets_.size(), std::numeric_limits<double>::quiet_NaN());
  }
  if (out.checked_steps > 0) MPI_Allreduce(&wrong, &out.wrong, 1, MPI_INT64_T, MPI_SUM, comm_);
}

std::vector<double> StepRunner::comm_alone() {
  std::vector<double> alone;
  if (backend_.reduces()) {
    for (int c = 0; c < reference_repetitions(); ++c) {
      MPI_Barrier(comm_);
      compute_.begin_step();
      const double t0 = now_s();
      for (const auto& b : buckets_) start_bucket(b);
      backend_.wait_all();
      compute_.end_step();
      if (c > 0) alone.push_back(now_s() - t0);  // the first repetition warms up
    }
  } else {
    alone.assign(static_cast<std::size_t>(std::max(cfg_.comm_steps, 0)), 0.0);
  }
  return max_over_ranks(alone, comm_);
}

std::vector<double> StepRunner::compute_alone() {
  std::vector<double> calone;
  for (int c = 0; c < reference_repetitions(); ++c) {
    MPI_Barrier(comm_);
    compute_.begin_step();
    const double t0 = now_s();
    for (std::size_t l = 0; l < model_.layers.size(); ++l) compute_.forward(l, Idle{});
    for (std::size_t l = model_.layers.size(); l-- > 0;) compute_.backward(l, Idle{});
    compute_.end_backward(Idle{});
    compute_.optimizer(Idle{});
    compute_.end_step();
    if (c > 0) calone.push_back(now_s() - t0);
  }
  return max_over_ranks(calone, comm_);
}

void StepRunner::fill_gradients() {
  int rank = 0;
  MPI_Comm_rank(comm_, &rank);
  std::vector<unsigned char> host;
  void* target = send_.get();
  if (compute_.device_memory()) {
    host.resize(bytes_);
    target = host.data();
  }
  ffb::fill_pattern(target, cfg_.type, ReduceOp::sum, comm_size(comm_), rank, count_);
  if (rank == cfg_.inject_corrupt_rank && count_ > 0)
    ffb::store_from_double(target, cfg_.type, count_ / 2,
                           ffb::load_as_double(target, cfg_.type, count_ / 2) + 1.0);
  if (compute_.device_memory()) compute_.upload(send_.get(), host.data(), bytes_);
}

void StepRunner::poll() {
  const int c = backend_.completed();
  for (; seen_done_ < c; ++seen_done_)
    if (in_timed_step_)
      bucket_done_sum_[static_cast<std::size_t>(seen_done_)] += now_s() - step_t0_;
}

Idle StepRunner::make_idle() {
  const bool progress = backend_.needs_progress() && cfg_.progress;
  if (progress && cfg_.trace)
    return [this]() {
      backend_.progress();
      poll();
    };
  if (progress) return [this]() { backend_.progress(); };
  if (cfg_.trace) return [this]() { poll(); };
  return Idle{};
}

void StepRunner::start_bucket(const Bucket& b) {
  const auto* send_p = static_cast<const unsigned char*>(send_.get());
  auto* recv_p = static_cast<unsigned char*>(recv_.get());
  backend_.start(b.index, send_p + b.offset * esize_, recv_p + b.offset * esize_, b.params,
                 cfg_.type);
}

void StepRunner::poison_result() {
  auto* recv_p = static_cast<unsigned char*>(recv_.get());
  std::vector<unsigned char> poison(std::min<std::size_t>(bytes_, 64u << 20), 0xFF);
  for (std::size_t off = 0; off < bytes_; off += poison.size())
    compute_.upload(recv_p + off, poison.data(), std::min(poison.size(), bytes_ - off));
}

std::size_t StepRunner::count_wrong() {
  if (!compute_.device_memory()) return expected_.count_wrong(recv_.get(), count_);
  std::vector<unsigned char> host(bytes_);
  compute_.download(host.data(), recv_.get(), bytes_);
  return expected_.count_wrong(host.data(), count_);
}

void StepRunner::step(bool timed, StepSeries& mine) {
  compute_.begin_step();
  const double t0 = now_s();
  step_t0_ = t0;
  in_timed_step_ = timed;
  seen_done_ = 0;
  for (std::size_t l = 0; l < model_.layers.size(); ++l) compute_.forward(l, idle_);
  const double t_fwd = compute_.end_forward(idle_);
  for (std::size_t l = model_.layers.size(); l-- > 0;) {
    compute_.backward(l, idle_);
    if (ready_[l] >= 0) {
      const auto& b = buckets_[static_cast<std::size_t>(ready_[l])];
      if (timed) bucket_start_sum_[static_cast<std::size_t>(b.index)] += now_s() - t0;
      start_bucket(b);
    }
  }
  const double t_bwd = compute_.end_backward(idle_);
  if (cfg_.trace) {
    const double slice = std::max(cfg_.trace_interval_s, 1e-6);
    for (;;) {
      if (idle_) idle_();
      if (seen_done_ >= static_cast<int>(buckets_.size())) break;
      std::this_thread::sleep_for(std::chrono::duration<double>(slice));
    }
  }
  backend_.wait_all();
  const double t_comm = now_s();
  compute_.optimizer(idle_);
  compute_.end_step();
  const double t_end = now_s();
  if (!timed) return;
  mine.step.push_back(t_end - t0);
  mine.forward.push_back(t_fwd - t0);
  mine.backward.push_back(t_bwd - t_fwd);
  mine.compute.push_back(t_bwd - t0);
  mine.exposed.push_back(std::max(0.0, t_comm - t_bwd));
  mine.optimizer.push_back(t_end - t_comm);
}

}  // namespace

DdpResult run_ddp(const Model& model, const std::vector<Bucket>& buckets, ComputeEngine& compute,
                  GradientAllreduce& backend, MPI_Comm comm, const StepConfig& cfg) {
  StepRunner runner(model, buckets, compute, backend, comm, cfg);
  DdpResult out;
  out.nodes = backend.nodes();
  runner.timed_phase(out);
  out.comm_alone = runner.comm_alone();
  out.compute_alone = runner.compute_alone();
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
