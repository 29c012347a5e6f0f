#include "transport/redis/subscriber.h"

#include <hiredis/hiredis.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <mutex>
#include <set>

#include "base/log.h"

namespace heartbeatd::transport::redis {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;

namespace {

std::string format_command(const Command& cmd) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& a : cmd) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* buf = nullptr;
  const int n =
      redisFormatCommandArgv(&buf, static_cast<int>(argv.size()), argv.data(), lens.data());
  if (n < 0) return {};
  std::string out(buf, static_cast<std::size_t>(n));
  redisFreeCommand(buf);
  return out;
}

}  // namespace

// Everything below runs on `strand`; `mu` guards only what stats() reads.
struct Subscriber::State : std::enable_shared_from_this<Subscriber::State> {
  State(asio::io_context& io, SubscriberOptions o, Candidates c, OnMessage m, OnResubscribed r)
      : options(std::move(o)), candidates(std::move(c)), on_message(std::move(m)),
        on_resubscribed(std::move(r)), strand(asio::make_strand(io)), resolver(strand),
        socket(strand), timer(strand), ping_timer(strand), reader(redisReaderCreate()) {}
  ~State() { redisReaderFree(reader); }

  const SubscriberOptions options;
  const Candidates candidates;
  OnMessage on_message;
  OnResubscribed on_resubscribed;
  asio::strand<asio::io_context::executor_type> strand;
  tcp::resolver resolver;
  tcp::socket socket;
  asio::steady_timer timer;       // connect deadline, then reconnect backoff
  asio::steady_timer ping_timer;  // liveness
  redisReader* reader;

  enum class Phase { idle, connecting, open, waiting } phase = Phase::idle;
  std::uint64_t generation = 0;  // handlers of an older connection are ignored
  std::set<std::string> channels;
  std::size_t unconfirmed = 0;  // subscriptions sent at connect, not yet confirmed
  bool ever_subscribed = false;
  bool ping_pending = false;
  bool stopped = false;
  std::size_t next_candidate = 0;
  milliseconds backoff{100};
  std::string out, writing;  // queued bytes; bytes being written
  std::array<char, 16384> in{};

  mutable std::mutex mu;
  SubscriberStats counters;

  void set_connected(bool c, std::string error = {}) {
    std::lock_guard lock(mu);
    counters.connected = c;
    if (!error.empty()) counters.last_error = std::move(error);
  }

  void send(const Command& cmd) {
    out += format_command(cmd);
    if (!writing.empty()) return;
    flush();
  }

  void flush() {
    if (out.empty() || phase != Phase::open) return;
    writing.swap(out);
    out.clear();
    asio::async_write(socket, asio::buffer(writing),
                      [self = shared_from_this(), gen = generation](error_code ec, std::size_t) {
                        if (gen != self->generation) return;
                        self->writing.clear();
                        if (ec) return self->broken(ec.message());
                        self->flush();
                      });
  }

  void connect() {
    if (stopped || phase != Phase::idle || channels.empty()) return;
    auto nodes = candidates();
    if (nodes.empty()) return broken("no Redis node is known yet");
    const NodeAddress node = nodes[next_candidate++ % nodes.size()];
    phase = Phase::connecting;
    const auto gen = ++generation;
    timer.expires_after(options.connect_timeout);
    timer.async_wait([self = shared_from_this(), gen](error_code ec) {
      if (ec || gen != self->generation) return;
      self->broken("connecting timed out");
    });
    resolver.async_resolve(
        node.host, std::to_string(node.port), tcp::resolver::numeric_service,
        [self = shared_from_this(), gen, node](error_code ec, tcp::resolver::results_type r) {
          if (gen != self->generation) return;
          if (ec) return self->broken(node.to_string() + ": " + ec.message());
          asio::async_connect(self->socket, r, [self, gen, node](error_code e, const tcp::endpoint&) {
            if (gen != self->generation) return;
            if (e) return self->broken(node.to_string() + ": " + e.message());
            self->opened(node);
          });
        });
  }

  void opened(const NodeAddress& node) {
    timer.cancel();
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    phase = Phase::open;
    {
      std::lock_guard lock(mu);
      ++counters.connects;
    }
    log::info("Redis subscriber connected to {}", node.to_string());
    for (const auto& c : options.on_connect) send(c);
    // Confirmations come in order: the first `unconfirmed` ones are this batch's.
    unconfirmed = channels.size();
    if (!channels.empty()) {
      Command sub{"SUBSCRIBE"};
      sub.insert(sub.end(), channels.begin(), channels.end());
      send(sub);
    }
    ping_pending = false;
    arm_ping();
    read();
  }

  void arm_ping() {
    ping_timer.expires_after(options.ping_interval);
    ping_timer.async_wait([self = shared_from_this(), gen = generation](error_code ec) {
      if (ec || gen != self->generation || self->phase != Phase::open) return;
      if (self->ping_pending) return self->broken("PING unanswered");
      self->ping_pending = true;
      self->send({"PING"});
      self->arm_ping();
    });
  }

