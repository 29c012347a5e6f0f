#include "transport/redis/client.h"

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
#include <atomic>
#include <deque>
#include <mutex>

namespace heartbeatd::transport::redis {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "redis"; }
  std::string message(int e) const override {
    switch (static_cast<Errc>(e)) {
      case Errc::pool_timeout:
        return "no Redis connection became free in time (presence.redis.pool.wait)";
      case Errc::pool_full:
        return "too many requests are waiting for a Redis connection";
      case Errc::protocol:
        return "Redis sent a reply that is not RESP";
      case Errc::closed:
        return "the Redis connection is closed";
      case Errc::stopped:
        return "the Redis pool is stopping";
      case Errc::rejected:
        return "Redis refused the connection's setup (AUTH: check presence.redis.password_file)";
    }
    return "unknown Redis error";
  }
};

Value to_value(const redisReply* r) {
  Value v;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      v.type = Value::Type::string;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = Value::Type::status;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = Value::Type::error;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      v.type = Value::Type::integer;
      v.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      v.type = Value::Type::array;
      v.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) v.elements.push_back(to_value(r->element[i]));
      break;
    default:
      v.type = Value::Type::nil;
  }
  return v;
}

}  // namespace

const boost::system::error_category& category() {
  static const Category c;
  return c;
}

error_code make_error(Errc e) {
  return {static_cast<int>(e), category()};
}

// ---------------------------------------------------------------------------------------------

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  explicit Connection(asio::io_context& io)
      : strand_(asio::make_strand(io)),
        resolver_(strand_),
        socket_(strand_),
        timer_(strand_),
        reader_(redisReaderCreate()) {}
  ~Connection() { redisReaderFree(reader_); }

  void connect(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout,
               std::function<void(error_code)> done) {
    asio::dispatch(strand_, [self = shared_from_this(), host, port, timeout,
                             done = std::move(done)]() mutable {
      self->connect_done_ = std::move(done);
      self->arm(timeout);
      self->resolver_.async_resolve(
          host, std::to_string(port), tcp::resolver::numeric_service,
          [self](error_code ec, tcp::resolver::results_type results) {
            if (ec) return self->finish_connect(ec);
            asio::async_connect(self->socket_, results, [self](error_code e, const tcp::endpoint&) {
              if (!e) {
                error_code ignored;
                self->socket_.set_option(tcp::no_delay(true), ignored);
              }
              self->finish_connect(e);
            });
          });
    });
  }

  void exec(std::vector<Command> commands, std::chrono::milliseconds timeout,
            std::function<void(error_code, std::vector<Value>)> done) {
    asio::dispatch(strand_, [self = shared_from_this(), commands = std::move(commands), timeout,
                             done = std::move(done)]() mutable {
      if (!self->open_ || self->exec_done_) {
        return done(make_error(Errc::closed), {});
      }
      self->out_.clear();
      std::vector<const char*> argv;
      std::vector<std::size_t> lens;
      for (const auto& cmd : commands) {
        argv.clear();
        lens.clear();
        for (const auto& a : cmd) {
          argv.push_back(a.data());
          lens.push_back(a.size());
        }
        char* buf = nullptr;
        const int n = redisFormatCommandArgv(&buf, static_cast<int>(argv.size()), argv.data(),
                                             lens.data());
        if (n < 0) return done(make_error(Errc::protocol), {});
        self->out_.append(buf, static_cast<std::size_t>(n));
        redisFreeCommand(buf);
      }
      self->expected_ = commands.size();
      self->replies_.clear();
      self->exec_done_ = std::move(done);
      self->arm(timeout);
      asio::async_write(self->socket_, asio::buffer(self->out_), [self](error_code ec, std::size_t) {
        if (ec) self->fail(ec);
      });
      self->read_replies();  // at once: a long pipeline's replies flow while it is written
    });
  }

  void close() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->shut(); });
  }
  bool is_open() const { return open_; }

  // Pool bookkeeping, guarded by the pool's mutex.
  Clock::time_point idle_since{};
  Clock::time_point checked{};

 private:
  void arm(std::chrono::milliseconds timeout) {
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this(), gen = ++generation_](error_code ec) {
      if (ec || gen != self->generation_) return;
      self->fail(asio::error::timed_out);
    });
  }

  void finish_connect(error_code ec) {
    if (!connect_done_) return;  // timed out already
    ++generation_;
    timer_.cancel();
    if (!ec) open_ = true;
    auto done = std::move(connect_done_);
    connect_done_ = nullptr;
    if (ec) shut();
    done(ec);
  }

  void read_replies() {
    while (replies_.size() < expected_) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader_, &raw) != REDIS_OK) return fail(make_error(Errc::protocol));
      if (!raw) break;
      auto* reply = static_cast<redisReply*>(raw);
      replies_.push_back(to_value(reply));
      freeReplyObject(reply);
    }
    if (replies_.size() == expected_) {
      ++generation_;
      timer_.cancel();
      auto done = std::move(exec_done_);
      exec_done_ = nullptr;
      return done({}, std::move(replies_));
    }
    socket_.async_read_some(asio::buffer(in_), [self = shared_from_this()](error_code ec,
                                                                           std::size_t n) {
      if (!self->exec_done_) return;
      if (ec) return self->fail(ec);
      if (redisReaderFeed(self->reader_, self->in_.data(), n) != REDIS_OK) {
        return self->fail(make_error(Errc::protocol));
      }
      self->read_replies();
    });
  }

  void fail(error_code ec) {
    shut();
    if (connect_done_) {
      auto done = std::move(connect_done_);
      connect_done_ = nullptr;
      done(ec);
    }
    if (exec_done_) {
      auto done = std::move(exec_done_);
      exec_done_ = nullptr;
      done(ec, {});
    }
  }

  void shut() {
    open_ = false;
    ++generation_;
    error_code ignored;
    timer_.cancel();
    resolver_.cancel();
    socket_.close(ignored);
  }

  asio::strand<asio::io_context::executor_type> strand_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  redisReader* reader_;
  std::atomic<bool> open_{false};
  std::uint64_t generation_ = 0;  // a timer firing for an older operation is ignored
  std::function<void(error_code)> connect_done_;
  std::function<void(error_code, std::vector<Value>)> exec_done_;
  std::string out_;
  std::size_t expected_ = 0;
  std::vector<Value> replies_;
  std::array<char, 16384> in_{};
};

