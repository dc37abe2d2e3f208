// POSIX engine: pread/pwrite, one thread per queue slot.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <vector>

#include "engine.h"
#include "sync.h"

namespace sb {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void sleep_until_s(double t) {
  // In slices of at most 20 ms, so a stop signal ends the wait at once: Open MPI's mpirun follows
  // its SIGTERM with SIGKILL after a second, and the clean-up must run before that.
  for (;;) {
    if (stop_requested()) return;
    const double left = t - now_s();
    if (left <= 0) return;
    if (left > 200e-6)
      std::this_thread::sleep_for(std::chrono::duration<double>(std::min(left - 100e-6, 0.02)));
    else
      std::this_thread::yield();
  }
}

std::string_view name_of(EngineKind kind) {
  return kind == EngineKind::posix ? "posix" : "io_uring";
}

namespace {

// One blocking transfer to completion (short transfers continue; EINTR retries).
IoDone transfer(const IoOp& op) {
  IoDone d;
  d.submit = now_s();
  auto* p = static_cast<char*>(op.buf);
  std::size_t done = 0;
  while (done < op.len) {
    const auto off = static_cast<off_t>(op.offset + done);
    const ssize_t r = op.kind == OpKind::read ? ::pread(op.fd, p + done, op.len - done, off)
                                              : ::pwrite(op.fd, p + done, op.len - done, off);
    if (r < 0) {
      if (errno == EINTR && !stop_requested()) continue;
      d.err = errno;
      break;
    }
    if (r == 0) break;  // end of file
    done += static_cast<std::size_t>(r);
  }
  d.bytes = done;
  d.complete = now_s();
  return d;
}

class PosixEngine final : public Engine {
 public:
  explicit PosixEngine(unsigned depth) : depth_(depth ? depth : 1) {}
  std::string_view name() const override { return "posix"; }
  unsigned depth() const override { return depth_; }

  void run(const OpSource& next, const OpSink& done) override {
    if (depth_ == 1) {
      IoOp op;
      while (!stop_requested() && next(op)) {
        if (op.not_before > 0) sleep_until_s(op.not_before);
        const IoDone d = transfer(op);
        if (!done(op, d)) break;
      }
      return;
    }
    std::mutex mu;
    bool stop = false;
    std::exception_ptr error;
    auto worker = [&] {
      IoOp op;
      for (;;) {
        {
          std::lock_guard lock(mu);
          if (stop || stop_requested()) return;
          try {
            if (!next(op)) {
              stop = true;
              return;
            }
          } catch (...) {
            if (!error) error = std::current_exception();
            stop = true;
            return;
          }
        }
        if (op.not_before > 0) sleep_until_s(op.not_before);
        const IoDone d = transfer(op);
        std::lock_guard lock(mu);
        try {
          if (!done(op, d)) stop = true;
        } catch (...) {
          if (!error) error = std::current_exception();
          stop = true;
        }
      }
    };
    {
      std::vector<std::jthread> threads;
      threads.reserve(depth_);
      for (unsigned i = 0; i < depth_; ++i) threads.emplace_back(worker);
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  unsigned depth_;
};

}  // namespace

std::unique_ptr<Engine> make_posix_engine(unsigned depth) {
  return std::make_unique<PosixEngine>(depth);
}

}  // namespace sb
