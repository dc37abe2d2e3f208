// The HDF5 results writer and its checks (layout, crash safety and fault points:
// results/SCHEMA.md; the Python writer python/ffbench/data/h5io.py does the same steps).
//
// A results file is *single* (the run groups inside it) or an *index* (root attr layout =
// "index"; /runs/<id> are external links into segment files FILE.runs-<hex>/<id>.h5). The first
// run makes a single file; every later append writes a segment with its run, then a new copy of
// the index (links only), each to a temporary that is fsync'd and renamed, so an append costs
// the run, not the file. All of it happens under an exclusive flock on FILE's directory.
#include "ffb/results.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <optional>
#include <poll.h>
#include <random>
#include <set>
#include <stdexcept>
#include <string_view>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <type_traits>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>
#include <hdf5.h>

#include "ffb/error.h"
#include "ffb/fault.h"

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

namespace fs = std::filesystem;

constexpr const char* kFormat = "ffbench-results";
constexpr const char* kLayoutIndex = "index";
constexpr hsize_t kChunkElements = 65536;            // 512 KiB chunks of float64 / int64
constexpr std::size_t kReadBlockBytes = 16u << 20;   // the integrity check reads 16 MiB at a time
constexpr std::uintmax_t kCheckBudget = 256u << 20;  // segment bytes check_output reads back
constexpr hsize_t kUserblock = 512;  // bytes before the superblock: the file's checksum (seal)
constexpr std::string_view kSealMagic = "ffbench-results-checksum v1\n";

// A results file that is not valid; the message names the file and what is wrong.
class BadFile : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

herr_t collect_error(unsigned, const H5E_error2_t* e, void* data) {
  auto* out = static_cast<std::vector<std::string>*>(data);
  if (e->desc != nullptr && *e->desc != '\0') out->emplace_back(e->desc);
  return 0;
}

// The HDF5 error stack as one line (API level, then the innermost cause); clears the stack.
std::string hdf5_error() {
  std::vector<std::string> descs;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &descs);
  H5Eclear2(H5E_DEFAULT);
  if (descs.empty()) return "HDF5 error";
  std::string out = descs.front();
  if (descs.size() > 1 && descs.back() != descs.front()) out += ": " + descs.back();
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

// One HDF5 identifier, closed with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer closer, const std::string& what) : id_(id), closer_(closer) {
    if (id_ < 0) throw std::runtime_error(what + " failed (" + hdf5_error() + ")");
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
    const hid_t id = id_;
    id_ = -1;
    if (id >= 0 && closer_(id) < 0) throw std::runtime_error("close failed (" + hdf5_error() + ")");
  }

 private:
  hid_t id_;
  Closer closer_;
};

void check(herr_t status, const std::string& what) {
  if (status < 0) throw std::runtime_error(what + " failed (" + hdf5_error() + ")");
}

// ---------------------------------------------------------------------------------- writing

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