// ---------------------------------------------------------------------------------------------

struct Lease::Home : std::enable_shared_from_this<Lease::Home> {
  Home(asio::io_context& i, PoolOptions o)
      : io(i), options(std::move(o)), strand(asio::make_strand(i)), tick(strand) {}

  struct Waiter {
    std::uint64_t id;
    std::function<void(error_code, Lease)> done;
    std::shared_ptr<asio::steady_timer> timer;  // its `wait` deadline
  };

  asio::io_context& io;
  const PoolOptions options;
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer tick;

  mutable std::mutex mu;
  std::vector<std::shared_ptr<Connection>> idle;  // most recently used last
  std::size_t open = 0;                           // connected, idle or leased
  std::size_t connecting = 0;
  std::deque<Waiter> waiters;
  std::uint64_t next_waiter = 0;
  bool stopped = false;
  Clock::time_point next_attempt{};  // reconnect backoff
  std::chrono::milliseconds backoff{100};
  error_code last_connect_error;
  PoolStats counters;

  // Hands `done` its result on the pool's executor, never inside the caller's frame.
  void answer(std::function<void(error_code, Lease)> done, error_code ec, Lease lease) {
    auto shared = std::make_shared<Lease>(std::move(lease));
    asio::post(strand, [done = std::move(done), ec, shared]() mutable {
      done(ec, std::move(*shared));
    });
  }

  Lease lease(std::shared_ptr<Connection> c) { return Lease(std::move(c), weak_from_this()); }

