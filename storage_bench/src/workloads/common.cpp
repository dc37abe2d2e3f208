#include "common.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "../samplers.h"

namespace sb {

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) {
  return a <= 1 ? v : (v + a - 1) / a * a;
}
std::uint64_t round_down(std::uint64_t v, std::uint64_t a) { return a <= 1 ? v : v / a * a; }

BufferPool::BufferPool(std::size_t count, std::size_t size, std::size_t alignment,
                       std::uint64_t seed)
    : size_(size),
      stride_(static_cast<std::size_t>(
          round_up(std::max<std::size_t>(size, 1), std::max<std::size_t>(alignment, 4096)))),
      mem_(stride_ * count, std::max<std::size_t>(alignment, 4096)),
      sum_len_(count, 0),
      sum_(count, 0) {
  for (std::size_t i = 0; i < count; ++i) {
    std::byte* p = mem_.data() + i * stride_;
    fill_pattern({p, stride_}, mix64(seed, i, 0xb0f));
    free_.push_back(p);
  }
}

std::byte* BufferPool::get() {
  if (free_.empty()) throw std::logic_error("BufferPool: more operations in flight than buffers");
  std::byte* p = free_.back();
  free_.pop_back();
  return p;
}

void BufferPool::put(std::byte* p) { free_.push_back(p); }

std::uint64_t BufferPool::payload_sum(const std::byte* p, std::size_t len) {
  const std::size_t i = index_of(p);
  if (sum_len_[i] != len) {
    sum_[i] = len > kHeaderBytes ? checksum64(p + kHeaderBytes, len - kHeaderBytes) : 0;
    sum_len_[i] = len;
  }
  return sum_[i];
}

void BufferPool::stamp(std::byte* p, std::size_t len, const BlockId& id) {
  if (len < kHeaderBytes) {
    stamp_block({p, len}, id);  // short block: pattern only (rewrites the bytes)
    sum_len_[index_of(p)] = 0;  // the payload changed
    return;
  }
  const std::uint64_t s = payload_sum(p, len);
  stamp_block({p, len}, id, &s);
}

PhaseResult run_phase(Ctx& ctx, RankPhase& rp, const std::function<void(RankPhase&)>& body,
                      const std::function<void(PhaseResult&)>& finish) {
  if (ctx.c().delay_s > 0 && !rp.delayed) sleep_until_s(now_s() + ctx.c().delay_s);
  MPI_Barrier(ctx.comm);
  rp.start();
  agree(ctx.comm, [&] { body(rp); });
  PhaseResult r = aggregate(ctx, rp);
  if (ctx.rank == 0 && finish) finish(r);
  ctx.report.add(r);
  return r;
}

double prepare_reads(Ctx& ctx, const std::vector<FileRange>& wrote,
                     const std::vector<FileRange>& will_read, RankPhase& rp) {
  double evict_s = 0.0;
  // --delay comes first, so the eviction and the residency sample are right before the reads.
  if (ctx.c().delay_s > 0) {
    sleep_until_s(now_s() + ctx.c().delay_s);
    rp.delayed = true;
  }
  if (ctx.c().drop_cache) {
    const double t0 = now_s();
    agree(ctx.comm, [&] {
      for (const auto& f : wrote) {
        Fd fd = f.dir->open(f.name, O_RDONLY);
        if (::fdatasync(fd.get()) != 0) throw_io("fdatasync", f.dir->path_of(f.name), errno);
      }
    });
    MPI_Barrier(ctx.comm);
    agree(ctx.comm, [&] {
      for (const auto* list : {&wrote, &will_read})
        for (const auto& f : *list) {
          Fd fd = f.dir->open(f.name, O_RDONLY);
          evict(fd.get());
        }
    });
    MPI_Barrier(ctx.comm);
    evict_s = now_s() - t0;
  }
  agree(ctx.comm, [&] {
    std::uint64_t total = 0;
    for (const auto& f : will_read) total += f.len;
    if (total == 0) return;
    const std::uint64_t budget = ctx.c().residency_pages;
    for (const auto& f : will_read) {
      const std::uint64_t pages = std::max<std::uint64_t>(
          1, static_cast<std::uint64_t>(static_cast<double>(budget) * static_cast<double>(f.len) /
                                        static_cast<double>(total)));
      Fd fd = f.dir->open(f.name, O_RDONLY);
      sample_residency(fd.get(), f.offset, f.len, pages, rp.res_sampled, rp.res_resident);
    }
    rp.residency_measured = true;
  });
  return evict_s;
}