// Numbers are chunked with Fletcher32 checksums (HDF5 refuses filters on variable-length
// strings; an empty dataset cannot be chunked).
Handle column_dcpl(bool numeric, std::size_t rows, std::size_t width) {
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, "H5Pcreate");
  if (numeric && rows > 0) {
    const hsize_t chunk_rows = std::clamp<hsize_t>(kChunkElements / width, 1, rows);
    const std::array<hsize_t, 2> chunk{chunk_rows, width};
    check(H5Pset_chunk(dcpl.get(), width > 1 ? 2 : 1, chunk.data()), "H5Pset_chunk");
    check(H5Pset_fletcher32(dcpl.get()), "H5Pset_fletcher32");
  }
  return dcpl;
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
        constexpr bool strings = std::is_same_v<T, std::vector<std::string>>;
        auto dcpl = column_dcpl(!strings, rows, width);
        if constexpr (strings) {
          auto type = string_type();
          Handle ds(H5Dcreate2(group, col.name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                               dcpl.get(), H5P_DEFAULT),
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
          Handle ds(H5Dcreate2(group, col.name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(),
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

Handle file_access() {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate");
  // v110 object headers and B-trees carry checksums: damaged metadata fails on open.
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), "H5Pset_libver_bounds");
  return fapl;
}

// A new results file (truncating a leftover of this very pid) with its root attrs and /runs.
Handle new_file(const fs::path& p) {
  auto fapl = file_access();
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose, "H5Pcreate");
  check(H5Pset_userblock(fcpl.get(), kUserblock), "H5Pset_userblock");
  Handle f(H5Fcreate(p.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose,
           "create " + p.string());
  write_attr(f.get(), "format", std::string(kFormat));
  write_attr(f.get(), "schema_version", std::int64_t{1});
  Handle runs(H5Gcreate2(f.get(), "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
              "create /runs");
  return f;
}

// The run group keeps its attributes in its object header: HDF5 1.10.8's object copy (ffbench
// merge) crashes on dense attribute storage, which v110 groups switch to past 8 attributes.
void write_run_group(hid_t runs, const std::string& id, const RunRecord& run) {
  Handle gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose, "H5Pcreate");
  check(H5Pset_attr_phase_change(gcpl.get(), 65535, 0), "H5Pset_attr_phase_change");
  Handle group(H5Gcreate2(runs, id.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose,
               "create run group " + id);
  for (const auto& [name, value] : run.attrs) write_attr(group.get(), name, value);
  bool first = true;
  for (const auto& table : run.tables) {
    Handle tg(H5Gcreate2(group.get(), table.name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
              H5Gclose, "create table " + table.name);
    const auto rows = table.rows();
    for (const auto& col : table.columns) write_column(tg.get(), col, rows);
    if (std::exchange(first, false)) fault_point("results.append.table", 0);
  }
}

// ------------------------------------------------------------------------------- the seal

// CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), eight bytes at a time.
class Crc32 {
 public:
  void update(const unsigned char* p, std::size_t n) {
    const auto& t = tables();
    std::uint32_t c = state_;
    for (; n >= 8; p += 8, n -= 8) {
      std::uint32_t one = 0, two = 0;
      std::memcpy(&one, p, 4);
      std::memcpy(&two, p + 4, 4);
      one ^= c;
      c = t[7][one & 0xff] ^ t[6][(one >> 8) & 0xff] ^ t[5][(one >> 16) & 0xff] ^ t[4][one >> 24] ^
          t[3][two & 0xff] ^ t[2][(two >> 8) & 0xff] ^ t[1][(two >> 16) & 0xff] ^ t[0][two >> 24];
    }
    for (; n > 0; ++p, --n) c = t[0][(c ^ *p) & 0xff] ^ (c >> 8);
    state_ = c;
  }
  std::uint32_t value() const { return ~state_; }

 private:
  using Tables = std::array<std::array<std::uint32_t, 256>, 8>;
  static const Tables& tables() {
    static const Tables t = [] {
      Tables out{};
      for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        out[0][i] = c;
      }
      for (std::size_t k = 1; k < 8; ++k)
        for (std::size_t i = 0; i < 256; ++i)
          out[k][i] = (out[k - 1][i] >> 8) ^ out[0][out[k - 1][i] & 0xff];
      return out;
    }();
    return t;
  }
  std::uint32_t state_ = 0xffffffffu;
};

// An open file descriptor, closed on destruction.
class Fd {
 public:
  Fd(const fs::path& p, int flags) : fd_(::open(p.c_str(), flags | O_CLOEXEC)) {
    if (fd_ < 0)
      throw std::runtime_error(fmt::format("cannot open {}: {}", p.string(), std::strerror(errno)));
  }
  ~Fd() { ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::uint32_t crc_from(int fd, off_t start) {
  Crc32 crc;
  std::vector<unsigned char> buf(1u << 20);
  for (off_t at = start;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(fmt::format("read failed: {}", std::strerror(errno)));
    if (n == 0) return crc.value();
    crc.update(buf.data(), static_cast<std::size_t>(n));
    at += n;
  }
}

// Writes the CRC-32 of bytes [kUserblock, EOF) and the size into the user block of a file this
// writer just closed (h5io._seal writes the same block): any later change of its bytes is
// detected, string values included, which HDF5 1.10 has no checksum for.
void seal(const fs::path& p) {
  Fd fd(p, O_RDWR);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw std::runtime_error("cannot stat " + p.string());
  std::string block = fmt::format("{}crc32 {:08x}\nbytes {}\n", kSealMagic,
                                  crc_from(fd.get(), static_cast<off_t>(kUserblock)), st.st_size);
  block.resize(kUserblock, '\0');
  if (::pwrite(fd.get(), block.data(), block.size(), 0) != static_cast<ssize_t>(block.size()))
    throw std::runtime_error("cannot write the checksum of " + p.string());
}

// ---------------------------------------------------------------------------------- reading

bool looks_hdf5(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  static constexpr char kSignature[] = "\x89HDF\r\n\x1a\n";
  bool found = false;
  for (off_t offset : {0, 512, 1024, 2048}) {
    std::array<char, 8> buf{};
    if (::pread(fd, buf.data(), buf.size(), offset) == 8 &&
        std::memcmp(buf.data(), kSignature, 8) == 0)
      found = true;
  }
  ::close(fd);
  return found;
}

// A scalar string attribute (variable or fixed length); nullopt when absent.
std::optional<std::string> string_attr(hid_t obj, const char* name) {
  const htri_t exists = H5Aexists(obj, name);
  if (exists < 0) throw std::runtime_error(fmt::format("attribute {}: {}", name, hdf5_error()));
  if (exists == 0) return std::nullopt;
  Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, fmt::format("open attribute {}", name));
  Handle type(H5Aget_type(attr.get()), H5Tclose, "H5Aget_type");
  Handle space(H5Aget_space(attr.get()), H5Sclose, "H5Aget_space");
  if (H5Tget_class(type.get()) != H5T_STRING || H5Sget_simple_extent_npoints(space.get()) != 1)
    return std::string("(not a string)");
  if (H5Tis_variable_str(type.get()) > 0) {
    char* value = nullptr;
    check(H5Aread(attr.get(), type.get(), &value), fmt::format("read attribute {}", name));
    std::string out = value != nullptr ? value : "";
    H5free_memory(value);
    return out;
  }
  std::string buf(H5Tget_size(type.get()), '\0');
  check(H5Aread(attr.get(), type.get(), buf.data()), fmt::format("read attribute {}", name));
  buf.resize(std::strlen(buf.c_str()));
  return buf;
}

struct Entry {
  std::string id;
  std::string file;    // relative to the results file's directory; "" when inside it
  std::string object;  // path of the run group in its file
};

struct Inspection {
  std::string layout = "missing";  // "missing", "single" or "index"
  std::string segments;            // an index's segment directory (relative)
  std::string compacted_from;      // a compacted file's former segment directory
  std::vector<Entry> entries;      // sorted by id

  std::set<std::string> referenced() const {
    std::set<std::string> out;
    for (const auto& e : entries)
      if (!e.file.empty()) out.insert(fs::path(e.file).filename().string());
    return out;
  }
};

struct LinkWalk {
  std::vector<Entry> entries;
  std::string error;
};

herr_t collect_link(hid_t group, const char* name, const H5L_info_t* info, void* data) {
  auto* walk = static_cast<LinkWalk*>(data);
  try {
    Entry e{name, "", fmt::format("/runs/{}", name)};
    if (info->type == H5L_TYPE_EXTERNAL) {
      std::vector<char> buf(info->u.val_size);
      const char* file = nullptr;
      const char* obj = nullptr;
      unsigned flags = 0;
      if (H5Lget_val(group, name, buf.data(), buf.size(), H5P_DEFAULT) < 0 ||
          H5Lunpack_elink_val(buf.data(), buf.size(), &flags, &file, &obj) < 0) {
        walk->error = fmt::format("cannot read the external link /runs/{}", name);
        return -1;
      }
      e.file = file;
      e.object = obj;
    } else if (info->type != H5L_TYPE_HARD) {
      walk->error = fmt::format("/runs/{} is a soft link", name);
      return -1;
    }
    walk->entries.push_back(std::move(e));
  } catch (const std::exception& ex) {
    walk->error = ex.what();
    return -1;
  }
  return 0;
}

BadFile damaged(const fs::path& p, const std::string& what) {
  return BadFile(fmt::format("{}: damaged results file ({})", p.string(), what));
}

// BadFile when a sealed file's bytes changed since it was written; true when it is sealed and
// intact. Files without a seal (older files, other tools) rely on HDF5's own checksums.
bool verify_seal(const fs::path& p) {
  static constexpr char kSignature[] = "\x89HDF\r\n\x1a\n";
  Fd fd(p, O_RDONLY);
  std::string head(kUserblock + 8, '\0');
  const ssize_t got = ::pread(fd.get(), head.data(), head.size(), 0);
  head.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  if (!head.starts_with(kSealMagic)) {
    if (!head.starts_with(std::string_view(kSignature, 8)) && head.size() == kUserblock + 8 &&
        head.compare(kUserblock, 8, std::string_view(kSignature, 8)) == 0)
      throw damaged(p, "its checksum block is unreadable");
    return false;
  }
  unsigned crc = 0;
  long long bytes = -1;
  const auto fields = head.substr(kSealMagic.size(), kUserblock - kSealMagic.size());
  if (std::sscanf(fields.c_str(), "crc32 %8x\nbytes %lld\n", &crc, &bytes) != 2)
    throw damaged(p, "its checksum block is unreadable");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw BadFile(fmt::format("{}: cannot stat it", p.string()));
  if (st.st_size != bytes)
    throw damaged(p,
                  fmt::format("{} bytes, written as {}: truncated or extended", st.st_size, bytes));
  if (crc_from(fd.get(), static_cast<off_t>(kUserblock)) != crc)
    throw damaged(p, "checksum mismatch: its bytes changed after it was written");
  return true;
}

// Opens a results file read-only; checks the format attr and that /runs is a group.
Handle open_results(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(p, ec)))
    throw BadFile(fmt::format("{}: no such results file", p.string()));
  if (fs::is_directory(p, ec))
    throw BadFile(fmt::format("{}: is a directory, not a results file", p.string()));
  const hid_t id = H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) {
    const auto why = hdf5_error();
    throw BadFile(fmt::format("{}: {} ({})", p.string(),
                              looks_hdf5(p) ? "damaged HDF5 file" : "not an HDF5 file", why));
  }
  Handle f(id, H5Fclose, "open");
  try {
    const auto format = string_attr(f.get(), "format");
    if (format != kFormat)
      throw BadFile(fmt::format("{}: not an ffbench results file (format attr {}, expected {})",
                                p.string(), format ? "'" + *format + "'" : "missing", kFormat));
    const htri_t has_runs = H5Lexists(f.get(), "runs", H5P_DEFAULT);
    if (has_runs < 0) throw damaged(p, hdf5_error());
    H5O_info_t info{};
    if (has_runs > 0) {
      check(H5Oget_info_by_name2(f.get(), "runs", &info, H5O_INFO_BASIC, H5P_DEFAULT), "/runs");
      if (info.type != H5O_TYPE_GROUP) throw damaged(p, "/runs is not a group");
    }
  } catch (const BadFile&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw damaged(p, e.what());
  }
  return f;
}

void check_entries(const fs::path& p, const Inspection& ins) {
  if (ins.layout != "single" && ins.layout != kLayoutIndex)
    throw damaged(p, fmt::format("unknown layout attr '{}'", ins.layout));
  for (const auto& e : ins.entries) {
    if (ins.layout == "single" && !e.file.empty())
      throw damaged(p, fmt::format("run {} is an external link in a single file", e.id));
    if (ins.layout != kLayoutIndex) continue;
    const fs::path f(e.file);
    const auto name = f.filename().string();
    if (f.parent_path() != ins.segments || ins.segments.empty() || name.empty() || name == "." ||
        name == "..")
      throw damaged(p, fmt::format("run {} is not a link into {}/", e.id, ins.segments));
  }
}

// What `p` is, without opening its segments: layout and run entries. A missing `p` is "missing".
Inspection inspect(const fs::path& p) {
  Inspection ins;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(p, ec))) return ins;
  auto f = open_results(p);
  try {
    ins.layout = string_attr(f.get(), "layout").value_or("");
    if (ins.layout.empty()) ins.layout = "single";
    ins.segments = string_attr(f.get(), "segments").value_or("");
    ins.compacted_from = string_attr(f.get(), "compacted_from").value_or("");
    if (H5Lexists(f.get(), "runs", H5P_DEFAULT) > 0) {
      Handle runs(H5Gopen2(f.get(), "runs", H5P_DEFAULT), H5Gclose, "open /runs");
      LinkWalk walk;
      hsize_t idx = 0;
      if (H5Literate(runs.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link, &walk) < 0)
        throw damaged(p, walk.error.empty() ? hdf5_error() : walk.error);
      ins.entries = std::move(walk.entries);
    }
  } catch (const BadFile&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw damaged(p, e.what());
  }
  check_entries(p, ins);
  return ins;
}

