// loader: a training-data reader. The dataset is `samples` samples with sizes from a distribution
// (default a few KiB to several MiB, not 4 KiB aligned), packed back to back into shard files of
// about `shard_size` bytes. Every epoch draws one seeded global permutation; rank r takes every
// size-th entry (PyTorch DistributedSampler), in batches whose samples are read concurrently (up to
// --qd in flight). A loader thread runs up to --prefetch batches ahead of a consumer that
// "computes" for --compute-ms per batch; the time the consumer waits is the stall a training step
// would see.
#include <condition_variable>
#include <deque>
#include <fcntl.h>
#include <mutex>
#include <sys/resource.h>
#include <thread>

#include <fmt/format.h>

#include "../samplers.h"
#include "common.h"
#include "ffb/error.h"
#include "ffb/sizes.h"

namespace sb {

namespace {

struct Dataset {
  std::vector<std::uint32_t> shard;   // per sample
  std::vector<std::uint64_t> offset;  // per sample, within its shard
  std::vector<std::uint32_t> size;    // per sample
  std::vector<std::uint64_t> shard_bytes;
  std::vector<std::uint64_t> shard_first;  // first sample of each shard
  std::uint64_t total = 0, max_size = 0;
  std::string name(std::size_t s) const { return fmt::format("shard.{:06d}", s); }
};

Dataset plan_dataset(const LoaderOptions& o, std::uint64_t seed) {
  const auto dist = SizeDistribution::parse(o.sample_size, "--sample-size");
  Dataset d;
  d.shard.resize(o.samples);
  d.offset.resize(o.samples);
  d.size.resize(o.samples);
  std::uint64_t cur = 0;
  for (std::uint64_t i = 0; i < o.samples; ++i) {
    const std::uint64_t sz = dist.size_of(seed, i);
    if (d.shard_bytes.empty() || (cur > 0 && cur + sz > o.shard_size)) {
      if (!d.shard_bytes.empty()) d.shard_bytes.back() = cur;
      d.shard_bytes.push_back(0);
      d.shard_first.push_back(i);
      cur = 0;
    }
    d.shard[i] = static_cast<std::uint32_t>(d.shard_bytes.size() - 1);
    d.offset[i] = cur;
    d.size[i] = static_cast<std::uint32_t>(sz);
    cur += sz;
    d.total += sz;
    d.max_size = std::max(d.max_size, sz);
  }
  d.shard_bytes.back() = cur;
  return d;
}

int writer_of(int nranks, std::size_t shard) {
  return static_cast<int>(shard % static_cast<std::size_t>(nranks));
}

BlockId sample_id(int nranks, const Dataset& d, std::uint64_t i) {
  return BlockId{static_cast<std::uint32_t>(writer_of(nranks, d.shard[i])), d.shard[i], d.offset[i],
                 i};
}

// Writes this rank's shards (untimed build of the dataset, reported as phase "build").
void build_shards(const RankSpace& ranks, const IoTarget& io, const CommonOptions& c,
                  const Dataset& d, RankPhase& rp) {
  const bool verify = c.verify;
  const std::uint64_t align = std::max<std::uint64_t>(io.align, 1);
  const std::uint64_t chunk = round_up(4ull << 20, std::max<std::uint64_t>(align, 4096));
  AlignedBuffer stage(chunk, 4096);
  AlignedBuffer sample(d.max_size, 4096);
  fill_pattern(sample.span(), mix64(c.seed, 0x5a3b1e, static_cast<std::uint64_t>(ranks.rank)));
  DirHandle& dir = io.dir();
  for (std::size_t s = 0; s < d.shard_bytes.size(); ++s) {
    if (writer_of(ranks.size, s) != ranks.rank) continue;
    const std::string name = d.name(s);
    rp.mark_open(now_s());
    Fd fd = dir.create(name, io.direct_flag);
    std::uint64_t file_off = 0, fill = 0;
    auto flush = [&](bool last) {
      std::uint64_t n = fill;
      if (last) {
        n = round_up(fill, align);
        std::memset(stage.data() + fill, 0, n - fill);
      }
      const double t0 = now_s();
      std::uint64_t done = 0;
      while (done < n) {
        const ssize_t w =
            ::pwrite(fd.get(), stage.data() + done, n - done, static_cast<off_t>(file_off + done));
        if (w < 0) {
          if (errno == EINTR) continue;
          throw_io(fmt::format("write (offset {})", file_off + done), dir.path_of(name), errno);
        }
        done += static_cast<std::uint64_t>(w);
      }
      rp.record(0, t0, now_s(), n);
      file_off += n;
      fill = 0;
    };
    const std::uint64_t end = s + 1 < d.shard_first.size() ? d.shard_first[s + 1] : d.size.size();
    for (std::uint64_t i = d.shard_first[s]; i < end; ++i) {
      std::span<std::byte> smp(sample.data(), d.size[i]);
      if (verify) stamp_block(smp, sample_id(ranks.size, d, i));
      std::uint64_t copied = 0;
      while (copied < smp.size()) {
        const std::uint64_t n = std::min<std::uint64_t>(smp.size() - copied, chunk - fill);
        std::memcpy(stage.data() + fill, smp.data() + copied, n);
        fill += n;
        copied += n;
        if (fill == chunk) flush(false);
      }
      throw_if_stopped();
    }
    if (fill > 0) flush(true);
    fsync_checked(fd.get(), dir.path_of(name));
    fd.close_checked(dir.path_of(name));
    rp.mark_close(now_s());
  }
}

// The sizes of one epoch on one rank.
struct EpochShape {
  std::uint64_t per_rank = 0;  // samples per rank and epoch
  std::uint64_t batches = 0;   // batches per rank and epoch
  std::uint64_t align = 1;     // read offsets and lengths (O_DIRECT alignment, else 1)
};

// One epoch's reading on one rank: a loader thread issues batches (each sample of a batch read
// concurrently through the engine), at most --prefetch ahead of a consumer that "computes" for
// --compute-ms per batch; the time the consumer waits is the stall.
class EpochReader {
 public:
  EpochReader(const RankSpace& ranks, const IoTarget& io, const Options& opt, const Dataset& d,
              BufferPool& pool, const EpochShape& shape, const std::vector<std::uint64_t>& perm)
      : ranks_(ranks),
        io_(io),
        o_(opt.loader),
        c_(opt.common),
        d_(d),
        pool_(pool),
        shape_(shape),
        perm_(perm) {}

