// kvcache: a block store of fixed-size blocks packed --blocks-per-file to a file, shaped like the
// KV cache of LLM inference on 3FS: bulk block reads with Zipf-skewed popularity, writes of new
// blocks, and deletes of old files by garbage collection.
//
// The run proceeds in rounds. Within a round every rank issues --ops operations in a seeded random
// order: reads of existing blocks (popularity rank 0 = the newest block, Zipf --zipf over all
// ranks' blocks: recent context is hot, like multi-turn prefixes), writes of new blocks into new
// files of its own, and deletes of its own oldest files so its live blocks stay at
// --blocks-per-rank (LRU-like GC). Which files exist, are readable and are deleted in each round is
// a pure function of the options, so every rank knows the store without messages and no read can
// race a delete: a file deleted in round t is not readable in round t, a file written in round t is
// readable from t+1. With --rate, operations arrive as a Poisson process per rank and latency
// counts from arrival (queueing included: no coordinated omission).
#include <climits>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "../samplers.h"
#include "common.h"
#include "ffb/error.h"
#include "ffb/sizes.h"

namespace sb {

namespace {

struct KvFile {
  std::uint64_t q = 0;        // per-rank file sequence number
  int round = -1;             // round that wrote it (-1: initial population)
  std::uint64_t nblocks = 0;  // blocks in the file
  int deleted = INT_MAX;      // round that deletes it
};

// The store's history, identical for every rank (each rank owns files (w, q) for every q).
struct KvPlan {
  std::uint64_t k = 0, cap = 0, w = 0;
  std::vector<KvFile> files;

