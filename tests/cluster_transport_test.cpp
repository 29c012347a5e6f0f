// ClusterTransport's seeds, in process on loopback: a seed given as a name is looked up
// (every address, of the socket's family), and a name that does not resolve at start is
// looked up again until it does, without failing the start. The resolver is the seam
// (ClusterOptions::resolve_seed): DNS cannot be made to fail on demand without root, so the
// failing and the IPv6 cases use a fake one; the plain name case uses the real resolver.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "daemon/steady_clock.h"
#include "membership/address.h"
#include "tests/support/test_util.h"
#include "transport/cluster/cluster_transport.h"

namespace heartbeatd::transport {
namespace {

using namespace std::chrono_literals;
using membership::Address;
using membership::MemberState;

membership::ProtocolTimings fast_timings() {
  membership::ProtocolTimings t;
  t.reconnect_interval = 300ms;  // the seed lookup cadence while alone
  return t;
}

std::unique_ptr<ClusterTransport> node(const SteadyClock& clock, const std::string& name,
                                       const std::string& bind, std::vector<SeedHost> seeds = {},
                                       SeedResolver resolver = nullptr) {
  ClusterOptions o;
  o.node_name = name;
  o.cluster_name = "test";
  o.bind_host = bind;
  o.bind_port = 0;  // any free port
  o.timings = fast_timings();
  o.seeds = std::move(seeds);
  o.resolve_seed = std::move(resolver);
  auto t = std::make_unique<ClusterTransport>(std::move(o), clock, 42);
  t->start();
  return t;
}

std::uint16_t port_of(const ClusterTransport& t) {
  return membership::parse_address(t.local_endpoint()).value().port;
}

bool sees_alive(const ClusterTransport& t, const std::string& name) {
  auto m = t.member(name);
  return m && m->state == MemberState::alive;
}

TEST(ClusterTransportSeeds, ASeedGivenAsANameIsLookedUp) {
  SteadyClock clock;
  auto a = node(clock, "a", "127.0.0.1");
  auto b = node(clock, "b", "127.0.0.1", {{"localhost", port_of(*a)}});
  EXPECT_TRUE(test::eventually([&] { return sees_alive(*b, "a") && sees_alive(*a, "b"); }, 10s))
      << "b did not join a through the seed localhost:" << port_of(*a);
}

TEST(ClusterTransportSeeds, ASeedThatDoesNotResolveAtStartIsRetriedUntilItDoes) {
  SteadyClock clock;
  auto a = node(clock, "a", "127.0.0.1");
  const auto port = port_of(*a);
  std::atomic<int> lookups{0};
  auto b =
      node(clock, "b", "127.0.0.1", {{"seed.example", port}}, [&](const SeedHost& seed, auto done) {
        EXPECT_EQ(seed.host, "seed.example");
        if (++lookups <= 2) {
          done({}, "Name or service not known");
          return;
        }
        done({Address::v4(0x7f000001, seed.port)}, "");
      });
  EXPECT_TRUE(test::eventually([&] { return sees_alive(*b, "a") && sees_alive(*a, "b"); }, 10s))
      << "b did not join once its seed resolved (" << lookups << " lookups)";
  EXPECT_GE(lookups.load(), 3);
}

TEST(ClusterTransportSeeds, EveryAddressOfTheSocketsFamilyIsTriedIPv6Too) {
  SteadyClock clock;
  auto a = node(clock, "a", "::1");
  const auto port = port_of(*a);
  // The name has an IPv4 address first (which an IPv6 socket bound to ::1 cannot reach) and
  // an IPv6 one; this machine's /etc/hosts gives localhost no ::1, hence the fake.
  auto b = node(clock, "b", "::1", {{"dual.example", port}}, [](const SeedHost& seed, auto done) {
    done({Address::v4(0x7f000001, seed.port),
          membership::parse_address("[::1]:" + std::to_string(seed.port)).value()},
         "");
  });
  EXPECT_TRUE(test::eventually([&] { return sees_alive(*b, "a") && sees_alive(*a, "b"); }, 10s));
  EXPECT_EQ(b->counters().send_errors, 0u) << "an IPv4 seed was tried from an IPv6 socket";
}

// A dual-stack socket (bind ::) reaches IPv4 peers: IPv4 seeds are kept for it, and what
// arrives from them as v4-mapped addresses is answered at their IPv4 address.
TEST(ClusterTransportSeeds, AWildcardIPv6BindJoinsAnIPv4Seed) {
  SteadyClock clock;
  auto a = node(clock, "a", "127.0.0.1");
  auto b = node(clock, "b", "::", {{"127.0.0.1", port_of(*a)}});
  EXPECT_TRUE(test::eventually([&] { return sees_alive(*b, "a") && sees_alive(*a, "b"); }, 10s));
  EXPECT_EQ(b->counters().send_errors, 0u);
}

}  // namespace
}  // namespace heartbeatd::transport
