// ClusterTransport: runs this node's MembershipProtocol over UDP. It owns the socket, the
// protocol's wake-up timer, the datagram envelope (transport/cluster/datagram_seal.h) and a thread
// of its own, so heavy API traffic can never delay a heartbeat into a false suspicion.
//
// The envelope can be replaced while running (SIGHUP: a new keyring or seal policy): every
// use of it happens under mu_, so a datagram is sealed or opened wholly with the old one or
// wholly with the new one. Which key each member's datagrams last opened with is kept per
// sender name (from the opened body), for GET /v1/keys: a rotation is done when every member
// uses the new key.
//
// Thread safety: the protocol runs on the transport's thread under mu_; members(),
// member(), counters(), key_usage(), set_timings() and set_keyring() may be called from any
// thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/metrics.h"
#include "membership/clock.h"
#include "membership/protocol.h"
#include "transport/cluster/datagram_seal.h"

namespace heartbeatd::transport {

// A seed as configured: an IP literal or a DNS name, and a UDP port.
struct SeedHost {
  std::string host;  // IPv6 literals without brackets
  std::uint16_t port = 0;
};

// Looks up every address of a seed name. Must call `done` exactly once, on the transport's
// thread (from inside the call is fine), with the addresses or, if there are none, why.
using SeedResolver = std::function<void(
    const SeedHost& seed, std::function<void(std::vector<membership::Address>, std::string)> done)>;

struct ClusterOptions {
  std::string node_name;
  std::string cluster_name;
  std::string bind_host;  // IP literal; 0.0.0.0 or :: for every interface
  std::uint16_t bind_port = 0;
  std::optional<membership::Address> advertise;  // nullopt: derived from the socket
  // Names are looked up again before every join attempt round (every reconnect_interval
  // while this node has no live peer), and all their addresses of the socket's family are
  // tried; a name that does not resolve is retried, never fatal. IP literals are used as is.
  std::vector<SeedHost> seeds;
  SeedResolver resolve_seed;             // nullptr: Asio's asynchronous resolver (getaddrinfo)
  Keyring keys;                          // empty: plain datagrams only
  SealPolicy seal_policy{false, false};  // both false without keys
  membership::ProtocolTimings timings;
  membership::Tags tags;  // node.tags, announced with this node's alive news
  // After a restart (persist/): the incarnation to start at and the members known before.
  std::uint64_t restored_incarnation = 0;
  std::vector<membership::MemberInfo> restored_members;
  // Called on the transport's thread when this node's incarnation changes (it refuted a
  // suspicion), so it can be persisted; must not block.
  std::function<void(std::uint64_t)> on_incarnation;
  // Called on the transport's thread for every member change, in order (the event stream
  // and hooks); must not block.
  std::function<void(const membership::MemberInfo&, std::optional<membership::MemberState>)>
      on_member_change;
  std::function<void(const std::string&)> on_member_forgotten;  // reaped; same thread
};

// What a run-time join (POST /v1/join) came to: each address as given, and who answered it.
struct JoinReport {
  struct Target {
    std::string given;   // "host:port" as the operator wrote it
    std::string member;  // the member that answered; empty: it failed
    std::string error;   // why it failed (empty when it joined)
  };
  // Names that did not resolve (host, why); when any, no join request was sent.
  std::vector<std::pair<std::string, std::string>> unresolved;
  std::vector<Target> targets;  // in the order given
};

struct ClusterCounters {
  membership::ProtocolCounters protocol;
  std::array<std::uint64_t, kDropReasonCount> dropped{};  // by DropReason
  std::uint64_t datagrams_received = 0;
  std::uint64_t datagrams_sent = 0;
  std::uint64_t send_errors = 0;
  std::uint32_t local_health = 0;  // Lifeguard score, 0 (good) .. 8
  // How long detections took, in seconds, as this node saw them (whoever declared the death):
  // from suspect to dead, and from the last datagram heard from the member to dead.
  PlainHistogram suspect_to_dead{detection_buckets()};
  PlainHistogram silent_to_dead{detection_buckets()};