  // With mu held: open a connection if allowed by max and the backoff.
  void maybe_connect_locked() {
    if (stopped || open + connecting >= options.max || Clock::now() < next_attempt) return;
    ++connecting;
    auto c = std::make_shared<Connection>(io);
    c->connect(options.host, options.port, options.connect_timeout,
               [self = shared_from_this(), c](error_code ec) {
                 if (ec || self->options.on_connect.empty()) return self->connected(c, ec);
                 c->exec(self->options.on_connect, self->options.connect_timeout,
                         [self, c](error_code e, std::vector<Value> replies) {
                           std::string why;
                           for (const auto& r : replies) {
                             if (!e && r.is_error()) {
                               e = make_error(Errc::rejected);
                               why = r.str;
                             }
                           }
                           if (e) c->close();
                           self->connected(c, e, why);
                         });
               });
  }

  void connected(const std::shared_ptr<Connection>& c, error_code ec, std::string why = {}) {
    std::unique_lock lock(mu);
    --connecting;
    if (ec) {
      ++counters.connect_failures;
      counters.reachable = false;
      counters.last_error = why.empty() ? ec.message() : ec.message() + ": " + why;
      last_connect_error = ec;
      next_attempt = Clock::now() + backoff;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      // Nothing can serve the waiters now: tell them at once rather than at `wait`.
      if (open == 0 && connecting == 0) {
        auto failed = std::move(waiters);
        waiters.clear();
        for (auto& w : failed) answer(std::move(w.done), ec, Lease());
      }
      return;
    }
    ++counters.connects;
    counters.reachable = true;
    counters.last_error.clear();
    backoff = std::chrono::milliseconds(100);
    next_attempt = {};
    ++open;
    if (stopped) {
      --open;
      c->close();
      return;
    }
    give_locked(c);
  }

  // With mu held: a free connection goes to the oldest waiter, or becomes idle.
  void give_locked(const std::shared_ptr<Connection>& c) {
    if (!waiters.empty()) {
      Waiter w = std::move(waiters.front());
      waiters.pop_front();
      answer(std::move(w.done), {}, lease(c));
      return;
    }
    c->idle_since = Clock::now();
    idle.push_back(c);
  }

  void release(const std::shared_ptr<Connection>& c) {
    std::lock_guard lock(mu);
    if (!c->is_open() || stopped) {
      --open;
      c->close();
      if (!stopped && !waiters.empty()) maybe_connect_locked();  // replace it for them
      return;
    }
    give_locked(c);
  }

  void acquire(std::function<void(error_code, Lease)> done) {
    std::lock_guard lock(mu);
    if (stopped) return answer(std::move(done), make_error(Errc::stopped), Lease());
    while (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      if (c->is_open()) return answer(std::move(done), {}, lease(c));
      --open;  // it broke while idle
    }
    // Redis down (no connection, and the last attempt failed recently): fail fast.
    if (open == 0 && connecting == 0 && Clock::now() < next_attempt) {
      return answer(std::move(done), last_connect_error ? last_connect_error
                                                        : make_error(Errc::closed),
                    Lease());
    }
    if (waiters.size() >= options.max_waiters) {
      ++counters.rejected;
      return answer(std::move(done), make_error(Errc::pool_full), Lease());
    }
    // The timer is only ever touched here and by its own handler (timers are not
    // thread-safe): a waiter served earlier is just gone from the queue when it fires.
    auto timer = std::make_shared<asio::steady_timer>(strand, options.wait);
    const std::uint64_t id = ++next_waiter;
    waiters.push_back({id, std::move(done), timer});
    timer->async_wait([self = shared_from_this(), id, timer](error_code ec) {
      if (ec) return;
      std::lock_guard l(self->mu);
      auto it = std::find_if(self->waiters.begin(), self->waiters.end(),
                             [id](const Waiter& w) { return w.id == id; });
      if (it == self->waiters.end()) return;
      auto d = std::move(it->done);
      self->waiters.erase(it);
      ++self->counters.timeouts;
      self->answer(std::move(d), make_error(Errc::pool_timeout), Lease());
    });
    // Grown on demand: only for waiters that the connections already being opened (say,
    // the first `min` at start) will not serve.
    if (connecting < waiters.size()) maybe_connect_locked();
  }

