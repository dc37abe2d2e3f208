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
#include <algorithm>
#include <climits>
#include <cmath>
#include <fcntl.h>
#include <map>
#include <tuple>

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

// The blocks readable in round t, newest first: (q desc, w desc), with prefix sums of their block
// counts for the Zipf rank lookup.
struct Readable {
  std::vector<std::pair<std::uint64_t, int>> files;  // (q, w)
  std::vector<std::uint64_t> prefix{0};

  Readable(const KvPlan& plan, int t, int size) {
    for (auto it = plan.files.rbegin(); it != plan.files.rend(); ++it) {
      if (it->round >= t || it->deleted <= t) continue;
      for (int w = size - 1; w >= 0; --w) {
        files.emplace_back(it->q, w);
        prefix.push_back(prefix.back() + it->nblocks);
      }
    }
  }
  // Popularity rank -> (file q, writer w, block b).
  std::tuple<std::uint64_t, int, std::uint64_t> locate(std::uint64_t rank) const {
    const auto pos = static_cast<std::size_t>(std::upper_bound(prefix.begin(), prefix.end(), rank) -
                                              prefix.begin() - 1);
    return {files[pos].first, files[pos].second, rank - prefix[pos]};
  }
};

// One rank's operations in round t: reads, writes and deletes in a seeded random order (the rng
// continues into the arrival times). A pure function of the options, so any rank can compute
// another's.
std::vector<Scheduled> round_schedule(const KvOptions& o, const KvPlan& plan, const Readable& view,
                                      int t, std::uint64_t reads_per_round, Rng& rng) {
  const std::uint64_t nread = view.prefix.back() > 0 ? reads_per_round : 0;
  std::vector<Scheduled> sched;
  const ZipfSampler zipf(std::max<std::uint64_t>(view.prefix.back(), 1), o.zipf);
  for (std::uint64_t n = 0; n < nread; ++n) sched.push_back({KvOp::read, zipf.sample(rng), 0, 0.0});
  for (const auto& f : plan.files)
    if (f.round == t)
      for (std::uint64_t b = 0; b < f.nblocks; ++b) sched.push_back({KvOp::write, f.q, b, 0.0});
  for (const auto& f : plan.files)
    if (f.deleted == t) sched.push_back({KvOp::del, f.q, 0, 0.0});
  // Shuffle the kinds but keep writes and deletes in their own order (files fill front to back,
  // the oldest file goes first).
  std::vector<KvOp> kinds;
  for (const auto& s : sched) kinds.push_back(s.kind);
  for (std::size_t j = kinds.size(); j > 1; --j) std::swap(kinds[j - 1], kinds[rng.below(j)]);
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
  return ordered;
}

Rng round_rng(std::uint64_t seed, int rank, int t) {
  return Rng(mix64(seed, static_cast<std::uint64_t>(rank), static_cast<std::uint64_t>(t) + 0x6b76));
}

// One rank's store: the plan, its buffers and the files it is writing. The report takes the
// --self-test-corrupt note.
class KvStore {
 public:
  KvStore(const RankSpace& ranks, const IoTarget& io, const Options& opt, Report& report,
          KvPlan& plan)
      : ranks_(ranks),
        engine_(io.engine),
        o_(opt.kv),
        c_(opt.common),
        report_(report),
        plan_(plan),
        dir_(io.dir()),
        pool_(io.engine.depth(), o_.block_size, std::max<std::uint64_t>(io.align, 4096),
              mix64(c_.seed, static_cast<std::uint64_t>(ranks.rank), 0x4b56)),
        direct_(io.direct_flag) {}

  BlockId block_id(std::uint64_t q, int w, std::uint64_t b) const {
    return BlockId{static_cast<std::uint32_t>(w),
                   q * static_cast<std::uint64_t>(ranks_.size) + static_cast<std::uint64_t>(w),
                   b * o_.block_size, q};
  }
  void populate(RankPhase& r);
  // Runs this rank's schedule of round t (inside agree).
  void run_round(RankPhase& r, const Readable& view, std::vector<Scheduled>& ordered);
  // --self-test-corrupt, before the mixed phase that starts with round t: the writer of the first
  // block read in it (rounds in order, then ranks) that exists already flips one byte of it.
  void self_test(int t, std::uint64_t reads_per_round);

