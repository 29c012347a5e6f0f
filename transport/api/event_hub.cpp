#include "transport/api/event_hub.h"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "base/log.h"
#include "base/user_ids.h"
#include "membership/member.h"
#include "transport/api/member_routes.h"
#include "transport/api/query.h"

namespace heartbeatd::transport {
namespace {

std::string sse(std::string_view event, const boost::json::object& data) {
  return fmt::format("event: {}\ndata: {}\n\n", event, boost::json::serialize(data));
}

std::string member_sse(const MemberEvent& e, bool initial) {
  boost::json::object o;
  o["name"] = e.name;
  o["address"] = e.address;
  o["state"] = membership::to_string(e.state);
  if (e.previous) {
    o["previous"] = membership::to_string(*e.previous);
  } else {
    o["previous"] = nullptr;
  }
  o["incarnation"] = e.incarnation;
  o["time_ms"] = e.time_ms;
  o["initial"] = initial;
  o["tags"] = tags_object(e.tags);
  return sse("member", o);
}

std::string user_sse(const UserEvent& e, bool initial, IdFormat format) {
  boost::json::object o;
  if (format == IdFormat::string) {
    o["user"] = std::to_string(e.user);
  } else {
    o["user"] = e.user;
  }
  o["online"] = e.online;
  if (e.last_seen_ms) {
    o["last_seen_ms"] = *e.last_seen_ms;
  } else {
    o["last_seen_ms"] = nullptr;
  }
  o["time_ms"] = e.time_ms;
  o["initial"] = initial;
  return sse("user", o);
}

}  // namespace

class Subscription;

struct EventHub::Core : std::enable_shared_from_this<EventHub::Core> {
  explicit Core(EventHubOptions o) : options(std::move(o)) {}

  UserEvent user_event(std::uint64_t id, const UserStatus& st) const {
    return {id, st.online, st.last_seen_ms, options.now_ms()};
  }
  void remove(Subscription* s);
  // A subscription's users' state, as the store answered it: their initial events, then
  // their changes.
  void users_known(const std::shared_ptr<Subscription>& s, const StoreFailure& f,
                   std::span<const UserStatus> statuses);
  void user_changes(std::span<const UserChange> changes);

  const EventHubOptions options;

  struct Watched {
    std::size_t refs = 0;
    std::optional<UserStatus> reported;  // nullopt until the store answered
  };
  mutable std::mutex users_mu;
  std::unordered_map<std::uint64_t, Watched> users;  // guarded by users_mu
  std::unordered_set<std::uint64_t> sink_users;      // fixed before serving

  mutable std::mutex subs_mu;
  std::vector<std::shared_ptr<Subscription>> subs;  // guarded by subs_mu
  // The last state of each member known, as the initial event a new subscriber gets.
  std::map<std::string, std::string> members;  // guarded by subs_mu
  EventSink* sink = nullptr;                   // fixed before serving
  std::uint64_t dropped = 0;                   // guarded by subs_mu
  std::uint64_t member_events = 0;             // guarded by subs_mu
  std::uint64_t user_events = 0;               // guarded by subs_mu
};

class Subscription final : public ResponseStream {
 public:
  Subscription(std::weak_ptr<EventHub::Core> core, std::optional<std::vector<std::string>> members,
               std::vector<std::uint64_t> users, IdFormat ids, std::size_t max_bytes)
      : core_(std::move(core)), users_(std::move(users)), ids_(ids), max_bytes_(max_bytes) {
    if (members) members_.emplace(members->begin(), members->end());
    user_set_.insert(users_.begin(), users_.end());
  }

  std::string_view content_type() const override { return "text/event-stream"; }

  void attach(std::function<void()> wake) override {
    bool pending;
    {
      std::lock_guard lock(mu_);
      wake_ = std::move(wake);
      pending = !queue_.empty() || ended_;
    }
    if (pending) wake_();
  }

  bool take(std::string& out) override {
    std::lock_guard lock(mu_);
    out += queue_;
    queue_.clear();
    initial_bytes_ = 0;
    return !ended_;
  }

  void detach() override {
    if (auto core = core_.lock()) core->remove(this);
  }

