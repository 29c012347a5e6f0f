// Replays the receive fuzzer's committed inputs (tests/fuzz/receive_fuzz.cpp) through the
// same function, in the ordinary build, so every CI run checks them: tests/fuzz/corpus/receive
// must break no invariant. Inputs the fuzzer found breaking one stay there once fixed, named
// regression-*: dead-at-max-incarnation and left-at-max-incarnation (a forged verdict at
// 2^64-1, which a refutation could not outbid), third-party-alive-moves-address (others'
// news moved a live member to an address it does not have).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/fuzz/receive_harness.h"
#include "tests/support/test_util.h"

namespace heartbeatd::fuzz {
namespace {

void replay_dir(const std::string& dir, bool expect_some) {
  std::size_t replayed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().extension() == ".md") continue;
    const std::string bytes = test::read_file(entry.path().string());
    const std::vector<std::uint8_t> input(bytes.begin(), bytes.end());
    const auto broken = run_receive_input(input);
    EXPECT_FALSE(broken) << entry.path().filename() << ": " << broken.value_or("");
    ++replayed;
  }
  if (expect_some) {
    EXPECT_GT(replayed, 0u) << "no inputs in " << dir;
  }
}

TEST(ReceiveCorpus, EveryCommittedInputKeepsTheInvariants) {
  replay_dir(std::string(HEARTBEATD_SOURCE_DIR) + "/tests/fuzz/corpus/receive", true);
}

}  // namespace
}  // namespace heartbeatd::fuzz
