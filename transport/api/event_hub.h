// EventHub: member state changes and user online/offline transitions, fanned out to
// Server-Sent-Event subscribers (GET /v1/events) and to one in-process sink (the hooks).
//
// Members: the cluster transport reports every change as it happens; all of them go out,
// filtered per subscriber by ?members=. Users: only watched users are followed — those a
// subscriber named in ?users= and those of hooks.users. The hub counts references to them,
// asks the presence store to watch them (transport/presence/store.h), and passes on the
// transitions the store reports, whichever store it is and whichever node the heartbeats
// went to; a state the hub already reported is not reported again.
// A new subscriber first gets the current state of what it follows (events with
// "initial":true), then changes, with nothing missed or repeated in between: its users'
// initial state is the store's answer (at once for the embedded table, after a round trip
// for Redis), and their changes reach it only after that. If the store cannot answer, the
// stream ends with a "dropped" event that says why. The initial state of each member is kept
// ready-encoded, so that a subscription holds the lock the cluster thread publishes under
// only for a copy.
//
// Bounded: at most `max_subscribers` streams (503 beyond), at most `max_watched_users`
// distinct watched users (503 beyond), and per subscriber at most `max_queue_bytes` of events
// waiting to be written. A subscriber past that (it does not read) gets a final "dropped"
// event instead of its backlog, and its connection is closed once that is written (or the
// write times out).
//
// Thread safety: every method may be called from any thread. member_changed() runs on the
// cluster thread and holds only the subscribers' lock, briefly. Locks, always in this order:
// users (watch and subscription set) -> subscribers -> one subscription's queue.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "membership/protocol.h"
#include "transport/api/http_router.h"
#include "transport/api/query.h"
#include "transport/presence/store.h"

namespace heartbeatd::transport {

struct MemberEvent {
  std::string name;
  std::string address;
  membership::MemberState state = membership::MemberState::alive;
  std::optional<membership::MemberState> previous;  // nullopt: first seen
  std::uint64_t incarnation = 0;
  std::int64_t time_ms = 0;  // Unix ms, when this node saw the change
  membership::Tags tags;     // the member's, at `incarnation`
};

// The member's tags as a JSON object text, {"role":"db"} (event data, hook variables).
std::string tags_json(const membership::Tags& tags);

struct UserEvent {
  std::uint64_t user = 0;
  bool online = false;
  std::optional<std::int64_t> last_seen_ms;  // Unix ms
  std::int64_t time_ms = 0;
};

// Receives events on the publishing thread (cluster thread, the presence store's); must not
// block.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void member(const MemberEvent& e) = 0;
  virtual void user(const UserEvent& e) = 0;
};

struct EventHubOptions {
  // Watched users' transitions come from it: the hub sets the store's listener, so it is
  // made before the store starts.
  PresenceStore* store = nullptr;
  std::function<std::int64_t()> now_ms;  // Unix ms, for the events' time_ms
  std::size_t max_subscribers = 64;
  std::size_t max_watched_users = 10'000;
  std::size_t max_queue_bytes = 256 << 10;
};

struct EventHubStats {
  std::size_t subscribers = 0;
  std::size_t watched_users = 0;
  std::uint64_t subscribers_dropped = 0;  // slow consumers cut off
  std::uint64_t member_events = 0;
  std::uint64_t user_events = 0;
};

class EventHub {
 public:
  explicit EventHub(EventHubOptions options);
  ~EventHub();
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Before serving: the sink and the users whose transitions it receives (watched for
  // good). False when they exceed max_watched_users.
  bool set_sink(EventSink* sink, std::span<const std::uint64_t> users);
  // The members known before any change was reported (after a restore); names already
  // reported keep their reported state.
  void seed_members(const std::vector<membership::MemberInfo>& members);
  void member_changed(const membership::MemberInfo& m,
                      std::optional<membership::MemberState> before);
  // A member was forgotten (reaped): new subscribers no longer get it in their initial state.
  void member_forgotten(const std::string& name);

  // A new subscriber. `members`: nullopt for all members, else only these names. `users`:
  // distinct ids; `ids`: how its user events write them. Returns the stream, or the error
  // response (503 when full).
  Routed subscribe(std::optional<std::vector<std::string>> members,
                   std::vector<std::uint64_t> users, IdFormat ids = IdFormat::number);

  EventHubStats stats() const;

  struct Core;  // shared with the subscriptions; defined in event_hub.cpp

 private:
  std::shared_ptr<Core> core_;
};

// GET /v1/events?users=1,2,3&members=a,b (docs/API.md). `max_users` bounds one request's
// list (400 beyond).
void add_event_routes(Router& router, EventHub& hub, std::size_t max_users);

}  // namespace heartbeatd::transport