// ---------------------------------------------------------------------- the integrity check

bool has_vlen(hid_t type) {
  return H5Tdetect_class(type, H5T_VLEN) > 0 || H5Tis_variable_str(type) > 0;
}

void read_attr(hid_t loc, const char* name) {
  Handle attr(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose, fmt::format("open attribute {}", name));
  Handle ftype(H5Aget_type(attr.get()), H5Tclose, "H5Aget_type");
  Handle mem(H5Tget_native_type(ftype.get(), H5T_DIR_ASCEND), H5Tclose, "H5Tget_native_type");
  Handle space(H5Aget_space(attr.get()), H5Sclose, "H5Aget_space");
  const auto points = H5Sget_simple_extent_npoints(space.get());
  if (points <= 0) return;
  std::vector<unsigned char> buf(static_cast<std::size_t>(points) * H5Tget_size(mem.get()));
  check(H5Aread(attr.get(), mem.get(), buf.data()), fmt::format("read attribute {}", name));
  if (has_vlen(mem.get())) H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, buf.data());
}

struct VisitError {
  std::string error;
  bool read_data = true;
};

herr_t read_attr_cb(hid_t loc, const char* name, const H5A_info_t*, void* data) {
  try {
    read_attr(loc, name);
  } catch (const std::exception& e) {
    static_cast<VisitError*>(data)->error = e.what();
    return -1;
  }
  return 0;
}