  // Every 100 ms: refill to `min`, close idle connections beyond it, health-check idle ones.
  void do_tick() {
    tick.expires_after(std::chrono::milliseconds(100));
    tick.async_wait([self = shared_from_this()](error_code ec) {
      if (ec) return;
      {
        std::lock_guard lock(self->mu);
        if (self->stopped) return;
      }
      self->maintain();
      self->do_tick();
    });
  }

  void maintain() {
    std::lock_guard lock(mu);
    if (stopped) return;
    const auto now = Clock::now();
    // Oldest idle first; beyond `min`, those idle for idle_timeout are closed.
    for (auto it = idle.begin(); it != idle.end();) {
      if (!(*it)->is_open()) {
        --open;
        it = idle.erase(it);
      } else if (open > options.min && now - (*it)->idle_since >= options.idle_timeout) {
        (*it)->close();
        --open;
        it = idle.erase(it);
      } else {
        ++it;
      }
    }
    while (open + connecting < options.min && now >= next_attempt) {
      const std::size_t before = connecting;
      maybe_connect_locked();
      if (connecting == before) break;
    }
    // Health: an idle connection not checked for health_interval is taken out and PINGed.
    for (auto it = idle.begin(); it != idle.end();) {
      auto c = *it;
      if (now - std::max(c->checked, c->idle_since) < options.health_interval) {
        ++it;
        continue;
      }
      it = idle.erase(it);
      c->checked = now;
      c->exec({{"PING"}}, options.connect_timeout,
              [self = shared_from_this(), c](error_code e, std::vector<Value> r) {
                {
                  std::lock_guard l(self->mu);
                  self->counters.reachable = !e && !r.empty() && !r[0].is_error();
                }
                self->release(c);
              });
    }
  }

  void stop() {
    std::lock_guard lock(mu);
    if (stopped) return;
    stopped = true;
    // The tick timer belongs to the strand; the handler also sees `stopped`.
    asio::post(strand, [self = shared_from_this()] { self->tick.cancel(); });
    for (auto& c : idle) c->close();
    open -= idle.size();
    idle.clear();
    for (auto& w : waiters) {
      answer(std::move(w.done), make_error(Errc::stopped), Lease());
      // Cancelled on the strand (timers are not thread-safe), so that a stopping daemon's
      // io_context is not kept busy until `wait` runs out.
      asio::post(strand, [t = w.timer] { t->cancel(); });
    }
    waiters.clear();
  }
};

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (conn_) {
      if (auto home = home_.lock()) home->release(conn_);
    }
    conn_ = std::move(other.conn_);
    home_ = std::move(other.home_);
  }
  return *this;
}

Lease::~Lease() {
  if (!conn_) return;
  if (auto home = home_.lock()) {
    home->release(conn_);
  } else {
    conn_->close();
  }
}

void Lease::exec(std::vector<Command> commands, std::chrono::milliseconds timeout,
                 std::function<void(error_code, std::vector<Value>)> done) {
  conn_->exec(std::move(commands), timeout, std::move(done));
}

Pool::Pool(asio::io_context& io, PoolOptions options)
    : home_(std::make_shared<Lease::Home>(io, std::move(options))) {}

Pool::~Pool() {
  stop();
}

void Pool::start() {
  asio::dispatch(home_->strand, [h = home_] {
    h->maintain();
    h->do_tick();
  });
}

void Pool::stop() {
  home_->stop();
}

void Pool::acquire(std::function<void(error_code, Lease)> done) {
  home_->acquire(std::move(done));
}

PoolStats Pool::stats() const {
  std::lock_guard lock(home_->mu);
  PoolStats s = home_->counters;
  s.open = home_->open;
  s.idle = home_->idle.size();
  s.waiting = home_->waiters.size();
  return s;
}

}  // namespace heartbeatd::transport::redis
