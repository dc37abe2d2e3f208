// meta: mdtest-like metadata rates. Each rank creates --files files (writing --file-size bytes into
// each), then stats them, opens and reads them, and deletes them. Files live in one shared
// directory (default) or one directory per rank (-u, mdtest -u). Stat and read are done by another
// rank than the creator (the read-back shift, mdtest -N), so the creator's client cache does not
// answer. Metadata calls are plain POSIX for every engine; --odirect does not apply.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "../samplers.h"
#include "common.h"
#include "ffb/sizes.h"

namespace sb {

namespace {

// One rank's part of the meta workload: its own directory, the directory of the rank whose files
// it stats and reads (the shift), and the write and read buffers. Metadata calls are plain POSIX:
// it needs the job directory, not the engine.
class MetaRun {
 public:
  MetaRun(const PhaseEnv& env, Workspace& ws, const Options& opt, int shift)
      : env_(env),
        ranks_(env.ranks),
        ws_(ws),
        o_(opt.meta),
        c_(opt.common),
        src_(ranks_.shifted(ranks_.rank, shift)),
        buf_(std::max<std::uint64_t>(o_.file_size, 1), 4096),
        rbuf_(std::max<std::uint64_t>(o_.file_size, 1), 4096) {
    fill_pattern(buf_.span(), mix64(c_.seed, static_cast<std::uint64_t>(ranks_.rank)));
  }

  std::string dir_name(int r) const {
    return o_.unique_dir ? fmt::format("meta.{:06d}", r) : std::string("meta");
  }
  std::string file_name(int r, std::uint64_t i) const {
    return o_.unique_dir ? fmt::format("f.{:09d}", i) : fmt::format("f.{:06d}.{:09d}", r, i);
  }
  int src() const { return src_; }

  // Directories: made once, before any timed phase (mdtest also times tree creation separately).
  void make_dirs() {
    agree(ranks_.comm, [&] {
      if (o_.unique_dir || ranks_.rank == 0) ws_.make_subdir(dir_name(ranks_.rank));
    });
    agree(ranks_.comm, [&] {
      mine_ = &ws_.open_subdir(dir_name(ranks_.rank));
      theirs_ = &ws_.open_subdir(dir_name(src_));
    });
  }

  // Returns the files each rank created.
  std::vector<std::uint64_t> create_phase(int rep);
  void self_test(const std::vector<std::uint64_t>& created);
  void stat_phase(int rep, std::uint64_t src_count);
  void read_phase(int rep, const std::vector<std::uint64_t>& created);
  void delete_phase(int rep, std::uint64_t mine_count);
  void remove_untimed(std::uint64_t mine_count);

 private:
  void create_one(RankPhase& r, int rep, std::uint64_t i);
  void read_one(RankPhase& r, int rep, std::uint64_t i);

