// ClusterTransport: runs this node's MembershipProtocol over UDP. It owns the socket, the
// protocol's wake-up timer, the datagram envelope (transport/datagram_seal.h) and a thread
// of its own, so heavy API traffic can never delay a heartbeat into a false suspicion.
//
// Thread safety: the protocol runs on the transport's thread under mu_; members(),
// member(), counters() and set_timings() may be called from any thread.
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
#include <vector>

#include "membership/clock.h"
#include "membership/protocol.h"
#include "transport/datagram_seal.h"

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
  SeedResolver resolve_seed;  // nullptr: Asio's asynchronous resolver (getaddrinfo)
  std::optional<SealKey> key;
  membership::ProtocolTimings timings;
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

struct ClusterCounters {
  membership::ProtocolCounters protocol;
  std::array<std::uint64_t, kDropReasonCount> dropped{};  // by DropReason
  std::uint64_t datagrams_received = 0;
  std::uint64_t datagrams_sent = 0;
  std::uint64_t send_errors = 0;
  std::uint32_t local_health = 0;  // Lifeguard score, 0 (good) .. 8
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
  std::string local_endpoint() const;

 private:
  // DatagramSink, MembershipObserver (called with mu_ held, on the transport thread).
  void send(const membership::Address& to, std::span<const std::uint8_t> body) override;
  void member_changed(const membership::MemberInfo& m,
                      std::optional<membership::MemberState> before) override;
  void member_forgotten(const std::string& name) override;
  void note(membership::NoteLevel level, const std::string& text) override;

  void do_receive();
  void arm_timer();
  // Seeds (transport thread only).
  void do_resolve_seeds();
  void seed_resolved(std::size_t i, std::vector<membership::Address> found, std::string error);
  bool usable(const membership::Address& a) const;
  bool alone() const;  // no live peer: the seeds are what the protocol will try

  struct SeedState {
    bool literal = false;                        // an IP address: never looked up
    std::vector<membership::Address> addresses;  // the last lookup that found any
    bool failing = false;
    membership::TimePoint warned{};  // last warning about it (rate-limited)
  };

  ClusterOptions options_;
  const membership::Clock& clock_;
  DatagramSeal seal_;
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
  std::uint64_t seed_;
  bool stopped_ = false;
  std::uint64_t incarnation_seen_ = 0;  // guarded by mu_
};

// "host:port" or "[v6]:port" literal to Address; throws std::runtime_error otherwise.
membership::Address to_address(const boost::asio::ip::udp::endpoint& ep);
boost::asio::ip::udp::endpoint to_endpoint(const membership::Address& a);

}  // namespace heartbeatd::transport