  // 100 ms to a minute: the defaults detect in about two seconds; a minute is a cluster
  // tuned for slow links or suspicions stretched by Lifeguard.
  static std::vector<double> detection_buckets() {
    return {0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60};
  }
};

// Which key each live member (alive or suspect) was last seen sealing with, as this node saw
// its datagrams; this node counts itself under the key it seals with.
struct KeyUsage {
  struct Key {
    std::string fingerprint;
    bool primary = false;  // the key that seals
    std::size_t members = 0;
  };
  std::vector<Key> keys;              // the ring's order
  std::size_t plaintext_members = 0;  // last datagram plain
  // Not heard from directly since this node started, or last with a key no longer in the ring.
  std::size_t unknown_members = 0;
  bool seal_outgoing = false;
  bool require_sealed = false;
};

class ClusterTransport final : public membership::DatagramSink,
                               public membership::MembershipObserver {
 public:
  ClusterTransport(ClusterOptions options, const membership::Clock& clock, std::uint64_t seed);
  ~ClusterTransport() override;

  // Binds the socket (throws std::runtime_error naming the address and cause) and starts
  // the protocol on the transport's thread.
  void start();
  // Announces `left` to the cluster, then stops the thread. Idempotent.
  void leave_and_stop();

  std::vector<membership::MemberInfo> members() const;
  std::uint64_t incarnation() const;
  std::optional<membership::MemberInfo> member(std::string_view name) const;
  ClusterCounters counters() const;
  void set_timings(const membership::ProtocolTimings& timings);
  // node.tags changed (SIGHUP): announced at a new incarnation.
  void set_tags(membership::Tags tags);
  // Replaces the envelope (a policy asking for sealing needs keys). Returns false, changing
  // nothing, when the keys (by fingerprint, in order) and the policy are those in force.
  bool set_keyring(Keyring keys, SealPolicy policy);
  KeyUsage key_usage() const;
  std::string local_endpoint() const;
  // Run-time join: resolves the names as seeds are resolved, sends every address a join
  // request, and calls `done` once each target was answered by a member that admitted this
  // node, or `wait` (from the call, lookups included) passed; on the transport's thread,
  // exactly once, also when the transport stops first. A name that does not resolve in time
  // fails the whole request before anything is sent (JoinReport::unresolved).
  void join(std::vector<SeedHost> targets, membership::Duration wait,
            std::function<void(JoinReport)> done);
  // Force-leave (membership::MembershipProtocol::force_leave), run on the transport's thread;
  // nullopt if the transport is not running.
  std::optional<membership::ForceLeaveResult> force_leave(std::string name, bool prune);

 private:
  // DatagramSink, MembershipObserver (called with mu_ held, on the transport thread).
  void send(const membership::Address& to, std::span<const std::uint8_t> body) override;
  void member_changed(const membership::MemberInfo& m,
                      std::optional<membership::MemberState> before) override;
  void member_forgotten(const std::string& name) override;
  void note(membership::NoteLevel level, const std::string& text) override;

  // Feeds the detection histograms (with mu_ held).
  void note_detection(const membership::MemberInfo& m,
                      std::optional<membership::MemberState> before);
  void do_receive();
  void note_sender_key(const DatagramSeal::Opened& opened);  // with mu_ held
  void arm_timer();
  // Seeds (transport thread only).
  void do_resolve_seeds();
  void seed_resolved(std::size_t i, std::vector<membership::Address> found, std::string error);
  bool usable(const membership::Address& a) const;
  // The usable ones of a name's addresses, sorted, without repeats (seeds and joins).
  std::vector<membership::Address> usable_only(std::vector<membership::Address> found) const;
  bool alone() const;  // no live peer: the seeds are what the protocol will try

  // A run-time join waiting for answers (transport thread only).
  struct PendingJoin {
    struct Target {
      std::string given;
      std::string host;
      bool looking_up = false;
      std::vector<membership::Address> addresses;
      std::string member;                // who answered
      std::string error;                 // decided already (this node's own address)
      bool answered_unadmitted = false;  // a datagram came back but its sender was not admitted
    };
    std::vector<Target> targets;
    std::size_t lookups_left = 0;
    std::vector<std::pair<std::string, std::string>> unresolved;  // host, why
    std::unique_ptr<boost::asio::steady_timer> timer;             // the deadline, lookups included
    std::function<void(JoinReport)> done;
    bool sent = false;  // the join requests went out
    bool finished = false;
  };
  void join_resolved(const std::shared_ptr<PendingJoin>& join);
  void finish_unresolved(PendingJoin& join);
  // A datagram from `from` was accepted (mu_ held): targets it answers are joined.
  void note_join_answer(const membership::Address& from, std::span<const std::uint8_t> body);
  void finish_join(PendingJoin& join, const std::string& unanswered);

  struct SeedState {
    bool literal = false;                        // an IP address: never looked up
    std::vector<membership::Address> addresses;  // the last lookup that found any
    bool failing = false;
    membership::TimePoint warned{};  // last warning about it (rate-limited)
  };

  ClusterOptions options_;
  const membership::Clock& clock_;
  boost::asio::io_context io_;
  boost::asio::ip::udp::socket socket_;
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer seed_timer_;
  boost::asio::ip::udp::resolver resolver_;
  std::vector<SeedState> seed_state_;   // by index in options_.seeds; transport thread
  std::size_t lookups_in_flight_ = 0;   // transport thread
  bool seeds_looked_up_ = false;        // once at start, whatever the peers; transport thread
  membership::Duration seed_interval_;  // reconnect_interval; transport thread
  boost::asio::ip::udp::endpoint from_;
  std::array<std::uint8_t, 2048> buffer_{};
  std::thread thread_;

  mutable std::mutex mu_;
  std::unique_ptr<membership::MembershipProtocol> protocol_;  // guarded by mu_
  ClusterCounters counters_;                                  // guarded by mu_
  std::shared_ptr<const DatagramSeal> seal_;                  // guarded by mu_
  // Sender name -> fingerprint of the key its last datagram opened with; nullopt: plain.
  // Only members of the view are recorded, and forgotten members removed, so it is bounded
  // by membership.max_members.
  std::unordered_map<std::string, std::optional<std::string>> sender_keys_;  // guarded by mu_
  std::uint64_t seed_;
  bool stopped_ = false;
  std::uint64_t incarnation_seen_ = 0;  // guarded by mu_
  // When each current suspect became one, for the detection histogram; bounded like the
  // view. Guarded by mu_.
  std::unordered_map<std::string, membership::TimePoint> suspect_since_;
  std::vector<std::shared_ptr<PendingJoin>> joins_;  // waiting for answers; transport thread
};

// The envelope in force, for logs: key count and primary fingerprint, and the policy.
std::string describe(const DatagramSeal& seal);

// "host:port" or "[v6]:port" literal to Address; throws std::runtime_error otherwise.
membership::Address to_address(const boost::asio::ip::udp::endpoint& ep);
boost::asio::ip::udp::endpoint to_endpoint(const membership::Address& a);

}  // namespace heartbeatd::transport