  const PhaseEnv& env_;
  const RankSpace& ranks_;
  Workspace& ws_;
  const MetaOptions& o_;
  const CommonOptions& c_;
  int src_;
  DirHandle* mine_ = nullptr;
  DirHandle* theirs_ = nullptr;
  AlignedBuffer buf_, rbuf_;
};

void MetaRun::create_one(RankPhase& r, int rep, std::uint64_t i) {
  const std::string name = file_name(ranks_.rank, i);
  const double t0 = now_s();
  Fd fd = mine_->create(name);
  if (o_.file_size > 0) {
    if (c_.verify)
      make_block({buf_.data(), o_.file_size}, BlockId{static_cast<std::uint32_t>(ranks_.rank), i, 0,
                                                      static_cast<std::uint64_t>(rep)});
    const ssize_t w = ::pwrite(fd.get(), buf_.data(), o_.file_size, 0);
    if (w < 0) throw_io("write", mine_->path_of(name), errno);
    if (static_cast<std::uint64_t>(w) != o_.file_size)
      throw IoError(fmt::format("write {}: short write", mine_->path_of(name)), EIO);
  }
  if (c_.fsync) fsync_checked(fd.get(), mine_->path_of(name));
  fd.close_checked(mine_->path_of(name));
  r.record(0, t0, now_s(), o_.file_size);
}

std::vector<std::uint64_t> MetaRun::create_phase(int rep) {
  std::vector<std::uint64_t> created;
  RankPhase rp(PhaseSpec{"meta", "create", rep, {"create"}, {false}, false});
  run_phase(env_, rp, [&](RankPhase& r) {
    const Stonewall sw(c_.stonewall_s, r.base());
    std::uint64_t n = 0;
    agree(ranks_.comm, [&] {
      for (; n < o_.files; ++n) {
        if (sw.passed(now_s())) {
          r.stonewalled = true;
          break;
        }
        throw_if_stopped();
        create_one(r, rep, n);
      }
    });
    if (c_.stonewall_s > 0 && c_.wearout) {
      const std::uint64_t target = max_over_ranks(ranks_.comm, n);
      agree(ranks_.comm, [&] {
        for (; n < target; ++n) create_one(r, rep, n);
      });
    }
    created = allgather_u64(ranks_.comm, n);
  });
  return created;
}

// --self-test-corrupt: rank 0's first file (options refuse it without a read phase or with empty
// files); another rank reads it back in the read phase.
void MetaRun::self_test(const std::vector<std::uint64_t>& created) {
  agree(ranks_.comm, [&] {
    if (ranks_.rank == 0 && created[0] > 0)
      env_.report.note(corrupt_one_byte(*mine_, file_name(0, 0), 0, o_.file_size));
  });
}

// Stats another rank's files.
void MetaRun::stat_phase(int rep, std::uint64_t src_count) {
  RankPhase rp(PhaseSpec{"meta", "stat", rep, {"stat"}, {false}, false});
  run_phase(env_, rp, [&](RankPhase& r) {
    const Stonewall sw(c_.stonewall_s, r.base());
    for (std::uint64_t i = 0; i < src_count; ++i) {
      if (sw.passed(now_s())) {
        r.stonewalled = true;
        break;
      }
      throw_if_stopped();
      const std::string name = file_name(src_, i);
      struct stat st {};
      const double t0 = now_s();
      if (::fstatat(theirs_->fd(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        throw_io("stat", theirs_->path_of(name), errno);
      r.record(0, t0, now_s(), 0);
      if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != o_.file_size)
        r.verify_failed(
            fmt::format("stat {}: expected a regular file of {} bytes, found mode {:o} size {}",
                        theirs_->path_of(name), o_.file_size, st.st_mode, st.st_size));
    }
  });
}

// Open, read and close another rank's file i; verify it with --verify.
void MetaRun::read_one(RankPhase& r, int rep, std::uint64_t i) {
  const std::string name = file_name(src_, i);
  const double t0 = now_s();
  Fd fd = theirs_->open(name, O_RDONLY);
  std::uint64_t got = 0;
  while (got < o_.file_size) {
    const ssize_t n =
        ::pread(fd.get(), rbuf_.data() + got, o_.file_size - got, static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_io("read", theirs_->path_of(name), errno);
    }
    if (n == 0) break;
    got += static_cast<std::uint64_t>(n);
  }
  fd.close_checked(theirs_->path_of(name));
  r.record(0, t0, now_s(), got);
  if (got != o_.file_size)
    throw IoError(fmt::format("read {}: {} of {} bytes", theirs_->path_of(name), got, o_.file_size),
                  EIO);
  if (c_.verify && o_.file_size > 0)
    verify_block(r, rbuf_.data(), o_.file_size,
                 BlockId{static_cast<std::uint32_t>(src_), i, 0, static_cast<std::uint64_t>(rep)},
                 theirs_->path_of(name));
}

void MetaRun::read_phase(int rep, const std::vector<std::uint64_t>& created) {
  const std::uint64_t src_count = created[static_cast<std::size_t>(src_)];
  RankPhase rp(PhaseSpec{"meta", "read", rep, {"read"}, {true}, false});
  std::vector<FileRange> wrote, will_read;
  const std::uint64_t sample = std::min<std::uint64_t>(src_count, c_.residency_pages);
  for (std::uint64_t i = 0; i < src_count; ++i) {
    if (c_.drop_cache && i < created[static_cast<std::size_t>(ranks_.rank)])
      wrote.push_back({mine_, file_name(ranks_.rank, i), 0, o_.file_size});
    if (sample > 0 && i % std::max<std::uint64_t>(src_count / sample, 1) == 0 && o_.file_size > 0)
      will_read.push_back({theirs_, file_name(src_, i), 0, o_.file_size});
  }
  const double evict_s = prepare_reads(ranks_.comm, c_, wrote, will_read, rp);
  run_phase(
      env_, rp,
      [&](RankPhase& r) {
        const Stonewall sw(c_.stonewall_s, r.base());
        for (std::uint64_t i = 0; i < src_count; ++i) {
          if (sw.passed(now_s())) {
            r.stonewalled = true;
            break;
          }
          throw_if_stopped();
          read_one(r, rep, i);
        }
      },
      [&](PhaseResult& res) {
        if (c_.drop_cache) res.metrics.push_back({"evict_time", evict_s, "s"});
      });
}

// By the creator: only ever our own files.
void MetaRun::delete_phase(int rep, std::uint64_t mine_count) {
  RankPhase rp(PhaseSpec{"meta", "delete", rep, {"delete"}, {false}, false});
  run_phase(env_, rp, [&](RankPhase& r) {
    for (std::uint64_t i = 0; i < mine_count; ++i) {
      throw_if_stopped();
      const double t0 = now_s();
      mine_->remove(file_name(ranks_.rank, i));
      r.record(0, t0, now_s(), 0);
    }
  });
}

void MetaRun::remove_untimed(std::uint64_t mine_count) {
  MPI_Barrier(ranks_.comm);
  agree(ranks_.comm, [&] {
    for (std::uint64_t i = 0; i < mine_count; ++i) mine_->remove(file_name(ranks_.rank, i));
  });
}

}  // namespace

void run_meta(Ctx& ctx) {
  const auto& o = ctx.opt.meta;
  const auto& c = ctx.c();
  ctx.report().note(fmt::format(
      "meta: {} files per rank ({} total) of {} in {}; stat/read by rank+{}{}", o.files,
      o.files * static_cast<std::uint64_t>(ctx.ranks.size), ffb::format_size(o.file_size),
      o.unique_dir ? "one directory per rank" : "one shared directory", ctx.shift,
      c.odirect ? "; --odirect does not apply to meta" : ""));
  MetaRun run(ctx.phases, ctx.io.ws, ctx.opt, ctx.shift);
  run.make_dirs();
  for (int rep = 0; rep < c.repetitions; ++rep) {
    const std::vector<std::uint64_t> created = run.create_phase(rep);
    const std::uint64_t mine_count = created[static_cast<std::size_t>(ctx.ranks.rank)];
    if (c.self_test_corrupt && rep == 0) run.self_test(created);
    if (o.do_stat) run.stat_phase(rep, created[static_cast<std::size_t>(run.src())]);
    if (o.do_read) run.read_phase(rep, created);
    if (o.do_delete)
      run.delete_phase(rep, mine_count);
    else if (rep + 1 < c.repetitions && !c.keep)
      run.remove_untimed(mine_count);
  }
}

}  // namespace sb