 private:
  // Writes blocks of new own files. Closes (and with --fsync, fsyncs) each file after its last
  // block. Shared by the population and the rounds.
  void start_write(IoOp& op, std::uint64_t q, std::uint64_t b);
  void finish_write(const IoOp& op, const IoDone& d);
  bool next_op(IoOp& op, RankPhase& r, const Readable& view, const std::vector<Scheduled>& ordered,
               std::size_t& next, std::map<std::uint64_t, Fd>& readers);
  void finish_read(RankPhase& r, const IoOp& op, const IoDone& d);

  RankSpace ranks_;
  Engine& engine_;
  const KvOptions& o_;
  const CommonOptions& c_;
  Report& report_;
  KvPlan& plan_;
  DirHandle& dir_;
  BufferPool pool_;
  int direct_;
  std::map<std::uint64_t, Fd> writing_;
  std::map<std::uint64_t, std::uint64_t> written_blocks_;
};

void KvStore::start_write(IoOp& op, std::uint64_t q, std::uint64_t b) {
  auto it = writing_.find(q);
  if (it == writing_.end())
    it = writing_.emplace(q, dir_.create(kv_name(q, ranks_.rank), direct_)).first;
  op.kind = OpKind::write;
  op.fd = it->second.get();
  op.offset = b * o_.block_size;
  op.len = o_.block_size;
  op.tag = q;
  auto* buf = pool_.get();
  op.buf = buf;
  if (c_.verify) pool_.stamp(buf, o_.block_size, block_id(q, ranks_.rank, b));
}

void KvStore::finish_write(const IoOp& op, const IoDone& d) {
  pool_.put(static_cast<std::byte*>(op.buf));
  const std::uint64_t q = op.tag;
  const std::string path = dir_.path_of(kv_name(q, ranks_.rank));
  check_transfer(op, d, path);
  if (++written_blocks_[q] == plan_.files[q].nblocks) {
    auto it = writing_.find(q);
    if (c_.fsync) fsync_checked(it->second.get(), path);
    it->second.close_checked(path);
    writing_.erase(it);
    written_blocks_.erase(q);
  }
}

void KvStore::populate(RankPhase& r) {
  std::uint64_t q = 0, b = 0;
  r.mark_open(now_s());
  engine_.run(
      [&](IoOp& op) {
        while (q < plan_.files.size() && b >= plan_.files[q].nblocks) {
          ++q;
          b = 0;
        }
        if (q >= plan_.files.size()) return false;
        start_write(op, q, b++);
        return true;
      },
      [&](const IoOp& op, const IoDone& d) {
        finish_write(op, d);
        r.record(0, d.submit, d.complete, d.bytes);
        return true;
      });
  r.mark_close(now_s());
}

bool KvStore::next_op(IoOp& op, RankPhase& r, const Readable& view,
                      const std::vector<Scheduled>& ordered, std::size_t& next,
                      std::map<std::uint64_t, Fd>& readers) {
  while (next < ordered.size()) {
    const Scheduled& s = ordered[next++];
    if (s.kind == KvOp::del) {
      if (s.arrival > 0) sleep_until_s(s.arrival);
      const double d0 = now_s();
      dir_.remove(kv_name(s.a, ranks_.rank));
      r.record(2, s.arrival > 0 ? s.arrival : d0, now_s(), 0);
      continue;
    }
    op.not_before = s.arrival;
    if (s.kind == KvOp::write) {
      start_write(op, s.a, s.b);
      return true;
    }
    const auto [q, w, b] = view.locate(s.a);
    const std::uint64_t gid =
        q * static_cast<std::uint64_t>(ranks_.size) + static_cast<std::uint64_t>(w);
    auto it = readers.find(gid);
    if (it == readers.end())
      it = readers.emplace(gid, dir_.open(kv_name(q, w), O_RDONLY | direct_)).first;
    op.kind = OpKind::read;
    op.fd = it->second.get();
    op.offset = b * o_.block_size;
    op.len = o_.block_size;
    op.tag = gid;
    op.buf = pool_.get();
    return true;
  }
  return false;
}

void KvStore::finish_read(RankPhase& r, const IoOp& op, const IoDone& d) {
  const double start = op.not_before > 0 ? op.not_before : d.submit;
  auto* buf = static_cast<std::byte*>(op.buf);
  pool_.invalidate(buf);
  const std::uint64_t gid = op.tag;
  const std::uint64_t q = gid / static_cast<std::uint64_t>(ranks_.size);
  const int w = static_cast<int>(gid % static_cast<std::uint64_t>(ranks_.size));
  const std::string path = dir_.path_of(kv_name(q, w));
  try {
    check_transfer(op, d, path);
  } catch (...) {
    pool_.put(buf);
    throw;
  }
  r.record(0, start, d.complete, d.bytes);
  if (c_.verify)
    verify_block(r, buf, o_.block_size, block_id(q, w, op.offset / o_.block_size),
                 fmt::format("{} offset {}", path, op.offset));
  pool_.put(buf);
}