void read_attrs(hid_t obj) {
  VisitError v;
  hsize_t idx = 0;
  if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, read_attr_cb, &v) < 0)
    throw std::runtime_error(v.error.empty() ? "attributes: " + hdf5_error() : v.error);
}

// Reads every element (HDF5 verifies the Fletcher32 checksum of every chunk it reads).
void read_dataset(hid_t ds) {
  Handle ftype(H5Dget_type(ds), H5Tclose, "H5Dget_type");
  Handle mem(H5Tget_native_type(ftype.get(), H5T_DIR_ASCEND), H5Tclose, "H5Tget_native_type");
  Handle space(H5Dget_space(ds), H5Sclose, "H5Dget_space");
  const int nd = H5Sget_simple_extent_ndims(space.get());
  if (nd < 0) throw std::runtime_error("dataspace: " + hdf5_error());
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(nd, 1)), 1);
  if (nd > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  hsize_t row = H5Tget_size(mem.get());
  for (std::size_t i = 1; i < dims.size(); ++i) row *= dims[i];
  if (dims[0] == 0 || row == 0) return;
  const hsize_t block = std::clamp<hsize_t>(kReadBlockBytes / row, 1, dims[0]);
  std::vector<unsigned char> buf(block * row);
  const bool vlen = has_vlen(mem.get());
  for (hsize_t start = 0; start < dims[0]; start += block) {
    std::vector<hsize_t> offset(dims.size(), 0), count(dims);
    offset[0] = start;
    count[0] = std::min(block, dims[0] - start);
    Handle mspace(H5Screate_simple(static_cast<int>(dims.size()), count.data(), nullptr), H5Sclose,
                  "H5Screate_simple");
    if (nd > 0)
      check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, offset.data(), nullptr, count.data(),
                                nullptr),
            "H5Sselect_hyperslab");
    check(H5Dread(ds, mem.get(), mspace.get(), nd > 0 ? space.get() : H5S_ALL, H5P_DEFAULT,
                  buf.data()),
          "read data");
    if (vlen) H5Dvlen_reclaim(mem.get(), mspace.get(), H5P_DEFAULT, buf.data());
  }
}

