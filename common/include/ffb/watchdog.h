// Every collective has a deadline: a watchdog thread aborts the job with a message naming what the
// rank was waiting on, instead of letting it hang.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <mpi.h>

namespace ffb {

class Watchdog {
 public:
  // describe() is called (only when the deadline passed) to name what the rank was doing.
  Watchdog(MPI_Comm comm, double timeout_s, std::function<std::string()> describe);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Cheap (one relaxed store each, no clock read): call around each guarded operation from one
  // thread. The watchdog thread times how long one armed operation stays armed.
  void arm() { armed_.store(++arm_count_, std::memory_order_relaxed); }
  void disarm() { armed_.store(0, std::memory_order_relaxed); }
  double timeout_s() const { return timeout_s_; }

 private:
  void loop();

  MPI_Comm comm_;
  double timeout_s_;
  std::function<std::string()> describe_;
  std::atomic<std::uint64_t> armed_{0};  // 0: idle; else the number of the armed operation
  std::uint64_t arm_count_ = 0;          // written by the arming thread only
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ffb
