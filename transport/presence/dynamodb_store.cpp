#include "transport/presence/dynamodb_store.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "base/log.h"
#include "membership/presence_rule.h"
#include "transport/presence/dedup_cache.h"

namespace heartbeatd::transport {

namespace asio = boost::asio;
namespace json = boost::json;
using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;
using aws::DynamoError;

namespace {

constexpr std::size_t kWriteBatch = 25;  // BatchWriteItem's limit
constexpr std::size_t kReadBatch = 100;  // BatchGetItem's limit

// CreateTable's request: the key schema every node expects, billed on demand.
json::object create_table_request(const std::string& table) {
  return {{"TableName", table},
          {"AttributeDefinitions",
           json::array{json::object{{"AttributeName", "u"}, {"AttributeType", "N"}}}},
          {"KeySchema", json::array{json::object{{"AttributeName", "u"}, {"KeyType", "HASH"}}}},
          {"BillingMode", "PAY_PER_REQUEST"}};
}

json::object number(std::int64_t v) {
  return {{"N", std::to_string(v)}};
}
json::object number(std::uint64_t v) {
  return {{"N", std::to_string(v)}};
}

// An item's numeric attribute, or nullopt when absent or not a number we wrote.
template <typename T>
std::optional<T> read_number(const json::object& item, const char* name) {
  const auto* a = item.if_contains(name);
  if (!a || !a->is_object()) return std::nullopt;
  const auto* n = a->as_object().if_contains("N");
  if (!n || !n->is_string()) return std::nullopt;
  const std::string_view s = n->as_string();
  T v{};
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

StoreFailure failure(const DynamoError& e) {
  std::string what;
  switch (e.kind) {
    case DynamoError::Kind::throttled:
      what = "DynamoDB is throttling requests";
      break;
    case DynamoError::Kind::server:
      what = "DynamoDB answered with a server error";
      break;
    case DynamoError::Kind::network:
      what = "DynamoDB did not answer";
      break;
    case DynamoError::Kind::credentials:
      what = e.type == "NoCredentials" ? "the AWS credentials expired and were not refreshed"
                                       : "DynamoDB refused the credentials";
      break;
    case DynamoError::Kind::not_found:
      what = "the DynamoDB table is missing";
      break;
    default:
      what = "DynamoDB refused the request";
  }
  return StoreFailure::unavailable(
      fmt::format("{} ({}: {}; {} attempt{})", what, e.type, e.message, e.attempts,
                  e.attempts == 1 ? "" : "s"));
}

// Joins the answers of requests sent in parallel: the first failure wins, `done` runs once
// when the last one answered.
struct Join {
  std::mutex mu;
  std::size_t outstanding = 0;
  StoreFailure failure;
  std::function<void(StoreFailure)> done;
  void finish(StoreFailure f) {
    std::function<void(StoreFailure)> d;
    StoreFailure result;
    {
      std::lock_guard lock(mu);
      if (f && !failure) failure = std::move(f);
      if (--outstanding != 0) return;
      d = std::move(done);
      result = std::move(failure);
    }
    d(std::move(result));
  }
};

}  // namespace

struct DynamoPresenceStore::State : std::enable_shared_from_this<State> {
  State(asio::io_context& i, DynamoPresenceOptions o, std::function<std::int64_t()> w)
      : io(i),
        options(std::move(o)),
        wall_us(std::move(w)),
        strand(asio::make_strand(i)),
        watch_timer(strand),
        timeout_ms(options.timeout.count()),
        credentials(std::make_shared<const aws::Credentials>(options.credentials)) {
    auto client_options = options.client;
    client_options.credentials = [this] { return current_credentials(); };
    client = std::make_shared<aws::DynamoClient>(io, std::move(client_options));
  }

  asio::io_context& io;
  const DynamoPresenceOptions options;
  const std::function<std::int64_t()> wall_us;
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer watch_timer;
  std::shared_ptr<aws::DynamoClient> client;
  std::atomic<std::int64_t> timeout_ms;
  DedupCache dedup;
  std::atomic<bool> stopped{false};

  std::atomic<std::uint64_t> dedup_skipped{0}, unprocessed_retries{0}, polls{0};

  // Credentials, replaced by the refresher thread.
  mutable std::mutex cred_mu;
  std::shared_ptr<const aws::Credentials> credentials;  // guarded by cred_mu
  std::string credentials_problem;                      // guarded by cred_mu
  std::condition_variable cred_cv;
  std::thread refresher;

  // The last problem a request met, cleared by the next success: for health().
  mutable std::mutex health_mu;
  std::string problem;  // guarded by health_mu

