#include "sync.h"

#include <atomic>
#include <csignal>
#include <cstring>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>

#include "ffb/error.h"
#include "fsutil.h"

namespace sb {

namespace {

std::atomic<int> g_stop_signal{0};  // see sync.h: the one documented global
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig, std::memory_order_relaxed); }

FailKind classify(const std::exception_ptr& e, std::string& msg, bool& agreed) {
  agreed = false;
  try {
    std::rethrow_exception(e);
  } catch (const RunFailure& f) {
    msg = f.what();
    agreed = true;  // a nested agree() already named the rank
    return f.kind();
  } catch (const ffb::UsageError& u) {
    msg = u.what();
    return FailKind::usage;
  } catch (const Interrupted& i) {
    msg = i.what();
    return FailKind::interrupted;
  } catch (const IoError& io) {
    msg = io.what();
    return io.out_of_space() ? FailKind::out_of_space : FailKind::failure;
  } catch (const std::exception& x) {
    msg = x.what();
    return FailKind::failure;
  } catch (...) {
    msg = "unknown error";
    return FailKind::failure;
  }
}

}  // namespace

void agree(MPI_Comm comm, const std::function<void()>& fn) {
  std::string msg;
  FailKind kind = FailKind::none;
  bool agreed = false;
  try {
    fn();
  } catch (...) {
    kind = classify(std::current_exception(), msg, agreed);
  }
  if (kind == FailKind::none && stop_requested()) {
    kind = FailKind::interrupted;
    msg = fmt::format("interrupted by signal {} ({})", stop_signal(), strsignal(stop_signal()));
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // Lowest failing rank wins: reduce (failed ? rank : size) with MIN.
  int mine = kind == FailKind::none ? size : rank;
  int first = size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == size) return;
  int k = static_cast<int>(kind) | (agreed ? 0x100 : 0);
  MPI_Bcast(&k, 1, MPI_INT, first, comm);
  agreed = (k & 0x100) != 0;
  k &= 0xff;
  int len = static_cast<int>(msg.size());
  MPI_Bcast(&len, 1, MPI_INT, first, comm);
  std::vector<char> text(static_cast<std::size_t>(len));
  if (rank == first) std::memcpy(text.data(), msg.data(), msg.size());
  MPI_Bcast(text.data(), len, MPI_CHAR, first, comm);
  int nfailed = 0;
  const int one = kind == FailKind::none ? 0 : 1;
  MPI_Allreduce(&one, &nfailed, 1, MPI_INT, MPI_SUM, comm);
  std::string what(text.begin(), text.end());
  const auto fk = static_cast<FailKind>(k);
  if (fk != FailKind::usage && size > 1 && !agreed) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    std::string first_host = host;
    // the host of the failing rank: broadcast it too
    int hl = static_cast<int>(first_host.size());
    MPI_Bcast(&hl, 1, MPI_INT, first, comm);
    first_host.resize(static_cast<std::size_t>(hl));
    MPI_Bcast(first_host.data(), hl, MPI_CHAR, first, comm);
    what = fmt::format("rank {} ({}){}: {}", first, first_host,
                       nfailed > 1 ? fmt::format(" and {} more rank(s)", nfailed - 1) : "", what);
  }
  throw RunFailure(fk, what);
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking call returns EINTR and the loop sees the flag
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int stop_signal() { return g_stop_signal.load(std::memory_order_relaxed); }

void throw_if_stopped() {
  const int s = stop_signal();
  if (s != 0) throw Interrupted(fmt::format("interrupted by signal {} ({})", s, strsignal(s)));
}

void request_stop_for_test(int sig) { g_stop_signal.store(sig); }

}  // namespace sb
