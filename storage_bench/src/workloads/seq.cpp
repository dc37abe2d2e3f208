// seq: the IOR pattern. Each rank owns `segments` blocks of `block` bytes, moved in
// `transfer`-sized calls; one shared file (segment-major, rank-interleaved, as IOR lays it out) or
// one file per rank
// (-F). Write then read, the read-back shifted by a node's worth of ranks. --pattern random visits
// every transfer offset exactly once in a seeded random order (IOR -z, fio's random map).
#include <cerrno>
#include <fcntl.h>
#include <numeric>
#include <unistd.h>

#include <fmt/format.h>

#include "../samplers.h"
#include "common.h"
#include "ffb/error.h"
#include "ffb/sizes.h"

namespace sb {

namespace {

// The options it was made from travel with it (offsets need the block and transfer sizes, the
// order the seed, what is written and read --verify).
struct SeqPlan {
  const SeqOptions& o;
  const CommonOptions& c;
  int nranks = 1;
  std::uint64_t tpb = 0;   // transfers per block
  std::uint64_t nops = 0;  // transfers per rank
  bool shared = false;

  std::string file_of(int r) const { return shared ? "seq.shared" : fmt::format("seq.{:06d}", r); }
  std::uint64_t file_id(int r) const { return shared ? 0 : static_cast<std::uint64_t>(r); }
  std::uint64_t offset_of(int r, std::uint64_t k) const {
    const std::uint64_t seg = k / tpb, i = k % tpb;
    if (shared)
      return seg * static_cast<std::uint64_t>(nranks) * o.block +
             static_cast<std::uint64_t>(r) * o.block + i * o.transfer;
    return seg * o.block + i * o.transfer;
  }
  // The order in which rank r visits its transfers (identity, or a seeded permutation).
  std::vector<std::uint64_t> order(int r, int rep, std::uint64_t salt) const {
    if (!o.random) return {};
    return permutation(nops, mix64(c.seed, static_cast<std::uint64_t>(r) * 1000003u + salt,
                                   static_cast<std::uint64_t>(rep)));
  }
};

// Issues transfers [from, to) of rank `owner`'s sequence through the engine.
// Returns how many completed (fewer when the stonewall passed).
std::uint64_t issue(Engine& engine, const SeqPlan& plan, BufferPool& pool, RankPhase& rp, int fd,
                    const std::string& path, OpKind kind, int owner, int rep,
                    const std::vector<std::uint64_t>& order, std::uint64_t from, std::uint64_t to,
                    const Stonewall* sw) {
  const auto& o = plan.o;
  const bool verify = plan.c.verify;
  std::uint64_t k = from, completed = 0;
  engine.run(
      [&](IoOp& op) {
        if (k >= to) return false;
        if (sw && sw->passed(now_s())) {
          rp.stonewalled = true;
          return false;
        }
        const std::uint64_t idx = order.empty() ? k : order[k];
        op.kind = kind;
        op.fd = fd;
        op.len = o.transfer;
        op.offset = plan.offset_of(owner, idx);
        op.tag = idx;
        auto* buf = pool.get();
        op.buf = buf;
        if (kind == OpKind::write && verify)
          pool.stamp(buf, o.transfer,
                     BlockId{static_cast<std::uint32_t>(owner), plan.file_id(owner), op.offset,
                             static_cast<std::uint64_t>(rep)});
        ++k;
        return true;
      },
      [&](const IoOp& op, const IoDone& d) {
        auto* buf = static_cast<std::byte*>(op.buf);
        if (kind == OpKind::read) pool.invalidate(buf);
        try {
          check_transfer(op, d, path);
        } catch (...) {
          pool.put(buf);
          throw;
        }
        rp.record(0, d.submit, d.complete, d.bytes);
        if (kind == OpKind::read && verify)
          verify_block(rp, buf, op.len,
                       BlockId{static_cast<std::uint32_t>(owner), plan.file_id(owner), op.offset,
                               static_cast<std::uint64_t>(rep)},
                       fmt::format("{} offset {}", path, op.offset));
        pool.put(buf);
        ++completed;
        return true;
      });
  return completed;
}

// Untimed layout for --phases read: this rank's blocks written sequentially in large chunks (a
// whole number of transfers, each stamped under --verify), as fio lays out its files.
std::uint64_t layout(const SeqPlan& plan, std::uint32_t align, int rank, int fd,
                     const std::string& path, int rep) {
  const auto& o = plan.o;
  const std::uint64_t per_chunk =
      std::max<std::uint64_t>(1, std::min<std::uint64_t>(plan.tpb, (4ull << 20) / o.transfer));
  const std::uint64_t chunk = per_chunk * o.transfer;
  AlignedBuffer buf(chunk, std::max<std::uint64_t>(align, 4096));
  fill_pattern(buf.span(), mix64(plan.c.seed, static_cast<std::uint64_t>(rank), 0x1a40));
  for (std::uint64_t seg = 0; seg < o.segments; ++seg) {
    for (std::uint64_t i = 0; i < plan.tpb; i += per_chunk) {
      const std::uint64_t n = std::min(per_chunk, plan.tpb - i);
      const std::uint64_t off = plan.offset_of(rank, seg * plan.tpb + i);
      if (plan.c.verify)
        for (std::uint64_t k = 0; k < n; ++k)
          stamp_block({buf.data() + k * o.transfer, o.transfer},
                      BlockId{static_cast<std::uint32_t>(rank), plan.file_id(rank),
                              off + k * o.transfer, static_cast<std::uint64_t>(rep)});
      std::uint64_t done = 0;
      while (done < n * o.transfer) {
        const ssize_t w =
            ::pwrite(fd, buf.data() + done, n * o.transfer - done, static_cast<off_t>(off + done));
        if (w < 0) {
          if (errno == EINTR && !stop_requested()) continue;
          throw_io(fmt::format("write (layout, offset {})", off + done), path, errno);
        }
        done += static_cast<std::uint64_t>(w);
      }
      throw_if_stopped();
    }
  }
  return plan.nops;
}

// Under --odirect, align is the statx alignment that --transfer and --block must be multiples of.
SeqPlan plan_seq(const Options& opt, int nranks, std::uint32_t align, const FsInfo& fs) {
  const auto& o = opt.seq;
  SeqPlan plan{o, opt.common, nranks};
  plan.tpb = o.block / o.transfer;
  plan.nops = plan.tpb * o.segments;
  plan.shared = !o.file_per_proc;
  if (opt.common.odirect) {
    const std::uint64_t a = align;
    for (auto [flag, v] : {std::pair{"--transfer", o.transfer}, std::pair{"--block", o.block}})
      if (v % a != 0)
        throw ffb::UsageError(fmt::format(
            "{} {}: O_DIRECT on {} ({}) needs sizes and offsets that are multiples of {} B (the "
            "statx direct-I/O alignment); use a multiple of {} or drop --odirect",
            flag, ffb::format_size(v), fs.path, fs.fs_type, a, a));
  }
  return plan;
}

std::string plan_note(const SeqPlan& plan, int shift, int nnodes) {
  const auto& o = plan.o;
  return fmt::format(
      "seq: block {}, transfer {}, segments {}, {}, pattern {}, {} per rank, {} total; read-back "
      "shift "
      "{} rank(s){}",
      ffb::format_size(o.block), ffb::format_size(o.transfer), o.segments,
      plan.shared ? "one shared file" : "file per rank", o.random ? "random" : "sequential",
      ffb::format_size(o.block * o.segments),
      ffb::format_size(o.block * o.segments * static_cast<std::uint64_t>(plan.nranks)), shift,
      nnodes == 1 ? " (one node: read-back cannot avoid this node's page cache)" : "");
}

// This rank's file written, timed (through the engine, with stonewall and wear-out) or as the
// untimed layout of --phases read. Returns the transfers each rank wrote (all ranks).
std::vector<std::uint64_t> write_file(const RankSpace& ranks, const IoTarget& io,
                                      const SeqPlan& plan, BufferPool& pool, RankPhase& rp, int rep,
                                      bool timed) {
  const auto& c = plan.c;
  const int rank = ranks.rank;
  DirHandle& dir = io.dir();
  const int direct = io.direct_flag;
  const std::string my_file = plan.file_of(rank);
  const std::string path = dir.path_of(my_file);
  Stonewall sw(c.stonewall_s, rp.base());
  const auto order = timed ? plan.order(rank, rep, 0) : std::vector<std::uint64_t>{};
  Fd fd;
  agree(ranks.comm, [&] {
    if (plan.shared && rank == 0) {
      rp.mark_open(now_s());
      fd = dir.create(my_file, direct);
    }
  });
  std::uint64_t done = 0;
  agree(ranks.comm, [&] {
    if (!fd) {
      rp.mark_open(now_s());
      fd = plan.shared ? dir.open(my_file, O_RDWR | direct) : dir.create(my_file, direct);
    }
    if (timed)
      done = issue(io.engine, plan, pool, rp, fd.get(), path, OpKind::write, rank, rep, order, 0,
                   plan.nops, &sw);
    else
      done = layout(plan, io.align, rank, fd.get(), path, rep);
  });
  if (timed && c.stonewall_s > 0 && c.wearout) {
    const std::uint64_t target = max_over_ranks(ranks.comm, done);
    agree(ranks.comm, [&] {
      done += issue(io.engine, plan, pool, rp, fd.get(), path, OpKind::write, rank, rep, order,
                    done, target, nullptr);
    });
  }
  agree(ranks.comm, [&] {
    if (c.fsync || !timed) fsync_checked(fd.get(), path);
    fd.close_checked(path);
    rp.mark_close(now_s());
  });
  return allgather_u64(ranks.comm, done);
}

// The write phase (or the untimed layout); returns the transfers each rank wrote.
std::vector<std::uint64_t> write_phase(const PhaseEnv& env, const IoTarget& io, const SeqPlan& plan,
                                       BufferPool& pool, int rep) {
  std::vector<std::uint64_t> written_by;
  if (plan.o.do_write) {
    RankPhase rp(PhaseSpec{"seq", "write", rep, {"write"}, {false}, true});
    run_phase(env, rp, [&](RankPhase& r) {
      written_by = write_file(env.ranks, io, plan, pool, r, rep, true);
    });
    return written_by;
  }
  RankPhase rp(PhaseSpec{"seq", "layout", rep, {"write"}, {false}, true});
  MPI_Barrier(env.ranks.comm);
  rp.start();
  written_by = write_file(env.ranks, io, plan, pool, rp, rep, false);
  if (rep == 0) env.report.note("read-only run: data laid out untimed (sequential, fsync'd)");
  return written_by;
}

// What the read phase's cache preparation syncs (what this rank wrote) and samples (what it
// will read). Shared file: every rank syncs it (each node's client holds its own dirty pages).
void read_ranges(const SeqPlan& plan, DirHandle& dir, int rank, int src,
                 std::vector<FileRange>& wrote, std::vector<FileRange>& will_read) {
  const auto& o = plan.o;
  const std::string src_file = plan.file_of(src);
  if (plan.shared) {
    const std::uint64_t total = o.block * o.segments * static_cast<std::uint64_t>(plan.nranks);
    wrote.push_back({&dir, src_file, 0, total});
    for (std::uint64_t s = 0; s < o.segments; ++s)
      will_read.push_back({&dir, src_file, plan.offset_of(src, s * plan.tpb), o.block});
  } else {
    const std::uint64_t span = o.block * o.segments;
    wrote.push_back({&dir, plan.file_of(rank), 0, span});
    will_read.push_back({&dir, src_file, 0, span});
  }
}

// Reads back what rank `src` wrote (its `src_count` transfers, in the writer's order).
void read_file(MPI_Comm comm, const IoTarget& io, const SeqPlan& plan, BufferPool& pool,
               RankPhase& r, int rep, int src, std::uint64_t src_count) {
  const auto& c = plan.c;
  DirHandle& dir = io.dir();
  const std::string src_file = plan.file_of(src);
  const std::string src_path = dir.path_of(src_file);
  Stonewall sw(c.stonewall_s, r.base());
  // The writer's order: with a stonewall it names exactly the transfers that exist.
  const auto order = plan.order(src, rep, 0);
  Fd fd;
  std::uint64_t done = 0;
  agree(comm, [&] {
    r.mark_open(now_s());
    fd = dir.open(src_file, O_RDONLY | io.direct_flag);
    done = issue(io.engine, plan, pool, r, fd.get(), src_path, OpKind::read, src, rep, order, 0,
                 src_count, &sw);
  });
  if (c.stonewall_s > 0 && c.wearout) {
    const std::uint64_t target = std::min(max_over_ranks(comm, done), src_count);
    agree(comm, [&] {
      done += issue(io.engine, plan, pool, r, fd.get(), src_path, OpKind::read, src, rep, order,
                    done, target, nullptr);
    });
  }
  agree(comm, [&] {
    fd.close_checked(src_path);
    r.mark_close(now_s());
  });
}

// Rank r reads back what rank r + shift wrote.
void read_phase(const PhaseEnv& env, const IoTarget& io, const SeqPlan& plan, BufferPool& pool,
                int rep, int shift, const std::vector<std::uint64_t>& written_by) {
  const RankSpace& ranks = env.ranks;
  const int src = ranks.shifted(ranks.rank, shift);
  RankPhase rp(PhaseSpec{"seq", "read", rep, {"read"}, {true}, true});
  std::vector<FileRange> wrote, will_read;
  read_ranges(plan, io.dir(), ranks.rank, src, wrote, will_read);
  const double evict_s = prepare_reads(ranks.comm, plan.c, wrote, will_read, rp);
  run_phase(
      env, rp,
      [&](RankPhase& r) {
        read_file(ranks.comm, io, plan, pool, r, rep, src,
                  written_by[static_cast<std::size_t>(src)]);
      },
      [&](PhaseResult& res) {
        res.metrics.push_back({"read_shift", static_cast<double>(shift), "ranks"});
        if (plan.c.drop_cache) res.metrics.push_back({"evict_time", evict_s, "s"});
      });
}

}  // namespace

void run_seq(Ctx& ctx) {
  const auto& o = ctx.opt.seq;
  const auto& c = ctx.c();
  const RankSpace& ranks = ctx.ranks;
  const SeqPlan plan = plan_seq(ctx.opt, ranks.size, ctx.io.align, ctx.fs);
  DirHandle& dir = ctx.io.dir();
  BufferPool pool(ctx.io.engine.depth(), o.transfer, ctx.io.align,
                  c.seed + static_cast<std::uint64_t>(ranks.rank));
  ctx.report().note(plan_note(plan, ctx.shift, ctx.phases.topo.nnodes()));

  for (int rep = 0; rep < c.repetitions; ++rep) {
    const std::vector<std::uint64_t> written_by = write_phase(ctx.phases, ctx.io, plan, pool, rep);
    // --self-test-corrupt: rank 0's first transfer, after it is written and before it is read.
    if (c.self_test_corrupt)
      agree(ranks.comm, [&] {
        if (ranks.rank == 0)
          ctx.report().note(
              corrupt_one_byte(dir, plan.file_of(0), plan.offset_of(0, 0), o.transfer));
      });
    if (o.do_read) read_phase(ctx.phases, ctx.io, plan, pool, rep, ctx.shift, written_by);
    // Remove this repetition's files (untimed) unless --keep.
    MPI_Barrier(ranks.comm);
    if (!c.keep) agree(ranks.comm, [&] { dir.remove(plan.file_of(ranks.rank)); });
  }
}

}  // namespace sb