  void read() {
    socket.async_read_some(asio::buffer(in), [self = shared_from_this(), gen = generation](
                                                 error_code ec, std::size_t n) {
      if (gen != self->generation) return;
      if (ec) return self->broken(ec.message());
      if (redisReaderFeed(self->reader, self->in.data(), n) != REDIS_OK) {
        return self->broken("Redis sent something that is not RESP");
      }
      for (;;) {
        void* raw = nullptr;
        if (redisReaderGetReply(self->reader, &raw) != REDIS_OK) {
          return self->broken("Redis sent something that is not RESP");
        }
        if (!raw) break;
        auto* reply = static_cast<redisReply*>(raw);
        const bool ok = self->handle(reply);
        freeReplyObject(reply);
        if (!ok || gen != self->generation) return;
      }
      self->read();
    });
  }

  // False when the connection was closed because of the reply.
  bool handle(const redisReply* r) {
    if (r->type == REDIS_REPLY_ERROR) {
      broken("Redis answered: " + std::string(r->str, r->len));
      return false;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
      return true;  // AUTH's +OK
    }
    const std::string_view kind(r->element[0]->str, r->element[0]->len);
    if (kind == "message" && r->elements == 3 && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[2]->type == REDIS_REPLY_STRING) {
      {
        std::lock_guard lock(mu);
        ++counters.messages;
      }
      if (on_message) {
        on_message(std::string(r->element[1]->str, r->element[1]->len),
                   std::string(r->element[2]->str, r->element[2]->len));
      }
    } else if (kind == "pong") {
      ping_pending = false;
    } else if (kind == "subscribe" && unconfirmed > 0 && --unconfirmed == 0) {
      backoff = milliseconds(100);
      set_connected(true);
      if (std::exchange(ever_subscribed, true) && on_resubscribed) on_resubscribed();
    }
    return true;
  }

  void broken(const std::string& why) {
    if (stopped) return;
    const bool was_open = phase == Phase::open;
    close_socket();
    {
      std::lock_guard lock(mu);
      counters.connected = false;
      counters.last_error = why;
      if (!was_open) ++counters.connect_failures;
    }
    if (was_open) {
      log::warning("Redis subscriber connection lost ({}); reconnecting", why);
    }
    phase = Phase::waiting;
    timer.expires_after(backoff);
    backoff = std::min(backoff * 2, milliseconds(5000));
    timer.async_wait([self = shared_from_this(), gen = generation](error_code ec) {
      if (ec || gen != self->generation || self->stopped) return;
      self->phase = Phase::idle;
      self->connect();
    });
  }

  void close_socket() {
    ++generation;
    error_code ignored;
    resolver.cancel();
    socket.close(ignored);
    timer.cancel();
    ping_timer.cancel();
    out.clear();
    writing.clear();
    unconfirmed = 0;
    // A fresh reader: a half-read reply of the old connection must not prefix the new one's.
    redisReaderFree(reader);
    reader = redisReaderCreate();
  }
};

Subscriber::Subscriber(asio::io_context& io, SubscriberOptions options, Candidates candidates,
                       OnMessage on_message, OnResubscribed on_resubscribed)
    : state_(std::make_shared<State>(io, std::move(options), std::move(candidates),
                                     std::move(on_message), std::move(on_resubscribed))) {}

Subscriber::~Subscriber() {
  stop();
}

void Subscriber::subscribe(const std::string& channel) {
  asio::dispatch(state_->strand, [s = state_, channel] {
    if (s->stopped || !s->channels.insert(channel).second) return;
    {
      std::lock_guard lock(s->mu);
      s->counters.channels = s->channels.size();
    }
    if (s->phase == State::Phase::open) {
      s->send({"SUBSCRIBE", channel});
    } else {
      s->connect();
    }
  });
}

void Subscriber::unsubscribe(const std::string& channel) {
  asio::dispatch(state_->strand, [s = state_, channel] {
    if (s->stopped || s->channels.erase(channel) == 0) return;
    {
      std::lock_guard lock(s->mu);
      s->counters.channels = s->channels.size();
    }
    if (s->phase == State::Phase::open) s->send({"UNSUBSCRIBE", channel});
  });
}

void Subscriber::stop() {
  asio::dispatch(state_->strand, [s = state_] {
    if (s->stopped) return;
    s->close_socket();
    s->stopped = true;
    s->phase = State::Phase::idle;
    s->on_message = nullptr;
    s->on_resubscribed = nullptr;
    s->set_connected(false);
  });
}

SubscriberStats Subscriber::stats() const {
  std::lock_guard lock(state_->mu);
  return state_->counters;
}

}  // namespace heartbeatd::transport::redis