herr_t verify_object(hid_t loc, const char* name, const H5O_info_t* info, void* data) {
  try {
    Handle obj(H5Oopen(loc, name, H5P_DEFAULT), H5Oclose, fmt::format("open {}", name));
    read_attrs(obj.get());
    if (info->type == H5O_TYPE_DATASET && static_cast<VisitError*>(data)->read_data)
      read_dataset(obj.get());
  } catch (const std::exception& e) {
    static_cast<VisitError*>(data)->error = fmt::format("{}: {}", name, e.what());
    return -1;
  }
  return 0;
}

// Every object below (and including) `group`: headers, attributes and (read_data) data.
void verify_group(hid_t group, bool read_data) {
  VisitError v;
  v.read_data = read_data;
  if (H5Ovisit2(group, H5_INDEX_NAME, H5_ITER_NATIVE, verify_object, &v, H5O_INFO_BASIC) < 0)
    throw std::runtime_error(v.error.empty() ? hdf5_error() : v.error);
}

fs::path directory_of(const fs::path& p) { return p.has_parent_path() ? p.parent_path() : "."; }

void verify_run(hid_t holder, const fs::path& src, const Entry& e, bool sealed) {
  try {
    Handle g(H5Gopen2(holder, e.object.c_str(), H5P_DEFAULT), H5Gclose, "open " + e.object);
    verify_group(g.get(), !sealed);  // a sealed file's bytes are exactly what was written
  } catch (const std::runtime_error& ex) {
    throw damaged(src, fmt::format("run {}: {}", e.id, ex.what()));
  }
}

// The check of an existing --output: `p` itself completely (seal, every object, the data of an
// unsealed file); every segment of an index is there; the newest segments that fit in
// kCheckBudget bytes are checked like `p` (a bounded cost: a program's start-up check must not
// grow with the file either; every reader still checks everything). BadFile naming the file.
void verify_set(const fs::path& p) {
  const bool sealed = verify_seal(p);
  const auto ins = inspect(p);
  auto f = open_results(p);
  std::optional<Handle> segment;
  std::string open_name;
  bool open_sealed = false;
  std::uintmax_t budget = kCheckBudget;
  for (auto it = ins.entries.rbegin(); it != ins.entries.rend(); ++it) {  // newest first
    const auto& e = *it;
    if (e.file.empty()) {
      verify_run(f.get(), p, e, sealed);
      continue;
    }
    const fs::path src = directory_of(p) / e.file;
    std::error_code ec;
    const auto size = fs::file_size(src, ec);
    if (ec)
      throw BadFile(
          fmt::format("{}: run {} is stored in {}, which is missing (keep {}/ beside "
                      "the file, or fold it in: ffbench merge --compact)",
                      p.string(), e.id, src.string(), ins.segments));
    if (e.file != open_name) {
      segment.reset();
      open_name.clear();
      if (size > budget) continue;  // past the budget: being there is all this check asks
      budget -= size;
      open_sealed = verify_seal(src);
      segment.emplace(open_results(src));
      open_name = e.file;
    }
    verify_run(segment->get(), src, e, open_sealed);
  }
}

struct ChildResult {
  int status;
  std::string message;
  bool hung;
};

// Collects the child's message until it closes the pipe or `timeout_s` passes (then kills it).
ChildResult wait_child(pid_t pid, int fd, int timeout_s) {
  ChildResult out{0, "", false};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::array<char, 4096> buf{};
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    pollfd pfd{fd, POLLIN, 0};
    const int ready = left > 0 ? ::poll(&pfd, 1, static_cast<int>(left)) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      out.hung = true;
      ::kill(pid, SIGKILL);
      break;
    }
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.message.append(buf.data(), static_cast<std::size_t>(n));
  }
  while (::waitpid(pid, &out.status, 0) < 0 && errno == EINTR) {
  }
  return out;
}

