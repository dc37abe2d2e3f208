#include "fsutil.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ffb/error.h"
#include "ffb/hostinfo.h"
#include "sync.h"

namespace sb {

namespace fs = std::filesystem;

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

void Fd::close_checked(const std::string& path) {
  if (fd_ < 0) return;
  const int f = release();
  if (::close(f) != 0 && errno != EINTR) throw_io("close", path, errno);
}

AlignedBuffer::AlignedBuffer(std::size_t size, std::size_t alignment) {
  alignment = std::max<std::size_t>(alignment, 4096);
  size_ = size;
  const std::size_t alloc =
      std::max<std::size_t>((size + alignment - 1) / alignment * alignment, alignment);
  void* p = nullptr;
  if (posix_memalign(&p, alignment, alloc) != 0 || p == nullptr)
    throw std::runtime_error(
        fmt::format("cannot allocate {} bytes aligned to {}", alloc, alignment));
  std::memset(p, 0, alloc);
  ptr_.reset(static_cast<std::byte*>(p));
}

void AlignedBuffer::Free::operator()(std::byte* p) const { std::free(p); }

// ---- DirHandle ---------------------------------------------------------------------------------

Fd DirHandle::create(const std::string& name, int extra_flags) {
  const bool again = files_.count(name) != 0;
  const int flags =
      O_RDWR | O_CLOEXEC | O_NOFOLLOW | extra_flags | (again ? O_TRUNC : (O_CREAT | O_EXCL));
  const int f = ::openat(fd_.get(), name.c_str(), flags, 0644);
  if (f < 0) {
    const int e = errno;
    if (e == ELOOP) throw_io("create (refusing to follow a symlink)", path_of(name), e);
    if (e == EEXIST)
      throw_io("create (a file this run did not make is in the way; not touching it)",
               path_of(name), e);
    throw_io("create", path_of(name), e);
  }
  files_.insert(name);
  return Fd(f);
}

Fd DirHandle::open(const std::string& name, int flags) const {
  const int f = ::openat(fd_.get(), name.c_str(), flags | O_CLOEXEC | O_NOFOLLOW);
  if (f < 0) {
    const int e = errno;
    if (e == ELOOP) throw_io("open (refusing to follow a symlink)", path_of(name), e);
    throw_io("open", path_of(name), e);
  }
  return Fd(f);
}

bool DirHandle::remove(const std::string& name) {
  auto it = files_.find(name);
  if (it == files_.end()) return false;
  files_.erase(it);
  if (::unlinkat(fd_.get(), name.c_str(), 0) != 0) {
    if (errno != ENOENT) throw_io("unlink", path_of(name), errno);
  } else if (counter_) {
    ++*counter_;
  }
  return true;
}

std::size_t DirHandle::remove_created() noexcept {
  std::size_t n = 0;
  for (const auto& name : files_)
    if (::unlinkat(fd_.get(), name.c_str(), 0) == 0) ++n;
  files_.clear();
  if (counter_) *counter_ += n;
  return n;
}

void DirHandle::fsync_dir() const {
  if (::fsync(fd_.get()) != 0) throw_io("fsync (directory)", path_.string(), errno);
}

// ---- Workspace ---------------------------------------------------------------------------------

namespace {

std::string generated_job_name() {
  std::string job = "local";
  for (const char* var : {"SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "FLUX_JOB_ID"}) {
    if (const char* v = std::getenv(var); v && *v) {
      job = v;
      break;
    }
  }
  for (char& c : job)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  std::random_device rd;
  return fmt::format("storage_bench.{}.{}.{:08x}", job, ::getpid(), rd());
}

Fd open_dir(int at, const std::string& name, const std::string& shown) {
  const int f = ::openat(at, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (f < 0) {
    const int e = errno;
    if (e == ELOOP || e == ENOTDIR) throw_io("open directory (refusing a symlink)", shown, e);
    throw_io("open directory", shown, e);
  }
  return Fd(f);
}

}  // namespace

Workspace::Workspace(MPI_Comm comm, const fs::path& parent, const std::string& name, bool keep)
    : keep_(keep), comm_(comm), parent_(parent) {
  MPI_Comm_rank(comm, &rank_);
  std::string chosen;
  agree(comm, [&] {
    if (rank_ != 0) return;
    if (!name.empty()) check_job_name(name);  // parse_options refused it already; never escape DIR
    Fd p(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!p) throw_io("open", parent.string(), errno);
    for (int attempt = 0;; ++attempt) {
      chosen = name.empty() ? generated_job_name() : name;
      if (::mkdirat(p.get(), chosen.c_str(), 0755) == 0) break;
      const int e = errno;
      if (e == EEXIST && name.empty() && attempt < 20) continue;
      if (e == EEXIST)
        throw ffb::UsageError(fmt::format(
            "--job-name {}: {} already exists; storage_bench only works in a fresh directory: "
            "choose another name",
            name, (parent / chosen).string()));
      throw_io("mkdir", (parent / chosen).string(), e);
    }
    root_made_ = true;
  });
  int len = static_cast<int>(chosen.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, comm);
  chosen.resize(static_cast<std::size_t>(len));
  MPI_Bcast(chosen.data(), len, MPI_CHAR, 0, comm);
  name_ = chosen;
  const fs::path full = parent / chosen;
  agree(comm, [&] {
    parent_fd_ = Fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent_fd_) throw_io("open", parent.string(), errno);
    try {
      root_ = std::make_unique<DirHandle>(open_dir(parent_fd_.get(), chosen, full.string()), full);
      root_->set_counter(&removed_);
    } catch (const IoError& e) {
      if (e.err() == ENOENT)
        throw ffb::UsageError(fmt::format(
            "DIR {}: the job directory rank 0 made is not visible on this host; DIR must be one "
            "file system that all ranks share",
            parent.string()));
      throw;
    }
  });
}

Workspace::~Workspace() {
  if (!finished_) local_cleanup();
}

DirHandle& Workspace::make_subdir(const std::string& name) {
  if (::mkdirat(root_->fd(), name.c_str(), 0755) != 0)
    throw_io("mkdir", root_->path_of(name), errno);
  my_subdirs_.insert(name);
  auto h = std::make_unique<DirHandle>(open_dir(root_->fd(), name, root_->path_of(name)),
                                       root_->path() / name);
  h->set_counter(&removed_);
  auto& ref = *h;
  subdirs_[name] = std::move(h);
  return ref;
}

DirHandle& Workspace::open_subdir(const std::string& name) {
  if (auto* d = find(name)) return *d;
  auto h = std::make_unique<DirHandle>(open_dir(root_->fd(), name, root_->path_of(name)),
                                       root_->path() / name);
  h->set_counter(&removed_);
  auto& ref = *h;
  subdirs_[name] = std::move(h);
  return ref;
}

DirHandle* Workspace::find(const std::string& name) {
  auto it = subdirs_.find(name);
  return it == subdirs_.end() ? nullptr : it->second.get();
}

void Workspace::rename_subdir(const std::string& from, const std::string& to) {
  if (!my_subdirs_.count(from))
    throw std::logic_error("rename_subdir: " + from + " was not made by this rank");
  if (::renameat(root_->fd(), from.c_str(), root_->fd(), to.c_str()) != 0)
    throw_io("rename " + root_->path_of(from) + " to", root_->path_of(to), errno);
  my_subdirs_.erase(from);
  my_subdirs_.insert(to);
  if (auto it = subdirs_.find(from); it != subdirs_.end()) {
    it->second->set_path(root_->path() / to);
    subdirs_[to] = std::move(it->second);
    subdirs_.erase(it);
  }
}

void Workspace::follow_rename(const std::string& from, const std::string& to) {
  if (auto it = subdirs_.find(from); it != subdirs_.end()) {
    it->second->set_path(root_->path() / to);
    subdirs_[to] = std::move(it->second);
    subdirs_.erase(it);
  }
}

void Workspace::remove_files_in(const std::string& name) {
  if (auto* d = find(name)) d->remove_created();
}

void Workspace::remove_subdir_if_mine(const std::string& name) {
  if (!my_subdirs_.count(name)) return;
  if (::unlinkat(root_->fd(), name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    throw_io("rmdir", root_->path_of(name), errno);
  my_subdirs_.erase(name);
}

void Workspace::close_subdir(const std::string& name) {
  auto it = subdirs_.find(name);
  if (it != subdirs_.end() && it->second->created_count() == 0) subdirs_.erase(it);
}

void Workspace::local_cleanup() noexcept {
  if (keep_ || !root_) return;
  for (auto& [name, d] : subdirs_) d->remove_created();
  root_->remove_created();
  for (const auto& name : my_subdirs_) ::unlinkat(root_->fd(), name.c_str(), AT_REMOVEDIR);
  my_subdirs_.clear();
  // rmdir only succeeds on an empty directory: if another rank still has files there, it stays and
  // that rank (the last one out) removes it.
  remove_root();
}

void Workspace::remove_root() noexcept {
  if (parent_fd_) ::unlinkat(parent_fd_.get(), name_.c_str(), AT_REMOVEDIR);
}

std::size_t Workspace::finish() {
  if (finished_) return removed_;
  finished_ = true;
  if (keep_) {
    MPI_Barrier(comm_);
    return 0;
  }
  for (auto& [name, d] : subdirs_) d->remove_created();
  root_->remove_created();
  MPI_Barrier(comm_);
  for (const auto& name : my_subdirs_) ::unlinkat(root_->fd(), name.c_str(), AT_REMOVEDIR);
  my_subdirs_.clear();
  MPI_Barrier(comm_);
  subdirs_.clear();
  if (rank_ == 0 && ::unlinkat(parent_fd_.get(), name_.c_str(), AT_REMOVEDIR) != 0 &&
      errno != ENOENT) {
    const int e = errno;
    root_.reset();
    throw_io("rmdir (job directory)", parent_.string(), e);
  }
  return removed_;
}

// ---- job name and user directory checks
// -----------------------------------------------------------------------

void check_job_name(const std::string& name) {
  std::string shown;
  for (const char ch : name.substr(0, 64))
    shown += std::isprint(static_cast<unsigned char>(ch)) ? ch : '?';
  if (name.size() > 64) shown += "...";
  const auto refuse = [&](const char* why) {
    return ffb::UsageError(fmt::format(
        "--job-name '{}': {}; give a bare directory name (1 to {} bytes, no '/', not '.' or '..'), "
        "which storage_bench makes inside DIR",
        shown, why, NAME_MAX));
  };
  if (name.empty()) throw refuse("empty");
  if (name.find('\0') != std::string::npos) throw refuse("contains a NUL byte");
  if (name.find('/') != std::string::npos) throw refuse("contains '/'");
  if (name == "." || name == "..") throw refuse("names DIR itself or its parent");
  if (name.size() > NAME_MAX)
    throw refuse(fmt::format("{} bytes, above NAME_MAX", name.size()).c_str());
}

void check_user_dir(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT)
      throw ffb::UsageError(fmt::format(
          "DIR {} does not exist: create it first or point storage_bench at an existing directory",
          dir.string()));
    throw ffb::UsageError(fmt::format("DIR {}: cannot stat ({})", dir.string(), std::strerror(e)));
  }
  if (!S_ISDIR(st.st_mode))
    throw ffb::UsageError(
        fmt::format("DIR {} is not a directory: give a directory to work in", dir.string()));
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    const int e = errno;
    throw ffb::UsageError(
        fmt::format("DIR {} is not writable ({}): give a directory this user can create files in",
                    dir.string(), std::strerror(e)));
  }
}

// ---- file-system facts
// ---------------------------------------------------------------------------

namespace {

std::string unescape_mount(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string oct = s.substr(i + 1, 3);
      if (oct.size() == 3 &&
          std::all_of(oct.begin(), oct.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out += static_cast<char>(std::stoi(oct, nullptr, 8));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string magic_name(unsigned long m) {
  switch (m) {
    case 0xEF53:
      return "ext2/3/4";
    case 0x58465342:
      return "xfs";
    case 0x01021994:
      return "tmpfs";
    case 0x6969:
      return "nfs";
    case 0x0BD00BD0:
      return "lustre";
    case 0x65735546:
      return "fuse";
    case 0x9123683E:
      return "btrfs";
    case 0x794c7630:
      return "overlay";
    case 0x2FC12FC1:
      return "zfs";
    case 0x47504653:
      return "gpfs";
    case 0x19830326:
      return "beegfs";
    case 0x00C36400:
      return "ceph";
    case 0xFF534D42:
      return "cifs";
    case 0x858458f6:
      return "ramfs";
    default:
      return fmt::format("unknown (0x{:x})", m);
  }
}

}  // namespace

FsInfo probe_fs(const fs::path& dir) {
  FsInfo info;
  std::error_code ec;
  const fs::path real = fs::canonical(dir, ec);
  info.path = ec ? dir.string() : real.string();
  struct statfs sf {};
  if (::statfs(dir.c_str(), &sf) == 0) {
    info.fs_magic = fmt::format("0x{:x}", static_cast<unsigned long>(sf.f_type));
    info.fs_type = magic_name(static_cast<unsigned long>(sf.f_type));
  }
  struct statvfs sv {};
  if (::statvfs(dir.c_str(), &sv) == 0) {
    info.total_bytes = static_cast<std::uint64_t>(sv.f_blocks) * sv.f_frsize;
    info.free_bytes = static_cast<std::uint64_t>(sv.f_bavail) * sv.f_frsize;
    info.free_inodes = sv.f_favail;
  }
  struct stat st {};
  const bool have_dev = ::stat(dir.c_str(), &st) == 0;
  const std::string devno =
      have_dev ? fmt::format("{}:{}", major(st.st_dev), minor(st.st_dev)) : std::string();
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::size_t best_len = 0;
  bool best_dev_match = false;
  while (std::getline(in, line)) {
    std::istringstream is(line);
    std::string id, parent, mm, root, mnt, opts;
    is >> id >> parent >> mm >> root >> mnt >> opts;
    std::string tok;
    while (is >> tok && tok != "-") {
    }
    std::string type, source, super;
    is >> type >> source >> super;
    const std::string mp = unescape_mount(mnt);
    const bool prefix = info.path == mp || mp == "/" ||
                        (info.path.rfind(mp, 0) == 0 && info.path.size() > mp.size() &&
                         info.path[mp.size()] == '/');
    if (!prefix) continue;
    const bool dev_match = mm == devno;
    if ((dev_match && !best_dev_match) || (dev_match == best_dev_match && mp.size() >= best_len)) {
      best_len = mp.size();
      best_dev_match = dev_match;
      info.mount_point = mp;
      info.fs_type = type;
      info.device = unescape_mount(source);
      info.mount_options = opts + (super.empty() ? "" : " (super: " + super + ")");
    }
  }
  info.page_cache_bytes = ffb::meminfo_bytes("Cached");
  info.mem_total_bytes = ffb::meminfo_bytes("MemTotal");
  return info;
}

void probe_direct_io(DirHandle& dir, FsInfo& info) {
  const std::string name = ".storage_bench-dio-probe";
  Fd f = dir.create(name);
  struct statx sx {};
#ifdef STATX_DIOALIGN
  if (::statx(f.get(), "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
      (sx.stx_mask & STATX_DIOALIGN)) {
    info.dio_mem_align = sx.stx_dio_mem_align;
    info.dio_offset_align = sx.stx_dio_offset_align;
  }
#else
  (void)sx;
#endif
  const int d = ::openat(dir.fd(), name.c_str(), O_RDWR | O_DIRECT | O_NOFOLLOW | O_CLOEXEC);
  if (d < 0) {
    info.dio_supported = false;
    info.dio_error = fmt::format("open with O_DIRECT: {}", std::strerror(errno));
  } else {
    Fd dfd(d);
    const std::uint32_t a = dio_alignment(info);
    AlignedBuffer buf(std::max<std::uint32_t>(a, 4096), std::max<std::uint32_t>(a, 4096));
    const ssize_t w = ::pwrite(dfd.get(), buf.data(), buf.size(), 0);
    if (w < 0) {
      info.dio_supported = false;
      info.dio_error =
          fmt::format("an aligned {}-byte O_DIRECT write: {}", buf.size(), std::strerror(errno));
    } else {
      info.dio_supported = true;
    }
  }
  f = Fd();
  dir.remove(name);
}

std::uint32_t dio_alignment(const FsInfo& info) {
  return std::max<std::uint32_t>({info.dio_mem_align, info.dio_offset_align, 512u});
}

void sample_residency(int fd, std::uint64_t offset, std::uint64_t len, std::uint64_t max_pages,
                      std::uint64_t& sampled, std::uint64_t& resident) {
  if (len == 0 || max_pages == 0) return;
  const auto ps = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t start = offset / ps * ps;
  const std::uint64_t end = (offset + len + ps - 1) / ps * ps;
  const std::uint64_t pages = (end - start) / ps;
  void* map = ::mmap(nullptr, end - start, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(start));
  if (map == MAP_FAILED) return;
  const std::uint64_t n = std::min(pages, max_pages);
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t page = n == pages ? i : i * pages / n;
    unsigned char v = 0;
    if (::mincore(static_cast<char*>(map) + page * ps, ps, &v) == 0) {
      ++sampled;
      if (v & 1) ++resident;
    }
  }
  ::munmap(map, end - start);
}

void evict(int fd) { ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); }

}  // namespace sb
