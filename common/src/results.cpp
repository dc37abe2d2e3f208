// Atomic HDF5 append: copy the file beside itself, add the run to the copy, fsync, rename.
#include "ffb/results.h"

#include <array>
#include <fcntl.h>
#include <stdexcept>
#include <sys/file.h>
#include <type_traits>
#include <unistd.h>

#include <fmt/format.h>
#include <hdf5.h>

namespace ffb {

std::vector<double>& Table::add_f64(const std::string& col, const std::string& units,
                                    std::size_t width) {
  columns.push_back(Column{col, units, std::vector<double>{}, width});
  return std::get<std::vector<double>>(columns.back().data);
}

std::vector<std::int64_t>& Table::add_i64(const std::string& col, const std::string& units) {
  columns.push_back(Column{col, units, std::vector<std::int64_t>{}, 1});
  return std::get<std::vector<std::int64_t>>(columns.back().data);
}

std::vector<std::string>& Table::add_str(const std::string& col) {
  columns.push_back(Column{col, "1", std::vector<std::string>{}, 1});
  return std::get<std::vector<std::string>>(columns.back().data);
}

std::size_t Table::rows() const {
  if (columns.empty()) return 0;
  const auto& c = columns.front();
  return std::visit([&](const auto& v) { return v.size(); }, c.data) /
         std::max<std::size_t>(c.width, 1);
}

namespace {

// One HDF5 identifier, closed with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer closer, const std::string& what) : id_(id), closer_(closer) {
    if (id_ < 0) throw std::runtime_error("HDF5: " + what + " failed");
  }
  ~Handle() {
    if (id_ >= 0) closer_(id_);
  }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle& operator=(Handle&&) = delete;
  hid_t get() const { return id_; }
  void close() {
    if (id_ >= 0 && closer_(id_) < 0) {
      id_ = -1;
      throw std::runtime_error("HDF5: close failed");
    }
    id_ = -1;
  }

 private:
  hid_t id_;
  Closer closer_;
};

void check(herr_t status, const std::string& what) {
  if (status < 0) throw std::runtime_error("HDF5: " + what + " failed");
}

Handle string_type() {
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  check(H5Tset_size(t.get(), H5T_VARIABLE), "H5Tset_size");
  check(H5Tset_cset(t.get(), H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

void write_attr(hid_t obj, const std::string& name, const AttrValue& value) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          const hsize_t n = v.size();
          Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose, "H5Screate_simple");
          auto type = string_type();
          Handle attr(
              H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose, "create attribute " + name);
          std::vector<const char*> ptrs;
          for (const auto& s : v) ptrs.push_back(s.c_str());
          if (!ptrs.empty()) check(H5Awrite(attr.get(), type.get(), ptrs.data()), "write " + name);
        } else {
          Handle space(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
          if constexpr (std::is_same_v<T, std::string>) {
            auto type = string_type();
            Handle attr(
                H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose, "create attribute " + name);
            const char* p = v.c_str();
            check(H5Awrite(attr.get(), type.get(), &p), "write " + name);
          } else {
            const hid_t type = std::is_same_v<T, double> ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
            Handle attr(H5Acreate2(obj, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                        H5Aclose, "create attribute " + name);
            check(H5Awrite(attr.get(), type, &v), "write " + name);
          }
        }
      },
      value);
}