  // Queues an event; true if this subscriber was just cut off for being too far behind.
  bool push(std::string_view bytes) {
    std::function<void()> wake;
    bool dropped = false;
    {
      std::lock_guard lock(mu_);
      if (ended_) return false;
      const bool was_empty = queue_.empty();
      if (queue_.size() + bytes.size() > max_bytes_ + initial_bytes_) {
        boost::json::object o;
        o["reason"] = fmt::format(
            "slow consumer: more than events.max_queue_bytes ({} bytes) of events were waiting "
            "to be read",
            max_bytes_);
        queue_ = sse("dropped", o);
        ended_ = true;
        dropped = true;
      } else {
        queue_.append(bytes);
      }
      // Wake the writer when there was nothing to write; otherwise a wake is pending or a
      // write is under way, and the writer takes the rest when it completes.
      if (was_empty || dropped) wake = wake_;
    }
    if (wake) wake();
    return dropped;
  }

  // The state at subscription time, sent whole even beyond max_bytes (it is bounded by
  // max_watched_users and membership.max_members); the bound applies to what piles up after.
  // The members' part comes before attach(), the users' part when the store answered.
  void push_initial(std::string_view bytes) {
    std::function<void()> wake;
    {
      std::lock_guard lock(mu_);
      if (ended_) return;
      if (queue_.empty()) wake = wake_;
      queue_.append(bytes);
      initial_bytes_ += bytes.size();
    }
    if (wake) wake();
  }

  // Ends the stream with a final "dropped" event saying why.
  void end(std::string_view why) {
    std::function<void()> wake;
    {
      std::lock_guard lock(mu_);
      if (ended_) return;
      boost::json::object o;
      o["reason"] = why;
      queue_ += sse("dropped", o);
      ended_ = true;
      wake = wake_;
    }
    if (wake) wake();
  }

  // Guarded by the hub's users_mu: changes of its users reach it once their initial state
  // has (Core::users_known).
  bool users_ready = false;

  bool wants_member(const std::string& name) const { return !members_ || members_->count(name); }
  bool wants_user(std::uint64_t id) const { return users_ready && user_set_.count(id) != 0; }
  const std::vector<std::uint64_t>& users() const { return users_; }
  IdFormat ids() const { return ids_; }

 private:
  const std::weak_ptr<EventHub::Core> core_;
  std::optional<std::unordered_set<std::string>> members_;  // nullopt: all
  const std::vector<std::uint64_t> users_;
  const IdFormat ids_;  // how its user events write ids (?ids=)
  std::unordered_set<std::uint64_t> user_set_;
  const std::size_t max_bytes_;

  std::mutex mu_;
  std::string queue_;              // guarded by mu_
  std::size_t initial_bytes_ = 0;  // guarded by mu_: of queue_, not yet taken
  bool ended_ = false;             // guarded by mu_
  std::function<void()> wake_;     // guarded by mu_
};

void EventHub::Core::remove(Subscription* s) {
  {
    std::lock_guard users_lock(users_mu);
    std::lock_guard subs_lock(subs_mu);
    auto it = std::find_if(subs.begin(), subs.end(), [s](const auto& p) { return p.get() == s; });
    if (it == subs.end()) return;  // already removed
    for (const auto id : s->users()) {
      auto u = users.find(id);
      if (u != users.end() && --u->second.refs == 0) users.erase(u);
    }
    subs.erase(it);
  }
  options.store->unwatch(s->users());  // outside the hub's locks: the store calls into them
}

void EventHub::Core::users_known(const std::shared_ptr<Subscription>& s, const StoreFailure& f,
                                 std::span<const UserStatus> statuses) {
  std::lock_guard users_lock(users_mu);
  {
    std::lock_guard subs_lock(subs_mu);
    if (std::find(subs.begin(), subs.end(), s) == subs.end()) return;  // gone meanwhile
  }
  if (f) {
    s->end("the presence store could not tell the users' state: " + f.message);
    return;
  }
  std::string initial;
  const auto& ids = s->users();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto& w = users[ids[i]];
    // A change the store reported since the watch began is newer than this answer.
    if (!w.reported) w.reported = statuses[i];
    initial += user_sse(user_event(ids[i], *w.reported), true, s->ids());
  }
  s->push_initial(initial);
  s->users_ready = true;
}