  mutable std::mutex watch_mu;
  std::unordered_map<UserId, unsigned> watched;  // guarded by watch_mu
  std::mutex listener_mu;                        // the listener is never called concurrently
  ChangeListener listener;                       // set before start()

  // Counts: the last scan's result, and the callers waiting for the scan under way.
  mutable std::mutex counts_mu;
  std::optional<UserCounts> last_counts;  // guarded by counts_mu
  std::int64_t last_counts_at_ms = 0;     // guarded by counts_mu: the wall clock's ms
  bool counting = false;                  // guarded by counts_mu
  std::vector<CountsDone> count_waiters;  // guarded by counts_mu

  std::shared_ptr<const aws::Credentials> current_credentials() const {
    std::lock_guard lock(cred_mu);
    if (credentials && credentials->expires) {
      const auto now_s = wall_us() / 1'000'000;
      if (now_s >= *credentials->expires) return nullptr;  // expired: do not sign with them
    }
    return credentials;
  }

  SteadyTime deadline() const { return std::chrono::steady_clock::now() + options.request_deadline; }
  // A heartbeat's time rounded up and a verdict's time rounded down, as on Redis: a user is
  // never reported offline before a whole timeout has passed.
  std::int64_t heartbeat_ms() const { return (wall_us() + 999) / 1000; }
  std::int64_t judge_ms() const { return wall_us() / 1000; }

  void note(const DynamoError& e) {
    {
      std::lock_guard lock(health_mu);
      if (!e) {
        problem.clear();
      } else if (e.kind != DynamoError::Kind::condition && e.kind != DynamoError::Kind::invalid) {
        problem = failure(e).message;
      }
    }
    if (e.kind == DynamoError::Kind::not_found && options.create_table) recreate_table();
  }

  // The table went away while serving: create it again, one attempt at a time. Requests
  // meanwhile get 503; the users' state is gone with the table, as after a Redis flush.
  std::atomic<bool> recreating{false};
  void recreate_table() {
    if (stopped.load() || recreating.exchange(true)) return;
    log::warning("DynamoDB table {} is missing: creating it again (presence.dynamodb.create_table)",
                 options.table);
    client->call("CreateTable", create_table_request(options.table), deadline(),
                 [self = shared_from_this()](DynamoError e, json::value) {
                   if (e && e.type != "ResourceInUseException")
                     log::warning("DynamoDB table {} could not be created: {}: {}",
                                  self->options.table, e.type, e.message);
                   self->recreating.store(false);
                 });
  }

  UserStatus judge(const json::object* item, std::int64_t now) const {
    if (!item) return {};
    const auto seen = read_number<std::int64_t>(*item, "s");
    if (!seen) return {};
    const auto out = read_number<std::int64_t>(*item, "o");
    const bool logged_out = out && *out >= *seen;
    const auto verdict = membership::judge_user(
        std::chrono::milliseconds(now - *seen), logged_out,
        std::chrono::milliseconds(timeout_ms.load(std::memory_order_relaxed)),
        options.forget_after);
    if (verdict == membership::UserPresence::forgotten) return {};
    return {verdict == membership::UserPresence::online, *seen};
  }

  void report(std::vector<UserChange> changes) {
    if (changes.empty()) return;
    std::lock_guard lock(listener_mu);
    if (listener && !stopped.load()) listener(changes);
  }

  std::vector<UserId> watched_among(std::span<const UserId> ids) const {
    std::vector<UserId> out;
    std::lock_guard lock(watch_mu);
    if (watched.empty()) return out;
    for (const auto id : ids)
      if (watched.count(id)) out.push_back(id);
    return out;
  }