void write_column(hid_t group, const Column& col, std::size_t rows) {
  const std::size_t width = std::max<std::size_t>(col.width, 1);
  const std::array<hsize_t, 2> dims{rows, width};
  const int rank = width > 1 ? 2 : 1;
  Handle space(H5Screate_simple(rank, dims.data(), nullptr), H5Sclose, "H5Screate_simple");
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if (v.size() != rows * width)
          throw std::runtime_error(fmt::format("results: column {} has {} values, expected {}",
                                               col.name, v.size(), rows * width));
        if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          auto type = string_type();
          Handle ds(H5Dcreate2(group, col.name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                               H5P_DEFAULT, H5P_DEFAULT),
                    H5Dclose, "create dataset " + col.name);
          std::vector<const char*> ptrs;
          for (const auto& s : v) ptrs.push_back(s.c_str());
          if (rows > 0)
            check(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()),
                  "write " + col.name);
          write_attr(ds.get(), "units", col.units);
        } else {
          const hid_t type =
              std::is_same_v<T, std::vector<double>> ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
          Handle ds(H5Dcreate2(group, col.name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                               H5P_DEFAULT),
                    H5Dclose, "create dataset " + col.name);
          if (rows > 0)
            check(H5Dwrite(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
                  "write " + col.name);
          write_attr(ds.get(), "units", col.units);
        }
      },
      col.data);
}

bool has_link(hid_t loc, const char* name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }

std::string write_run(const std::string& file, bool existed, const RunRecord& run) {
  Handle f(existed ? H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)
                   : H5Fcreate(file.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT),
           H5Fclose, (existed ? "open " : "create ") + file);
  if (!existed) {
    write_attr(f.get(), "format", std::string("ffbench-results"));
    write_attr(f.get(), "schema_version", std::int64_t{1});
  }
  if (!has_link(f.get(), "runs")) {
    Handle g(H5Gcreate2(f.get(), "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
             "create /runs");
  }
  Handle runs(H5Gopen2(f.get(), "runs", H5P_DEFAULT), H5Gclose, "open /runs");
  H5G_info_t info{};
  check(H5Gget_info(runs.get(), &info), "H5Gget_info");
  auto index = static_cast<unsigned long long>(info.nlinks);
  std::string id = fmt::format("{:06d}", index);
  while (has_link(runs.get(), id.c_str())) id = fmt::format("{:06d}", ++index);

  Handle group(H5Gcreate2(runs.get(), id.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
               "create run group " + id);
  for (const auto& [name, value] : run.attrs) write_attr(group.get(), name, value);
  for (const auto& table : run.tables) {
    Handle tg(H5Gcreate2(group.get(), table.name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
              H5Gclose, "create table " + table.name);
    const auto rows = table.rows();
    for (const auto& col : table.columns) write_column(tg.get(), col, rows);
  }
  group.close();
  runs.close();
  check(H5Fflush(f.get(), H5F_SCOPE_GLOBAL), "flush " + file);
  f.close();
  return id;
}

// Exclusive lock on the results directory for the duration of the append (no lock file left).
class DirectoryLock {
 public:
  explicit DirectoryLock(const std::filesystem::path& dir)
      : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    if (fd_ < 0)
      throw std::runtime_error(fmt::format("results: cannot open directory {}", dir.string()));
    if (::flock(fd_, LOCK_EX) != 0) {
      ::close(fd_);
      throw std::runtime_error(fmt::format("results: cannot lock directory {}", dir.string()));
    }
  }
  ~DirectoryLock() { ::close(fd_); }  // closing releases the lock
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

void fsync_path(const std::filesystem::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("results: cannot open " + p.string() + " to fsync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw std::runtime_error("results: fsync failed for " + p.string());
}

}  // namespace

std::string append_run(const std::filesystem::path& path, const RunRecord& run) {
  namespace fs = std::filesystem;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become exceptions with context instead
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (!fs::is_directory(dir))
    throw std::runtime_error(
        fmt::format("--output {}: directory {} does not exist", path.string(), dir.string()));
  DirectoryLock lock(dir);
  const fs::path tmp = path.string() + fmt::format(".tmp.{}", ::getpid());
  try {
    const bool existed = fs::exists(path);
    if (existed) fs::copy_file(path, tmp, fs::copy_options::overwrite_existing);
    const auto id = write_run(tmp.string(), existed, run);
    fsync_path(tmp);
    fs::rename(tmp, path);
    ::fsync(lock.fd());
    return id;
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw std::runtime_error(fmt::format("--output {}: {}", path.string(), e.what()));
  }
}

}  // namespace ffb
