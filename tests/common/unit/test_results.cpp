// The HDF5 writer, read back with the HDF5 C API: groups, attributes, columns, units, 2-D data,
// append order, the index layout (later runs in segment files, earlier ones never rewritten),
// leftovers of killed writers, and check_output on good, missing, unwritable and damaged paths.
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>

#include "ffb/error.h"
#include "ffb/results.h"

namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "ffb-results-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
};

std::string read_string_attr(hid_t obj, const char* name) {
  const hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
  const hid_t type = H5Aget_type(attr);
  char* value = nullptr;
  const hid_t mem = H5Tcopy(H5T_C_S1);
  H5Tset_size(mem, H5T_VARIABLE);
  H5Tset_cset(mem, H5T_CSET_UTF8);
  EXPECT_GE(H5Aread(attr, mem, &value), 0);
  std::string out = value ? value : "";
  H5free_memory(value);
  H5Tclose(mem);
  H5Tclose(type);
  H5Aclose(attr);
  return out;
}

ffb::RunRecord sample_run(double scale) {
  ffb::RunRecord run;
  run.attrs["program"] = std::string("test_results");
  run.attrs["nranks"] = std::int64_t{3};
  run.attrs["busbw_factor"] = 1.5;
  run.attrs["hosts"] = std::vector<std::string>{"a", "b", "c"};
  for (int i = 0; i < 12; ++i)  // past 8 attributes: must stay copyable (ffbench merge)
    run.attrs["extra" + std::to_string(i)] = std::string("value ") + std::to_string(i);
  ffb::Table t{.name = "collective", .columns = {}};
  auto& size = t.add_i64("size", "B");
  auto& bw = t.add_f64("busbw", "GB/s");
  auto& type = t.add_str("type");
  auto& iters = t.add_f64("iter_time_max", "us", 4);
  for (int i = 0; i < 5; ++i) {
    size.push_back(8 << i);
    bw.push_back(scale * i);
    type.push_back(i % 2 ? "half" : "float");
    for (int k = 0; k < 4; ++k) iters.push_back(i * 10 + k);
  }
  run.tables.push_back(std::move(t));
  return run;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

fs::path segment_dir(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) return e.path();
  return {};
}

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::vector<double> busbw_of(hid_t file, const char* run) {
  const hid_t g = H5Gopen2(file, run, H5P_DEFAULT);  // follows the index's external link
  EXPECT_GE(g, 0);
  const hid_t bw = H5Dopen2(g, "collective/busbw", H5P_DEFAULT);
  std::vector<double> values(5);
  EXPECT_GE(H5Dread(bw, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  EXPECT_EQ(read_string_attr(bw, "units"), "GB/s");
  H5Dclose(bw);
  H5Gclose(g);
  return values;
}

// A pid that is certainly not running: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

std::string usage_error_of(const fs::path& p) {
  try {
    ffb::check_output(p);
  } catch (const ffb::UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(Results, AppendTwoRunsAndReadBack) {
  TempDir dir;
  const fs::path file = dir.path / "r.h5";
  EXPECT_EQ(ffb::append_run(file, sample_run(1.0)), "000000");
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"r.h5"});  // one run: a single file
  EXPECT_EQ(ffb::append_run(file, sample_run(2.0)), "000001");
  // The second run went to a segment file; r.h5 is now an index linking both runs.
  const auto seg = segment_dir(dir.path);
  ASSERT_FALSE(seg.empty());
  EXPECT_EQ(names_in(seg), (std::vector<std::string>{"000000.h5", "000001.h5"}));

  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  EXPECT_EQ(read_string_attr(f, "format"), "ffbench-results");
  EXPECT_EQ(read_string_attr(f, "layout"), "index");
  EXPECT_EQ(busbw_of(f, "/runs/000000"), (std::vector<double>{0, 1, 2, 3, 4}));
  EXPECT_EQ(busbw_of(f, "/runs/000001"), (std::vector<double>{0, 2, 4, 6, 8}));
  const hid_t run = H5Gopen2(f, "/runs/000001", H5P_DEFAULT);
  EXPECT_EQ(read_string_attr(run, "program"), "test_results");
  const hid_t it = H5Dopen2(run, "collective/iter_time_max", H5P_DEFAULT);
  const hid_t space = H5Dget_space(it);
  hsize_t dims[2] = {0, 0};
  ASSERT_EQ(H5Sget_simple_extent_ndims(space), 2);
  H5Sget_simple_extent_dims(space, dims, nullptr);
  EXPECT_EQ(dims[0], 5u);
  EXPECT_EQ(dims[1], 4u);
  H5Sclose(space);
  H5Dclose(it);
  H5Gclose(run);
  H5Fclose(f);
  EXPECT_NO_THROW(ffb::check_output(file));  // reads every run back
}

TEST(Results, LaterAppendsNeverRewriteEarlierRuns) {
  TempDir dir;
  const fs::path file = dir.path / "r.h5";
  ffb::append_run(file, sample_run(1.0));
  struct stat first {};
  ASSERT_EQ(stat(file.c_str(), &first), 0);
  ffb::append_run(file, sample_run(2.0));
  const auto seg = segment_dir(dir.path);
  struct stat base {};
  ASSERT_EQ(stat((seg / "000000.h5").c_str(), &base), 0);
  EXPECT_EQ(base.st_ino, first.st_ino);  // the first file itself, hard-linked, not copied
  const auto second = bytes_of(seg / "000001.h5");
  for (int i = 2; i < 6; ++i)
    EXPECT_EQ(ffb::append_run(file, sample_run(i)), "00000" + std::to_string(i));
  EXPECT_EQ(bytes_of(seg / "000001.h5"), second);
  EXPECT_EQ(names_in(seg).size(), 6u);
  EXPECT_LT(fs::file_size(file), 20000u);  // the index holds links only
}

TEST(Results, MismatchedColumnsFailCleanly) {
  TempDir dir;
  const fs::path file = dir.path / "r.h5";
  ffb::append_run(file, sample_run(1.0));
  const auto before = bytes_of(file);
  auto bad = sample_run(1.0);
  bad.tables[0].add_f64("short", "us").push_back(1.0);  // 1 value where 5 rows are expected
  EXPECT_THROW(ffb::append_run(file, bad), std::runtime_error);
  // The earlier run is intact and nothing else is left (no temporary, no segment directory).
  EXPECT_EQ(bytes_of(file), before);
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"r.h5"});
  ffb::append_run(file, sample_run(2.0));
  const auto index = bytes_of(file);
  EXPECT_THROW(ffb::append_run(file, bad), std::runtime_error);
  EXPECT_EQ(bytes_of(file), index);
  EXPECT_EQ(names_in(segment_dir(dir.path)), (std::vector<std::string>{"000000.h5", "000001.h5"}));
}