  void write_chunk(json::array requests, std::shared_ptr<Join> join, SteadyTime until,
                   int round = 0);
  void read_chunk(json::array keys, std::shared_ptr<std::vector<UserStatus>> out,
                  std::shared_ptr<std::unordered_map<UserId, std::vector<std::size_t>>> where,
                  std::shared_ptr<Join> join, SteadyTime until, int round = 0);
  void read(std::vector<UserId> ids, StatusDone done);
  void scan_page(std::optional<json::value> start_key, UserCounts sum, std::int64_t now);
  void finish_counts(StoreFailure f, UserCounts c);
  void poll_watched();
  void run_refresher();
};

void DynamoPresenceStore::State::write_chunk(json::array requests, std::shared_ptr<Join> join,
                                             SteadyTime until, int round) {
  const std::size_t sent = requests.size();
  json::object body{{"RequestItems", json::object{{options.table, std::move(requests)}}},
                    {"ReturnConsumedCapacity", "TOTAL"}};
  client->call("BatchWriteItem", std::move(body), until,
               [self = shared_from_this(), join, until, sent, round](DynamoError e,
                                                                     json::value answer) {
                 self->note(e);
                 if (e) return join->finish(failure(e));
                 // What DynamoDB did not get to (its own throttling): again, after the
                 // client's jittered backoff, until the deadline.
                 json::array left;
                 if (const auto* u = answer.as_object().if_contains("UnprocessedItems");
                     u && u->is_object()) {
                   if (const auto* t = u->as_object().if_contains(self->options.table);
                       t && t->is_array())
                     left = t->as_array();
                 }
                 if (left.empty()) return join->finish({});
                 const auto pause = aws::backoff_pause(round + 1);
                 if (std::chrono::steady_clock::now() + pause >= until || self->stopped.load()) {
                   return join->finish(StoreFailure::unavailable(fmt::format(
                       "DynamoDB left {} of {} heartbeats unprocessed until the deadline",
                       left.size(), sent)));
                 }
                 self->unprocessed_retries.fetch_add(1, std::memory_order_relaxed);
                 auto timer = std::make_shared<asio::steady_timer>(self->io, pause);
                 timer->async_wait([self, join, until, timer, round, left = std::move(left)](
                                       boost::system::error_code) mutable {
                   self->write_chunk(std::move(left), join, until, round + 1);
                 });
               });
}

void DynamoPresenceStore::State::read_chunk(
    json::array keys, std::shared_ptr<std::vector<UserStatus>> out,
    std::shared_ptr<std::unordered_map<UserId, std::vector<std::size_t>>> where,
    std::shared_ptr<Join> join, SteadyTime until, int round) {
  const std::size_t asked = keys.size();
  json::object request{{"Keys", std::move(keys)},
                       {"ConsistentRead", true},
                       {"ProjectionExpression", "#u, #s, #o"},
                       {"ExpressionAttributeNames", {{"#u", "u"}, {"#s", "s"}, {"#o", "o"}}}};
  json::object body{{"RequestItems", json::object{{options.table, std::move(request)}}},
                    {"ReturnConsumedCapacity", "TOTAL"}};
  client->call(
      "BatchGetItem", std::move(body), until,
      [self = shared_from_this(), out, where, join, until, asked, round](DynamoError e,
                                                                         json::value answer) {
        self->note(e);
        if (e) return join->finish(failure(e));
        const auto now = self->judge_ms();
        const auto& o = answer.as_object();
        if (const auto* r = o.if_contains("Responses"); r && r->is_object()) {
          if (const auto* items = r->as_object().if_contains(self->options.table);
              items && items->is_array()) {
            for (const auto& v : items->as_array()) {
              if (!v.is_object()) continue;
              const auto id = read_number<std::uint64_t>(v.as_object(), "u");
              if (!id) continue;
              const auto it = where->find(*id);
              if (it == where->end()) continue;
              const auto st = self->judge(&v.as_object(), now);
              // Each place is written by this answer only: the key is in one chunk.
              for (const auto at : it->second) (*out)[at] = st;
            }
          }
        }
        json::array left;
        if (const auto* u = o.if_contains("UnprocessedKeys"); u && u->is_object()) {
          if (const auto* t = u->as_object().if_contains(self->options.table);
              t && t->is_object()) {
            if (const auto* k = t->as_object().if_contains("Keys"); k && k->is_array())
              left = k->as_array();
          }
        }
        if (left.empty()) return join->finish({});
        const auto pause = aws::backoff_pause(round + 1);
        if (std::chrono::steady_clock::now() + pause >= until || self->stopped.load()) {
          return join->finish(StoreFailure::unavailable(fmt::format(
              "DynamoDB left {} of {} users unread until the deadline", left.size(), asked)));
        }
        self->unprocessed_retries.fetch_add(1, std::memory_order_relaxed);
        auto timer = std::make_shared<asio::steady_timer>(self->io, pause);
        timer->async_wait([self, out, where, join, until, timer, round,
                           left = std::move(left)](boost::system::error_code) mutable {
          self->read_chunk(std::move(left), out, where, join, until, round + 1);
        });
      });
}

void DynamoPresenceStore::State::read(std::vector<UserId> ids, StatusDone done) {
  auto out = std::make_shared<std::vector<UserStatus>>(ids.size());
  if (ids.empty()) return done({}, *out);
  auto where = std::make_shared<std::unordered_map<UserId, std::vector<std::size_t>>>();
  std::vector<UserId> unique;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto& places = (*where)[ids[i]];
    if (places.empty()) unique.push_back(ids[i]);
    places.push_back(i);
  }
  auto join = std::make_shared<Join>();
  join->outstanding = (unique.size() + kReadBatch - 1) / kReadBatch;
  join->done = [out, done = std::move(done)](StoreFailure f) {
    if (f) return done(std::move(f), {});
    done({}, *out);
  };
  const auto until = deadline();
  for (std::size_t at = 0; at < unique.size(); at += kReadBatch) {
    json::array keys;
    for (std::size_t i = at; i < std::min(unique.size(), at + kReadBatch); ++i)
      keys.push_back(json::object{{"u", number(unique[i])}});
    read_chunk(std::move(keys), out, where, join, until);
  }
}

void DynamoPresenceStore::State::scan_page(std::optional<json::value> start_key, UserCounts sum,
                                           std::int64_t now) {
  json::object body{{"TableName", options.table},
                    {"ProjectionExpression", "#s, #o"},
                    {"ExpressionAttributeNames", {{"#s", "s"}, {"#o", "o"}}},
                    {"ReturnConsumedCapacity", "TOTAL"}};
  if (start_key) body["ExclusiveStartKey"] = *start_key;
  client->call("Scan", std::move(body), deadline(),
               [self = shared_from_this(), sum, now](DynamoError e, json::value answer) mutable {
                 self->note(e);
                 if (e) return self->finish_counts(failure(e), {});
                 const auto& o = answer.as_object();
                 if (const auto* items = o.if_contains("Items"); items && items->is_array()) {
                   for (const auto& v : items->as_array()) {
                     if (!v.is_object()) continue;
                     const auto st = self->judge(&v.as_object(), now);
                     if (!st.last_seen_ms) continue;  // forgotten, not yet deleted by the TTL
                     ++sum.tracked;
                     if (st.online) ++sum.online;
                   }
                 }
                 const auto* next = o.if_contains("LastEvaluatedKey");
                 if (next && !self->stopped.load()) return self->scan_page(*next, sum, now);
                 self->finish_counts({}, sum);
               });
}

void DynamoPresenceStore::State::finish_counts(StoreFailure f, UserCounts c) {
  std::vector<CountsDone> waiters;
  {
    std::lock_guard lock(counts_mu);
    counting = false;
    if (!f) {
      last_counts = c;
      last_counts_at_ms = judge_ms();
    }
    waiters.swap(count_waiters);
  }
  for (auto& w : waiters) w(f, c);
}

void DynamoPresenceStore::State::poll_watched() {
  if (stopped.load()) return;
  std::vector<UserId> ids;
  {
    std::lock_guard lock(watch_mu);
    ids.reserve(watched.size());
    for (const auto& [id, n] : watched) ids.push_back(id);
  }
  auto again = [self = shared_from_this()] {
    self->watch_timer.expires_after(self->options.watch_interval);
    self->watch_timer.async_wait([self](boost::system::error_code ec) {
      if (!ec) self->poll_watched();
    });
  };
  if (ids.empty()) return again();
  polls.fetch_add(1, std::memory_order_relaxed);
  read(ids, [self = shared_from_this(), ids, again](StoreFailure f,
                                                    std::span<const UserStatus> st) {
    if (!f) {
      std::vector<UserChange> changes;
      changes.reserve(ids.size());
      for (std::size_t i = 0; i < ids.size(); ++i)
        changes.push_back({ids[i], st[i].online, st[i].last_seen_ms});
      self->report(std::move(changes));
    }
    asio::post(self->strand, again);
  });
}

void DynamoPresenceStore::State::run_refresher() {
  std::unique_lock lock(cred_mu);
  while (!stopped.load()) {
    const auto expires = credentials ? credentials->expires : std::nullopt;
    if (!expires) {  // long-term keys: nothing to refresh
      cred_cv.wait(lock, [&] { return stopped.load(); });
      break;
    }
    // Refresh five minutes before the expiry (or halfway, for short-lived ones), and every
    // 30 s after a failure.
    const auto now_s = wall_us() / 1'000'000;
    const auto lifetime = *expires - now_s;
    const auto at = credentials_problem.empty() ? *expires - std::min<std::int64_t>(300, lifetime / 2)
                                                : now_s + 30;
    if (at > now_s) {
      cred_cv.wait_for(lock, std::chrono::seconds(at - now_s), [&] { return stopped.load(); });
      if (stopped.load()) break;
      if (wall_us() / 1'000'000 < at) continue;
    }
    lock.unlock();
    std::string why;
    auto fresh = options.refresh_credentials ? options.refresh_credentials(&why) : std::nullopt;
    lock.lock();
    if (fresh) {
      credentials = std::make_shared<const aws::Credentials>(std::move(*fresh));
      credentials_problem.clear();
      log::info("AWS credentials refreshed from {}", credentials->source);
    } else {
      credentials_problem = why.empty() ? "no source gave new credentials" : why;
      log::warning("AWS credentials could not be refreshed (they expire at Unix {}): {}",
                   *expires, credentials_problem);
    }
  }
}

DynamoPresenceStore::DynamoPresenceStore(asio::io_context& io, DynamoPresenceOptions options,
                                         std::function<std::int64_t()> wall_us)
    : state_(std::make_shared<State>(io, std::move(options), std::move(wall_us))) {}

DynamoPresenceStore::~DynamoPresenceStore() {
  stop();
}

void DynamoPresenceStore::start() {
  auto& st = *state_;
  st.client->start();
  st.refresher = std::thread([s = state_.get()] { s->run_refresher(); });
  asio::post(st.strand, [self = state_] { self->poll_watched(); });
}

void DynamoPresenceStore::stop() {
  auto& st = *state_;
  if (st.stopped.exchange(true)) return;
  {
    std::lock_guard lock(st.cred_mu);
  }
  st.cred_cv.notify_all();
  if (st.refresher.joinable()) st.refresher.join();
  asio::post(st.strand, [self = state_] { self->watch_timer.cancel(); });
  st.client->stop();
}

void DynamoPresenceStore::heartbeat(std::span<const UserId> ids, Done done) {
  auto& st = *state_;
  const std::int64_t now = st.heartbeat_ms();
  const std::int64_t window = st.options.dedup_window.count();
  std::vector<UserId> todo;
  std::vector<std::pair<UserId, std::uint64_t>> written;  // id, dedup generation
  todo.reserve(ids.size());
  for (const auto id : ids) {
    if (window > 0 && st.dedup.recent(id, now, window)) {
      st.dedup_skipped.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    todo.push_back(id);
  }
  std::sort(todo.begin(), todo.end());
  todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
  if (todo.empty()) return done({});
  if (window > 0) {
    for (const auto id : todo) written.emplace_back(id, st.dedup.generation(id));
  }
  const std::int64_t expires_s =
      (now + static_cast<std::int64_t>(st.options.forget_after.count())) / 1000 + 1;
  auto watched = st.watched_among(todo);
  auto join = std::make_shared<Join>();
  join->done = [self = state_, written = std::move(written), watched = std::move(watched), now,
                done = std::move(done)](StoreFailure f) {
    if (!f) {
      for (const auto& [id, generation] : written) self->dedup.remember(id, now, generation);
      std::vector<UserChange> changes;
      for (const auto id : watched) changes.push_back({id, true, now});
      self->report(std::move(changes));
    }
    done(std::move(f));
  };
  const auto until = st.deadline();
  if (todo.size() == 1) {
    // One user: a conditional update, so that a late heartbeat never moves a newer one back.
    join->outstanding = 1;
    json::object body{
        {"TableName", st.options.table},
        {"Key", {{"u", number(todo.front())}}},
        {"UpdateExpression", "SET #s = :s, #x = :x"},
        {"ConditionExpression", "attribute_not_exists(#s) OR #s < :s"},
        {"ExpressionAttributeNames", {{"#s", "s"}, {"#x", "x"}}},
        {"ExpressionAttributeValues", {{":s", number(now)}, {":x", number(expires_s)}}},
        {"ReturnConsumedCapacity", "TOTAL"}};
    st.client->call("UpdateItem", std::move(body), until,
                    [self = state_, join](DynamoError e, json::value) {
                      // A newer heartbeat is there already: nothing to write, no error.
                      if (e.kind == DynamoError::Kind::condition) e = {};
                      self->note(e);
                      join->finish(e ? failure(e) : StoreFailure{});
                    });
    return;
  }
  join->outstanding = (todo.size() + kWriteBatch - 1) / kWriteBatch;
  for (std::size_t at = 0; at < todo.size(); at += kWriteBatch) {
    json::array requests;
    for (std::size_t i = at; i < std::min(todo.size(), at + kWriteBatch); ++i) {
      requests.push_back(json::object{
          {"PutRequest",
           {{"Item", {{"u", number(todo[i])}, {"s", number(now)}, {"x", number(expires_s)}}}}}});
    }
    st.write_chunk(std::move(requests), join, until);
  }
}

void DynamoPresenceStore::logout(UserId id, Done done) {
  auto& st = *state_;
  st.dedup.forget(id);  // the next heartbeat must be written, whatever the window
  const std::int64_t now = st.heartbeat_ms();
  json::object body{{"TableName", st.options.table},
                    {"Key", {{"u", number(id)}}},
                    {"UpdateExpression", "SET #o = :o"},
                    {"ConditionExpression", "attribute_exists(#s)"},
                    {"ExpressionAttributeNames", {{"#s", "s"}, {"#o", "o"}}},
                    {"ExpressionAttributeValues", {{":o", number(now)}}},
                    {"ReturnValues", "ALL_NEW"},  // the last-seen time, for the change report
                    {"ReturnConsumedCapacity", "TOTAL"}};
  st.client->call(
      "UpdateItem", std::move(body), st.deadline(),
      [self = state_, id, done = std::move(done)](DynamoError e, json::value answer) {
        self->dedup.forget(id);  // a heartbeat that raced the logout must not hide the next one
        const bool unknown = e.kind == DynamoError::Kind::condition;  // never seen: no error
        if (unknown) e = {};
        self->note(e);
        if (e) return done(failure(e));
        if (!unknown) {
          const UserId one[] = {id};
          if (!self->watched_among(one).empty()) {
            std::optional<std::int64_t> seen;
            if (const auto* a = answer.as_object().if_contains("Attributes"); a && a->is_object())
              seen = read_number<std::int64_t>(a->as_object(), "s");
            self->report({{id, false, seen}});
          }
        }
        done({});
      });
}

void DynamoPresenceStore::status(std::span<const UserId> ids, StatusDone done) {
  state_->read(std::vector<UserId>(ids.begin(), ids.end()), std::move(done));
}

void DynamoPresenceStore::counts(CountsDone done) {
  auto& st = *state_;
  if (!st.options.count_users) {
    return done(StoreFailure::unavailable(
                    "counting users on DynamoDB reads the whole table, and "
                    "presence.dynamodb.count_interval is 0 (off)"),
                {});
  }
  std::optional<UserCounts> cached;
  bool start_scan = false;
  {
    std::lock_guard lock(st.counts_mu);
    // On the clock the verdicts are judged by: a count is as old as the time it judged.
    const auto age = st.judge_ms() - st.last_counts_at_ms;
    const bool fresh = st.last_counts && age >= 0 && age < st.options.count_interval.count();
    if (st.last_counts) cached = st.last_counts;
    if (!fresh && !st.counting) {
      st.counting = true;
      start_scan = true;
    }
    // A count younger than count_interval is answered at once; an older one waits for the
    // scan under way (a scrape starts one when the last is stale, so it is usually fresh).
    if (!fresh) {
      cached.reset();
      st.count_waiters.push_back(std::move(done));
    }
  }
  if (start_scan) st.scan_page(std::nullopt, {}, st.judge_ms());
  if (cached) done({}, *cached);
}

void DynamoPresenceStore::set_timeout(membership::Duration timeout) {
  state_->timeout_ms.store(std::chrono::duration_cast<milliseconds>(timeout).count(),
                           std::memory_order_relaxed);
}

void DynamoPresenceStore::set_listener(ChangeListener listener) {
  std::lock_guard lock(state_->listener_mu);
  state_->listener = std::move(listener);
}

void DynamoPresenceStore::watch(std::span<const UserId> ids) {
  {
    std::lock_guard lock(state_->watch_mu);
    for (const auto id : ids) ++state_->watched[id];
  }
  // Their state now is the hub's to read (status()); the next poll reports their changes.
}

void DynamoPresenceStore::unwatch(std::span<const UserId> ids) {
  std::lock_guard lock(state_->watch_mu);
  for (const auto id : ids) {
    auto it = state_->watched.find(id);
    if (it != state_->watched.end() && --it->second == 0) state_->watched.erase(it);
  }
}

StoreHealth DynamoPresenceStore::health() const {
  auto& st = *state_;
  StoreHealth h{"dynamodb", true, "", {st.client->endpoint().to_string() + "/" + st.options.table}};
  {
    std::lock_guard lock(st.cred_mu);
    if (st.credentials && st.credentials->expires &&
        st.wall_us() / 1'000'000 >= *st.credentials->expires) {
      h.ok = false;
      h.problem = fmt::format("the AWS credentials from {} expired and could not be refreshed: {}",
                              st.credentials->source, st.credentials_problem);
      return h;
    }
  }
  std::lock_guard lock(st.health_mu);
  if (!st.problem.empty()) {
    h.ok = false;
    h.problem = st.problem;
  }
  return h;
}

void DynamoPresenceStore::write_metrics(MetricsWriter& w) const {
  auto& st = *state_;
  {
    std::lock_guard lock(st.counts_mu);
    if (st.last_counts) {
      w.gauge("heartbeatd_users_online",
              "Users online (heartbeat younger than presence.timeout), as the last DynamoDB "
              "scan counted (presence.dynamodb.count_interval).",
              static_cast<double>(st.last_counts->online));
      w.gauge("heartbeatd_users_tracked",
              "Users tracked: online, or offline and seen within presence.forget_after, as the "
              "last DynamoDB scan counted.",
              static_cast<double>(st.last_counts->tracked));
    }
  }
  // For a later scrape, if the count is older than count_interval (a scan reads the table).
  if (st.options.count_users)
    const_cast<DynamoPresenceStore*>(this)->counts([](StoreFailure, UserCounts) {});
  const auto s = st.client->stats();
  const auto p = st.client->pool_stats();
  w.counter("heartbeatd_dynamodb_requests_total", "HTTP requests sent to DynamoDB, retries included.",
            static_cast<double>(s.requests));
  w.counter("heartbeatd_dynamodb_retries_total",
            "DynamoDB requests sent again after throttling, a 5xx or no answer.",
            static_cast<double>(s.retries));
  w.counter("heartbeatd_dynamodb_throttled_total", "DynamoDB answers that asked to slow down.",
            static_cast<double>(s.throttled));
  w.counter("heartbeatd_dynamodb_server_errors_total", "DynamoDB answers with a 5xx status.",
            static_cast<double>(s.server_errors));
  w.counter("heartbeatd_dynamodb_network_errors_total",
            "DynamoDB requests that got no answer (connect, timeout, pool).",
            static_cast<double>(s.network_errors));
  w.counter("heartbeatd_dynamodb_failed_total",
            "DynamoDB calls answered with an error after their retries.",
            static_cast<double>(s.failed));
  w.counter("heartbeatd_dynamodb_unprocessed_retries_total",
            "Batches sent again for the items or keys DynamoDB left unprocessed.",
            static_cast<double>(st.unprocessed_retries.load()));
  w.counter("heartbeatd_dynamodb_write_units_total",
            "Write capacity units DynamoDB reported consumed (what on-demand bills).",
            s.write_units);
  w.counter("heartbeatd_dynamodb_read_units_total",
            "Read capacity units DynamoDB reported consumed.", s.read_units);
  w.counter("heartbeatd_dynamodb_heartbeats_deduplicated_total",
            "Heartbeats answered without a write: the user's last one was written less than "
            "presence.dynamodb.dedup_window ago.",
            static_cast<double>(st.dedup_skipped.load()));
  w.counter("heartbeatd_dynamodb_watch_polls_total", "Reads of the watched users' states.",
            static_cast<double>(st.polls.load()));
  w.gauge("heartbeatd_dynamodb_pool_connections", "Open connections to DynamoDB.",
          static_cast<double>(p.open));
  w.gauge("heartbeatd_dynamodb_pool_waiting", "Requests waiting for a DynamoDB connection.",
          static_cast<double>(p.waiting));
}

// ---------------------------------------------------------------------------------------
// The table check at start.

DynamoTableCheck prepare_dynamodb_table(const DynamoPresenceOptions& options,
                                        std::chrono::milliseconds bound) {
  const bool create = options.create_table;
  DynamoTableCheck out;
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread runner([&io] { io.run(); });
  auto client_options = options.client;
  auto creds = std::make_shared<const aws::Credentials>(options.credentials);
  client_options.credentials = [creds] { return creds; };
  client_options.pool.min = 1;
  auto client = std::make_shared<aws::DynamoClient>(io, client_options);
  client->start();
  const auto until = std::chrono::steady_clock::now() + bound;
  auto call = [&](const std::string& op, json::object body) {
    std::promise<std::pair<DynamoError, json::value>> p;
    auto f = p.get_future();
    client->call(op, std::move(body),
                 // An unreachable endpoint delays the start by at most this, then is a warning.
                 std::min(until, std::chrono::steady_clock::now() + std::chrono::seconds(3)),
                 [&p](DynamoError e, json::value v) { p.set_value({std::move(e), std::move(v)}); });
    return f.get();
  };
  const std::string where =
      fmt::format("presence.dynamodb.table {} at {}", options.table, client->endpoint().to_string());
  auto describe = [&] { return call("DescribeTable", {{"TableName", options.table}}); };
  auto [e, answer] = describe();
  if (e.kind == DynamoError::Kind::not_found && create) {
    auto [ce, created] = call("CreateTable", create_table_request(options.table));
    if (ce && ce.type != "ResourceInUseException") {  // another node created it meanwhile
      out.error = fmt::format("{}: could not create it: {}: {}", where, ce.type, ce.message);
    } else {
      out.notes.push_back(fmt::format("created DynamoDB table {} (key u: N, on-demand)", options.table));
      std::tie(e, answer) = describe();
    }
  } else if (e.kind == DynamoError::Kind::not_found) {
    out.error = fmt::format(
        "{}: the table does not exist; create it (key u: Number, partition key) or set "
        "presence.dynamodb.create_table: true",
        where);
  }
  if (out.error.empty() && e) {
    if (e.kind == DynamoError::Kind::credentials || e.kind == DynamoError::Kind::invalid) {
      out.error = fmt::format("{}: DynamoDB refused DescribeTable: {}: {}", where, e.type, e.message);
    } else {
      out.warnings.push_back(fmt::format(
          "{}: not reachable at start ({}: {}); presence answers 503 until it is", where, e.type,
          e.message));
    }
  }
  if (out.error.empty() && !e) {
    // Key schema: exactly one HASH key "u" of type N.
    const auto* table = answer.as_object().if_contains("Table");
    bool key_ok = false;
    std::string found = "no key schema";
    std::string status;
    if (table && table->is_object()) {
      const auto& t = table->as_object();
      if (const auto* s = t.if_contains("TableStatus"); s && s->is_string()) status = s->as_string();
      std::vector<std::string> keys;
      if (const auto* ks = t.if_contains("KeySchema"); ks && ks->is_array()) {
        for (const auto& k : ks->as_array()) {
          if (!k.is_object()) continue;
          const auto* n = k.as_object().if_contains("AttributeName");
          const auto* kt = k.as_object().if_contains("KeyType");
          if (n && n->is_string() && kt && kt->is_string())
            keys.push_back(fmt::format("{} ({})", n->as_string().c_str(), kt->as_string().c_str()));
        }
      }
      std::string type;
      if (const auto* ad = t.if_contains("AttributeDefinitions"); ad && ad->is_array()) {
        for (const auto& a : ad->as_array()) {
          if (!a.is_object()) continue;
          const auto* n = a.as_object().if_contains("AttributeName");
          const auto* at = a.as_object().if_contains("AttributeType");
          if (n && at && n->is_string() && at->is_string() && n->as_string() == "u")
            type = at->as_string();
        }
      }
      key_ok = keys.size() == 1 && keys.front() == "u (HASH)" && type == "N";
      found = fmt::format("key {}{}", fmt::join(keys, ", "), type.empty() ? "" : ", u: " + type);
    }
    if (!key_ok) {
      out.error = fmt::format(
          "{}: the table's key schema is not heartbeatd's (partition key u of type N only); "
          "found {}",
          where, found);
    } else {
      // A new table is CREATING for a moment: wait for ACTIVE within the bound.
      while (status != "ACTIVE" && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(milliseconds(100));  // polling a remote state, not a test
        auto [de, d] = describe();
        if (de) break;
        const auto* t = d.as_object().if_contains("Table");
        if (t && t->is_object()) {
          if (const auto* s = t->as_object().if_contains("TableStatus"); s && s->is_string())
            status = s->as_string();
        }
      }
      if (status != "ACTIVE")
        out.warnings.push_back(fmt::format("{}: table status {}, not ACTIVE yet", where, status));
      if (create) {
        // TTL as garbage collection. DynamoDB Local and dynalite may not know the operation:
        // a warning, since the verdict never depends on it.
        auto [te, ttl] = call("UpdateTimeToLive",
                              {{"TableName", options.table},
                               {"TimeToLiveSpecification", {{"Enabled", true}, {"AttributeName", "x"}}}});
        if (te && !(te.type == "ValidationException" &&
                    te.message.find("already enabled") != std::string::npos)) {
          out.warnings.push_back(fmt::format(
              "{}: could not enable TTL on attribute x ({}: {}); forgotten users are still judged "
              "forgotten at read time, but their items stay until deleted",
              where, te.type, te.message));
        }
      }
    }
  }
  client->stop();
  work.reset();
  io.stop();
  runner.join();
  return out;
}

}  // namespace heartbeatd::transport
