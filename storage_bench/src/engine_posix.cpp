// POSIX engine: pread/pwrite, one thread per queue slot.
#include <algorithm>
#include <cerrno>
#include <exception>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <vector>

#include "engine.h"
#include "sync.h"

namespace sb {

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
