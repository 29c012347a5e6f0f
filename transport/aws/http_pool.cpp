#include "transport/aws/http_pool.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <deque>
#include <mutex>
#include <optional>
#include <unordered_set>

namespace heartbeatd::transport::aws {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Done = std::function<void(error_code, HttpResponse)>;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

namespace {

constexpr std::uint64_t kBodyLimit = 64ull << 20;  // a DynamoDB item is 400 KB; 64 MiB is a bug
constexpr std::uint32_t kHeaderLimit = 64u << 10;

class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "aws-http"; }
  std::string message(int e) const override {
    switch (static_cast<HttpErrc>(e)) {
      case HttpErrc::pool_timeout:
        return "no HTTP connection to the AWS endpoint became free in time (pool wait)";
      case HttpErrc::pool_full:
        return "too many requests are waiting for an HTTP connection to the AWS endpoint";
      case HttpErrc::timeout:
        return "the HTTP request to the AWS endpoint timed out";
      case HttpErrc::stopped:
        return "the HTTP pool to the AWS endpoint is stopping";
      case HttpErrc::bad_response:
        return "the AWS endpoint sent a response that is not HTTP/1.1 or is over 64 MiB";
    }
    return "unknown AWS HTTP error";
  }
};

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// The errors by which a kept-alive connection that the server closed meanwhile shows itself
// when it is used again: the write hits a reset, or the read sees the close before any byte.
bool closed_by_peer(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated;
}

HttpResponse to_response(Response&& r) {
  HttpResponse out;
  out.status = r.result_int();
  for (const auto& f : r) out.headers.emplace_back(f.name_string(), f.value());
  out.body = std::move(r.body());
  return out;
}

}  // namespace

const boost::system::error_category& http_category() {
  static const Category c;
  return c;
}

error_code make_error(HttpErrc e) {
  return {static_cast<int>(e), http_category()};
}

// ---------------------------------------------------------------------------------------------
// Endpoint

Endpoint Endpoint::parse(const std::string& url, std::string* why) {
  auto fail = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return Endpoint{true, "", 0};
  };
  Endpoint e;
  std::string_view rest = url;
  // Schemes are case-insensitive (RFC 3986 3.1).
  if (beast::iequals(rest.substr(0, 8), "https://")) {
    e.tls = true;
    e.port = 443;
    rest.remove_prefix(8);
  } else if (beast::iequals(rest.substr(0, 7), "http://")) {
    e.tls = false;
    e.port = 80;
    rest.remove_prefix(7);
  } else {
    return fail(fmt::format("the endpoint \"{}\" is not an http:// or https:// URL", url));
  }
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (rest.substr(slash) != "/") {
      return fail(fmt::format("the endpoint \"{}\" has a path; give only scheme, host and port",
                              url));
    }
    rest = rest.substr(0, slash);
  }
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {  // IPv6 literal: [::1]:8000
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return fail(fmt::format("the endpoint \"{}\" has an unclosed '[' in its host", url));
    }
    e.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return fail(fmt::format("the endpoint \"{}\" has text after its IPv6 host", url));
      }
      port = rest.substr(1);
      if (port.empty()) return fail(fmt::format("the endpoint \"{}\" has an empty port", url));
    }
    error_code bad_v6;
    asio::ip::make_address_v6(e.host, bad_v6);
    if (!e.host.empty() && bad_v6) {
      return fail(fmt::format("the endpoint \"{}\" has \"{}\" in brackets, which is not an IPv6 "
                              "address", url, e.host));
    }
  } else {
    const auto colon = rest.find(':');
    e.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) return fail(fmt::format("the endpoint \"{}\" has an empty port", url));
    }
    const bool host_chars = std::all_of(e.host.begin(), e.host.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '-' || c == '.' || c == '_';
    });
    if (!host_chars) {
      return fail(fmt::format("the endpoint \"{}\" has \"{}\" as its host, which is not a host "
                              "name or address", url, e.host));
    }
  }
  if (e.host.empty()) return fail(fmt::format("the endpoint \"{}\" has no host", url));
  if (!port.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return fail(fmt::format("the endpoint \"{}\" has \"{}\" as its port; a port is 1 to 65535",
                              url, port));
    }
    e.port = static_cast<std::uint16_t>(value);
  }
  if (why) why->clear();
  return e;
}