  // Inside agree: opens every shard, runs the loader thread and the consumer, closes.
  void run(RankPhase& r);

  ffb::LogLinearHistogram batch_lat;  // batch-ready latency (ns)
  double stall = 0.0, elapsed = 0.0;  // consumer's waiting and total time (s)

 private:
  void read_batch(RankPhase& r, std::uint64_t b);
  void load(RankPhase& r, const Stonewall& sw);  // the loader thread
  void consume();

  const RankSpace& ranks_;
  const IoTarget& io_;
  const LoaderOptions& o_;
  const CommonOptions& c_;
  const Dataset& d_;
  BufferPool& pool_;
  const EpochShape& shape_;
  const std::vector<std::uint64_t>& perm_;
  std::vector<Fd> fds_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<double> ready_;  // batch-ready times
  std::uint64_t consumed_ = 0;
  bool finished_ = false;
  std::exception_ptr error_;
};

void EpochReader::read_batch(RankPhase& r, std::uint64_t b) {
  DirHandle& dir = io_.dir();
  const std::uint64_t align = shape_.align;
  const std::uint64_t first = b * o_.batch, last = std::min(shape_.per_rank, first + o_.batch);
  std::uint64_t k = first;
  io_.engine.run(
      [&](IoOp& op) {
        if (k >= last) return false;
        const std::uint64_t i = perm_[k * static_cast<std::uint64_t>(ranks_.size) +
                                      static_cast<std::uint64_t>(ranks_.rank)];
        ++k;
        const std::uint64_t lo = round_down(d_.offset[i], align);
        const std::uint64_t hi = round_up(d_.offset[i] + d_.size[i], align);
        op.kind = OpKind::read;
        op.fd = fds_[d_.shard[i]].get();
        op.offset = lo;
        op.len = hi - lo;
        op.tag = i;
        op.buf = pool_.get();
        return true;
      },
      [&](const IoOp& op, const IoDone& done) {
        auto* buf = static_cast<std::byte*>(op.buf);
        const std::uint64_t i = op.tag;
        try {
          check_transfer(op, done, dir.path_of(d_.name(d_.shard[i])));
        } catch (...) {
          pool_.put(buf);
          throw;
        }
        r.record(0, done.submit, done.complete, d_.size[i]);
        if (c_.verify)
          verify_block(r, buf + (d_.offset[i] - op.offset), d_.size[i],
                       sample_id(ranks_.size, d_, i),
                       fmt::format("sample {} in {}", i, d_.name(d_.shard[i])));
        pool_.put(buf);
        return true;
      });
}

void EpochReader::load(RankPhase& r, const Stonewall& sw) {
  try {
    for (std::uint64_t b = 0; b < shape_.batches; ++b) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] {
          return b < consumed_ + static_cast<std::uint64_t>(o_.prefetch) || stop_requested();
        });
      }
      if (sw.passed(now_s()) || stop_requested()) {
        r.stonewalled = sw.passed(now_s());
        break;
      }
      const double issued = now_s();
      read_batch(r, b);
      const double t = now_s();
      batch_lat.record(static_cast<std::uint64_t>((t - issued) * 1e9));
      {
        std::lock_guard lock(mu_);
        ready_.push_back(t);
      }
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard lock(mu_);
    error_ = std::current_exception();
  }
  {
    std::lock_guard lock(mu_);
    finished_ = true;
  }
  cv_.notify_all();
}

