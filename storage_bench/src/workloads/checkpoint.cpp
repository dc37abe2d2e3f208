// checkpoint: file-per-rank checkpoint with a commit, as 3FS's checkpoint manager does it.
// Save: rank 0 makes ckpt-<step>.tmp; every rank writes shard.<rank> in --chunk pieces (through the
// engine, --qd in flight), fsyncs and closes it; then rank 0 fsyncs the directory, renames it to
// ckpt-<step> and fsyncs the parent: the commit. Time-to-durable runs from the first byte written
// by any rank to the end of the commit. The previous checkpoint is deleted after a commit.
// Restore: the last checkpoint is read back with the ranks shifted by a node, optionally by fewer
// ranks than wrote it (--restore-ranks): the shards are one logical byte stream cut into equal
// ranges of whole chunks, so a reader's range crosses shard boundaries. Every chunk carries a
// header and checksum (always: a checkpoint nobody can verify is not a checkpoint), and restore
// verifies every chunk.
#include <fmt/format.h>

#include "../samplers.h"
#include "common.h"
#include "ffb/error.h"
#include "ffb/sizes.h"

namespace sb {

namespace {

std::string ckpt_name(int step) { return fmt::format("ckpt-{:06d}", step); }
std::string shard_name(int rank) { return fmt::format("shard.{:06d}", rank); }

struct Chunk {
  int shard = 0;
  std::uint64_t offset = 0, len = 0;
};

}  // namespace

void run_checkpoint(Ctx& ctx) {
  const auto& o = ctx.opt.ckpt;
  const auto& c = ctx.c();
  std::uint64_t shard = o.shard_bytes(ctx.size);
  const std::uint64_t chunk = o.chunk;
  if (c.odirect) {
    if (chunk % ctx.dio_align != 0)
      throw ffb::UsageError(fmt::format(
          "--chunk {}: O_DIRECT on {} ({}) needs multiples of {} B (statx direct-I/O alignment); "
          "use a "
          "multiple of {} or drop --odirect",
          ffb::format_size(chunk), ctx.fs.path, ctx.fs.fs_type, ctx.dio_align, ctx.dio_align));
    shard = round_up(shard, ctx.dio_align);
  }
  const int readers = o.restore_ranks > 0 ? o.restore_ranks : ctx.size;
  if (readers > ctx.size)
    throw ffb::UsageError(
        fmt::format("--restore-ranks {}: more than the {} ranks running; restore with at most {} "
                    "ranks (or start "
                    "more ranks)",
                    o.restore_ranks, ctx.size, ctx.size));
  const std::uint64_t cps = (shard + chunk - 1) / chunk;  // chunks per shard
  ctx.report.note(fmt::format(
      "checkpoint: {} per rank ({} total{}), chunk {}, {} step(s), restore {} by {} rank(s), shift "
      "{}",
      ffb::format_size(shard), ffb::format_size(shard * static_cast<std::uint64_t>(ctx.size)),
      o.model_params > 0 ? fmt::format(" = {:.3g} params x {} B x {}", o.model_params,
                                       o.bytes_per_param, o.optimizer_factor)
                         : "",
      ffb::format_size(chunk), o.steps, o.restore ? "on" : "off", readers, ctx.shift));

  BufferPool pool(ctx.engine.depth(), chunk, std::max<std::uint64_t>(ctx.io_align(), 4096),
                  mix64(c.seed, static_cast<std::uint64_t>(ctx.rank), 0xc4e));
  auto chunk_len = [&](std::uint64_t j) { return std::min(chunk, shard - j * chunk); };
  const std::string my_shard = shard_name(ctx.rank);
  int committed = -1;  // step of the last committed checkpoint

  for (int rep = 0; rep < c.repetitions; ++rep) {
    for (int s = 0; s < o.steps; ++s) {
      const int step = rep * o.steps + s + 1;
      const std::string tmp = ckpt_name(step) + ".tmp", final_name = ckpt_name(step);
      const double step_start = now_s();
      RankPhase rp(PhaseSpec{"checkpoint", "save", rep, {"write"}, {false}, true});
      double commit_end = 0.0, first_byte = 0.0, commit_s = 0.0;
      std::vector<double> write_times;
      run_phase(
          ctx, rp,
          [&](RankPhase& r) {
            agree(ctx.comm, [&] {
              if (ctx.rank == 0) {
                r.mark_open(now_s());
                ctx.ws.make_subdir(tmp);
              }
            });
            agree(ctx.comm, [&] {
              DirHandle& dir = ctx.ws.open_subdir(tmp);
              r.mark_open(now_s());
              Fd fd = dir.create(my_shard, ctx.direct_flag());
              const std::string path = dir.path_of(my_shard);
              std::uint64_t j = 0;
              ctx.engine.run(
                  [&](IoOp& op) {
                    if (j >= cps) return false;
                    op.kind = OpKind::write;
                    op.fd = fd.get();
                    op.offset = j * chunk;
                    op.len = chunk_len(j);
                    auto* buf = pool.get();
                    op.buf = buf;
                    pool.stamp(buf, op.len,
                               BlockId{static_cast<std::uint32_t>(ctx.rank),
                                       static_cast<std::uint64_t>(ctx.rank), op.offset,
                                       static_cast<std::uint64_t>(step)});
                    ++j;
                    return true;
                  },
                  [&](const IoOp& op, const IoDone& d) {
                    pool.put(static_cast<std::byte*>(op.buf));
                    check_transfer(op, d, path);
                    r.record(0, d.submit, d.complete, d.bytes);
                    return true;
                  });
              fsync_checked(fd.get(), path);
              fd.close_checked(path);
              r.mark_close(now_s());
            });
            // The commit: directory fsync, rename into place, parent fsync.
            agree(ctx.comm, [&] {
              if (ctx.rank != 0) return;
              const double t0 = now_s();
              ctx.ws.find(tmp)->fsync_dir();
              ctx.ws.rename_subdir(tmp, final_name);
              ctx.ws.root().fsync_dir();
              commit_end = now_s();
              commit_s = commit_end - t0;
              r.mark_close(commit_end);
            });
            if (ctx.rank != 0) ctx.ws.follow_rename(tmp, final_name);
            double mine = r.t_first, first = 0;
            MPI_Reduce(&mine, &first, 1, MPI_DOUBLE, MPI_MIN, 0, ctx.comm);
            first_byte = first;
            const double wt = r.t_close - r.t_open;
            write_times.resize(static_cast<std::size_t>(ctx.size));
            MPI_Gather(&wt, 1, MPI_DOUBLE, write_times.data(), 1, MPI_DOUBLE, 0, ctx.comm);
          },
          [&](PhaseResult& res) {
            const double durable = rp.rel(commit_end) - first_byte;
            double wmin = 1e300, wmax = 0, wsum = 0;
            for (double w : write_times) {
              wmin = std::min(wmin, w);
              wmax = std::max(wmax, w);
              wsum += w;
            }
            res.metrics = {
                {"time_to_durable", durable, "s"},
                {"bw_durable", durable > 0 ? static_cast<double>(res.bytes) / durable / 1e9 : 0.0,
                 "GB/s"},
                {"commit_time", commit_s, "s"},
                {"rank_write_time_min", wmin, "s"},
                {"rank_write_time_mean", wsum / static_cast<double>(write_times.size()), "s"},
                {"rank_write_time_max", wmax, "s"},
                {"step", static_cast<double>(step), "1"}};
          });
      // The new checkpoint is durable: drop the previous one (untimed; creators remove their
      // files).
      MPI_Barrier(ctx.comm);
      if (committed > 0) {
        agree(ctx.comm, [&] { ctx.ws.remove_files_in(ckpt_name(committed)); });
        agree(ctx.comm, [&] {
          ctx.ws.remove_subdir_if_mine(ckpt_name(committed));
          ctx.ws.close_subdir(ckpt_name(committed));
        });
      }
      committed = step;
      if (o.interval_s > 0 && s + 1 < o.steps) sleep_until_s(step_start + o.interval_s);
    }

    if (!o.restore) continue;
    // ---- restore the last checkpoint ----
    const std::string dir_name = ckpt_name(committed);
    // --self-test-corrupt: chunk 0 of rank 0's committed shard; restore reads every chunk.
    if (c.self_test_corrupt && rep == 0)
      agree(ctx.comm, [&] {
        if (ctx.rank == 0)
          ctx.report.note(corrupt_one_byte(*ctx.ws.find(dir_name), my_shard, 0, chunk_len(0)));
      });
    const std::uint64_t total_chunks = cps * static_cast<std::uint64_t>(ctx.size);
    const int reader = ((ctx.rank + ctx.shift) % ctx.size + ctx.size) % ctx.size;  // reader index
    const bool active = reader < readers;
    std::vector<Chunk> mine;
    if (active) {
      const std::uint64_t lo =
          total_chunks * static_cast<std::uint64_t>(reader) / static_cast<std::uint64_t>(readers);
      const std::uint64_t hi = total_chunks * static_cast<std::uint64_t>(reader + 1) /
                               static_cast<std::uint64_t>(readers);
      for (std::uint64_t g = lo; g < hi; ++g)
        mine.push_back(Chunk{static_cast<int>(g / cps), (g % cps) * chunk, chunk_len(g % cps)});
    }
    DirHandle* dir = nullptr;
    agree(ctx.comm, [&] { dir = &ctx.ws.open_subdir(dir_name); });
    std::vector<FileRange> wrote{{dir, my_shard, 0, shard}}, will_read;
    for (const auto& ch : mine) {
      if (will_read.empty() || will_read.back().name != shard_name(ch.shard))
        will_read.push_back({dir, shard_name(ch.shard), ch.offset, 0});
      will_read.back().len = ch.offset + ch.len - will_read.back().offset;
    }
    RankPhase rp(PhaseSpec{"checkpoint", "restore", rep, {"read"}, {true}, true});
    rp.active = active;
    const double evict_s = prepare_reads(ctx, wrote, will_read, rp);
    run_phase(
        ctx, rp,
        [&](RankPhase& r) {
          if (!active) return;
          std::size_t i = 0;
          while (i < mine.size()) {
            // One shard at a time: all of this reader's chunks in it, --qd in flight.
            const int sh = mine[i].shard;
            std::size_t end = i;
            while (end < mine.size() && mine[end].shard == sh) ++end;
            r.mark_open(now_s());
            Fd fd = dir->open(shard_name(sh), O_RDONLY | ctx.direct_flag());
            const std::string path = dir->path_of(shard_name(sh));
            std::size_t k = i;
            ctx.engine.run(
                [&](IoOp& op) {
                  if (k >= end) return false;
                  op.kind = OpKind::read;
                  op.fd = fd.get();
                  op.offset = mine[k].offset;
                  op.len = mine[k].len;
                  op.buf = pool.get();
                  ++k;
                  return true;
                },
                [&](const IoOp& op, const IoDone& d) {
                  auto* buf = static_cast<std::byte*>(op.buf);
                  pool.invalidate(buf);
                  try {
                    check_transfer(op, d, path);
                  } catch (...) {
                    pool.put(buf);
                    throw;
                  }
                  r.record(0, d.submit, d.complete, d.bytes);
                  verify_block(
                      r, buf, op.len,
                      BlockId{static_cast<std::uint32_t>(sh), static_cast<std::uint64_t>(sh),
                              op.offset, static_cast<std::uint64_t>(committed)},
                      fmt::format("{} offset {}", path, op.offset));
                  pool.put(buf);
                  return true;
                });
            fd.close_checked(path);
            r.mark_close(now_s());
            i = end;
          }
        },
        [&](PhaseResult& res) {
          res.metrics = {{"restore_ranks", static_cast<double>(readers), "ranks"},
                         {"read_shift", static_cast<double>(ctx.shift), "ranks"},
                         {"chunks_verified", static_cast<double>(res.ops), "count"}};
          if (c.drop_cache) res.metrics.push_back({"evict_time", evict_s, "s"});
        });
  }
}

}  // namespace sb
