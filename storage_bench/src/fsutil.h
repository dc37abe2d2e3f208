// File-system helpers with RAII ownership: file descriptors, aligned buffers, the per-job workspace
// (which remembers everything this rank created and removes exactly that), and the facts about the
// file system that go into the results (type, mount options, device, free space, O_DIRECT
// alignment).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <mpi.h>

#include "errors.h"

namespace sb {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }
  // close() reporting errors (NFS reports write-back errors at close): throws IoError.
  void close_checked(const std::string& path);

 private:
  int fd_ = -1;
};

// Page-aligned (or more) heap buffer, touched at allocation so first use does not page-fault.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(std::size_t size, std::size_t alignment);
  std::byte* data() const { return ptr_.get(); }
  std::size_t size() const { return size_; }
  std::span<std::byte> span() const { return {ptr_.get(), size_}; }

 private:
  struct Free {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte, Free> ptr_;
  std::size_t size_ = 0;
};

// One directory inside the job workspace, opened O_DIRECTORY|O_NOFOLLOW. Files are created and
// opened relative to this handle with O_NOFOLLOW, so neither a symlink planted in the directory nor
// a rename of a path component can redirect our I/O. The handle remembers the files this rank
// created in it; remove() and remove_created() only ever unlink those names.
class DirHandle {
 public:
  DirHandle(Fd fd, std::filesystem::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
  int fd() const { return fd_.get(); }
  const std::filesystem::path& path() const { return path_; }
  void set_path(std::filesystem::path p) { path_ = std::move(p); }
  std::string path_of(const std::string& name) const { return (path_ / name).string(); }

  // New file (O_CREAT|O_EXCL); re-creating a file this rank made truncates it instead.
  Fd create(const std::string& name, int extra_flags = 0);
  // Existing file, never following a symlink (ELOOP becomes a clear error).
  Fd open(const std::string& name, int flags) const;
  // Unlink a file this rank created. Returns false (and does nothing) for any other name.
  bool remove(const std::string& name);
  // Unlinks everything this rank created here; returns the count. Never throws.
  std::size_t remove_created() noexcept;
  bool created(const std::string& name) const { return files_.count(name) != 0; }
  std::size_t created_count() const { return files_.size(); }
  void fsync_dir() const;
  // Every removal is counted here (the workspace's total), if set.
  void set_counter(std::size_t* counter) { counter_ = counter; }

 private:
  Fd fd_;
  std::filesystem::path path_;
  std::set<std::string> files_;
  std::size_t* counter_ = nullptr;
};

// Fresh per-job directory under the user's DIR, plus one level of subdirectories.
// Collective constructor: rank 0 makes `DIR/<name>` with mkdir (never reusing an existing name),
// every rank opens it. finish() is collective: every rank unlinks its files, then the creators
// rmdir the (now empty) directories. Without finish() (an exception on one rank), the destructor
// does the same without communication: rmdir cannot remove anything it did not create because it
// only removes empty directories.
class Workspace {
 public:
  // name: the job directory's name (empty: generated, unique per job).
  Workspace(MPI_Comm comm, const std::filesystem::path& parent, const std::string& name, bool keep);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  DirHandle& root() { return *root_; }
  const std::filesystem::path& path() const { return root_->path(); }
  bool keep() const { return keep_; }

  // mkdir by this rank (tracked for rmdir); the name must not exist.
  DirHandle& make_subdir(const std::string& name);
  // Open a subdirectory another rank made (call after a barrier).
  DirHandle& open_subdir(const std::string& name);
  DirHandle* find(const std::string& name);
  // Renames a subdirectory this rank made (rank 0 commits checkpoints this way). Handles stay
  // valid.
  void rename_subdir(const std::string& from, const std::string& to);
  // Another rank renamed a subdirectory this rank has open: follow it (the handle stays valid).
  void follow_rename(const std::string& from, const std::string& to);
  // Unlink this rank's files in the subdir, then rmdir it if this rank made it (caller barriers).
  void remove_files_in(const std::string& name);
  void remove_subdir_if_mine(const std::string& name);
  void close_subdir(const std::string& name);

  // Collective cleanup (see above). Returns the number of files this rank removed.
  std::size_t finish();
  std::size_t removed_files() const { return removed_; }

 private:
  void local_cleanup() noexcept;
  void remove_root() noexcept;  // rmdir of the (empty) job directory, relative to DIR's handle
  int rank_;
  bool keep_;
  bool finished_ = false;
  bool root_made_ = false;
  MPI_Comm comm_;
  std::filesystem::path parent_;
  Fd parent_fd_;      // DIR, opened once: the job directory is always made and removed inside it
  std::string name_;  // the job directory's name in DIR (a bare name: check_job_name)
  std::unique_ptr<DirHandle> root_;
  std::map<std::string, std::unique_ptr<DirHandle>> subdirs_;
  std::set<std::string> my_subdirs_;
  std::size_t removed_ = 0;
};

// Refuses (ffb::UsageError naming --job-name, the value and the fix) anything but a bare
// directory name: empty, ".", "..", containing '/' or NUL, or longer than NAME_MAX bytes. So the
// job directory, and everything storage_bench makes inside it, stays inside DIR.
void check_job_name(const std::string& name);

// Refuses, with one clear line (ffb::UsageError), a DIR that does not exist, is not a directory or
// is not writable.
void check_user_dir(const std::filesystem::path& dir);

struct FsInfo {
  std::string path;      // realpath of DIR
  std::string fs_type;   // from /proc/self/mountinfo (e.g. "ext4", "fuse.hf3fs"), else statfs magic
  std::string fs_magic;  // statfs f_type in hex
  std::string mount_point;
  std::string mount_options;  // per-mount and super-block options
  std::string device;         // mount source (e.g. /dev/nvme0n1p1, server:/export)
  std::uint64_t total_bytes = 0, free_bytes = 0, free_inodes = 0;
  std::uint64_t page_cache_bytes = 0, mem_total_bytes = 0;  // /proc/meminfo Cached, MemTotal
  // Direct I/O: what statx (STATX_DIOALIGN) reports for a file here; 0 = not reported.
  std::uint32_t dio_mem_align = 0, dio_offset_align = 0;
  bool dio_supported = false;
  std::string dio_error;  // why O_DIRECT is refused
};

FsInfo probe_fs(const std::filesystem::path& dir);
// Creates, queries and removes a probe file in dir: fills the dio_* fields.
void probe_direct_io(DirHandle& dir, FsInfo& info);
// Alignment to use for O_DIRECT buffers, offsets and sizes (>= 512).
std::uint32_t dio_alignment(const FsInfo& info);

// Page-cache residency of [offset, offset + len) of an open file, measured with mincore on up to
// max_pages evenly spaced pages. Adds to sampled/resident. Never faults pages in.
void sample_residency(int fd, std::uint64_t offset, std::uint64_t len, std::uint64_t max_pages,
                      std::uint64_t& sampled, std::uint64_t& resident);
// Drops the file's clean pages from the page cache (posix_fadvise DONTNEED). Dirty pages stay:
// fdatasync first.
void evict(int fd);

}  // namespace sb