// HDF5 1.10 can crash or loop forever on damaged metadata it has no checksum for (the global
// heap of variable-length strings), so a file is first read in a forked child (which touches
// nothing but HDF5 and leaves with _exit): a crash or a hang there is reported as damage.
// Where fork fails, the check runs here.
void read_in_child(const fs::path& p, const std::function<void()>& read) {
  const char* no_fork = std::getenv("FFB_RESULTS_NO_FORK");  // an MPI stack that minds fork()
  if (no_fork != nullptr && *no_fork != '\0' && std::string_view(no_fork) != "0") return read();
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return read();
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  const int timeout_s = 60 + static_cast<int>(30.0 * static_cast<double>(ec ? 0 : size) / 1e9);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return read();
  }
  if (pid == 0) {
    ::close(fds[0]);
    int code = 0;
    std::string msg;
    try {
      read();
    } catch (const std::exception& e) {
      code = 2;
      msg = e.what();
    }
    if (!msg.empty() && ::write(fds[1], msg.data(), std::min<std::size_t>(msg.size(), 4000)) < 0)
      code = 3;
    ::_exit(code);
  }
  ::close(fds[1]);
  const auto [status, msg, hung] = wait_child(pid, fds[0], timeout_s);
  ::close(fds[0]);
  if (hung) throw damaged(p, fmt::format("reading it did not finish in {} s", timeout_s));
  if (WIFSIGNALED(status))
    throw damaged(p, fmt::format("HDF5 crashed reading it: {}", ::strsignal(WTERMSIG(status))));
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    throw BadFile(msg.empty() ? p.string() + ": damaged results file" : msg);
}

// ------------------------------------------------------------- leftovers of killed writers

bool pid_alive(long pid) {
  if (pid == static_cast<long>(::getpid())) return true;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

// The pid of a temporary named "<anything>.tmp.<pid>"; nullopt for other names.
std::optional<long> temporary_pid(const std::string& name) {
  const auto at = name.rfind(".tmp.");
  if (at == std::string::npos || at + 5 >= name.size()) return std::nullopt;
  const auto digits = name.substr(at + 5);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      digits.size() > 9)
    return std::nullopt;
  return std::stol(digits);
}

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> dead_temporaries(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  for (const auto& p : sorted_entries(dir)) {
    const auto name = p.filename().string();
    const auto pid = temporary_pid(name);
    if (pid && name.starts_with(prefix) && !pid_alive(*pid)) out.push_back(p);
  }
  return out;
}

bool holds_link_of(const fs::path& dir, const fs::path& p) {
  std::error_code ec;
  const auto entries = sorted_entries(dir);
  return std::any_of(entries.begin(), entries.end(),
                     [&](const fs::path& e) { return fs::equivalent(e, p, ec); });
}

// What killed writers left beside `p` (the same rules as h5io._leftovers): temporaries of dead
// pids; an index's segments it does not refer to; for a single file, segment directories of a
// conversion that never got its index (they hold a hard link of the file) or of a compacted
// index; segment directories left empty.
std::vector<fs::path> leftovers(const fs::path& p, const Inspection& ins) {
  const fs::path dir = directory_of(p);
  const auto base = p.filename().string();
  auto out = dead_temporaries(dir, base + ".tmp.");
  const auto referenced = ins.referenced();
  for (const auto& seg_dir : sorted_entries(dir)) {
    const auto name = seg_dir.filename().string();
    std::error_code ec;
    if (!name.starts_with(base + ".runs-") || !fs::is_directory(seg_dir, ec)) continue;
    if (ins.layout == kLayoutIndex && name == ins.segments) {
      for (const auto& t : dead_temporaries(seg_dir, "")) out.push_back(t);
      for (const auto& s : sorted_entries(seg_dir))
        if (s.extension() == ".h5" && !referenced.contains(s.filename().string())) out.push_back(s);
    } else if (ins.layout == "single" &&
               (holds_link_of(seg_dir, p) || name == ins.compacted_from)) {
      out.push_back(seg_dir);
    } else {
      const auto temps = dead_temporaries(seg_dir, "");
      out.insert(out.end(), temps.begin(), temps.end());
      if (temps.size() == sorted_entries(seg_dir).size()) out.push_back(seg_dir);
    }
  }
  return out;
}

std::uintmax_t size_of(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(p, ec))) {
    const auto n = fs::file_size(p, ec);
    return ec ? 0 : n;
  }
  std::uintmax_t total = 0;
  for (const auto& e : sorted_entries(p)) total += size_of(e);
  return total;
}

std::string megabytes(std::uintmax_t n) {
  return n >= 100000 ? fmt::format("{:.1f} MB", static_cast<double>(n) / 1e6)
                     : fmt::format("{:.0f} kB", static_cast<double>(n) / 1e3);
}

