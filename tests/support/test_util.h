// Shared test helpers: scratch directories, seeded randomness that prints its seed, and
// waiting for a condition with a deadline (tests never sleep to let time pass).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <string>

namespace heartbeatd::test {

// A fresh directory under /tmp (short, so Unix socket paths inside it stay under 108 bytes),
// removed with its contents when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  void write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// A generator seeded from $HEARTBEATD_TEST_SEED (a number, or "random" for the clock), by
// default a fixed seed per test (a hash of its name); the seed is printed and recorded in
// the test's output so a failure can be replayed.
std::mt19937_64 seeded_rng();

// Polls `condition` until it holds or `deadline` passes. For real processes only: unit tests
// use the manual clock instead.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds deadline = std::chrono::seconds(10));

std::string read_file(const std::string& path);

}  // namespace heartbeatd::test