std::uint64_t max_over_ranks(const Ctx& ctx, std::uint64_t mine) {
  std::uint64_t m = 0;
  MPI_Allreduce(&mine, &m, 1, MPI_UINT64_T, MPI_MAX, ctx.comm);
  return m;
}

std::vector<std::uint64_t> allgather_u64(const Ctx& ctx, std::uint64_t mine) {
  std::vector<std::uint64_t> all(static_cast<std::size_t>(ctx.size));
  MPI_Allgather(&mine, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, ctx.comm);
  return all;
}

void check_transfer(const IoOp& op, const IoDone& d, const std::string& path) {
  const char* what = op.kind == OpKind::read ? "read" : "write";
  if (d.err != 0) {
    std::string hint;
    if (d.err == EINVAL && op.kind == OpKind::read) hint = " (O_DIRECT alignment?)";
    throw IoError(fmt::format("{} {} at offset {} ({} bytes): {}{}", what, path, op.offset, op.len,
                              std::strerror(d.err), hint),
                  d.err);
  }
  if (d.bytes != op.len && !stop_requested())
    throw IoError(fmt::format("{} {} at offset {}: short {} ({} of {} bytes): the file is shorter "
                              "than this run wrote",
                              what, path, op.offset, what, d.bytes, op.len),
                  EIO);
}

void verify_block(RankPhase& rp, const std::byte* buf, std::size_t len, const BlockId& id,
                  const std::string& where) {
  const std::span<const std::byte> b(buf, len);
  const BlockCheck c = check_block(b, id);
  if (c != BlockCheck::ok) rp.verify_failed(where + ": " + describe_mismatch(b, id, c));
}

void corrupt_one_byte(DirHandle& dir, const std::string& name, std::uint64_t offset) {
  if (!dir.created(name)) return;  // only ever our own files
  Fd fd = dir.open(name, O_RDWR);
  unsigned char c = 0;
  const auto off = static_cast<off_t>(offset + kHeaderBytes + 7);
  if (::pread(fd.get(), &c, 1, off) != 1) throw_io("self-test read", dir.path_of(name), errno);
  c ^= 0x5a;
  if (::pwrite(fd.get(), &c, 1, off) != 1) throw_io("self-test write", dir.path_of(name), errno);
  if (::fsync(fd.get()) != 0) throw_io("self-test fsync", dir.path_of(name), errno);
  evict(fd.get());
}

void fsync_checked(int fd, const std::string& path) {
  if (::fsync(fd) != 0) throw_io("fsync", path, errno);
}

std::uint64_t planned_bytes(const Options& o, int nranks) {
  const auto n = static_cast<std::uint64_t>(nranks);
  switch (o.workload) {
    case Workload::seq:
      return o.seq.block * o.seq.segments * n;
    case Workload::loader: {
      const auto d = SizeDistribution::parse(o.loader.sample_size, "--sample-size");
      return static_cast<std::uint64_t>(d.mean_estimate() * static_cast<double>(o.loader.samples) *
                                        1.05);
    }
    case Workload::checkpoint: {
      // Two checkpoints can exist at once: the committed one and the one being written.
      const std::uint64_t one = o.ckpt.shard_bytes(nranks) * n;
      return o.ckpt.steps > 1 ? 2 * one : one;
    }
    case Workload::kvcache: {
      const std::uint64_t live = o.kv.blocks_per_rank * n;
      const auto per_round =
          static_cast<std::uint64_t>(std::ceil(static_cast<double>(o.kv.ops) * o.kv.write_frac)) *
          n;
      return (live + per_round + o.kv.blocks_per_file * n) * o.kv.block_size;
    }
    case Workload::meta:
      return o.meta.files * n * round_up(std::max<std::uint64_t>(o.meta.file_size, 1), 4096);
  }
  return 0;
}

}  // namespace sb
