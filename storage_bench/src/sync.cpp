#include "sync.h"

#include <atomic>
#include <csignal>
#include <cstring>

#include <fmt/format.h>

#include "ffb/program.h"

namespace sb {

namespace {

std::atomic<int> g_stop_signal{0};  // see sync.h: the one documented global
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig, std::memory_order_relaxed); }

}  // namespace

void agree(MPI_Comm comm, const std::function<void()>& fn) {
  ffb::agree(
      comm,
      [&] {
        fn();
        throw_if_stopped();
      },
      classify_storage_failure);
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
