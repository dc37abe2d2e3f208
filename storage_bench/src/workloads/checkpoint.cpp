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
#include <fcntl.h>

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

// Sizes every rank agrees on: the shard per rank, its chunks, and who restores.
struct CkptPlan {
  std::uint64_t shard = 0;  // bytes per rank (rounded up to the O_DIRECT alignment)
  std::uint64_t chunk = 0;  // bytes per write/read call
  std::uint64_t cps = 0;    // chunks per shard
  int readers = 0;          // ranks that restore
  std::uint64_t chunk_len(std::uint64_t j) const { return std::min(chunk, shard - j * chunk); }
};

// Under --odirect, align is the statx alignment that --chunk must be a multiple of.
CkptPlan plan_checkpoint(const Options& opt, int nranks, std::uint32_t align, const FsInfo& fs) {
  const auto& o = opt.ckpt;
  CkptPlan p;
  p.shard = o.shard_bytes(nranks);
  p.chunk = o.chunk;
  if (opt.common.odirect) {
    if (p.chunk % align != 0)
      throw ffb::UsageError(fmt::format(
          "--chunk {}: O_DIRECT on {} ({}) needs multiples of {} B (statx direct-I/O alignment); "
          "use a "
          "multiple of {} or drop --odirect",
          ffb::format_size(p.chunk), fs.path, fs.fs_type, align, align));
    p.shard = round_up(p.shard, align);
  }
  p.readers = o.restore_ranks > 0 ? o.restore_ranks : nranks;
  if (p.readers > nranks)
    throw ffb::UsageError(
        fmt::format("--restore-ranks {}: more than the {} ranks running; restore with at most {} "
                    "ranks (or start "
                    "more ranks)",
                    o.restore_ranks, nranks, nranks));
  p.cps = (p.shard + p.chunk - 1) / p.chunk;
  return p;
}

std::string plan_note(const CheckpointOptions& o, const CkptPlan& p, int nranks, int shift) {
  return fmt::format(
      "checkpoint: {} per rank ({} total{}), chunk {}, {} step(s), restore {} by {} rank(s), shift "
      "{}",
      ffb::format_size(p.shard), ffb::format_size(p.shard * static_cast<std::uint64_t>(nranks)),
      o.model_params > 0 ? fmt::format(" = {:.3g} params x {} B x {}", o.model_params,
                                       o.bytes_per_param, o.optimizer_factor)
                         : "",
      ffb::format_size(p.chunk), o.steps, o.restore ? "on" : "off", p.readers, shift);
}

