// LocalHealth: how far this node distrusts its own timeliness — Lifeguard's Local Health
// Multiplier (Dadgar et al. 2018; memberlist's awareness.go). A node that is itself slow
// (CPU-starved, dropping its own datagrams) sees everyone else go quiet and would accuse
// healthy members; a score raised by hints that the problem is here makes it wait longer
// before it probes and accuses.
//
// The paper's rule: a saturating score 0..S (S = 8), up by one for each hint that the
// problem is local (a failed probe, a probe whose helpers did not even nack, a suspicion
// about ourselves to refute), down by one for each successful probe; probe intervals and
// timeouts are multiplied by (1 + score).
//
// Ours (docs/PROTOCOL.md, "Local health"): up by one when this node refutes a suspicion about
// itself and when a probe failed with not even a nack from any helper; down by one after each
// quiet period (the owner passes 2 × interval × miss_threshold) without a change. It falls
// with time rather than with successful probes because a monitor probes only a subject that
// went quiet: with heartbeats flowing there are no probes to succeed. The owner multiplies
// the wait before probing an overdue subject and the probe timeout by (1 + score) (scale()).
//
// Pure value type, told the time by its owner; thread safety: none (owned by one
// MembershipProtocol, whose owner serialises every call).
#pragma once

#include <cstdint>

#include "membership/clock.h"

namespace heartbeatd::membership {

class LocalHealth {
 public:
  static constexpr std::uint32_t kMax = 8;  // Lifeguard's ceiling: waits stretch at most 9x

  // A hint that this node is the slow one: one step up, never past kMax. Even at kMax it
  // restarts the quiet period, so a node that keeps getting hints stays at the top.
  void worsen(TimePoint now);
  // One step down if `quiet` has passed since the last step either way (call on every tick:
  // a long gap still counts as one step, taken now).
  void recover(TimePoint now, Duration quiet);

  std::uint32_t score() const { return score_; }
  // `d` stretched by the score: d × (1 + score).
  Duration scale(Duration d) const { return d * (1 + score_); }

 private:
  std::uint32_t score_ = 0;  // 0 good .. kMax
  TimePoint changed_{};      // the last step; read only while score_ > 0, so set by worsen()
};

}  // namespace heartbeatd::membership