void EventHub::Core::user_changes(std::span<const UserChange> changes) {
  std::lock_guard users_lock(users_mu);
  std::lock_guard subs_lock(subs_mu);
  for (const auto& c : changes) {
    auto it = users.find(c.user);
    if (it == users.end()) continue;  // not watched (another user of a watched shard)
    auto& reported = it->second.reported;
    if (reported && reported->online == c.online) {
      reported->last_seen_ms = c.last_seen_ms;  // no transition
      continue;
    }
    reported = UserStatus{c.online, c.last_seen_ms};
    const UserEvent e = user_event(c.user, *reported);
    // Debug only: thousands of watched users may come and go; GET /v1/events and the hooks
    // are the ways to follow them.
    if (log::enabled(LogLevel::debug)) {
      const char* state = c.online ? "online" : "offline";
      log::debug({{"user", std::to_string(c.user)}, {"state", state}}, "user {} is {}", c.user,
                 state);
    }
    // Written once per id format that a subscriber of this user asked for.
    std::string as_number, as_string;
    ++user_events;
    for (const auto& s : subs) {
      if (!s->wants_user(c.user)) continue;
      std::string& bytes = s->ids() == IdFormat::string ? as_string : as_number;
      if (bytes.empty()) bytes = user_sse(e, false, s->ids());
      if (s->push(bytes)) ++dropped;
    }
    if (sink && sink_users.count(c.user)) sink->user(e);
  }
}

EventHub::EventHub(EventHubOptions options) : core_(std::make_shared<Core>(std::move(options))) {
  core_->options.store->set_listener(
      [weak = std::weak_ptr<Core>(core_)](std::span<const UserChange> changes) {
        if (auto core = weak.lock()) core->user_changes(changes);
      });
}

EventHub::~EventHub() {
  core_->options.store->set_listener(nullptr);
}

bool EventHub::set_sink(EventSink* sink, std::span<const std::uint64_t> users) {
  std::vector<std::uint64_t> distinct(users.begin(), users.end());
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  {
    std::lock_guard users_lock(core_->users_mu);
    std::size_t fresh = 0;
    for (const auto id : distinct) fresh += core_->users.count(id) == 0;
    if (core_->users.size() + fresh > core_->options.max_watched_users) return false;
    for (const auto id : distinct) ++core_->users[id].refs;  // for good
    core_->sink_users.insert(distinct.begin(), distinct.end());
    std::lock_guard subs_lock(core_->subs_mu);
    core_->sink = sink;
  }
  if (distinct.empty()) return true;
  core_->options.store->watch(distinct);
  auto ids = std::make_shared<std::vector<std::uint64_t>>(std::move(distinct));
  core_->options.store->status(*ids, [weak = std::weak_ptr<Core>(core_), ids](
                                         StoreFailure f, std::span<const UserStatus> statuses) {
    auto core = weak.lock();
    if (!core || f) return;  // then the first change the store reports is the first state
    std::lock_guard users_lock(core->users_mu);
    for (std::size_t i = 0; i < ids->size(); ++i) {
      auto& w = core->users[(*ids)[i]];
      if (!w.reported) w.reported = statuses[i];
    }
  });
  return true;
}

std::string tags_json(const membership::Tags& tags) {
  return boost::json::serialize(tags_object(tags));
}

void EventHub::seed_members(const std::vector<membership::MemberInfo>& members) {
  const auto now_ms = core_->options.now_ms();
  std::lock_guard lock(core_->subs_mu);
  for (const auto& m : members) {
    if (core_->members.count(m.name)) continue;
    core_->members.emplace(m.name, member_sse(MemberEvent{m.name, m.address.to_string(), m.state,
                                                          std::nullopt, m.incarnation, now_ms,
                                                          m.tags},
                                              true));
  }
}

void EventHub::member_changed(const membership::MemberInfo& m,
                              std::optional<membership::MemberState> before) {
  const MemberEvent e{m.name,        m.address.to_string(), m.state, before,
                      m.incarnation, core_->options.now_ms(), m.tags};
  const std::string bytes = member_sse(e, false);
  std::string initial = member_sse(e, true);
  std::lock_guard lock(core_->subs_mu);
  core_->members[m.name] = std::move(initial);
  ++core_->member_events;
  for (const auto& s : core_->subs) {
    if (s->wants_member(e.name) && s->push(bytes)) ++core_->dropped;
  }
  if (core_->sink) core_->sink->member(e);
}

void EventHub::member_forgotten(const std::string& name) {
  std::lock_guard lock(core_->subs_mu);
  core_->members.erase(name);
}

