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

void run_meta(Ctx& ctx) {
  const auto& o = ctx.opt.meta;
  const auto& c = ctx.c();
  const int src = ctx.shifted(ctx.rank, ctx.shift);
  auto dir_name = [&](int r) {
    return o.unique_dir ? fmt::format("meta.{:06d}", r) : std::string("meta");
  };
  auto file_name = [&](int r, std::uint64_t i) {
    return o.unique_dir ? fmt::format("f.{:09d}", i) : fmt::format("f.{:06d}.{:09d}", r, i);
  };
  ctx.report.note(
      fmt::format("meta: {} files per rank ({} total) of {} in {}; stat/read by rank+{}{}", o.files,
                  o.files * static_cast<std::uint64_t>(ctx.size), ffb::format_size(o.file_size),
                  o.unique_dir ? "one directory per rank" : "one shared directory", ctx.shift,
                  c.odirect ? "; --odirect does not apply to meta" : ""));
  // Directories: made once, before any timed phase (mdtest also times tree creation separately).
  agree(ctx.comm, [&] {
    if (o.unique_dir || ctx.rank == 0) ctx.ws.make_subdir(dir_name(ctx.rank));
  });
  DirHandle* mine = nullptr;
  DirHandle* theirs = nullptr;
  agree(ctx.comm, [&] {
    mine = &ctx.ws.open_subdir(dir_name(ctx.rank));
    theirs = &ctx.ws.open_subdir(dir_name(src));
  });
  AlignedBuffer buf(std::max<std::uint64_t>(o.file_size, 1), 4096);
  AlignedBuffer rbuf(std::max<std::uint64_t>(o.file_size, 1), 4096);
  fill_pattern(buf.span(), mix64(c.seed, static_cast<std::uint64_t>(ctx.rank)));

  for (int rep = 0; rep < c.repetitions; ++rep) {
    std::vector<std::uint64_t> created;
    // ---- create (+ write) ----
    {
      RankPhase rp(PhaseSpec{"meta", "create", rep, {"create"}, {false}, false});
      run_phase(ctx, rp, [&](RankPhase& r) {
        const Stonewall sw(ctx, r.base());
        std::uint64_t n = 0;
        auto make = [&](std::uint64_t i) {
          const std::string name = file_name(ctx.rank, i);
          const double t0 = now_s();
          Fd fd = mine->create(name);
          if (o.file_size > 0) {
            if (c.verify)
              make_block({buf.data(), o.file_size}, BlockId{static_cast<std::uint32_t>(ctx.rank), i,
                                                            0, static_cast<std::uint64_t>(rep)});
            const ssize_t w = ::pwrite(fd.get(), buf.data(), o.file_size, 0);
            if (w < 0) throw_io("write", mine->path_of(name), errno);
            if (static_cast<std::uint64_t>(w) != o.file_size)
              throw IoError(fmt::format("write {}: short write", mine->path_of(name)), EIO);
          }
          if (c.fsync) fsync_checked(fd.get(), mine->path_of(name));
          fd.close_checked(mine->path_of(name));
          r.record(0, t0, now_s(), o.file_size);
        };
        agree(ctx.comm, [&] {
          for (; n < o.files; ++n) {
            if (sw.passed(now_s())) {
              r.stonewalled = true;
              break;
            }
            throw_if_stopped();
            make(n);
          }
        });
        if (c.stonewall_s > 0 && c.wearout) {
          const std::uint64_t target = max_over_ranks(ctx, n);
          agree(ctx.comm, [&] {
            for (; n < target; ++n) make(n);
          });
        }
        created = allgather_u64(ctx, n);
      });
    }
    const std::uint64_t src_count = created[static_cast<std::size_t>(src)];
    // --self-test-corrupt: rank 0's first file (options refuse it without a read phase or with
    // empty files); another rank reads it back in the read phase.
    if (c.self_test_corrupt && rep == 0)
      agree(ctx.comm, [&] {
        if (ctx.rank == 0 && created[0] > 0)
          ctx.report.note(corrupt_one_byte(*mine, file_name(0, 0), 0, o.file_size));
      });

    // ---- stat (another rank's files) ----
    if (o.do_stat) {
      RankPhase rp(PhaseSpec{"meta", "stat", rep, {"stat"}, {false}, false});
      run_phase(ctx, rp, [&](RankPhase& r) {
        const Stonewall sw(ctx, r.base());
        for (std::uint64_t i = 0; i < src_count; ++i) {
          if (sw.passed(now_s())) {
            r.stonewalled = true;
            break;
          }
          throw_if_stopped();
          const std::string name = file_name(src, i);
          struct stat st {};
          const double t0 = now_s();
          if (::fstatat(theirs->fd(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
            throw_io("stat", theirs->path_of(name), errno);
          r.record(0, t0, now_s(), 0);
          if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != o.file_size)
            r.verify_failed(
                fmt::format("stat {}: expected a regular file of {} bytes, found mode {:o} size {}",
                            theirs->path_of(name), o.file_size, st.st_mode, st.st_size));
        }
      });
    }

    // ---- open + read + close (another rank's files) ----
    if (o.do_read) {
      RankPhase rp(PhaseSpec{"meta", "read", rep, {"read"}, {true}, false});
      std::vector<FileRange> wrote, will_read;
      const std::uint64_t sample = std::min<std::uint64_t>(src_count, c.residency_pages);
      for (std::uint64_t i = 0; i < src_count; ++i) {
        if (c.drop_cache && i < created[static_cast<std::size_t>(ctx.rank)])
          wrote.push_back({mine, file_name(ctx.rank, i), 0, o.file_size});
        if (sample > 0 && i % std::max<std::uint64_t>(src_count / sample, 1) == 0 &&
            o.file_size > 0)
          will_read.push_back({theirs, file_name(src, i), 0, o.file_size});
      }
      const double evict_s = prepare_reads(ctx, wrote, will_read, rp);
      run_phase(
          ctx, rp,
          [&](RankPhase& r) {
            const Stonewall sw(ctx, r.base());
            for (std::uint64_t i = 0; i < src_count; ++i) {
              if (sw.passed(now_s())) {
                r.stonewalled = true;
                break;
              }
              throw_if_stopped();
              const std::string name = file_name(src, i);
              const double t0 = now_s();
              Fd fd = theirs->open(name, O_RDONLY);
              std::uint64_t got = 0;
              while (got < o.file_size) {
                const ssize_t n = ::pread(fd.get(), rbuf.data() + got, o.file_size - got,
                                          static_cast<off_t>(got));
                if (n < 0) {
                  if (errno == EINTR) continue;
                  throw_io("read", theirs->path_of(name), errno);
                }
                if (n == 0) break;
                got += static_cast<std::uint64_t>(n);
              }
              fd.close_checked(theirs->path_of(name));
              r.record(0, t0, now_s(), got);
              if (got != o.file_size)
                throw IoError(
                    fmt::format("read {}: {} of {} bytes", theirs->path_of(name), got, o.file_size),
                    EIO);
              if (c.verify && o.file_size > 0)
                verify_block(
                    r, rbuf.data(), o.file_size,
                    BlockId{static_cast<std::uint32_t>(src), i, 0, static_cast<std::uint64_t>(rep)},
                    theirs->path_of(name));
            }
          },
          [&](PhaseResult& res) {
            if (c.drop_cache) res.metrics.push_back({"evict_time", evict_s, "s"});
          });
    }

    // ---- delete (by the creator: only ever our own files) ----
    if (o.do_delete) {
      RankPhase rp(PhaseSpec{"meta", "delete", rep, {"delete"}, {false}, false});
      run_phase(ctx, rp, [&](RankPhase& r) {
        const std::uint64_t n = created[static_cast<std::size_t>(ctx.rank)];
        for (std::uint64_t i = 0; i < n; ++i) {
          throw_if_stopped();
          const double t0 = now_s();
          mine->remove(file_name(ctx.rank, i));
          r.record(0, t0, now_s(), 0);
        }
      });
    } else if (rep + 1 < c.repetitions && !c.keep) {
      MPI_Barrier(ctx.comm);
      agree(ctx.comm, [&] {
        for (std::uint64_t i = 0; i < created[static_cast<std::size_t>(ctx.rank)]; ++i)
          mine->remove(file_name(ctx.rank, i));
      });
    }
  }
}

}  // namespace sb