std::string Endpoint::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return fmt::format("{}://{}{}{}:{}", tls ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "",
                     port);
}

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, name)) return v;
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Connection: one HTTP/1.1 connection, plain or TLS, on its own strand. One exchange at a time
// (the pool hands it to one request); close() from any thread.

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, std::shared_ptr<ssl::context> tls, const Endpoint& endpoint)
      : strand_(asio::make_strand(io)),
        resolver_(strand_),
        resolve_timer_(strand_),
        endpoint_(endpoint),
        tls_context_(std::move(tls)) {
    if (tls_context_) {
      tls_.emplace(beast::tcp_stream(strand_), *tls_context_);
    } else {
      plain_.emplace(strand_);
    }
  }

  // Resolves, connects and (TLS) handshakes within `timeout`. `why` explains a refused
  // certificate in words (the error code alone says only "certificate verify failed").
  void connect(std::chrono::milliseconds timeout,
               std::function<void(error_code, std::string why)> done) {
    asio::post(strand_, [self = shared_from_this(), timeout, done = std::move(done)]() mutable {
      self->connect_done_ = std::move(done);
      if (self->closed_) return self->finish_connect(asio::error::operation_aborted);
      const auto deadline = Clock::now() + timeout;
      // The resolver has no deadline of its own; the stream's covers connect and handshake.
      self->resolve_timer_.expires_at(deadline);
      self->resolve_timer_.async_wait([self](error_code ec) {
        if (ec) return;
        self->resolve_timed_out_ = true;
        self->resolver_.cancel();
      });
      self->resolver_.async_resolve(
          self->endpoint_.host, std::to_string(self->endpoint_.port),
          tcp::resolver::numeric_service,
          [self, deadline](error_code ec, tcp::resolver::results_type results) {
            self->resolve_timer_.cancel();
            if (self->resolve_timed_out_) ec = beast::error::timeout;
            if (self->closed_) ec = asio::error::operation_aborted;
            if (ec) return self->finish_connect(ec);
            self->tcp().expires_at(deadline);
            self->tcp().async_connect(results, [self](error_code e, const tcp::endpoint&) {
              if (e) return self->finish_connect(e);
              error_code ignored;
              self->tcp().socket().set_option(tcp::no_delay(true), ignored);
              if (!self->tls_) return self->finish_connect({});
              self->handshake();
            });
          });
    });
  }

  // Writes `request` and reads its response, all before `deadline`. `stale` says the
  // failure came before any byte of the answer in a way that a server closing the kept-alive
  // connection explains, so sending the request again on a fresh connection is safe.
  void exchange(std::shared_ptr<const Request> request, Clock::time_point deadline,
                std::function<void(error_code, Response, bool stale)> done) {
    asio::post(strand_, [self = shared_from_this(), request = std::move(request), deadline,
                         done = std::move(done)]() mutable {
      self->exchange_done_ = std::move(done);
      if (self->closed_) return self->finish_exchange(asio::error::not_connected, false);
      self->request_ = std::move(request);
      self->parser_.emplace();
      self->parser_->body_limit(kBodyLimit);
      self->parser_->header_limit(kHeaderLimit);
      // The answer to HEAD announces a body that never comes.
      self->parser_->skip(self->request_->method() == http::verb::head);
      self->tcp().expires_at(deadline);
      self->visit([&](auto& stream) {
        http::async_write(stream, *self->request_, [self, &stream](error_code ec, std::size_t) {
          if (ec) return self->finish_exchange(ec, closed_by_peer(ec));
          http::async_read(stream, self->buffer_, *self->parser_,
                           [self](error_code e, std::size_t) {
                             if (e) {
                               const bool nothing = !self->parser_->got_some() &&
                                                    self->buffer_.size() == 0;
                               return self->finish_exchange(e, nothing && closed_by_peer(e));
                             }
                             self->finish_exchange({}, false);
                           });
        });
      });
    });
  }

  void close() {
    asio::post(strand_, [self = shared_from_this()] { self->shut(); });
  }

  bool is_open() const { return open_; }
  // Whether the last response allows another request on this connection.
  bool reusable() const { return reusable_; }

  // Pool bookkeeping, guarded by the pool's mutex.
  Clock::time_point idle_since{};
  std::uint64_t uses = 0;

 private:
  beast::tcp_stream& tcp() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

  template <class F>
  void visit(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }

  void handshake() {
    SSL* ssl = tls_->native_handle();
    const std::string& host = endpoint_.host;
    // SNI takes names only (RFC 6066); the certificate check takes either, as what it is.
    if (is_ip_literal(host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, host.c_str());
      SSL_set1_host(ssl, host.c_str());
    }
    tls_->async_handshake(ssl::stream_base::client, [self = shared_from_this()](error_code ec) {
      std::string why;
      if (ec) {
        const long verify = SSL_get_verify_result(self->tls_->native_handle());
        if (verify != X509_V_OK) {
          why = fmt::format("the TLS certificate of {} was not accepted: {}",
                            self->endpoint_.to_string(), X509_verify_cert_error_string(verify));
        }
      }
      self->finish_connect(ec, std::move(why));
    });
  }

  void finish_connect(error_code ec, std::string why = {}) {
    if (!connect_done_) return;
    if (ec) {
      shut();
    } else {
      tcp().expires_never();
      open_ = true;
    }
    auto done = std::move(connect_done_);
    connect_done_ = nullptr;
    done(ec, std::move(why));
  }

  void finish_exchange(error_code ec, bool stale) {
    if (!exchange_done_) return;
    Response response;
    if (ec) {
      shut();
    } else {
      tcp().expires_never();
      reusable_ = parser_->keep_alive();
      response = parser_->release();
    }
    parser_.reset();
    request_.reset();
    auto done = std::move(exchange_done_);
    exchange_done_ = nullptr;
    done(ec, std::move(response), stale);
  }

  void shut() {
    open_ = false;
    reusable_ = false;
    closed_ = true;
    resolver_.cancel();
    resolve_timer_.cancel();
    error_code ignored;
    // No TLS close_notify: the pool closes a connection that failed or that nobody needs, and
    // neither case is worth a round trip.
    tcp().socket().close(ignored);
  }

  asio::strand<asio::io_context::executor_type> strand_;
  tcp::resolver resolver_;
  asio::steady_timer resolve_timer_;
  const Endpoint endpoint_;
  std::shared_ptr<ssl::context> tls_context_;  // outlives the stream that uses it
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::shared_ptr<const Request> request_;
  std::function<void(error_code, std::string)> connect_done_;
  std::function<void(error_code, Response, bool)> exchange_done_;
  bool closed_ = false;
  bool resolve_timed_out_ = false;
  std::atomic<bool> open_{false};
  std::atomic<bool> reusable_{false};
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The pool's shared state: request() and stats() lock `mu`; everything asynchronous holds a
// shared_ptr to it, so the HttpPool can go away with requests in flight.

