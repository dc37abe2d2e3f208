// loader: a training-data reader. The dataset is `samples` samples with sizes from a distribution
// (default a few KiB to several MiB, not 4 KiB aligned), packed back to back into shard files of
// about `shard_size` bytes. Every epoch draws one seeded global permutation; rank r takes every
// size-th entry (PyTorch DistributedSampler), in batches whose samples are read concurrently (up to
// --qd in flight). A loader thread runs up to --prefetch batches ahead of a consumer that
// "computes" for --compute-ms per batch; the time the consumer waits is the stall a training step
// would see.
#include <condition_variable>
#include <deque>
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

Dataset plan_dataset(const Ctx& ctx) {
  const auto& o = ctx.opt.loader;
  const auto dist = SizeDistribution::parse(o.sample_size, "--sample-size");
  Dataset d;
  d.shard.resize(o.samples);
  d.offset.resize(o.samples);
  d.size.resize(o.samples);
  std::uint64_t cur = 0;
  for (std::uint64_t i = 0; i < o.samples; ++i) {
    const std::uint64_t sz = dist.size_of(ctx.c().seed, i);
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

int writer_of(const Ctx& ctx, std::size_t shard) {
  return static_cast<int>(shard % static_cast<std::size_t>(ctx.size));
}

BlockId sample_id(const Ctx& ctx, const Dataset& d, std::uint64_t i) {
  return BlockId{static_cast<std::uint32_t>(writer_of(ctx, d.shard[i])), d.shard[i], d.offset[i],
                 i};
}

// Writes this rank's shards (untimed build of the dataset, reported as phase "build").
void build_shards(Ctx& ctx, const Dataset& d, RankPhase& rp) {
  const bool verify = ctx.c().verify;
  const std::uint64_t align = std::max<std::uint64_t>(ctx.io_align(), 1);
  const std::uint64_t chunk = round_up(4ull << 20, std::max<std::uint64_t>(align, 4096));
  AlignedBuffer stage(chunk, 4096);
  AlignedBuffer sample(d.max_size, 4096);
  fill_pattern(sample.span(), mix64(ctx.c().seed, 0x5a3b1e, static_cast<std::uint64_t>(ctx.rank)));
  DirHandle& dir = ctx.ws.root();
  for (std::size_t s = 0; s < d.shard_bytes.size(); ++s) {
    if (writer_of(ctx, s) != ctx.rank) continue;
    const std::string name = d.name(s);
    rp.mark_open(now_s());
    Fd fd = dir.create(name, ctx.direct_flag());
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
      if (verify) stamp_block(smp, sample_id(ctx, d, i));
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

}  // namespace

void run_loader(Ctx& ctx) {
  const auto& o = ctx.opt.loader;
  const auto& c = ctx.c();
  const Dataset d = plan_dataset(ctx);
  const std::uint64_t per_rank = o.samples / static_cast<std::uint64_t>(ctx.size);
  if (per_rank == 0)
    throw ffb::UsageError(
        fmt::format("--samples {}: fewer samples than ranks ({}); give at least one per rank",
                    o.samples, ctx.size));
  // Every rank keeps every shard open during an epoch.
  struct rlimit nofile {};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
      d.shard_bytes.size() + 64 > nofile.rlim_cur)
    throw ffb::UsageError(fmt::format(
        "--shard-size {}: {} shards, and every rank opens them all, above the open-file limit "
        "({}, ulimit -n); raise --shard-size or the limit",
        ffb::format_size(o.shard_size), d.shard_bytes.size(),
        static_cast<unsigned long long>(nofile.rlim_cur)));
  const std::uint64_t batches = (per_rank + o.batch - 1) / o.batch;
  const std::uint64_t align = std::max<std::uint64_t>(ctx.io_align(), 1);
  ctx.report.note(
      fmt::format("loader: {} samples ({} total, sizes {}, largest {}), {} shard(s) of about {}; "
                  "per rank and epoch "
                  "{} samples in {} batches of {}; compute {} ms per batch, prefetch {}",
                  o.samples, ffb::format_size(d.total), o.sample_size, ffb::format_size(d.max_size),
                  d.shard_bytes.size(), ffb::format_size(o.shard_size), per_rank, batches, o.batch,
                  o.compute_ms, o.prefetch));

  DirHandle& dir = ctx.ws.root();
  {
    RankPhase rp(PhaseSpec{"loader", "build", 0, {"write"}, {false}, true});
    run_phase(ctx, rp, [&](RankPhase& r) { build_shards(ctx, d, r); });
  }
  // --self-test-corrupt: sample 0 (in shard 0, which rank 0 wrote); every epoch reads it.
  if (c.self_test_corrupt)
    agree(ctx.comm, [&] {
      if (ctx.rank == 0) ctx.report.note(corrupt_one_byte(dir, d.name(0), d.offset[0], d.size[0]));
    });

  std::vector<FileRange> wrote, all;
  for (std::size_t s = 0; s < d.shard_bytes.size(); ++s) {
    all.push_back({&dir, d.name(s), 0, d.shard_bytes[s]});
    if (writer_of(ctx, s) == ctx.rank) wrote.push_back(all.back());
  }
  // One buffer per read in flight, big enough for the largest sample widened to the alignment.
  const std::size_t buf_size = static_cast<std::size_t>(round_up(d.max_size, align) + 2 * align);
  BufferPool pool(ctx.engine.depth(), buf_size, std::max<std::uint64_t>(align, 4096), c.seed);

  for (int rep = 0; rep < c.repetitions; ++rep) {
    for (int epoch = 0; epoch < o.epochs; ++epoch) {
      RankPhase rp(PhaseSpec{"loader", fmt::format("epoch{}", epoch), rep, {"read"}, {true}, true});
      const double evict_s = prepare_reads(ctx, wrote, all, rp);
      const auto perm = permutation(o.samples, mix64(c.seed, static_cast<std::uint64_t>(epoch),
                                                     static_cast<std::uint64_t>(rep) + 0x10ad));
      ffb::LogLinearHistogram batch_lat;
      double stall = 0.0, elapsed = 0.0, stall_sum[2] = {0, 0}, stall_max = 0;
      run_phase(
          ctx, rp,
          [&](RankPhase& r) {
            agree(ctx.comm, [&] {
              Stonewall sw(ctx, r.base());
              std::vector<Fd> fds(d.shard_bytes.size());
              r.mark_open(now_s());
              for (std::size_t s = 0; s < fds.size(); ++s)
                fds[s] = dir.open(d.name(s), O_RDONLY | ctx.direct_flag());

              std::mutex mu;
              std::condition_variable cv;
              std::deque<double> ready;  // batch-ready times
              std::uint64_t consumed = 0;
              bool finished = false;
              std::exception_ptr error;
              // Loader thread: issues batches, at most `prefetch` ahead of the consumer.
              std::jthread loader([&] {
                try {
                  for (std::uint64_t b = 0; b < batches; ++b) {
                    {
                      std::unique_lock lock(mu);
                      cv.wait(lock, [&] {
                        return b < consumed + static_cast<std::uint64_t>(o.prefetch) ||
                               stop_requested();
                      });
                    }
                    if (sw.passed(now_s()) || stop_requested()) {
                      r.stonewalled = sw.passed(now_s());
                      break;
                    }
                    const std::uint64_t first = b * o.batch,
                                        last = std::min(per_rank, first + o.batch);
                    std::uint64_t k = first;
                    const double issued = now_s();
                    ctx.engine.run(
                        [&](IoOp& op) {
                          if (k >= last) return false;
                          const std::uint64_t i = perm[k * static_cast<std::uint64_t>(ctx.size) +
                                                       static_cast<std::uint64_t>(ctx.rank)];
                          ++k;
                          const std::uint64_t lo = round_down(d.offset[i], align);
                          const std::uint64_t hi = round_up(d.offset[i] + d.size[i], align);
                          op.kind = OpKind::read;
                          op.fd = fds[d.shard[i]].get();
                          op.offset = lo;
                          op.len = hi - lo;
                          op.tag = i;
                          op.buf = pool.get();
                          return true;
                        },
                        [&](const IoOp& op, const IoDone& done) {
                          auto* buf = static_cast<std::byte*>(op.buf);
                          const std::uint64_t i = op.tag;
                          try {
                            check_transfer(op, done, dir.path_of(d.name(d.shard[i])));
                          } catch (...) {
                            pool.put(buf);
                            throw;
                          }
                          r.record(0, done.submit, done.complete, d.size[i]);
                          if (c.verify)
                            verify_block(r, buf + (d.offset[i] - op.offset), d.size[i],
                                         sample_id(ctx, d, i),
                                         fmt::format("sample {} in {}", i, d.name(d.shard[i])));
                          pool.put(buf);
                          return true;
                        });
                    const double t = now_s();
                    batch_lat.record(static_cast<std::uint64_t>((t - issued) * 1e9));
                    {
                      std::lock_guard lock(mu);
                      ready.push_back(t);
                    }
                    cv.notify_all();
                  }
                } catch (...) {
                  std::lock_guard lock(mu);
                  error = std::current_exception();
                }
                {
                  std::lock_guard lock(mu);
                  finished = true;
                }
                cv.notify_all();
              });
              // Consumer: waits for each batch (stall), then computes.
              const double t_start = now_s();
              for (;;) {
                const double w0 = now_s();
                std::unique_lock lock(mu);
                cv.wait(lock, [&] { return !ready.empty() || finished; });
                if (ready.empty()) break;
                ready.pop_front();
                lock.unlock();
                stall += now_s() - w0;
                if (o.compute_ms > 0) sleep_until_s(now_s() + o.compute_ms / 1e3);
                lock.lock();
                ++consumed;
                lock.unlock();
                cv.notify_all();
              }
              elapsed = now_s() - t_start;
              loader.join();
              if (error) std::rethrow_exception(error);
              for (std::size_t s = 0; s < fds.size(); ++s)
                fds[s].close_checked(dir.path_of(d.name(s)));
              r.mark_close(now_s());
            });
            // Batch latency (exact merge) and stall fraction over ranks (after the agreement above,
            // so no rank waits here for one that failed).
            batch_lat.reduce(ctx.comm, 0);
            const double mine[2] = {stall, elapsed};
            const double frac = elapsed > 0 ? stall / elapsed : 0;
            MPI_Reduce(mine, stall_sum, 2, MPI_DOUBLE, MPI_SUM, 0, ctx.comm);
            MPI_Reduce(&frac, &stall_max, 1, MPI_DOUBLE, MPI_MAX, 0, ctx.comm);
          },
          [&](PhaseResult& res) {
            res.metrics = {
                {"samples_per_s",
                 res.time_ior > 0 ? static_cast<double>(res.ops) / res.time_ior : 0.0, "samples/s"},
                {"batch_ready_p50", batch_lat.percentile(50) / 1e6, "ms"},
                {"batch_ready_p99", batch_lat.percentile(99) / 1e6, "ms"},
                {"batch_ready_p999", batch_lat.percentile(99.9) / 1e6, "ms"},
                {"batch_ready_max", static_cast<double>(batch_lat.max()) / 1e6, "ms"},
                {"stall_fraction", stall_sum[1] > 0 ? stall_sum[0] / stall_sum[1] : 0.0, "1"},
                {"stall_fraction_max_rank", stall_max, "1"}};
            if (c.drop_cache) res.metrics.push_back({"evict_time", evict_s, "s"});
          });
    }
  }
  // Shards are removed at the end by the workspace (or kept with --keep).
}

}  // namespace sb