// Waits for each batch (stall), then computes.
void EpochReader::consume() {
  const double t_start = now_s();
  for (;;) {
    const double w0 = now_s();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !ready_.empty() || finished_; });
    if (ready_.empty()) break;
    ready_.pop_front();
    lock.unlock();
    stall += now_s() - w0;
    if (o_.compute_ms > 0) sleep_until_s(now_s() + o_.compute_ms / 1e3);
    lock.lock();
    ++consumed_;
    lock.unlock();
    cv_.notify_all();
  }
  elapsed = now_s() - t_start;
}

void EpochReader::run(RankPhase& r) {
  DirHandle& dir = io_.dir();
  Stonewall sw(c_.stonewall_s, r.base());
  fds_.resize(d_.shard_bytes.size());
  r.mark_open(now_s());
  for (std::size_t s = 0; s < fds_.size(); ++s)
    fds_[s] = dir.open(d_.name(s), O_RDONLY | io_.direct_flag);
  {
    std::jthread loader([&] { load(r, sw); });
    consume();
  }
  if (error_) std::rethrow_exception(error_);
  for (std::size_t s = 0; s < fds_.size(); ++s) fds_[s].close_checked(dir.path_of(d_.name(s)));
  r.mark_close(now_s());
}

// Refuses what the options alone cannot tell: fewer samples than ranks, more shards than open
// files. Returns the epoch's shape.
// align: the I/O alignment (read offsets and lengths are widened to it).
EpochShape plan_epochs(const LoaderOptions& o, int nranks, std::uint32_t align, const Dataset& d) {
  EpochShape shape;
  shape.per_rank = o.samples / static_cast<std::uint64_t>(nranks);
  if (shape.per_rank == 0)
    throw ffb::UsageError(
        fmt::format("--samples {}: fewer samples than ranks ({}); give at least one per rank",
                    o.samples, nranks));
  // Every rank keeps every shard open during an epoch.
  struct rlimit nofile {};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
      d.shard_bytes.size() + 64 > nofile.rlim_cur)
    throw ffb::UsageError(fmt::format(
        "--shard-size {}: {} shards, and every rank opens them all, above the open-file limit "
        "({}, ulimit -n); raise --shard-size or the limit",
        ffb::format_size(o.shard_size), d.shard_bytes.size(),
        static_cast<unsigned long long>(nofile.rlim_cur)));
  shape.batches = (shape.per_rank + o.batch - 1) / o.batch;
  shape.align = std::max<std::uint64_t>(align, 1);
  return shape;
}

std::string plan_note(const LoaderOptions& o, const Dataset& d, const EpochShape& shape) {
  return fmt::format(
      "loader: {} samples ({} total, sizes {}, largest {}), {} shard(s) of about {}; "
      "per rank and epoch "
      "{} samples in {} batches of {}; compute {} ms per batch, prefetch {}",
      o.samples, ffb::format_size(d.total), o.sample_size, ffb::format_size(d.max_size),
      d.shard_bytes.size(), ffb::format_size(o.shard_size), shape.per_rank, shape.batches, o.batch,
      o.compute_ms, o.prefetch);
}