void KvStore::run_round(RankPhase& r, const Readable& view, std::vector<Scheduled>& ordered) {
  std::map<std::uint64_t, Fd> readers;  // open files by global file id
  std::size_t next = 0;
  r.mark_open(now_s());
  engine_.run([&](IoOp& op) { return next_op(op, r, view, ordered, next, readers); },
              [&](const IoOp& op, const IoDone& d) {
                if (op.kind == OpKind::write) {
                  finish_write(op, d);
                  r.record(1, op.not_before > 0 ? op.not_before : d.submit, d.complete, d.bytes);
                } else {
                  finish_read(r, op, d);
                }
                return true;
              });
  for (auto& [gid, fd] : readers) fd.close_checked("kv file");
  r.mark_close(now_s());
}

void KvStore::self_test(int t, std::uint64_t reads_per_round) {
  KvPlan future = plan_;  // holds round t already; later rounds are planned on the copy
  for (int i = 0; i < o_.rounds; ++i) {
    if (i > 0) future.plan_round(t + i);
    const Readable view(future, t + i, ranks_.size);
    for (int reader = 0; reader < ranks_.size; ++reader) {
      Rng rng = round_rng(c_.seed, reader, t + i);
      for (const auto& s : round_schedule(o_, future, view, t + i, reads_per_round, rng)) {
        if (s.kind != KvOp::read) continue;
        const auto [q, w, b] = view.locate(s.a);
        if (future.files[q].round >= t) continue;  // written during the phase: not there yet
        agree(ranks_.comm, [&, q = q, w = w, b = b] {
          if (w == ranks_.rank)
            corrupt_one_byte(dir_, kv_name(q, w), b * o_.block_size, o_.block_size);
          report_.note(fmt::format(
              "self-test: rank {} flipped one byte of block {} of {} (the first block read, by "
              "rank {} in round {}, that exists before the phase); --verify must report it",
              w, b, kv_name(q, w), reader, t + i));
        });
        return;
      }
    }
  }
  throw ffb::UsageError(
      "--self-test-corrupt: no block that exists before the mixed phase is read in it; give more "
      "--rounds or --ops, or more --blocks-per-rank than --blocks-per-file");
}

// New blocks per rank and round, refusing a --block-size O_DIRECT cannot use.
// Under --odirect, align is the statx alignment that --block-size must be a multiple of.
std::uint64_t plan_writes(const Options& opt, std::uint32_t align, const FsInfo& fs) {
  const auto& o = opt.kv;
  if (opt.common.odirect && o.block_size % align != 0)
    throw ffb::UsageError(fmt::format(
        "--block-size {}: O_DIRECT on {} ({}) needs multiples of {} B; use a multiple of {} or "
        "drop --odirect",
        ffb::format_size(o.block_size), fs.path, fs.fs_type, align, align));
  return static_cast<std::uint64_t>(std::llround(static_cast<double>(o.ops) * o.write_frac));
}

std::string plan_note(const KvOptions& o, int nranks, std::uint64_t reads_per_round,
                      std::uint64_t wblocks) {
  const auto ranks = static_cast<std::uint64_t>(nranks);
  return fmt::format(
      "kvcache: blocks of {}, {} per file, {} live blocks per rank ({} total store {}); per rank "
      "and round {} reads (Zipf {}), {} block writes, GC deletes of oldest files; {} round(s); {}",
      ffb::format_size(o.block_size), o.blocks_per_file, o.blocks_per_rank,
      o.blocks_per_rank * ranks, ffb::format_size(o.blocks_per_rank * ranks * o.block_size),
      reads_per_round, o.zipf, wblocks, o.rounds,
      o.rate > 0 ? fmt::format("Poisson arrivals at {} ops/s per rank", o.rate) : "closed loop");
}