TEST(Results, MissingDirectoryIsAClearError) {
  try {
    ffb::append_run("/nonexistent-ffb-dir/r.h5", sample_run(1.0));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-ffb-dir"), std::string::npos);
  }
}

TEST(Results, AppendRemovesLeftoversOfKilledWriters) {
  TempDir dir;
  const fs::path file = dir.path / "r.h5";
  ffb::append_run(file, sample_run(1.0));
  ffb::append_run(file, sample_run(2.0));
  const auto seg = segment_dir(dir.path);
  const auto dead = std::to_string(dead_pid());
  write_bytes(dir.path / ("r.h5.tmp." + dead), std::string(100000, 'x'));  // a killed copy
  write_bytes(seg / ("segment.tmp." + dead), "half a segment");
  fs::copy_file(seg / "000001.h5", seg / "000002.h5");  // renamed, but the index never updated
  const auto live = dir.path / ("r.h5.tmp." + std::to_string(getppid()));  // a live writer's
  write_bytes(live, "in use");
  testing::internal::CaptureStderr();
  EXPECT_EQ(ffb::append_run(file, sample_run(3.0)), "000002");
  const auto err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("removed 3 leftover(s) of killed writers"), std::string::npos) << err;
  EXPECT_NE(err.find("r.h5.tmp." + dead), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_TRUE(fs::exists(live));
  EXPECT_EQ(names_in(seg), (std::vector<std::string>{"000000.h5", "000001.h5", "000002.h5"}));
  EXPECT_NO_THROW(ffb::check_output(file));
}

