// DynamoPresenceStore: presence.backend dynamodb, users' last heartbeats in a DynamoDB table,
// shared by every heartbeatd node that names the same table. docs/BACKENDS.md compares it with
// the embedded table and Redis; in short:
//
//   item   {"u": user id (N, the partition key), "s": last-seen Unix ms (N),
//           "o": logout Unix ms (N, absent unless logged out), "x": expiry Unix s (N, TTL)}
//   single heartbeat  UpdateItem SET s, x  IF s is absent or older  (a late, older heartbeat
//                     never moves a newer one back; the failed condition is no error)
//   batch heartbeat   BatchWriteItem of 25 puts per request, in parallel on the pool
//                     (unconditional: a put carries its send time, retried
//                     UnprocessedItems included, so it can only be older than another
//                     node's by that node's in-flight time)
//   logout            UpdateItem SET o = now IF the user exists
//   status            BatchGetItem of 100 keys per request, strongly consistent, in parallel
//   counts            a Scan of s and o, at most once per count_interval (it reads the table)
//
// The verdict is membership/presence_rule.h, judged at read time from s, o, presence.timeout
// and forget_after: DynamoDB's TTL (x = last-seen + forget_after) deletes expired items only
// eventually, so it is garbage collection, never the verdict.
//
// Throttling, 5xx and broken connections are retried with jittered backoff within
// `request_deadline` (transport/aws/dynamodb_client.h); what is still failing then, and
// UnprocessedItems/Keys left at the deadline, is a StoreFailure `unavailable` (503 with
// Retry-After), never a guessed "offline". A user's heartbeats within `dedup_window` of the
// one written are answered without a write: each write is billed.
//
// User changes: the watched users are read (BatchGetItem) every `watch_interval` and their
// states reported; this node's own heartbeats and logouts of watched users are reported at
// once. A watcher sees another node's heartbeat within watch_interval and an expiry within
// timeout + watch_interval. (DynamoDB Streams would push instead, at the price of a shard
// iterator per stream shard; the poll costs watched/100 requests per interval.)
//
// Credentials: resolved by the caller at start (transport/aws/credentials.h) and refreshed
// by the store's own thread before they expire; if a refresh keeps failing past the
// expiry, requests fail with 503 and health() says why.
//
// Thread safety: every call from any thread; completions run on the pool's threads.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "transport/aws/credentials.h"
#include "transport/aws/dynamodb_client.h"
#include "transport/presence/store.h"

namespace heartbeatd::transport {

struct DynamoPresenceOptions {
  std::string table = "heartbeatd-presence";
  aws::DynamoClientOptions client;  // region, endpoint, pool, attempt timeout (credentials: set)
  // No new attempt starts after this much time: a request is answered within about
  // request_deadline + client.attempt_timeout.
  std::chrono::milliseconds request_deadline{1000};
  std::chrono::milliseconds dedup_window{1000};
  std::chrono::milliseconds watch_interval{1000};
  // counts() scans the table; false: it answers `unavailable` instead (large tables).
  bool count_users = true;
  // A count is reused for this long (wall-clock time); 0: every counts() scans.
  std::chrono::milliseconds count_interval{60'000};
  std::chrono::milliseconds timeout{30'000};
  std::chrono::milliseconds forget_after{24LL * 3600 * 1000};
  // presence.dynamodb.create_table: also re-creates the table if it disappears while serving
  // (someone deleted it; a DynamoDB Local restarted empty).
  bool create_table = false;
  // The credentials to start with, and how to get new ones when they come near expiry.
  aws::Credentials credentials;
  std::function<std::optional<aws::Credentials>(std::string* why)> refresh_credentials;
};

// What prepare_dynamodb_table() found: a fatal problem (exit 2), or warnings to log.
struct DynamoTableCheck {
  std::string error;                  // non-empty: the daemon must not start
  std::vector<std::string> warnings;  // e.g. "TTL not enabled: ..."
  std::vector<std::string> notes;     // e.g. "created table X"
};

// At start, before serving: checks that `options.table` exists with the key schema {u: N,
// HASH}, creating it (on-demand billing, TTL on x) when options.create_table says so; waits up to
// `bound` for it to become ACTIVE. An unreachable endpoint is a warning (the store answers
// 503 until it is reachable); a missing table, a wrong key schema or refused credentials
// are errors. Blocking: runs its own I/O thread.
DynamoTableCheck prepare_dynamodb_table(const DynamoPresenceOptions& options,
                                        std::chrono::milliseconds bound);

class DynamoPresenceStore final : public PresenceStore {
 public:
  // `wall_us`: Unix microseconds (the system clock in the daemon).
  DynamoPresenceStore(boost::asio::io_context& io, DynamoPresenceOptions options,
                      std::function<std::int64_t()> wall_us);
  ~DynamoPresenceStore() override;

  void start() override;
  void stop() override;
  void heartbeat(std::span<const UserId> ids, Done done) override;
  void logout(UserId id, Done done) override;
  void status(std::span<const UserId> ids, StatusDone done) override;
  void counts(CountsDone done) override;
  void set_timeout(membership::Duration timeout) override;
  void set_listener(ChangeListener listener) override;
  void watch(std::span<const UserId> ids) override;
  void unwatch(std::span<const UserId> ids) override;
  StoreHealth health() const override;
  void write_metrics(MetricsWriter& w) const override;

  struct State;  // dynamodb_store.cpp

 private:
  std::shared_ptr<State> state_;
};

}  // namespace heartbeatd::transport
