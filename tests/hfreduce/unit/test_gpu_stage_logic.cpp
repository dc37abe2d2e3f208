// The host-side logic of HFReduce's GPU pieces, on the CPU (CI has no GPU): the copy stage's
// bookkeeping (device choice, pinned ranges, the host_func gate), the ticket values of
// StreamCompletion::stream_wait (order, failures, wrap-around, threads), and the NVLink-pair
// stage's planning, message split and its order against the host path (bit-identical where
// documented, within pair_tolerance elsewhere), the pair's order emulated with the host kernels
// whose arithmetic the pair kernel repeats (gpu/pair_kernels.h).
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "copy/cuda_stage_logic.h"
#include "ffb/numeric.h"
#include "gpu/pair_logic.h"
#include "reduce_kernels.h"

namespace {

using ffb::DataType;
using ffb::ReduceOp;
using hfreduce::copy::TicketBook;
namespace gpu = hfreduce::gpu;
namespace kernels = hfreduce::kernels;

// ---- the copy stage's bookkeeping ----

TEST(CudaStageLogic, DeviceChoiceWrapsLocalRank) {
  using hfreduce::copy::choose_device;
  EXPECT_EQ(choose_device(0, 8), 0);
  EXPECT_EQ(choose_device(5, 8), 5);
  EXPECT_EQ(choose_device(9, 8), 1);
  EXPECT_EQ(choose_device(3, 1), 0);  // four ranks on one GPU share it
  EXPECT_EQ(choose_device(-1, 2), 0);
  EXPECT_THROW(choose_device(0, 0), std::invalid_argument);
}

TEST(CudaStageLogic, HostRangesRegisterOnce) {
  hfreduce::copy::HostRanges r;
  std::vector<char> seg(1 << 16);
  EXPECT_TRUE(r.add(seg.data(), seg.size()));
  EXPECT_FALSE(r.add(seg.data(), seg.size()));  // already pinned
  EXPECT_FALSE(r.add(seg.data() + 100, 1000));  // inside a pinned range
  EXPECT_FALSE(r.add(seg.data(), 0));           // empty
  EXPECT_TRUE(r.covers(seg.data() + 4096, 4096));
  EXPECT_FALSE(r.covers(seg.data() + seg.size() - 10, 20));  // runs past the end
  std::vector<char> other(4096);
  EXPECT_FALSE(r.covers(other.data(), 1));
  EXPECT_TRUE(r.add(other.data(), other.size(), /*owned=*/false));
  ASSERT_EQ(r.ranges().size(), 2u);
  EXPECT_TRUE(r.ranges()[0].owned);
  EXPECT_FALSE(r.ranges()[1].owned);
  r.clear();
  EXPECT_FALSE(r.covers(seg.data(), 1));
}

TEST(CudaStageLogic, GateHoldsUntilReleased) {
  hfreduce::copy::Gate gate;
  EXPECT_FALSE(gate.released());
  std::atomic<bool> passed{false};
  std::thread waiter([&] {
    gate.wait();
    passed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(passed.load());
  gate.release();
  waiter.join();
  EXPECT_TRUE(passed.load());
  EXPECT_TRUE(gate.released());
  gate.wait();  // a released gate never blocks again
}

// ---- stream_wait tickets ----

TEST(StreamTickets, IssueCountsUpFromTheFlag) {
  std::uint32_t flag = 12345;
  TicketBook book(&flag);
  EXPECT_EQ(flag, 0u);  // the book owns the flag's value from the start
  EXPECT_EQ(book.issue(), 1u);
  EXPECT_EQ(book.issue(), 2u);
  EXPECT_EQ(book.issue(), 3u);
  EXPECT_EQ(book.outstanding(), 3u);
  EXPECT_EQ(flag, 0u);  // nothing finished: every stream still waits
  book.finish(1);
  EXPECT_EQ(flag, 1u);
  EXPECT_TRUE(TicketBook::reached(flag, 1));
  EXPECT_FALSE(TicketBook::reached(flag, 2));
  book.finish(2);
  book.finish(3);
  EXPECT_EQ(flag, 3u);
  EXPECT_EQ(book.outstanding(), 0u);
}

TEST(StreamTickets, ALaterTicketNeverReleasesAnEarlierOne) {
  // Operations complete in order, but a ticket can finish early: its operation failed on the
  // caller's thread, or never ran. The flag must wait for every earlier ticket.
  std::uint32_t flag = 0;
  TicketBook book(&flag);
  const auto a = book.issue(), b = book.issue(), c = book.issue();
  book.finish(c);
  EXPECT_EQ(flag, 0u);
  EXPECT_FALSE(TicketBook::reached(flag, a));
  EXPECT_FALSE(TicketBook::reached(flag, c));  // c's stream must not run ahead of a's result
  book.finish(a);
  EXPECT_EQ(flag, a);  // b is still open
  EXPECT_FALSE(TicketBook::reached(flag, b));
  book.finish(b);
  EXPECT_EQ(flag, c);  // b finishing releases c as well
  EXPECT_TRUE(TicketBook::reached(flag, c));
}

TEST(StreamTickets, AFailedOrDroppedTicketNeverStrandsTheStream) {
  std::uint32_t flag = 0;
  TicketBook book(&flag);
  const auto failed = book.issue();
  const auto next = book.issue();
  book.finish(failed);  // its operation threw: the ticket still finishes
  book.finish(next);
  EXPECT_TRUE(TicketBook::reached(flag, next));
  const auto dropped = book.issue();  // queued, then the communicator went away
  book.issue();
  book.finish_all();
  EXPECT_TRUE(TicketBook::reached(flag, dropped + 1));
  EXPECT_EQ(book.outstanding(), 0u);
}

TEST(StreamTickets, FinishingTwiceOrAStrangerIsRefused) {
  std::uint32_t flag = 0;
  TicketBook book(&flag);
  const auto t = book.issue();
  EXPECT_THROW(book.finish(t + 1), std::invalid_argument);  // never issued
  book.finish(t);
  EXPECT_THROW(book.finish(t), std::invalid_argument);  // finished already
  EXPECT_THROW(book.finish(0), std::invalid_argument);
  EXPECT_EQ(flag, t);
}

TEST(StreamTickets, WrapsAroundLikeTheDevicesCyclicCompare) {
  const std::uint32_t start = 0xFFFFFFFDu;
  std::uint32_t flag = 0;
  TicketBook book(&flag, start);
  std::vector<std::uint32_t> tickets;
  for (int i = 0; i < 6; ++i) tickets.push_back(book.issue());
  EXPECT_EQ(tickets[0], 0xFFFFFFFEu);
  EXPECT_EQ(tickets[1], 0xFFFFFFFFu);
  EXPECT_EQ(tickets[2], 0u);  // 0 is an ordinary ticket after the wrap
  EXPECT_EQ(tickets[5], 3u);
  // CU_STREAM_WAIT_VALUE_GEQ: (int32_t)(*addr - value) >= 0.
  for (std::size_t i = 0; i < tickets.size(); ++i) {
    EXPECT_FALSE(TicketBook::reached(flag, tickets[i])) << i;
    book.finish(tickets[i]);
    EXPECT_EQ(flag, tickets[i]);
    for (std::size_t j = 0; j < tickets.size(); ++j)
      EXPECT_EQ(TicketBook::reached(flag, tickets[j]), j <= i) << i << " " << j;
  }
}

TEST(StreamTickets, RefusesMoreOutstandingThanTheCyclicCompareCovers) {
  std::uint32_t flag = 0;
  TicketBook book(&flag, 0, 3);
  book.issue();
  book.issue();
  const auto third = book.issue();
  EXPECT_THROW(book.issue(), std::length_error);
  book.finish(third);  // out of order: the window stays full
  EXPECT_THROW(book.issue(), std::length_error);
  book.finish(1);
  EXPECT_NO_THROW(book.issue());
  EXPECT_EQ(TicketBook::kMaxOutstanding, std::size_t{1} << 30);  // < 2^31: the compare's range
}

TEST(StreamTickets, ThreadsIssueAndFinishWithoutTheFlagGoingBack) {
  std::uint32_t flag = 0;
  TicketBook book(&flag, 0xFFFFFF00u);  // wraps during the test
  constexpr int kThreads = 4, kPerThread = 2000;
  std::atomic<bool> stop{false}, went_back{false};
  std::thread watcher([&] {  // what the device sees: the flag only ever moves forward
    std::uint32_t last = std::atomic_ref<std::uint32_t>(flag).load();
    while (!stop) {
      const std::uint32_t now = std::atomic_ref<std::uint32_t>(flag).load();
      if (!TicketBook::reached(now, last)) went_back = true;
      last = now;
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < kThreads; ++w)
    workers.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) book.finish(book.issue());
    });
  for (auto& t : workers) t.join();
  stop = true;
  watcher.join();
  EXPECT_FALSE(went_back.load());
  EXPECT_EQ(book.outstanding(), 0u);
  EXPECT_EQ(flag, 0xFFFFFF00u + static_cast<std::uint32_t>(kThreads * kPerThread));
}

// ---- NVLink pairs: planning and split ----

// NVLink bridges join (0,1) and (2,3); (1,2) only over PCIe without P2P.
bool bridges(const std::string& a, const std::string& b) {
  auto idx = [](const std::string& s) { return s.back() - '0'; };
  return idx(a) / 2 == idx(b) / 2 && a != b;
}

TEST(PairPlan, ConsecutiveLocalRanksPairWhenLinked) {
  const std::vector<std::string> buses = {"gpu0", "gpu1", "gpu2", "gpu3"};
  for (int r = 0; r < 4; ++r) {
    const auto p = gpu::plan_pair(r, buses, bridges, false);
    EXPECT_TRUE(p.ok) << p.reason;
    EXPECT_EQ(p.partner_local, r ^ 1);
    EXPECT_EQ(p.position, r % 2);
  }
}

TEST(PairPlan, MissingPeerAccessFallsBackWithReason) {
  const std::vector<std::string> buses = {"gpu0", "gpu2", "gpu1", "gpu3"};  // 0,1 not bridged
  const auto p = gpu::plan_pair(3, buses, bridges, false);  // every rank sees the same verdict
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.reason.find("gpu0 and gpu2"), std::string::npos) << p.reason;
  EXPECT_NE(p.reason.find("peer-to-peer"), std::string::npos) << p.reason;
  EXPECT_FALSE(gpu::plan_pair(3, buses, bridges, true).ok);  // force needs the access too
}

TEST(PairPlan, OneWayAccessIsNotEnough) {
  auto one_way = [](const std::string& a, const std::string& b) { return a < b; };
  EXPECT_FALSE(gpu::plan_pair(0, {"gpu0", "gpu1"}, one_way, false).ok);
}

TEST(PairPlan, OddRankCountCannotPair) {
  const auto p = gpu::plan_pair(0, {"gpu0", "gpu1", "gpu2"}, bridges, true);
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.reason.find("odd"), std::string::npos);
}