Routed EventHub::subscribe(std::optional<std::vector<std::string>> members,
                           std::vector<std::uint64_t> users, IdFormat ids) {
  const auto& o = core_->options;
  std::shared_ptr<Subscription> sub;
  {
    std::lock_guard users_lock(core_->users_mu);
    {
      std::lock_guard subs_lock(core_->subs_mu);
      if (core_->subs.size() >= o.max_subscribers) {
        Response r = error_response(
            http::status::service_unavailable, "too_many_subscribers",
            fmt::format("events.max_subscribers ({}) event streams are open; retry later",
                        o.max_subscribers));
        r.set(http::field::retry_after, "5");
        return {std::move(r), nullptr};
      }
    }
    std::size_t fresh = 0;
    for (const auto id : users) fresh += core_->users.count(id) == 0;
    if (core_->users.size() + fresh > o.max_watched_users) {
      Response r = error_response(
          http::status::service_unavailable, "too_many_watched_users",
          fmt::format("events.max_watched_users ({}) users are watched already ({} now); this "
                      "subscription would exceed it",
                      o.max_watched_users, core_->users.size()));
      r.set(http::field::retry_after, "5");
      return {std::move(r), nullptr};
    }
    sub = std::make_shared<Subscription>(core_, std::move(members), users, ids, o.max_queue_bytes);
    for (const auto id : users) ++core_->users[id].refs;
    sub->users_ready = users.empty();
    // The members' current state under the lock the cluster thread publishes under: no
    // change can fall between it and the stream of changes.
    std::lock_guard subs_lock(core_->subs_mu);
    std::string initial;
    for (const auto& [name, bytes] : core_->members) {
      if (sub->wants_member(name)) initial += bytes;
    }
    sub->push_initial(initial);
    core_->subs.push_back(sub);
  }
  if (!users.empty()) {
    // Outside the hub's locks: the store reports changes under its own lock, into them.
    o.store->watch(users);
    o.store->status(sub->users(), [weak = std::weak_ptr<Core>(core_), sub = std::weak_ptr(sub)](
                                      StoreFailure f, std::span<const UserStatus> statuses) {
      auto core = weak.lock();
      auto s = sub.lock();
      if (core && s) core->users_known(s, f, statuses);
    });
  }
  return {Response{}, sub};
}

EventHubStats EventHub::stats() const {
  EventHubStats st;
  {
    std::lock_guard users_lock(core_->users_mu);
    st.watched_users = core_->users.size();
  }
  std::lock_guard lock(core_->subs_mu);
  st.subscribers = core_->subs.size();
  st.subscribers_dropped = core_->dropped;
  st.member_events = core_->member_events;
  st.user_events = core_->user_events;
  return st;
}

}  // namespace heartbeatd::transport

namespace heartbeatd::transport {
namespace {

Response bad_query(std::string message) {
  return error_response(http::status::bad_request, "bad_request", message);
}

}  // namespace

void add_event_routes(Router& router, EventHub& hub, std::size_t max_users) {
  router.add_stream(
      http::verb::get, "/v1/events", Scope::read,
      [&hub, max_users](const Request&, const RouteMatch& m) {
        auto parsed = parse_query(m.query, {"users", "members", "ids"});
        if (auto* why = std::get_if<std::string>(&parsed)) {
          return Routed{bad_query(std::move(*why)), nullptr};
        }
        const auto& params = std::get<std::vector<QueryParam>>(parsed);
        std::optional<std::string_view> users_text, members_text;
        for (const auto& p : params) {
          if (p.key == "users") users_text = p.value;
          if (p.key == "members") members_text = p.value;
        }
        std::string why;
        const auto format = id_format(params, &why);
        if (!format) return Routed{bad_query(std::move(why)), nullptr};
        std::vector<std::uint64_t> users;
        if (users_text) {
          for (auto item : split(*users_text, ',')) {
            std::string why;
            const auto id = parse_user_id(item, &why);
            if (!id) return Routed{bad_query(fmt::format("users: {}", why)), nullptr};
            users.push_back(*id);
          }
          std::sort(users.begin(), users.end());
          users.erase(std::unique(users.begin(), users.end()), users.end());
          if (users.size() > max_users) {
            return Routed{bad_query(fmt::format("users: {} ids, more than events.max_watched_users "
                                                "({})",
                                                users.size(), max_users)),
                          nullptr};
          }
        }
        std::optional<std::vector<std::string>> members;
        if (members_text) {
          members.emplace();
          for (auto item : split(*members_text, ',')) {
            if (!membership::valid_name(item)) {
              return Routed{bad_query(fmt::format("members: \"{}\" is not a member name (1 to 128 "
                                                  "letters, digits, '.', '-' or '_')",
                                                  item)),
                            nullptr};
            }
            members->emplace_back(item);
          }
        }
        return hub.subscribe(std::move(members), std::move(users), *format);
      });
}

}  // namespace heartbeatd::transport
