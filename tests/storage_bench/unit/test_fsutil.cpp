// Safety of the file layer: symlinks are never followed, only our own files are ever deleted,
// bad directories are refused with one clear line; file-system facts and cache residency.
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "block.h"
#include "ffb/error.h"
#include "fsutil.h"
#include "workloads/common.h"

namespace {

using namespace sb;
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sb-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, ec);
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

DirHandle open_handle(const fs::path& p) {
  return DirHandle(Fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)), p);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(DirHandle, RefusesToFollowAPlantedSymlinkOnOpen) {
  TempDir t;
  std::ofstream(t.path() / "victim") << "precious";
  fs::create_directory(t.path() / "work");
  fs::create_symlink(t.path() / "victim", t.path() / "work" / "seq.000000");
  DirHandle d = open_handle(t.path() / "work");
  try {
    d.open("seq.000000", O_RDWR);
    FAIL() << "followed a symlink";
  } catch (const IoError& e) {
    EXPECT_EQ(e.err(), ELOOP);
    EXPECT_NE(std::string(e.what()).find("symlink"), std::string::npos) << e.what();
  }
  EXPECT_EQ(slurp(t.path() / "victim"), "precious");
}

TEST(DirHandle, RefusesToCreateOverASymlinkAndNeverDeletesIt) {
  TempDir t;
  std::ofstream(t.path() / "victim") << "precious";
  fs::create_symlink(t.path() / "victim", t.path() / "shard.000000");
  DirHandle d = open_handle(t.path());
  EXPECT_THROW(d.create("shard.000000"), IoError);
  EXPECT_FALSE(d.remove("shard.000000"));  // not ours
  EXPECT_EQ(d.remove_created(), 0u);
  EXPECT_TRUE(fs::is_symlink(t.path() / "shard.000000"));
  EXPECT_EQ(slurp(t.path() / "victim"), "precious");
}

TEST(DirHandle, RemovesOnlyWhatItCreated) {
  TempDir t;
  std::ofstream(t.path() / "foreign") << "not ours";
  DirHandle d = open_handle(t.path());
  { Fd f = d.create("ours.1"); }
  { Fd f = d.create("ours.2"); }
  EXPECT_THROW(d.create("foreign"), IoError);  // exists: never truncated
  EXPECT_FALSE(d.remove("foreign"));
  EXPECT_TRUE(d.remove("ours.1"));
  EXPECT_EQ(d.remove_created(), 1u);
  EXPECT_FALSE(fs::exists(t.path() / "ours.1"));
  EXPECT_FALSE(fs::exists(t.path() / "ours.2"));
  EXPECT_EQ(slurp(t.path() / "foreign"), "not ours");
}

TEST(DirHandle, RecreatingOurOwnFileTruncatesIt) {
  TempDir t;
  DirHandle d = open_handle(t.path());
  {
    Fd f = d.create("x");
    ASSERT_EQ(::write(f.get(), "abc", 3), 3);
  }
  { Fd f = d.create("x"); }
  EXPECT_EQ(fs::file_size(t.path() / "x"), 0u);
}