// Batch latency (exact merge) and stall fraction over ranks, as the epoch's metrics on rank 0.
struct EpochStats {
  ffb::LogLinearHistogram batch_lat;
  double stall_sum[2] = {0, 0}, stall_max = 0;
};
void reduce_epoch_stats(MPI_Comm comm, EpochReader& reader, EpochStats& st) {
  st.batch_lat = reader.batch_lat;
  st.batch_lat.reduce(comm, 0);
  const double mine[2] = {reader.stall, reader.elapsed};
  const double frac = reader.elapsed > 0 ? reader.stall / reader.elapsed : 0;
  MPI_Reduce(mine, st.stall_sum, 2, MPI_DOUBLE, MPI_SUM, 0, comm);
  MPI_Reduce(&frac, &st.stall_max, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
}

std::vector<Metric> epoch_metrics(const EpochStats& st, const PhaseResult& res) {
  return {{"samples_per_s", res.time_ior > 0 ? static_cast<double>(res.ops) / res.time_ior : 0.0,
           "samples/s"},
          {"batch_ready_p50", st.batch_lat.percentile(50) / 1e6, "ms"},
          {"batch_ready_p99", st.batch_lat.percentile(99) / 1e6, "ms"},
          {"batch_ready_p999", st.batch_lat.percentile(99.9) / 1e6, "ms"},
          {"batch_ready_max", static_cast<double>(st.batch_lat.max()) / 1e6, "ms"},
          {"stall_fraction", st.stall_sum[1] > 0 ? st.stall_sum[0] / st.stall_sum[1] : 0.0, "1"},
          {"stall_fraction_max_rank", st.stall_max, "1"}};
}

void epoch_phase(const PhaseEnv& env, const IoTarget& io, const Options& opt, const Dataset& d,
                 const EpochShape& shape, BufferPool& pool, const std::vector<FileRange>& wrote,
                 const std::vector<FileRange>& all, int rep, int epoch) {
  const auto& c = opt.common;
  const RankSpace& ranks = env.ranks;
  RankPhase rp(PhaseSpec{"loader", fmt::format("epoch{}", epoch), rep, {"read"}, {true}, true});
  const double evict_s = prepare_reads(ranks.comm, c, wrote, all, rp);
  const auto perm = permutation(
      opt.loader.samples,
      mix64(c.seed, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(rep) + 0x10ad));
  EpochStats st;
  run_phase(
      env, rp,
      [&](RankPhase& r) {
        EpochReader reader(ranks, io, opt, d, pool, shape, perm);
        agree(ranks.comm, [&] { reader.run(r); });
        // After the agreement above, so no rank waits here for one that failed.
        reduce_epoch_stats(ranks.comm, reader, st);
      },
      [&](PhaseResult& res) {
        res.metrics = epoch_metrics(st, res);
        if (c.drop_cache) res.metrics.push_back({"evict_time", evict_s, "s"});
      });
}

}  // namespace

void run_loader(Ctx& ctx) {
  const auto& o = ctx.opt.loader;
  const auto& c = ctx.c();
  const RankSpace& ranks = ctx.ranks;
  const Dataset d = plan_dataset(o, c.seed);
  const EpochShape shape = plan_epochs(o, ranks.size, ctx.io.align, d);
  ctx.report().note(plan_note(o, d, shape));

  DirHandle& dir = ctx.io.dir();
  {
    RankPhase rp(PhaseSpec{"loader", "build", 0, {"write"}, {false}, true});
    run_phase(ctx.phases, rp, [&](RankPhase& r) { build_shards(ranks, ctx.io, c, d, r); });
  }
  // --self-test-corrupt: sample 0 (in shard 0, which rank 0 wrote); every epoch reads it.
  if (c.self_test_corrupt)
    agree(ranks.comm, [&] {
      if (ranks.rank == 0)
        ctx.report().note(corrupt_one_byte(dir, d.name(0), d.offset[0], d.size[0]));
    });

  std::vector<FileRange> wrote, all;
  for (std::size_t s = 0; s < d.shard_bytes.size(); ++s) {
    all.push_back({&dir, d.name(s), 0, d.shard_bytes[s]});
    if (writer_of(ranks.size, s) == ranks.rank) wrote.push_back(all.back());
  }
  // One buffer per read in flight, big enough for the largest sample widened to the alignment.
  const std::size_t buf_size =
      static_cast<std::size_t>(round_up(d.max_size, shape.align) + 2 * shape.align);
  BufferPool pool(ctx.io.engine.depth(), buf_size, std::max<std::uint64_t>(shape.align, 4096),
                  c.seed);

  for (int rep = 0; rep < c.repetitions; ++rep)
    for (int epoch = 0; epoch < o.epochs; ++epoch)
      epoch_phase(ctx.phases, ctx.io, ctx.opt, d, shape, pool, wrote, all, rep, epoch);
  // Shards are removed at the end by the workspace (or kept with --keep).
}

}  // namespace sb