// Removes `items` and says so on stderr, in one line (the same line h5io prints).
void remove_reported(const fs::path& p, const std::vector<fs::path>& items) {
  if (items.empty()) return;
  std::uintmax_t total = 0;
  std::string shown;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto n = size_of(items[i]);
    total += n;
    if (i < 3)
      shown += fmt::format("{}{} ({})", i ? ", " : "",
                           fs::relative(items[i], directory_of(p)).string(), megabytes(n));
  }
  if (items.size() > 3) shown += fmt::format(" and {} more", items.size() - 3);
  for (const auto& item : items) {
    std::error_code ec;
    fs::remove_all(item, ec);
  }
  fmt::print(stderr, "results: {}: removed {} leftover(s) of killed writers, {}: {}\n",
             fs::absolute(p).string(), items.size(), megabytes(total), shown);
}

// ---------------------------------------------------------------------------- the append

void fsync_path(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + p.string() + " to fsync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw std::runtime_error("fsync failed for " + p.string());
}

void fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Exclusive lock on the results directory for the duration of the append (no lock file left).
class DirectoryLock {
 public:
  explicit DirectoryLock(const fs::path& dir)
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

 private:
  int fd_;
};

std::string segment_name(const std::vector<Entry>& entries) {
  if (entries.empty()) return "base.h5";
  if (entries.size() == 1) return entries.front().id + ".h5";
  return entries.front().id + "-" + entries.back().id + ".h5";
}

std::string next_id(const std::vector<Entry>& entries) {
  long long next = 0;
  for (const auto& e : entries)
    if (!e.id.empty() &&
        std::all_of(e.id.begin(), e.id.end(), [](char c) { return c >= '0' && c <= '9'; }))
      next = std::max(next, std::stoll(e.id) + 1);
  return fmt::format("{:06d}", next);
}

void add_link(hid_t runs, const std::string& id, const std::string& file) {
  check(H5Lcreate_external(file.c_str(), ("/runs/" + id).c_str(), runs, id.c_str(), H5P_DEFAULT,
                           H5P_DEFAULT),
        "link run " + id);
}

// One append under the lock. On an exception, cleanup() removes what this append created.
class Appender {
 public:
  Appender(fs::path path, Inspection ins)
      : path_(std::move(path)),
        dir_(directory_of(path_)),
        tmp_(path_.string() + fmt::format(".tmp.{}", ::getpid())),
        ins_(std::move(ins)) {}

  std::string append(const RunRecord& run);
  void cleanup() noexcept;

 private:
  fs::path segment_dir();
  void write_index(const std::string& id, const std::string& segment);

  fs::path path_, dir_, tmp_, data_tmp_, made_dir_;
  Inspection ins_;
  std::string base_segment_;
};

std::string Appender::append(const RunRecord& run) {
  const std::string id = next_id(ins_.entries);
  const bool fresh = ins_.layout == "missing";
  data_tmp_ = fresh ? tmp_ : segment_dir() / fmt::format("segment.tmp.{}", ::getpid());
  {
    auto f = new_file(data_tmp_);
    Handle runs(H5Gopen2(f.get(), "runs", H5P_DEFAULT), H5Gclose, "open /runs");
    write_run_group(runs.get(), id, run);
    runs.close();
    check(H5Fflush(f.get(), H5F_SCOPE_GLOBAL), "flush " + data_tmp_.string());
    f.close();
  }
  seal(data_tmp_);
  fault_point("results.append.written", 0);
  fsync_path(data_tmp_);
  fault_point("results.append.synced", 0);
  if (fresh) {
    fs::rename(data_tmp_, path_);
  } else {
    const fs::path seg_dir = dir_ / ins_.segments;
    const std::string name = id + ".h5";
    fs::rename(data_tmp_, seg_dir / name);
    fsync_directory(seg_dir);
    fault_point("results.append.segment", 0);
    write_index(id, name);
    seal(tmp_);
    fsync_path(tmp_);
    fault_point("results.append.indexed", 0);
    fs::rename(tmp_, path_);
  }
  data_tmp_.clear();
  made_dir_.clear();  // published: nothing to undo any more
  fault_point("results.append.renamed", 0);
  fsync_directory(dir_);
  return id;
}

// The index's segment directory; a single file gets a new one holding a hard link of it.
fs::path Appender::segment_dir() {
  if (ins_.layout == kLayoutIndex) return dir_ / ins_.segments;
  std::random_device random;
  ins_.segments = fmt::format("{}.runs-{:08x}", path_.filename().string(), random());
  made_dir_ = dir_ / ins_.segments;
  fs::create_directory(made_dir_);
  base_segment_ = segment_name(ins_.entries);
  const fs::path base = made_dir_ / base_segment_;
  if (::link(path_.c_str(), base.c_str()) != 0) {  // no hard links here: copy, once
    fs::copy_file(path_, base);
    fsync_path(base);
  }
  fsync_directory(made_dir_);
  fsync_directory(dir_);
  fault_point("results.append.converted", 0);
  return made_dir_;
}