TEST(UserDir, MissingNotADirectoryAndReadOnlyAreRefused) {
  TempDir t;
  try {
    check_user_dir(t.path() / "missing");
    FAIL();
  } catch (const ffb::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  std::ofstream(t.path() / "file") << "x";
  try {
    check_user_dir(t.path() / "file");
    FAIL();
  } catch (const ffb::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("not a directory"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(check_user_dir(t.path()));
  if (::geteuid() != 0) {  // root writes anywhere; the ctest fault test covers a read-only mount
    fs::create_directory(t.path() / "ro");
    fs::permissions(t.path() / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_THROW(check_user_dir(t.path() / "ro"), ffb::UsageError);
  }
}

TEST(FsInfo, DescribesTheFileSystem) {
  TempDir t;
  FsInfo info = probe_fs(t.path());
  EXPECT_FALSE(info.fs_type.empty());
  EXPECT_FALSE(info.mount_point.empty());
  EXPECT_GT(info.total_bytes, 0u);
  EXPECT_GT(info.mem_total_bytes, 0u);
  DirHandle d = open_handle(t.path());
  probe_direct_io(d, info);
  if (info.dio_supported)
    EXPECT_GE(dio_alignment(info), 512u);
  else
    EXPECT_FALSE(info.dio_error.empty());
  EXPECT_TRUE(fs::is_empty(t.path()));  // the probe file is gone
}

TEST(Residency, MincoreSeesWhatIsCachedAndEvictDropsIt) {
  TempDir t;
  FsInfo info = probe_fs(t.path());
  DirHandle d = open_handle(t.path());
  Fd f = d.create("data");
  std::vector<char> buf(1 << 20, 'x');
  for (int i = 0; i < 8; ++i)
    ASSERT_EQ(::write(f.get(), buf.data(), buf.size()), static_cast<ssize_t>(buf.size()));
  std::uint64_t sampled = 0, resident = 0;
  sample_residency(f.get(), 0, 8 << 20, 256, sampled, resident);
  EXPECT_EQ(sampled, 256u);
  EXPECT_EQ(resident, 256u);  // just written: in the page cache
  if (info.fs_type == "tmpfs" || info.fs_type == "ramfs")
    GTEST_SKIP() << "memory file system: pages cannot be evicted";
  ASSERT_EQ(::fdatasync(f.get()), 0);
  evict(f.get());
  sampled = resident = 0;
  sample_residency(f.get(), 0, 8 << 20, 256, sampled, resident);
  EXPECT_LT(resident, sampled / 2);
}

TEST(AlignedBuffer, IsAlignedAndZeroed) {
  AlignedBuffer b(10000, 8192);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % 8192, 0u);
  EXPECT_EQ(b.size(), 10000u);
  for (std::size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b.data()[i], std::byte{0});
}

}  // namespace

// --self-test-corrupt flips one byte inside the given block, whatever its length, and only in a
// file this rank made; check_block (what --verify runs) then reports the block.
TEST(SelfTestCorrupt, FlipsOneByteInsideTheBlockAndVerifyCatchesIt) {
  TempDir t;
  DirHandle d = open_handle(t.path());
  for (const std::size_t len : {std::size_t{4096}, kHeaderBytes + 8, kHeaderBytes + 7, kHeaderBytes,
                                std::size_t{20}, std::size_t{1}}) {
    const std::string name = "blk." + std::to_string(len);
    const BlockId id{0, 1, 4096, 2};
    std::vector<std::byte> block(len), back(len);
    make_block(block, id);
    {
      Fd f = d.create(name);
      ASSERT_EQ(::pwrite(f.get(), block.data(), len, 4096), static_cast<ssize_t>(len));
      ASSERT_EQ(::ftruncate(f.get(), 3 * 4096), 0);  // more file after the block: stay inside it
    }
    const std::string note = corrupt_one_byte(d, name, 4096, len);
    EXPECT_NE(note.find(name), std::string::npos) << note;
    Fd f = d.open(name, O_RDONLY);
    ASSERT_EQ(::pread(f.get(), back.data(), len, 4096), static_cast<ssize_t>(len));
    std::size_t differ = 0;
    for (std::size_t i = 0; i < len; ++i) differ += block[i] != back[i] ? 1 : 0;
    EXPECT_EQ(differ, 1u) << len;
    EXPECT_NE(check_block(back, id), BlockCheck::ok) << len;
  }
  // Never a file this rank did not make.
  std::ofstream(t.path() / "theirs") << std::string(4096, 'x');
  EXPECT_THROW(corrupt_one_byte(d, "theirs", 0, 4096), std::logic_error);
  EXPECT_EQ(slurp(t.path() / "theirs"), std::string(4096, 'x'));
}
