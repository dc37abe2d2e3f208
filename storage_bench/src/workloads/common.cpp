#include "common.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <limits>
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

PhaseResult run_phase(const PhaseEnv& env, RankPhase& rp,
                      const std::function<void(RankPhase&)>& body,
                      const std::function<void(PhaseResult&)>& finish) {
  if (env.delay_s > 0 && !rp.delayed) sleep_until_s(now_s() + env.delay_s);
  MPI_Barrier(env.ranks.comm);
  rp.start();
  agree(env.ranks.comm, [&] { body(rp); });
  PhaseResult r = aggregate(env.ranks, env.topo, env.node_mem_gbps, rp);
  if (env.ranks.rank == 0 && finish) finish(r);
  env.report.add(r);
  return r;
}

double prepare_reads(MPI_Comm comm, const CommonOptions& c, const std::vector<FileRange>& wrote,
                     const std::vector<FileRange>& will_read, RankPhase& rp) {
  double evict_s = 0.0;
  // --delay comes first, so the eviction and the residency sample are right before the reads.
  if (c.delay_s > 0) {
    sleep_until_s(now_s() + c.delay_s);
    rp.delayed = true;
  }
  if (c.drop_cache) {
    const double t0 = now_s();
    agree(comm, [&] {
      for (const auto& f : wrote) {
        Fd fd = f.dir->open(f.name, O_RDONLY);
        if (::fdatasync(fd.get()) != 0) throw_io("fdatasync", f.dir->path_of(f.name), errno);
      }
    });
    MPI_Barrier(comm);
    agree(comm, [&] {
      for (const auto* list : {&wrote, &will_read})
        for (const auto& f : *list) {
          Fd fd = f.dir->open(f.name, O_RDONLY);
          evict(fd.get());
        }
    });
    MPI_Barrier(comm);
    evict_s = now_s() - t0;
  }
  agree(comm, [&] {
    std::uint64_t total = 0;
    for (const auto& f : will_read) total += f.len;
    if (total == 0) return;
    const std::uint64_t budget = c.residency_pages;
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

std::uint64_t max_over_ranks(MPI_Comm comm, std::uint64_t mine) {
  std::uint64_t m = 0;
  MPI_Allreduce(&mine, &m, 1, MPI_UINT64_T, MPI_MAX, comm);
  return m;
}

std::vector<std::uint64_t> allgather_u64(MPI_Comm comm, std::uint64_t mine) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  std::vector<std::uint64_t> all(static_cast<std::size_t>(size));
  MPI_Allgather(&mine, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm);
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
  ++rp.verify_checked;
  const BlockCheck c = check_block(b, id);
  if (c != BlockCheck::ok) rp.verify_failed(where + ": " + describe_mismatch(b, id, c));
}

std::string corrupt_one_byte(DirHandle& dir, const std::string& name, std::uint64_t offset,
                             std::uint64_t len) {
  if (!dir.created(name) || len == 0)  // only ever our own files; options refuse empty blocks
    throw std::logic_error("--self-test-corrupt: no block of ours to corrupt in " + name);
  Fd fd = dir.open(name, O_RDWR);
  const std::uint64_t at = offset + (len > kHeaderBytes + 7 ? kHeaderBytes + 7 : len / 2);
  const auto off = static_cast<off_t>(at);
  unsigned char c = 0;
  if (::pread(fd.get(), &c, 1, off) != 1)
    throw_io(fmt::format("self-test read at offset {}", at), dir.path_of(name),
             errno ? errno : EIO);
  c ^= 0x5a;
  if (::pwrite(fd.get(), &c, 1, off) != 1)
    throw_io(fmt::format("self-test write at offset {}", at), dir.path_of(name), errno);
  if (::fsync(fd.get()) != 0) throw_io("self-test fsync", dir.path_of(name), errno);
  evict(fd.get());
  return fmt::format(
      "self-test: flipped the byte at offset {} of {} (the block at offset {}, {} "
      "bytes); --verify must report it",
      at, dir.path_of(name), offset, len);
}

void fsync_checked(int fd, const std::string& path) {
  if (::fsync(fd) != 0) throw_io("fsync", path, errno);
}

namespace {

constexpr std::uint64_t kSat = std::numeric_limits<std::uint64_t>::max();

std::uint64_t mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? kSat : r;
}
std::uint64_t add(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = 0;
  return __builtin_add_overflow(a, b, &r) ? kSat : r;
}
std::uint64_t from_double(double v) {
  return v >= 1.8e19 ? kSat : v <= 0 ? 0 : static_cast<std::uint64_t>(v);
}
std::uint64_t kv_new_blocks(const KvOptions& k) {
  return static_cast<std::uint64_t>(std::llround(static_cast<double>(k.ops) * k.write_frac));
}

}  // namespace

std::uint64_t planned_bytes(const Options& o, int nranks) {
  const auto n = static_cast<std::uint64_t>(nranks);
  switch (o.workload) {
    case Workload::seq:
      return mul(mul(o.seq.block, o.seq.segments), n);
    case Workload::loader: {
      const auto d = SizeDistribution::parse(o.loader.sample_size, "--sample-size");
      return from_double(d.mean_estimate() * static_cast<double>(o.loader.samples) * 1.05);
    }
    case Workload::checkpoint: {
      // Two checkpoints can exist at once: the committed one and the one being written.
      const std::uint64_t one = mul(o.ckpt.shard_bytes(nranks), n);
      return o.ckpt.steps > 1 ? mul(2, one) : one;
    }
    case Workload::kvcache: {
      const std::uint64_t per_rank =
          add(add(o.kv.blocks_per_rank, kv_new_blocks(o.kv)), o.kv.blocks_per_file);
      return mul(mul(per_rank, n), o.kv.block_size);
    }
    case Workload::meta:
      return mul(mul(o.meta.files, n),
                 round_up(std::max<std::uint64_t>(o.meta.file_size, 1), 4096));
  }
  return 0;
}

std::string_view planned_flags(Workload w) {
  switch (w) {
    case Workload::seq:
      return "--block x --segments x ranks";
    case Workload::loader:
      return "--samples x --sample-size";
    case Workload::checkpoint:
      return "--ckpt-size (or --model-params) x ranks";
    case Workload::kvcache:
      return "--blocks-per-rank x --block-size x ranks";
    case Workload::meta:
      return "--files x --file-size x ranks";
  }
  return "";
}

MemoryNeed memory_need(const Options& o, int nranks) {
  const std::uint64_t qd = o.common.qd;
  const auto n = static_cast<std::uint64_t>(nranks);
  const auto slot = [](std::uint64_t bytes) {
    return round_up(std::max<std::uint64_t>(bytes, 1), 4096);
  };
  switch (o.workload) {
    case Workload::seq: {
      const std::uint64_t ops = mul(o.seq.block / o.seq.transfer, o.seq.segments);
      const std::uint64_t order = o.seq.random ? mul(ops, 8) : 0;  // the random permutation
      return {add(add(mul(qd, slot(o.seq.transfer)), order), 8u << 20),
              o.seq.random ? "--qd x --transfer, and 8 B per transfer for --pattern random"
                           : "--qd x --transfer"};
    }
    case Workload::loader: {
      const auto d = SizeDistribution::parse(o.loader.sample_size, "--sample-size");
      const std::uint64_t plan = mul(o.loader.samples, 28 + 8);  // dataset plan and permutation
      return {add(add(mul(add(qd, 1), slot(d.max_size() + 8192)), plan), 4u << 20),
              "--qd x the largest --sample-size, and 36 B per sample of --samples"};
    }
    case Workload::checkpoint:
      return {mul(qd, slot(o.ckpt.chunk)), "--qd x --chunk"};
    case Workload::kvcache: {
      const auto& k = o.kv;
      const std::uint64_t per_file = std::max<std::uint64_t>(k.blocks_per_file, 1);
      const std::uint64_t files = add(k.blocks_per_rank / per_file + 1,
                                      mul(mul(static_cast<std::uint64_t>(k.rounds),
                                              static_cast<std::uint64_t>(o.common.repetitions)),
                                          kv_new_blocks(k) / per_file + 1));
      // The store's history (32 B a file), this round's readable files of every rank (24 B), its
      // schedule (48 B an operation) and the Zipf table over every rank's blocks (8 B a block).
      const std::uint64_t plan =
          add(add(add(mul(files, 32), mul(mul(k.blocks_per_rank / per_file + 1, n), 24)),
                  mul(k.ops, 48)),
              mul(mul(k.blocks_per_rank, n), 8));
      return {add(mul(qd, slot(k.block_size)), plan),
              "--qd x --block-size, --blocks-per-rank x ranks, --rounds, --ops"};
    }
    case Workload::meta:
      return {mul(2, slot(o.meta.file_size)), "--file-size"};
  }
  return {};
}

}  // namespace sb
