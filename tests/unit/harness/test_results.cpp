// The HDF5 writer, read back with the HDF5 C API: groups, attributes, columns, units, 2-D data,
// append order, and nothing left beside the file.
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>

#include "ffb/results.h"

namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "ffb-results-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path); }
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

TEST(Results, AppendTwoRunsAndReadBack) {
  TempDir dir;
  const fs::path file = dir.path / "r.h5";
  EXPECT_EQ(ffb::append_run(file, sample_run(1.0)), "000000");
  EXPECT_EQ(ffb::append_run(file, sample_run(2.0)), "000001");
  // Nothing but the results file is left in the directory.
  std::vector<fs::path> entries(fs::directory_iterator(dir.path), fs::directory_iterator{});
  ASSERT_EQ(entries.size(), 1u);

  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  EXPECT_EQ(read_string_attr(f, "format"), "ffbench-results");
  const hid_t run = H5Gopen2(f, "/runs/000001", H5P_DEFAULT);
  ASSERT_GE(run, 0);
  EXPECT_EQ(read_string_attr(run, "program"), "test_results");

  const hid_t bw = H5Dopen2(run, "collective/busbw", H5P_DEFAULT);
  std::vector<double> values(5);
  ASSERT_GE(H5Dread(bw, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  EXPECT_EQ(values, (std::vector<double>{0, 2, 4, 6, 8}));
  EXPECT_EQ(read_string_attr(bw, "units"), "GB/s");
  H5Dclose(bw);

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
}

TEST(Results, MismatchedColumnsFailCleanly) {
  TempDir dir;
  const fs::path file = dir.path / "r.h5";
  ffb::append_run(file, sample_run(1.0));
  const auto before = fs::file_size(file);
  auto bad = sample_run(1.0);
  bad.tables[0].add_f64("short", "us").push_back(1.0);  // 1 value where 5 rows are expected
  EXPECT_THROW(ffb::append_run(file, bad), std::runtime_error);
  // The earlier run is intact and no temporary file is left.
  EXPECT_EQ(fs::file_size(file), before);
  std::vector<fs::path> entries(fs::directory_iterator(dir.path), fs::directory_iterator{});
  EXPECT_EQ(entries.size(), 1u);
}

TEST(Results, MissingDirectoryIsAClearError) {
  try {
    ffb::append_run("/nonexistent-ffb-dir/r.h5", sample_run(1.0));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-ffb-dir"), std::string::npos);
  }
}

}  // namespace