struct HttpPool::State : std::enable_shared_from_this<HttpPool::State> {
  State(asio::io_context& i, HttpPoolOptions o)
      : io(i), options(std::move(o)), strand(asio::make_strand(i)), tick(strand) {
    if (!options.endpoint.tls) return;
    tls = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION);
    tls->set_verify_mode(ssl::verify_peer);
    error_code ec;
    if (options.ca_file.empty()) {
      tls->set_default_verify_paths(ec);
    } else {
      tls->load_verify_file(options.ca_file, ec);
    }
    if (ec) {
      setup_error = ec;
      setup_why =
          options.ca_file.empty()
              ? fmt::format("cannot load the system's CA certificates: {}", ec.message())
              : fmt::format("cannot load the CA file {}: {}", options.ca_file, ec.message());
      counters.last_error = setup_why;
    }
  }

  struct Call {
    std::shared_ptr<const Request> request;
    Clock::time_point deadline;
    Done done;
    bool retried = false;
  };

  struct Waiter {
    std::uint64_t id;
    Call call;
    std::shared_ptr<asio::steady_timer> timer;  // min(its `wait`, its deadline)
  };

  asio::io_context& io;
  const HttpPoolOptions options;
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer tick;
  std::shared_ptr<ssl::context> tls;
  error_code setup_error;  // the CA file could not be read: every request fails with it
  std::string setup_why;

  mutable std::mutex mu;
  std::vector<std::shared_ptr<Connection>> idle;  // most recently used last
  std::unordered_set<std::shared_ptr<Connection>> busy;  // so that stop() can close them
  std::unordered_set<std::shared_ptr<Connection>> connecting;
  std::size_t open = 0;  // connected: idle or busy
  std::deque<Waiter> waiters;
  std::uint64_t next_waiter = 0;
  bool stopped = false;
  Clock::time_point next_attempt{};  // reconnect backoff
  std::chrono::milliseconds backoff{100};
  error_code last_connect_error;
  std::string last_connect_why;  // in words, for stats().last_error
  HttpPoolStats counters;

  // Hands `done` its result on the io_context, never inside the caller's frame.
  void answer(Done done, error_code ec, HttpResponse response = {}) {
    asio::post(io, [done = std::move(done), ec, r = std::move(response)]() mutable {
      done(ec, std::move(r));
    });
  }

  // With mu held: counts the answer, then posts it.
  void answer_locked(Call& call, error_code ec, std::string why = {}, HttpResponse response = {}) {
    ++counters.requests;
    if (ec) {
      ++counters.failures;
      counters.last_error = why.empty() ? ec.message() : std::move(why);
    } else {
      counters.reachable = true;
      counters.last_error.clear();
    }
    answer(std::move(call.done), ec, std::move(response));
  }

  // With mu held: opens a connection if max and the backoff allow.
  void maybe_connect_locked() {
    if (stopped || open + connecting.size() >= options.max || Clock::now() < next_attempt) return;
    auto c = std::make_shared<Connection>(io, tls, options.endpoint);
    connecting.insert(c);
    // The connection keeps this callback until it connects: a weak reference to it, or the
    // two would keep each other alive if the io_context is destroyed with the connect pending.
    c->connect(options.connect_timeout,
               [self = shared_from_this(), weak = std::weak_ptr<Connection>(c)](
                   error_code ec, std::string why) {
                 if (auto c = weak.lock()) self->connected(c, ec, std::move(why));
               });
  }

  // With mu held: a failed connect moves the backoff and the health.
  void connect_failed_locked(error_code ec, const std::string& why) {
    ++counters.connect_failures;
    counters.reachable = false;
    last_connect_why = why.empty() ? fmt::format("cannot connect to {}: {}",
                                                 options.endpoint.to_string(), ec.message())
                                   : why;
    counters.last_error = last_connect_why;
    last_connect_error = ec;
    next_attempt = Clock::now() + backoff;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }

  void connect_succeeded_locked() {
    ++counters.connects;
    counters.reachable = true;
    counters.last_error.clear();
    backoff = std::chrono::milliseconds(100);
    next_attempt = {};
  }

  void connected(const std::shared_ptr<Connection>& c, error_code ec, std::string why) {
    std::lock_guard lock(mu);
    connecting.erase(c);
    if (stopped) {
      if (!ec) c->close();
      return;
    }
    if (ec) {
      connect_failed_locked(ec, why);
      // The oldest waiter was waiting for a connection like this one: tell it why now rather
      // than at its deadline; all of them when nothing else can serve them.
      const bool hopeless = open == 0 && connecting.empty();
      while (!waiters.empty()) {
        Waiter w = std::move(waiters.front());
        waiters.pop_front();
        cancel_timer(w.timer);
        answer_locked(w.call, ec, last_connect_why);
        if (!hopeless) break;
      }
      return;
    }
    connect_succeeded_locked();
    ++open;
    give_locked(c);
  }

  void cancel_timer(const std::shared_ptr<asio::steady_timer>& t) {
    // On the strand (timers are not thread-safe), so that a stopping daemon's io_context is
    // not kept busy until `wait` runs out.
    asio::post(strand, [t] { t->cancel(); });
  }

  // With mu held: a free connection goes to the oldest waiter, or becomes idle.
  void give_locked(const std::shared_ptr<Connection>& c) {
    if (!waiters.empty()) {
      Waiter w = std::move(waiters.front());
      waiters.pop_front();
      cancel_timer(w.timer);
      busy.insert(c);
      run(c, std::move(w.call));  // posts: nothing runs under mu
      return;
    }
    c->idle_since = Clock::now();
    idle.push_back(c);
  }

  void run(const std::shared_ptr<Connection>& c, Call call) {
    auto request = call.request;
    const auto deadline = call.deadline;
    // Weak, as in maybe_connect_locked(): the connection holds this callback. It calls it
    // from itself, so the reference is alive then.
    c->exchange(std::move(request), deadline,
                [self = shared_from_this(), weak = std::weak_ptr<Connection>(c),
                 call = std::move(call)](error_code ec, Response response, bool stale) mutable {
                  if (auto c = weak.lock())
                    self->finished(c, std::move(call), ec, std::move(response), stale);
                });
  }

  void finished(const std::shared_ptr<Connection>& c, Call call, error_code ec,
                Response response, bool stale) {
    std::lock_guard lock(mu);
    busy.erase(c);
    // Beast reads any HTTP/x.y; only 1.0 and 1.1 are understood here.
    const bool understood = ec || response.version() == 11 || response.version() == 10;
    const bool keep = !ec && understood && !stopped && c->reusable() && c->is_open();
    if (keep) {
      ++c->uses;
      give_locked(c);
    } else {
      --open;
      c->close();
    }
    if (stopped) return answer_locked(call, make_error(HttpErrc::stopped));
    if (ec && stale && c->uses > 0 && !call.retried && Clock::now() < call.deadline) {
      // The keep-alive race: the server closed this connection while it was idle here. The
      // request never reached it, so it goes once more on a connection opened for it.
      call.retried = true;
      return retry_locked(std::move(call));
    }
    if (!keep && !waiters.empty()) maybe_connect_locked();  // replace it for them
    if (ec == beast::error::timeout) return answer_locked(call, make_error(HttpErrc::timeout));
    if (ec && ec.category() == make_error_code(http::error::body_limit).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return answer_locked(call, make_error(HttpErrc::bad_response),
                           fmt::format("{} sent a response that could not be read: {}",
                                       options.endpoint.to_string(), ec.message()));
    }
    if (ec) return answer_locked(call, ec);
    if (!understood) {
      return answer_locked(call, make_error(HttpErrc::bad_response),
                           fmt::format("{} answered with HTTP version {}.{}",
                                       options.endpoint.to_string(), response.version() / 10,
                                       response.version() % 10));
    }
    answer_locked(call, {}, {}, to_response(std::move(response)));
  }

  // With mu held: sends `call` on a connection of its own (taking the slot of the one that
  // just broke), within what is left of its timeout.
  void retry_locked(Call call) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        call.deadline - Clock::now());
    auto c = std::make_shared<Connection>(io, tls, options.endpoint);
    connecting.insert(c);
    c->connect(std::min(options.connect_timeout, std::max(left, std::chrono::milliseconds(1))),
               [self = shared_from_this(), weak = std::weak_ptr<Connection>(c),
                call = std::move(call)](error_code ec, std::string why) mutable {
                 auto c = weak.lock();
                 if (!c) return;
                 std::lock_guard l(self->mu);
                 self->connecting.erase(c);
                 if (self->stopped) {
                   c->close();
                   return self->answer_locked(call, make_error(HttpErrc::stopped));
                 }
                 if (ec) {
                   self->connect_failed_locked(ec, why);
                   if (ec == beast::error::timeout) ec = make_error(HttpErrc::timeout);
                   return self->answer_locked(call, ec, self->last_connect_why);
                 }
                 self->connect_succeeded_locked();
                 ++self->open;
                 self->busy.insert(c);
                 self->run(c, std::move(call));
               });
  }

  void request(HttpRequest in, std::chrono::milliseconds timeout, Done done) {
    auto out = std::make_shared<Request>();
    const auto verb = http::string_to_verb(in.method);
    if (verb == http::verb::unknown) {
      out->method_string(in.method);
    } else {
      out->method(verb);
    }
    out->target(in.target);
    out->version(11);
    for (auto& [name, value] : in.headers) out->insert(name, value);
    out->body() = std::move(in.body);
    out->keep_alive(true);
    out->prepare_payload();
    Call call{std::move(out), Clock::now() + timeout, std::move(done)};

    std::lock_guard lock(mu);
    if (stopped) return answer_locked(call, make_error(HttpErrc::stopped));
    if (setup_error) return answer_locked(call, setup_error, setup_why);
    if (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      busy.insert(c);
      return run(c, std::move(call));
    }
    // The endpoint is down (no connection, and the last attempt failed recently): fail fast
    // rather than queue requests that nothing will serve.
    if (open == 0 && connecting.empty() && Clock::now() < next_attempt) {
      return answer_locked(call, last_connect_error, last_connect_why);
    }
    if (waiters.size() >= options.max_waiters) {
      return answer_locked(call, make_error(HttpErrc::pool_full));
    }
    // At max, a waiter gives up after `wait`; otherwise it waits for a connection being opened,
    // which its own timeout bounds.
    const bool at_max = open + connecting.size() >= options.max;
    auto expiry = call.deadline;
    auto why = HttpErrc::timeout;
    if (at_max && Clock::now() + options.wait < call.deadline) {
      expiry = Clock::now() + options.wait;
      why = HttpErrc::pool_timeout;
    }
    // The timer is only touched here (under mu) and by its own handler; a waiter served
    // earlier is just gone from the queue when it fires.
    auto timer = std::make_shared<asio::steady_timer>(strand, expiry);
    const std::uint64_t id = ++next_waiter;
    waiters.push_back({id, std::move(call), timer});
    timer->async_wait([self = shared_from_this(), id, why, timer](error_code ec) {
      if (ec) return;
      std::lock_guard l(self->mu);
      auto it = std::find_if(self->waiters.begin(), self->waiters.end(),
                             [id](const Waiter& w) { return w.id == id; });
      if (it == self->waiters.end()) return;
      Call c = std::move(it->call);
      self->waiters.erase(it);
      self->answer_locked(c, make_error(why));
    });
    // Grown on demand: only for waiters that the connections already being opened (say, the
    // first `min` at start) will not serve.
    if (connecting.size() < waiters.size()) maybe_connect_locked();
  }

  // Every 100 ms: refill to `min`, close idle connections beyond it after idle_timeout.
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
    if (stopped || setup_error) return;
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
    while (open + connecting.size() < options.min && now >= next_attempt) {
      const std::size_t before = connecting.size();
      maybe_connect_locked();
      if (connecting.size() == before) break;
    }
  }

  void stop() {
    std::lock_guard lock(mu);
    if (stopped) return;
    stopped = true;
    asio::post(strand, [self = shared_from_this()] { self->tick.cancel(); });
    for (auto& c : idle) c->close();
    open -= idle.size();
    idle.clear();
    // Their exchanges fail, and finished() answers them with `stopped`.
    for (auto& c : busy) c->close();
    for (auto& c : connecting) c->close();
    // The connections' own handlers keep them alive until they end; the pool lets go now, so
    // that nothing here outlives an io_context destroyed with those handlers pending.
    busy.clear();
    connecting.clear();
    for (auto& w : waiters) {
      cancel_timer(w.timer);
      answer_locked(w.call, make_error(HttpErrc::stopped));
    }
    waiters.clear();
  }
};

HttpPool::HttpPool(asio::io_context& io, HttpPoolOptions options)
    : state_(std::make_shared<State>(io, std::move(options))) {}

HttpPool::~HttpPool() {
  stop();
}

void HttpPool::start() {
  asio::post(state_->strand, [s = state_] {
    s->maintain();
    s->do_tick();
  });
}

void HttpPool::stop() {
  state_->stop();
}

void HttpPool::request(HttpRequest request, std::chrono::milliseconds timeout,
                       std::function<void(error_code, HttpResponse)> done) {
  state_->request(std::move(request), timeout, std::move(done));
}

HttpPoolStats HttpPool::stats() const {
  std::lock_guard lock(state_->mu);
  HttpPoolStats s = state_->counters;
  s.open = state_->open;
  s.idle = state_->idle.size();
  s.waiting = state_->waiters.size();
  return s;
}

}  // namespace heartbeatd::transport::aws