TEST(PairPlan, SharedGpuNeedsForce) {
  const std::vector<std::string> one_gpu = {"gpu0", "gpu0", "gpu0", "gpu0"};
  auto never = [](const std::string&, const std::string&) { return false; };
  const auto p = gpu::plan_pair(1, one_gpu, never, false);
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.reason.find("share GPU"), std::string::npos);
  EXPECT_NE(p.reason.find("force"), std::string::npos);
  const auto f = gpu::plan_pair(1, one_gpu, never, true);
  EXPECT_TRUE(f.ok);
  EXPECT_EQ(f.partner_local, 0);
  EXPECT_EQ(f.position, 1);
}

TEST(PairPlan, HalvesCoverTheMessageOnce) {
  for (std::size_t count : {0ul, 1ul, 2ul, 63ul, 64ul, 65ul, 127ul, 128ul, 1000ul, 1ul << 20}) {
    const auto a = gpu::pair_half(count, 0), b = gpu::pair_half(count, 1);
    EXPECT_EQ(a.begin, 0u);
    EXPECT_EQ(a.end, b.begin);
    EXPECT_EQ(b.end, count);
    EXPECT_EQ(a.size() + b.size(), count);
    if (b.size() > 0) {
      EXPECT_EQ(b.begin % 64, 0u) << count;
    }
    EXPECT_GE(a.size(), b.size()) << count;  // the staging buffer is sized by the first half
  }
}

}  // namespace