// Cache honesty: what this rank wrote and everything readable in round t.
void readable_ranges(const KvPlan& plan, std::uint64_t block_size, DirHandle& dir,
                     const RankSpace& ranks, int t, std::vector<FileRange>& wrote,
                     std::vector<FileRange>& readable) {
  for (const auto& f : plan.files) {
    if (f.round >= t || f.deleted <= t) continue;
    for (int w = 0; w < ranks.size; ++w) {
      readable.push_back({&dir, kv_name(f.q, w), 0, f.nblocks * block_size});
      if (w == ranks.rank) wrote.push_back(readable.back());
    }
  }
}

// The rounds of one repetition's mixed phase; t is the global round counter (the store carries
// over between repetitions). Returns the rounds run (fewer after a stonewall).
int run_rounds(const RankSpace& ranks, const Options& opt, KvPlan& plan, KvStore& store,
               RankPhase& r, int& t, std::uint64_t reads_per_round) {
  const auto& o = opt.kv;
  const Stonewall sw(opt.common.stonewall_s, r.base());
  int rounds_run = 0;
  for (int i = 0; i < o.rounds; ++i, ++t) {
    if (i > 0) plan.plan_round(t);
    const Readable view(plan, t, ranks.size);
    Rng rng = round_rng(opt.common.seed, ranks.rank, t);
    auto ordered = round_schedule(o, plan, view, t, reads_per_round, rng);
    agree(ranks.comm, [&] {
      // --rate: Poisson arrivals from the round's start.
      if (o.rate > 0) {
        double at = now_s();
        for (auto& s : ordered) {
          at += rng.exponential(1.0 / o.rate);
          s.arrival = at;
        }
      }
      store.run_round(r, view, ordered);
    });
    ++rounds_run;
    // --stonewall: no new round starts after the deadline (a round always completes, so the
    // store stays what every rank's plan says).
    const std::uint64_t passed = max_over_ranks(ranks.comm, sw.passed(now_s()) ? 1 : 0);
    if (passed && i + 1 < o.rounds) {
      r.stonewalled = true;
      ++t;
      break;
    }
  }
  return rounds_run;
}

void mixed_phase(const PhaseEnv& env, DirHandle& dir, const Options& opt, KvPlan& plan,
                 KvStore& store, int rep, int& t, std::uint64_t reads_per_round) {
  const auto& o = opt.kv;
  const auto& c = opt.common;
  const RankSpace& ranks = env.ranks;
  RankPhase rp(
      PhaseSpec{"kvcache", "mixed", rep, {"read", "write", "delete"}, {true, false, false}, true});
  plan.plan_round(t);
  std::vector<FileRange> wrote, readable;
  readable_ranges(plan, o.block_size, dir, ranks, t, wrote, readable);
  if (c.self_test_corrupt && rep == 0) store.self_test(t, reads_per_round);
  const double evict_s = prepare_reads(ranks.comm, c, wrote, readable, rp);
  int rounds_run = 0;
  run_phase(
      env, rp,
      [&](RankPhase& r) {
        rounds_run = run_rounds(ranks, opt, plan, store, r, t, reads_per_round);
      },
      [&](PhaseResult& res) {
        res.metrics = {{"rounds", static_cast<double>(rounds_run), "count"},
                       {"zipf", o.zipf, "1"},
                       {"target_rate_per_rank", o.rate, "ops/s"}};
        if (c.drop_cache) res.metrics.push_back({"evict_time", evict_s, "s"});
      });
}

}  // namespace

void run_kvcache(Ctx& ctx) {
  const auto& o = ctx.opt.kv;
  const std::uint64_t wblocks = plan_writes(ctx.opt, ctx.io.align, ctx.fs);
  const std::uint64_t reads_per_round = o.ops - wblocks;  // options: wblocks < blocks-per-rank
  KvPlan plan{o.blocks_per_file, o.blocks_per_rank, wblocks, {}};
  plan.plan_round(-1);
  ctx.report().note(plan_note(o, ctx.ranks.size, reads_per_round, wblocks));

  KvStore store(ctx.ranks, ctx.io, ctx.opt, ctx.report(), plan);
  {
    RankPhase rp(PhaseSpec{"kvcache", "populate", 0, {"write"}, {false}, true});
    run_phase(ctx.phases, rp, [&](RankPhase& r) { store.populate(r); });
  }
  int t = 0;  // global round counter (the store carries over between repetitions)
  for (int rep = 0; rep < ctx.c().repetitions; ++rep)
    mixed_phase(ctx.phases, ctx.io.dir(), ctx.opt, plan, store, rep, t, reads_per_round);
}

}  // namespace sb