TEST(Results, AppendRefusesADamagedFileAndLeavesItAlone) {
  TempDir dir;
  const fs::path file = dir.path / "r.h5";
  write_bytes(file, "not an HDF5 file at all");
  try {
    ffb::append_run(file, sample_run(1.0));
    FAIL();
  } catch (const ffb::UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--output " + file.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("not an HDF5 file"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_EQ(bytes_of(file), "not an HDF5 file at all");
  EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"r.h5"});
}

TEST(Results, CheckOutputAcceptsNewAndValidFiles) {
  TempDir dir;
  EXPECT_NO_THROW(ffb::check_output(""));
  EXPECT_NO_THROW(ffb::check_output(dir.path / "new.h5"));
  const fs::path file = dir.path / "r.h5";
  ffb::append_run(file, sample_run(1.0));
  const auto single = bytes_of(file);
  EXPECT_NO_THROW(ffb::check_output(file));
  EXPECT_EQ(bytes_of(file), single);
  ffb::append_run(file, sample_run(2.0));
  EXPECT_NO_THROW(ffb::check_output(file));
  EXPECT_EQ(names_in(dir.path).size(), 2u);  // r.h5 and its segments, nothing added by checking
}

TEST(Results, CheckOutputRefusesBadPaths) {
  TempDir dir;
  auto msg = usage_error_of(dir.path / "nodir" / "x.h5");
  EXPECT_NE(msg.find("--output " + (dir.path / "nodir" / "x.h5").string()), std::string::npos);
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  msg = usage_error_of(dir.path);
  EXPECT_NE(msg.find("is a directory"), std::string::npos) << msg;
  write_bytes(dir.path / "text.h5", "hello");
  msg = usage_error_of(dir.path / "text.h5");
  EXPECT_NE(msg.find("not an HDF5 file"), std::string::npos) << msg;
  write_bytes(dir.path / "empty.h5", "");
  msg = usage_error_of(dir.path / "empty.h5");
  EXPECT_NE(msg.find("not an HDF5 file"), std::string::npos) << msg;
  const hid_t other =
      H5Fcreate((dir.path / "other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5Fclose(other);
  msg = usage_error_of(dir.path / "other.h5");
  EXPECT_NE(msg.find("not an ffbench results file"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(Results, CheckOutputRefusesDamagedFiles) {
  TempDir dir;
  const fs::path good = dir.path / "good.h5";
  ffb::append_run(good, sample_run(1.0));
  const auto bytes = bytes_of(good);
  auto truncated = bytes.substr(0, bytes.size() / 2) + std::string(bytes.size() / 2 + 1, '\0');
  truncated.resize(bytes.size());
  write_bytes(dir.path / "truncated.h5", truncated);
  auto flipped = bytes;
  for (std::size_t i = bytes.size() / 2; i < bytes.size() / 2 + 64; ++i) flipped[i] ^= '\xff';
  write_bytes(dir.path / "flipped.h5", flipped);
  for (const char* name : {"truncated.h5", "flipped.h5"}) {
    const auto msg = usage_error_of(dir.path / name);
    EXPECT_NE(msg.find(name), std::string::npos) << name << ": " << msg;
    EXPECT_NE(msg.find("damaged"), std::string::npos) << name << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_EQ(bytes_of(dir.path / "flipped.h5"), flipped);  // checking changes nothing
  // An index whose segment is gone.
  ffb::append_run(good, sample_run(2.0));
  fs::remove(segment_dir(dir.path) / "000001.h5");
  const auto msg = usage_error_of(good);
  EXPECT_NE(msg.find("000001.h5, which is missing"), std::string::npos) << msg;
}

TEST(Results, CheckOutputRefusesAnUnwritableDirectory) {
  TempDir dir;
  const fs::path locked = dir.path / "locked";
  fs::create_directory(locked);
  fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                              fs::perms::group_exec | fs::perms::others_read |
                              fs::perms::others_exec);
  fs::permissions(dir.path, fs::perms::others_read | fs::perms::others_exec, fs::perm_options::add);
  // root may write anywhere: check as the unprivileged user nobody, in a child process.
  EXPECT_EXIT(
      {
        if (geteuid() == 0 &&
            (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
          _exit(3);
        std::fprintf(stderr, "%s\n", usage_error_of(locked / "x.h5").c_str());
        _exit(0);
      },
      testing::ExitedWithCode(0),
      "--output .*/locked/x.h5: directory .*/locked is not writable by this user");
}

}  // namespace
