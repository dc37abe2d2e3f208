#include "node/shared_segment.h"

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

#include "ffb/fault.h"
#include "hfreduce/hfreduce.h"

namespace hfreduce::node {

// ---- RAII pieces ----

Mapping::Mapping(int fd, std::size_t bytes) {
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return;
  base_ = base;
  bytes_ = bytes;
}

Mapping::~Mapping() {
  if (base_ != nullptr) munmap(base_, bytes_);
}

Mapping::Mapping(Mapping&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr) munmap(base_, bytes_);
    base_ = std::exchange(other.base_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

struct SharedSegment::Context {
  MPI_Comm comm;
  int local_rank;
  int local_size;
  int world_rank;  // for ffb::fault_point (FFB_FAULT=<point>@<world rank>)
  std::size_t bytes;
  std::string where;
};

namespace {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Why the memfd path was not taken: a stage times kStage plus errno (0 when none applies). The
// ranks agree on the largest code (MPI_MAX), 0 meaning "every local rank mapped the memfd".
enum Stage : int {
  kLeaderMemfd = 1,  // memfd_create / ftruncate / seal / mmap at the leader
  kNoProcNs,         // stat("/proc/self/ns/pid") failed
  kOtherPidNs,       // the leader lives in another pid namespace
  kOpenProcFd,       // open("/proc/<pid>/fd/<fd>") failed (EACCES: ptrace policy)
  kNotLeaders,       // the file opened is not the leader's segment
  kMapProcFd,        // mmap of the opened memfd failed
  kForced,           // HFREDUCE_SHM=named
};
constexpr int kStage = 10000;

int reason(Stage stage, int err = 0) { return stage * kStage + err; }

std::string describe(int code) {
  static constexpr std::array<const char*, 8> what = {
      "",
      "the leader could not create or map a memfd",
      "no /proc/self/ns/pid",
      "the leader is in another pid namespace",
      "a local rank could not open the leader's /proc/<pid>/fd/<fd>",
      "the file behind /proc/<pid>/fd/<fd> is not the leader's segment",
      "a local rank could not map the leader's memfd",
      "HFREDUCE_SHM=named"};
  const int stage = code / kStage;
  const int err = code % kStage;
  std::string text = stage > 0 && stage < static_cast<int>(what.size()) ? what[stage] : "?";
  if (err != 0) text += std::string(" (") + std::strerror(err) + ")";
  return text;
}

// What the leader announces for the memfd path (trivially copyable, sent as bytes).
struct MemfdOffer {
  std::int32_t status = 0;  // 0: use it; else a reason() code
  std::int32_t pid = 0, fd = -1;
  std::int32_t world_rank = -1;  // the leader's, for hold_for_offered_fault
  std::uint64_t ino = 0, dev = 0, pidns_ino = 0, pidns_dev = 0;
};

// HFREDUCE_SHM=named: use the fallback (for tests). A rank alone on its node has nothing to share.
bool forced_named(int local_size) {
  if (local_size < 2) return false;
  const char* v = std::getenv("HFREDUCE_SHM");
  return v != nullptr && std::strcmp(v, "named") == 0;
}

constexpr unsigned kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

// Leader: an anonymous, sealed memfd of `bytes`, mapped into `map`.
MemfdOffer create_memfd(std::size_t bytes, int local_size, UniqueFd& fd, Mapping& map) {
  MemfdOffer o;
  if (forced_named(local_size)) {
    o.status = reason(kForced);
    return o;
  }
  fd = UniqueFd(memfd_create("hfreduce-node-segment", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  struct stat st {};
  if (fd.get() < 0 || ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0 ||
      fcntl(fd.get(), F_ADD_SEALS, kSeals) != 0 || fstat(fd.get(), &st) != 0 ||
      !(map = Mapping(fd.get(), bytes))) {
    o.status = reason(kLeaderMemfd, errno);
    return o;
  }
  struct stat ns {};
  if (stat("/proc/self/ns/pid", &ns) != 0) {
    o.status = reason(kNoProcNs, errno);
    return o;
  }
  o.pid = static_cast<std::int32_t>(getpid());
  o.fd = fd.get();
  o.ino = st.st_ino;
  o.dev = st.st_dev;
  o.pidns_ino = ns.st_ino;
  o.pidns_dev = ns.st_dev;
  return o;
}

// The leader exited (its /proc/<pid>/fd is gone or empty): the job is going down anyway.
[[noreturn]] void throw_leader_gone(const std::string& where, const MemfdOffer& o) {
  throw Error(Status::system_error,
              "hfreduce: " + where + ": the node leader (pid " + std::to_string(o.pid) +
                  ") exited before this rank could open its shared memory (/proc/" +
                  std::to_string(o.pid) + "/fd/" + std::to_string(o.fd) + " is gone)");
}

// Under FFB_FAULT=hfreduce.segment_offered@<this node's leader> the others hold (up to 10 s) until
// the leader is gone, so that the test lands exactly on "leader died after announcing its memfd".
void hold_for_offered_fault(const MemfdOffer& o, const std::string& path) {
  const std::string point = "hfreduce.segment_offered@" + std::to_string(o.world_rank);
  const char* spec = std::getenv("FFB_FAULT");
  if (spec == nullptr || point != spec) return;
  for (int i = 0; i < 10000 && access(path.c_str(), F_OK) == 0; ++i) usleep(1000);
}

// Non-leader: opens the leader's memfd through /proc and maps it; returns 0 or a reason() code.
int open_leaders_memfd(const MemfdOffer& o, const std::string& where, std::size_t bytes,
                       Mapping& map) {
  struct stat ns {};
  if (stat("/proc/self/ns/pid", &ns) != 0) return reason(kNoProcNs, errno);
  if (ns.st_ino != o.pidns_ino || ns.st_dev != o.pidns_dev) return reason(kOtherPidNs);
  const std::string path = "/proc/" + std::to_string(o.pid) + "/fd/" + std::to_string(o.fd);
  hold_for_offered_fault(o, path);
  const UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (fd.get() < 0 && errno == ENOENT) throw_leader_gone(where, o);
  if (fd.get() < 0) return reason(kOpenProcFd, errno);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || st.st_ino != o.ino || st.st_dev != o.dev ||
      static_cast<std::size_t>(st.st_size) != bytes)
    return reason(kNotLeaders);
  map = Mapping(fd.get(), bytes);
  return map ? 0 : reason(kMapProcFd, errno);
}

// Unique per job, node and communicator: pid and start time of the leader plus random bits.
std::string make_name() {
  std::random_device rd;
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  std::array<char, 96> buf{};
  std::snprintf(buf.data(), buf.size(), "/hfreduce-%d-%llx-%08x%08x", static_cast<int>(getpid()),
                static_cast<unsigned long long>(now), rd(), rd());
  return buf.data();
}

// What the leader announces for the named path.
struct NamedOffer {
  std::int32_t err = 0;  // errno of the leader's shm_open/ftruncate; name is empty then
  std::array<char, 96> name{};
};

// Leader: a new named segment of `bytes`; on failure nothing is left and o.err says why.
UniqueFd create_named(std::size_t bytes, NamedOffer& o) {
  const std::string name = make_name();
  UniqueFd fd(shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600));
  if (fd.get() < 0) {
    o.err = errno;
    return fd;
  }
  if (ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) {
    o.err = errno;
    shm_unlink(name.c_str());
    return UniqueFd();
  }
  std::strncpy(o.name.data(), name.c_str(), o.name.size() - 1);
  return fd;
}

}  // namespace

SharedSegment::SharedSegment(MPI_Comm node_comm, std::size_t bytes, const std::string& where) {
  Context c{node_comm, 0, 1, 0, bytes, where};
  MPI_Comm_rank(node_comm, &c.local_rank);
  MPI_Comm_size(node_comm, &c.local_size);
  MPI_Comm_rank(MPI_COMM_WORLD, &c.world_rank);
  const int why = map_memfd(c);
  if (why == 0) return;
  if (c.local_rank == 0)
    std::fprintf(stderr,
                 "hfreduce: %s: %s; using a named /dev/shm segment instead of a memfd (a SIGKILL "
                 "before every local rank has mapped it can leave it behind)\n",
                 where.c_str(), describe(why).c_str());
  kind_ = Kind::named;
  map_named(c);
}

// Collective. Returns 0 with map_ set when every local rank mapped the leader's memfd, else the
// same reason() code on every rank and map_ empty. The leader's descriptor closes on return.
int SharedSegment::map_memfd(const Context& c) {
  UniqueFd fd;
  MemfdOffer offer;
  if (c.local_rank == 0) {
    offer = create_memfd(c.bytes, c.local_size, fd, map_);
    offer.world_rank = c.world_rank;
    if (offer.status == 0) ffb::fault_point("hfreduce.segment_created", c.world_rank);
  }
  MPI_Bcast(&offer, sizeof offer, MPI_BYTE, 0, c.comm);
  if (c.local_rank == 0 && offer.status == 0)
    ffb::fault_point("hfreduce.segment_offered", c.world_rank);
  int why = offer.status;
  if (why == 0 && c.local_rank != 0) {
    why = open_leaders_memfd(offer, c.where, c.bytes, map_);
    if (why == 0) ffb::fault_point("hfreduce.segment_mapped", c.world_rank);
  }
  int worst = 0;
  MPI_Allreduce(&why, &worst, 1, MPI_INT, MPI_MAX, c.comm);
  if (worst != 0) map_ = Mapping();
  return worst;
}

// Collective: the fallback through a named segment, unlinked by every rank (the first one wins)
// as soon as the MPI_Allreduce has confirmed that all have mapped it.
void SharedSegment::map_named(const Context& c) {
  NamedOffer offer;
  UniqueFd fd;
  if (c.local_rank == 0) fd = create_named(c.bytes, offer);
  if (c.local_rank == 0 && offer.err == 0)
    ffb::fault_point("hfreduce.segment_created", c.world_rank);
  MPI_Bcast(&offer, sizeof offer, MPI_BYTE, 0, c.comm);
  const std::string name = offer.name.data();
  if (offer.err != 0)
    throw Error(Status::system_error, "hfreduce: " + c.where +
                                          ": the node leader could not create " +
                                          "its shared memory (" + std::to_string(c.bytes) +
                                          " B): " + std::strerror(offer.err));
  if (c.local_rank != 0) fd = UniqueFd(shm_open(name.c_str(), O_RDWR, 0600));
  int err = fd.get() < 0 ? errno : 0;
  if (err == 0 && !(map_ = Mapping(fd.get(), c.bytes))) err = errno;
  fd.reset();
  if (err == 0 && c.local_rank != 0) ffb::fault_point("hfreduce.segment_mapped", c.world_rank);
  int worst = 0;
  MPI_Allreduce(&err, &worst, 1, MPI_INT, MPI_MAX, c.comm);
  if (c.local_rank == 0) ffb::fault_point("hfreduce.before_unlink", c.world_rank);
  shm_unlink(name.c_str());  // ENOENT where another rank was first
  if (worst == 0) return;
  map_ = Mapping();
  throw Error(Status::system_error, "hfreduce: " + c.where + ": a local rank could not map " +
                                        name + ": " + std::strerror(worst));
}

}  // namespace hfreduce::node