  void plan_round(int t) {
    if (t >= 0) {
      std::uint64_t live = 0;
      for (const auto& f : files)
        if (f.deleted == INT_MAX) live += f.nblocks;
      for (auto& f : files) {  // oldest first
        if (live + w <= cap) break;
        if (f.deleted != INT_MAX) continue;
        f.deleted = t;
        live -= f.nblocks;
      }
    }
    std::uint64_t n = t < 0 ? cap : w;
    while (n > 0) {
      const std::uint64_t m = std::min(k, n);
      files.push_back(KvFile{files.size(), t, m, INT_MAX});
      n -= m;
    }
  }
};

std::string kv_name(std::uint64_t q, int w) { return fmt::format("kv.{:08d}.{:06d}", q, w); }

enum class KvOp : std::uint8_t { read, write, del };

struct Scheduled {
  KvOp kind;
  std::uint64_t a = 0, b = 0;  // read: global block index; write: file q, block; delete: file q
  double arrival = 0.0;
};

}  // namespace

void run_kvcache(Ctx& ctx) {
  const auto& o = ctx.opt.kv;
  const auto& c = ctx.c();
  const std::uint64_t bs = o.block_size;
  const auto wblocks =
      static_cast<std::uint64_t>(std::llround(static_cast<double>(o.ops) * o.write_frac));
  if (wblocks >= o.blocks_per_rank)
    throw ffb::UsageError(
        fmt::format("--write-frac {} x --ops {} = {} new blocks per rank and round, not below "
                    "--blocks-per-rank {}: the "
                    "store would turn over completely every round; raise --blocks-per-rank or "
                    "lower --write-frac",
                    o.write_frac, o.ops, wblocks, o.blocks_per_rank));
  if (c.odirect && bs % ctx.dio_align != 0)
    throw ffb::UsageError(fmt::format(
        "--block-size {}: O_DIRECT on {} ({}) needs multiples of {} B; use a multiple of {} or "
        "drop --odirect",
        ffb::format_size(bs), ctx.fs.path, ctx.fs.fs_type, ctx.dio_align, ctx.dio_align));
  const std::uint64_t reads_per_round = o.ops - wblocks;
  KvPlan plan{o.blocks_per_file, o.blocks_per_rank, wblocks, {}};
  plan.plan_round(-1);
  ctx.report.note(fmt::format(
      "kvcache: blocks of {}, {} per file, {} live blocks per rank ({} total store {}); per rank "
      "and round "
      "{} reads (Zipf {}), {} block writes, GC deletes of oldest files; {} round(s); {}",
      ffb::format_size(bs), o.blocks_per_file, o.blocks_per_rank,
      o.blocks_per_rank * static_cast<std::uint64_t>(ctx.size),
      ffb::format_size(o.blocks_per_rank * static_cast<std::uint64_t>(ctx.size) * bs),
      reads_per_round, o.zipf, wblocks, o.rounds,
      o.rate > 0 ? fmt::format("Poisson arrivals at {} ops/s per rank", o.rate) : "closed loop"));

  DirHandle& dir = ctx.ws.root();
  BufferPool pool(ctx.engine.depth(), bs, std::max<std::uint64_t>(ctx.io_align(), 4096),
                  mix64(c.seed, static_cast<std::uint64_t>(ctx.rank), 0x4b56));
  const int direct = ctx.direct_flag();
  auto block_id = [&](std::uint64_t q, int w, std::uint64_t b) {
    return BlockId{static_cast<std::uint32_t>(w),
                   q * static_cast<std::uint64_t>(ctx.size) + static_cast<std::uint64_t>(w), b * bs,
                   q};
  };

  // Writes blocks of new own files; `sched` gives (q, block) pairs in order. Closes (and with
  // --fsync, fsyncs) each file after its last block. Shared by the population and the rounds.
  std::map<std::uint64_t, Fd> writing;
  std::map<std::uint64_t, std::uint64_t> written_blocks;
  auto start_write = [&](IoOp& op, std::uint64_t q, std::uint64_t b) {
    auto it = writing.find(q);
    if (it == writing.end())
      it = writing.emplace(q, dir.create(kv_name(q, ctx.rank), direct)).first;
    op.kind = OpKind::write;
    op.fd = it->second.get();
    op.offset = b * bs;
    op.len = bs;
    op.tag = q;
    auto* buf = pool.get();
    op.buf = buf;
    if (c.verify) pool.stamp(buf, bs, block_id(q, ctx.rank, b));
  };
  auto finish_write = [&](const IoOp& op, const IoDone& d) {
    pool.put(static_cast<std::byte*>(op.buf));
    const std::uint64_t q = op.tag;
    const std::string path = dir.path_of(kv_name(q, ctx.rank));
    check_transfer(op, d, path);
    if (++written_blocks[q] == plan.files[q].nblocks) {
      auto it = writing.find(q);
      if (c.fsync) fsync_checked(it->second.get(), path);
      it->second.close_checked(path);
      writing.erase(it);
      written_blocks.erase(q);
    }
  };

  // ---- initial population ----
  {
    RankPhase rp(PhaseSpec{"kvcache", "populate", 0, {"write"}, {false}, true});
    run_phase(ctx, rp, [&](RankPhase& r) {
      std::uint64_t q = 0, b = 0;
      r.mark_open(now_s());
      ctx.engine.run(
          [&](IoOp& op) {
            while (q < plan.files.size() && b >= plan.files[q].nblocks) {
              ++q;
              b = 0;
            }
            if (q >= plan.files.size()) return false;
            start_write(op, q, b++);
            return true;
          },
          [&](const IoOp& op, const IoDone& d) {
            finish_write(op, d);
            r.record(0, d.submit, d.complete, d.bytes);
            return true;
          });
      r.mark_close(now_s());
    });
  }

  int t = 0;  // global round counter (the store carries over between repetitions)
  for (int rep = 0; rep < c.repetitions; ++rep) {
    RankPhase rp(PhaseSpec{
        "kvcache", "mixed", rep, {"read", "write", "delete"}, {true, false, false}, true});
    // Cache honesty: everything readable in the first round of this repetition.
    plan.plan_round(t);
    std::vector<FileRange> wrote, readable;
    for (const auto& f : plan.files) {
      if (f.round >= t || f.deleted <= t) continue;
      for (int w = 0; w < ctx.size; ++w) {
        readable.push_back({&dir, kv_name(f.q, w), 0, f.nblocks * bs});
        if (w == ctx.rank) wrote.push_back(readable.back());
      }
    }
    const double evict_s = prepare_reads(ctx, wrote, readable, rp);
    int rounds_run = 0;
    run_phase(
        ctx, rp,
        [&](RankPhase& r) {
          const Stonewall sw(ctx, r.base());
          for (int i = 0; i < o.rounds; ++i, ++t) {
            if (i > 0) plan.plan_round(t);
            // Readable blocks, newest first: (q desc, w desc); prefix sums for the Zipf rank
            // lookup.
            std::vector<std::pair<std::uint64_t, int>> rfiles;
            std::vector<std::uint64_t> prefix{0};
            for (auto it = plan.files.rbegin(); it != plan.files.rend(); ++it) {
              if (it->round >= t || it->deleted <= t) continue;
              for (int w = ctx.size - 1; w >= 0; --w) {
                rfiles.emplace_back(it->q, w);
                prefix.push_back(prefix.back() + it->nblocks);
              }
            }
            const std::uint64_t nread = prefix.back() > 0 ? reads_per_round : 0;
            // This round's schedule: reads, writes and deletes in a seeded random order.
            Rng rng(mix64(c.seed, static_cast<std::uint64_t>(ctx.rank),
                          static_cast<std::uint64_t>(t) + 0x6b76));
            std::vector<Scheduled> sched;
            const ZipfSampler zipf(std::max<std::uint64_t>(prefix.back(), 1), o.zipf);
            for (std::uint64_t n = 0; n < nread; ++n)
              sched.push_back({KvOp::read, zipf.sample(rng), 0, 0.0});
            for (const auto& f : plan.files)
              if (f.round == t)
                for (std::uint64_t b = 0; b < f.nblocks; ++b)
                  sched.push_back({KvOp::write, f.q, b, 0.0});
            for (const auto& f : plan.files)
              if (f.deleted == t) sched.push_back({KvOp::del, f.q, 0, 0.0});
            // Shuffle the kinds but keep writes and deletes in their own order (files fill front to
            // back, the oldest file goes first).
            std::vector<KvOp> kinds;
            for (const auto& s : sched) kinds.push_back(s.kind);
            for (std::size_t j = kinds.size(); j > 1; --j)
              std::swap(kinds[j - 1], kinds[rng.below(j)]);
            std::vector<Scheduled> ordered;
            std::size_t ri = 0, wi = nread, di = nread;
            while (di < sched.size() && sched[di].kind != KvOp::del) ++di;
            for (KvOp kind : kinds) {
              if (kind == KvOp::read)
                ordered.push_back(sched[ri++]);
              else if (kind == KvOp::write)
                ordered.push_back(sched[wi++]);
              else
                ordered.push_back(sched[di++]);
            }
            // --rate: Poisson arrivals from the round's start.
            agree(ctx.comm, [&] {
              const double t0 = now_s();
              if (o.rate > 0) {
                double at = t0;
                for (auto& s : ordered) {
                  at += rng.exponential(1.0 / o.rate);
                  s.arrival = at;
                }
              }
              std::map<std::uint64_t, Fd> readers;  // open files by global file id
              std::size_t next = 0;
              r.mark_open(t0);
              ctx.engine.run(
                  [&](IoOp& op) {
                    while (next < ordered.size()) {
                      const Scheduled& s = ordered[next++];
                      if (s.kind == KvOp::del) {
                        if (s.arrival > 0) sleep_until_s(s.arrival);
                        const double d0 = now_s();
                        dir.remove(kv_name(s.a, ctx.rank));
                        r.record(2, s.arrival > 0 ? s.arrival : d0, now_s(), 0);
                        continue;
                      }
                      op.not_before = s.arrival;
                      if (s.kind == KvOp::write) {
                        start_write(op, s.a, s.b);
                        return true;
                      }
                      // Read: popularity rank -> (file, block).
                      const auto pos = static_cast<std::size_t>(
                          std::upper_bound(prefix.begin(), prefix.end(), s.a) - prefix.begin() - 1);
                      const auto [q, w] = rfiles[pos];
                      const std::uint64_t b = s.a - prefix[pos];
                      const std::uint64_t gid =
                          q * static_cast<std::uint64_t>(ctx.size) + static_cast<std::uint64_t>(w);
                      auto it = readers.find(gid);
                      if (it == readers.end())
                        it = readers.emplace(gid, dir.open(kv_name(q, w), O_RDONLY | direct)).first;
                      op.kind = OpKind::read;
                      op.fd = it->second.get();
                      op.offset = b * bs;
                      op.len = bs;
                      op.tag = gid;
                      op.buf = pool.get();
                      return true;
                    }
                    return false;
                  },
                  [&](const IoOp& op, const IoDone& d) {
                    const double start = op.not_before > 0 ? op.not_before : d.submit;
                    if (op.kind == OpKind::write) {
                      finish_write(op, d);
                      r.record(1, start, d.complete, d.bytes);
                      return true;
                    }
                    auto* buf = static_cast<std::byte*>(op.buf);
                    pool.invalidate(buf);
                    const std::uint64_t gid = op.tag;
                    const std::uint64_t q = gid / static_cast<std::uint64_t>(ctx.size);
                    const int w = static_cast<int>(gid % static_cast<std::uint64_t>(ctx.size));
                    try {
                      check_transfer(op, d, dir.path_of(kv_name(q, w)));
                    } catch (...) {
                      pool.put(buf);
                      throw;
                    }
                    r.record(0, start, d.complete, d.bytes);
                    if (c.verify)
                      verify_block(
                          r, buf, bs, block_id(q, w, op.offset / bs),
                          fmt::format("{} offset {}", dir.path_of(kv_name(q, w)), op.offset));
                    pool.put(buf);
                    return true;
                  });
              for (auto& [gid, fd] : readers) fd.close_checked("kv file");
              r.mark_close(now_s());
            });
            ++rounds_run;
            // --stonewall: no new round starts after the deadline (a round always completes, so the
            // store stays what every rank's plan says).
            const std::uint64_t passed = max_over_ranks(ctx, sw.passed(now_s()) ? 1 : 0);
            if (passed && i + 1 < o.rounds) {
              r.stonewalled = true;
              ++t;
              break;
            }
          }
        },
        [&](PhaseResult& res) {
          res.metrics = {{"rounds", static_cast<double>(rounds_run), "count"},
                         {"zipf", o.zipf, "1"},
                         {"target_rate_per_rank", o.rate, "ops/s"}};
          if (c.drop_cache) res.metrics.push_back({"evict_time", evict_s, "s"});
        });
  }
}

}  // namespace sb