// This rank's shard of checkpoint `step`, written in chunks through the engine (each stamped),
// fsync'd and closed.
void write_shard(Engine& engine, BufferPool& pool, DirHandle& dir, const CkptPlan& plan, int rank,
                 int step, int direct, RankPhase& r) {
  r.mark_open(now_s());
  const std::string name = shard_name(rank);
  Fd fd = dir.create(name, direct);
  const std::string path = dir.path_of(name);
  std::uint64_t j = 0;
  engine.run(
      [&](IoOp& op) {
        if (j >= plan.cps) return false;
        op.kind = OpKind::write;
        op.fd = fd.get();
        op.offset = j * plan.chunk;
        op.len = plan.chunk_len(j);
        auto* buf = pool.get();
        op.buf = buf;
        pool.stamp(buf, op.len,
                   BlockId{static_cast<std::uint32_t>(rank), static_cast<std::uint64_t>(rank),
                           op.offset, static_cast<std::uint64_t>(step)});
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
}

// The commit (rank 0): directory fsync, rename into place, parent fsync. Returns its duration.
double commit(Workspace& ws, const std::string& tmp, const std::string& final_name, RankPhase& r,
              double& commit_end) {
  const double t0 = now_s();
  ws.find(tmp)->fsync_dir();
  ws.rename_subdir(tmp, final_name);
  ws.root().fsync_dir();
  commit_end = now_s();
  r.mark_close(commit_end);
  return commit_end - t0;
}

// What rank 0 learns from the ranks' save: the first byte written and each rank's write time.
struct SaveTimes {
  double commit_end = 0.0, first_byte = 0.0, commit_s = 0.0;
  std::vector<double> write_times;
};

std::vector<Metric> save_metrics(const SaveTimes& st, double durable, std::uint64_t bytes,
                                 int step) {
  double wmin = 1e300, wmax = 0, wsum = 0;
  for (double w : st.write_times) {
    wmin = std::min(wmin, w);
    wmax = std::max(wmax, w);
    wsum += w;
  }
  return {{"time_to_durable", durable, "s"},
          {"bw_durable", durable > 0 ? static_cast<double>(bytes) / durable / 1e9 : 0.0, "GB/s"},
          {"commit_time", st.commit_s, "s"},
          {"rank_write_time_min", wmin, "s"},
          {"rank_write_time_mean", wsum / static_cast<double>(st.write_times.size()), "s"},
          {"rank_write_time_max", wmax, "s"},
          {"step", static_cast<double>(step), "1"}};
}

// One timed save: rank 0 makes ckpt-<step>.tmp, every rank writes its shard, rank 0 commits.
// Time-to-durable runs from the first byte any rank wrote to the end of the commit.
void save_step(const PhaseEnv& env, const IoTarget& io, const CkptPlan& plan, BufferPool& pool,
               int rep, int step) {
  const RankSpace& ranks = env.ranks;
  Workspace& ws = io.ws;
  const std::string tmp = ckpt_name(step) + ".tmp", final_name = ckpt_name(step);
  RankPhase rp(PhaseSpec{"checkpoint", "save", rep, {"write"}, {false}, true});
  SaveTimes st;
  run_phase(
      env, rp,
      [&](RankPhase& r) {
        agree(ranks.comm, [&] {
          if (ranks.rank == 0) {
            r.mark_open(now_s());
            ws.make_subdir(tmp);
          }
        });
        agree(ranks.comm, [&] {
          write_shard(io.engine, pool, ws.open_subdir(tmp), plan, ranks.rank, step, io.direct_flag,
                      r);
        });
        agree(ranks.comm, [&] {
          if (ranks.rank == 0) st.commit_s = commit(ws, tmp, final_name, r, st.commit_end);
        });
        if (ranks.rank != 0) ws.follow_rename(tmp, final_name);
        const double mine = r.t_first;
        MPI_Reduce(&mine, &st.first_byte, 1, MPI_DOUBLE, MPI_MIN, 0, ranks.comm);
        const double wt = r.t_close - r.t_open;
        st.write_times.resize(static_cast<std::size_t>(ranks.size));
        MPI_Gather(&wt, 1, MPI_DOUBLE, st.write_times.data(), 1, MPI_DOUBLE, 0, ranks.comm);
      },
      [&](PhaseResult& res) {
        const double durable = rp.rel(st.commit_end) - st.first_byte;
        res.metrics = save_metrics(st, durable, res.bytes, step);
      });
}

// The new checkpoint is durable: drop the previous one (untimed; creators remove their files).
void drop_checkpoint(MPI_Comm comm, Workspace& ws, int step) {
  agree(comm, [&] { ws.remove_files_in(ckpt_name(step)); });
  agree(comm, [&] {
    ws.remove_subdir_if_mine(ckpt_name(step));
    ws.close_subdir(ckpt_name(step));
  });
}

// The chunks a restoring rank reads: the shards are one logical byte stream cut into equal ranges
// of whole chunks, one per reader (a range crosses shard boundaries when readers < writers).
std::vector<Chunk> reader_chunks(const CkptPlan& plan, int reader, int size) {
  std::vector<Chunk> mine;
  if (reader >= plan.readers) return mine;
  const std::uint64_t total = plan.cps * static_cast<std::uint64_t>(size);
  const auto readers = static_cast<std::uint64_t>(plan.readers);
  const std::uint64_t lo = total * static_cast<std::uint64_t>(reader) / readers;
  const std::uint64_t hi = total * static_cast<std::uint64_t>(reader + 1) / readers;
  for (std::uint64_t g = lo; g < hi; ++g)
    mine.push_back(Chunk{static_cast<int>(g / plan.cps), (g % plan.cps) * plan.chunk,
                         plan.chunk_len(g % plan.cps)});
  return mine;
}

// Reads chunks [from, to) of one shard through the engine and verifies each.
void read_shard_chunks(Engine& engine, BufferPool& pool, DirHandle& dir,
                       const std::vector<Chunk>& mine, std::size_t from, std::size_t to,
                       int committed, int direct, RankPhase& r) {
  const int sh = mine[from].shard;
  r.mark_open(now_s());
  Fd fd = dir.open(shard_name(sh), O_RDONLY | direct);
  const std::string path = dir.path_of(shard_name(sh));
  std::size_t k = from;
  engine.run(
      [&](IoOp& op) {
        if (k >= to) return false;
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
        verify_block(r, buf, op.len,
                     BlockId{static_cast<std::uint32_t>(sh), static_cast<std::uint64_t>(sh),
                             op.offset, static_cast<std::uint64_t>(committed)},
                     fmt::format("{} offset {}", path, op.offset));
        pool.put(buf);
        return true;
      });
  fd.close_checked(path);
  r.mark_close(now_s());
}

// The restore of the last committed checkpoint, the ranks shifted by a node.
// Reader r is rank r + shift.
void restore(const PhaseEnv& env, const IoTarget& io, const CommonOptions& c, const CkptPlan& plan,
             BufferPool& pool, int rep, int committed, int shift) {
  const RankSpace& ranks = env.ranks;
  const std::string dir_name = ckpt_name(committed);
  const std::string my_shard = shard_name(ranks.rank);
  // --self-test-corrupt: chunk 0 of rank 0's committed shard; restore reads every chunk.
  if (c.self_test_corrupt && rep == 0)
    agree(ranks.comm, [&] {
      if (ranks.rank == 0)
        env.report.note(corrupt_one_byte(*io.ws.find(dir_name), my_shard, 0, plan.chunk_len(0)));
    });
  const int reader = ranks.shifted(ranks.rank, shift);  // reader index
  const std::vector<Chunk> mine = reader_chunks(plan, reader, ranks.size);
  DirHandle* dir = nullptr;
  agree(ranks.comm, [&] { dir = &io.ws.open_subdir(dir_name); });
  std::vector<FileRange> wrote{{dir, my_shard, 0, plan.shard}}, will_read;
  for (const auto& ch : mine) {
    if (will_read.empty() || will_read.back().name != shard_name(ch.shard))
      will_read.push_back({dir, shard_name(ch.shard), ch.offset, 0});
    will_read.back().len = ch.offset + ch.len - will_read.back().offset;
  }
  RankPhase rp(PhaseSpec{"checkpoint", "restore", rep, {"read"}, {true}, true});
  rp.active = reader < plan.readers;
  const double evict_s = prepare_reads(ranks.comm, c, wrote, will_read, rp);
  run_phase(
      env, rp,
      [&](RankPhase& r) {
        // One shard at a time: all of this reader's chunks in it, --qd in flight.
        for (std::size_t i = 0, end = 0; i < mine.size(); i = end) {
          end = i;
          while (end < mine.size() && mine[end].shard == mine[i].shard) ++end;
          read_shard_chunks(io.engine, pool, *dir, mine, i, end, committed, io.direct_flag, r);
        }
      },
      [&](PhaseResult& res) {
        res.metrics = {{"restore_ranks", static_cast<double>(plan.readers), "ranks"},
                       {"read_shift", static_cast<double>(shift), "ranks"},
                       {"chunks_verified", static_cast<double>(res.ops), "count"}};
        if (c.drop_cache) res.metrics.push_back({"evict_time", evict_s, "s"});
      });
}

}  // namespace

void run_checkpoint(Ctx& ctx) {
  const auto& o = ctx.opt.ckpt;
  const auto& c = ctx.c();
  const RankSpace& ranks = ctx.ranks;
  const CkptPlan plan = plan_checkpoint(ctx.opt, ranks.size, ctx.io.align, ctx.fs);
  ctx.report().note(plan_note(o, plan, ranks.size, ctx.shift));
  BufferPool pool(ctx.io.engine.depth(), plan.chunk, std::max<std::uint64_t>(ctx.io.align, 4096),
                  mix64(c.seed, static_cast<std::uint64_t>(ranks.rank), 0xc4e));
  int committed = -1;  // step of the last committed checkpoint
  for (int rep = 0; rep < c.repetitions; ++rep) {
    for (int s = 0; s < o.steps; ++s) {
      const int step = rep * o.steps + s + 1;
      const double step_start = now_s();
      save_step(ctx.phases, ctx.io, plan, pool, rep, step);
      MPI_Barrier(ranks.comm);
      if (committed > 0) drop_checkpoint(ranks.comm, ctx.io.ws, committed);
      committed = step;
      if (o.interval_s > 0 && s + 1 < o.steps) sleep_until_s(step_start + o.interval_s);
    }
    if (o.restore) restore(ctx.phases, ctx.io, c, plan, pool, rep, committed, ctx.shift);
  }
}

}  // namespace sb
