// ThreadTeam (hfreduce/src/pipeline.h): an exception thrown by any part of a job, the caller's or
// a helper thread's, reaches the caller of run() once every part has finished, and the team stays
// usable; before, a helper's exception terminated the process.
#include <atomic>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "hfreduce/error.h"
#include "pipeline.h"

namespace {

using hfreduce::ThreadTeam;

TEST(ThreadTeam, RunsEveryPart) {
  ThreadTeam team(4);
  std::atomic<int> mask{0};
  team.run([&](int part) { mask.fetch_or(1 << part); });
  EXPECT_EQ(mask.load(), 0xf);
}

TEST(ThreadTeam, HelperExceptionReachesTheCaller) {
  ThreadTeam team(3);
  std::atomic<int> finished{0};
  try {
    team.run([&](int part) {
      if (part == 2) throw hfreduce::Error(hfreduce::Status::invalid_argument, "part 2 failed");
      finished.fetch_add(1);
    });
    ADD_FAILURE() << "no exception";
  } catch (const hfreduce::Error& e) {
    EXPECT_EQ(e.status(), hfreduce::Status::invalid_argument);
    EXPECT_EQ(std::string(e.what()), "part 2 failed");
  }
  EXPECT_EQ(finished.load(), 2);  // the other parts ran to the end before run() returned
  // The team is still usable, and a clean run does not rethrow the old error.
  std::atomic<int> parts{0};
  team.run([&](int) { parts.fetch_add(1); });
  EXPECT_EQ(parts.load(), 3);
}

TEST(ThreadTeam, CallerExceptionWaitsForTheHelpers) {
  ThreadTeam team(2);
  std::atomic<bool> helper_done{false};
  EXPECT_THROW(team.run([&](int part) {
    if (part == 0) throw std::runtime_error("caller part");
    helper_done.store(true);
  }),
               std::runtime_error);
  EXPECT_TRUE(helper_done.load());
}

TEST(ThreadTeam, SingleThreadTeamRethrowsDirectly) {
  ThreadTeam team(1);
  EXPECT_THROW(team.run([](int) { throw hfreduce::Error(hfreduce::Status::timeout, "t"); }),
               hfreduce::Error);
}

}  // namespace
