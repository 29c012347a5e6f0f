// A Redis connection in pub/sub mode (SUBSCRIBE), for the presence backend's user changes
// (issue #16). The pool's connections are request/response; a subscribed connection only
// receives, so it is a type of its own.
//
// It connects when the first channel is subscribed, to the first node that answers among
// `candidates()` (asked again at each attempt: a cluster's current masters, then the seeds;
// in a Redis Cluster a PUBLISH reaches subscribers on every node, so any node will do). A
// broken connection, an AUTH refused, or a PING unanswered for a whole `ping_interval` closes
// it; it reconnects with a backoff from 100 ms up to 5 s and subscribes to every channel
// again, then calls `on_resubscribed` (messages published meanwhile are lost: the owner
// re-reads what it needs).
//
// Thread safety: every public function from any thread. Callbacks run on the subscriber's
// strand, never concurrently, messages in the order the server sent them.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "transport/redis/client.h"
#include "transport/redis/cluster.h"

namespace heartbeatd::transport::redis {

struct SubscriberOptions {
  std::chrono::milliseconds connect_timeout{1000};
  // A PING is sent this often; one still unanswered at the next is a dead connection.
  std::chrono::milliseconds ping_interval{2000};
  std::vector<Command> on_connect;  // AUTH
};

struct SubscriberStats {
  bool connected = false;     // connected and every channel's subscription confirmed
  std::uint64_t connects = 0;  // successful connections (the first one included)
  std::uint64_t connect_failures = 0;
  std::uint64_t messages = 0;
  std::size_t channels = 0;
  std::string last_error;
};

class Subscriber {
 public:
  using Candidates = std::function<std::vector<NodeAddress>()>;
  using OnMessage = std::function<void(const std::string& channel, const std::string& payload)>;
  using OnResubscribed = std::function<void()>;
  Subscriber(boost::asio::io_context& io, SubscriberOptions options, Candidates candidates,
             OnMessage on_message, OnResubscribed on_resubscribed);
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  void subscribe(const std::string& channel);
  void unsubscribe(const std::string& channel);
  // Closes the connection and drops the callbacks; idempotent.
  void stop();
  SubscriberStats stats() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace heartbeatd::transport::redis