void Appender::write_index(const std::string& id, const std::string& segment) {
  std::error_code ec;
  fs::remove(tmp_, ec);
  std::optional<Handle> f;
  if (ins_.layout == kLayoutIndex) {
    fs::copy_file(path_, tmp_);
    auto fapl = file_access();
    f.emplace(H5Fopen(tmp_.c_str(), H5F_ACC_RDWR, fapl.get()), H5Fclose, "open " + tmp_.string());
  } else {
    f.emplace(new_file(tmp_));
    write_attr(f->get(), "layout", std::string(kLayoutIndex));
    write_attr(f->get(), "segments", ins_.segments);
  }
  Handle runs(H5Gopen2(f->get(), "runs", H5P_DEFAULT), H5Gclose, "open /runs");
  if (ins_.layout != kLayoutIndex)
    for (const auto& e : ins_.entries)
      add_link(runs.get(), e.id, ins_.segments + "/" + base_segment_);
  add_link(runs.get(), id, ins_.segments + "/" + segment);
  runs.close();
  f->close();
}

void Appender::cleanup() noexcept {
  std::error_code ec;
  if (!data_tmp_.empty()) fs::remove(data_tmp_, ec);
  fs::remove(tmp_, ec);
  if (!made_dir_.empty()) fs::remove_all(made_dir_, ec);
}

UsageError refused(const fs::path& path, const std::string& why) {
  return UsageError(
      fmt::format("--output {}: {}; refusing to write into it: give another "
                  "--output, or move the file away",
                  path.string(), why));
}

}  // namespace

void check_output(const fs::path& path) {
  if (path.empty()) return;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become one-line messages instead
  const auto flag = "--output " + path.string();
  const fs::path dir = directory_of(path);
  std::error_code ec;
  if (!fs::exists(dir, ec))
    throw UsageError(
        fmt::format("{}: directory {} does not exist; create it (mkdir -p {}) or "
                    "give another --output",
                    flag, dir.string(), dir.string()));
  if (!fs::is_directory(dir, ec))
    throw UsageError(fmt::format("{}: {} is not a directory; give a path inside a directory", flag,
                                 dir.string()));
  if (fs::is_directory(path, ec))
    throw UsageError(fmt::format("{}: is a directory; give a file name, e.g. --output {}", flag,
                                 (path / "results.h5").string()));
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw UsageError(
        fmt::format("{}: directory {} is not writable by this user; give --output in "
                    "a directory you can write to",
                    flag, dir.string()));
  if (!fs::exists(fs::symlink_status(path, ec))) return;
  if (::access(path.c_str(), R_OK) != 0)
    throw UsageError(
        fmt::format("{}: the existing file cannot be read by this user; give another "
                    "--output",
                    flag));
  try {
    read_in_child(path, [&] { verify_set(path); });
    const auto ins = inspect(path);
    const fs::path seg_dir = dir / ins.segments;
    if (ins.layout == kLayoutIndex && ::access(seg_dir.c_str(), W_OK | X_OK) != 0)
      throw UsageError(
          fmt::format("{}: its segment directory {} is not writable by this user; "
                      "give another --output",
                      flag, seg_dir.string()));
  } catch (const BadFile& e) {
    throw refused(path, e.what());
  }
}

void check_output(const fs::path& path, MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  std::string error;
  if (rank == 0) {
    try {
      check_output(path);
    } catch (const UsageError& e) {
      error = e.what();
    }
  }
  int length = static_cast<int>(error.size());
  MPI_Bcast(&length, 1, MPI_INT, 0, comm);
  if (length == 0) return;
  error.resize(static_cast<std::size_t>(length));
  MPI_Bcast(error.data(), length, MPI_CHAR, 0, comm);
  throw UsageError(error);
}

std::string append_run(const fs::path& path, const RunRecord& run) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become exceptions with context instead
  const fs::path dir = directory_of(path);
  if (!fs::is_directory(dir))
    throw UsageError(
        fmt::format("--output {}: directory {} does not exist; create it or give "
                    "another --output",
                    path.string(), dir.string()));
  DirectoryLock lock(dir);
  fault_point("results.append.locked", 0);
  Inspection ins;
  try {
    // The seal of an index (links only) or of a single file: a single file is checked once,
    // when its first append makes it an index; later appends check the small index only.
    read_in_child(path, [&] {
      const auto found = inspect(path);
      if (found.layout != "missing") verify_seal(path);
      for (const auto& e : found.entries)  // a stat per segment, no reading
        if (!e.file.empty() && !fs::exists(directory_of(path) / e.file))
          throw BadFile(fmt::format("{}: run {} is stored in {}, which is missing", path.string(),
                                    e.id, (directory_of(path) / e.file).string()));
    });
    ins = inspect(path);
  } catch (const BadFile& e) {
    remove_reported(path, dead_temporaries(dir, path.filename().string() + ".tmp."));
    throw refused(path, e.what());
  }
  remove_reported(path, leftovers(path, ins));
  Appender app(path, std::move(ins));
  try {
    return app.append(run);
  } catch (const std::exception& e) {
    app.cleanup();
    throw std::runtime_error(fmt::format("--output {}: {}", path.string(), e.what()));
  }
}

}  // namespace ffb
