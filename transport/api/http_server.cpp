#include "transport/api/http_server.h"

#include <netinet/in.h>
#include <pthread.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "base/log.h"
#include "transport/api/socket_dir.h"

namespace heartbeatd::transport {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using unix_stream = asio::local::stream_protocol;
// Beast's ssl_stream, not asio's: it coalesces a response's buffers (status line, fields,
// body) into one TLS record per write, where asio's would write one record (and one
// syscall) per buffer.
using TlsStream = boost::beast::ssl_stream<tcp::socket>;

namespace {

// How long a connection that is being closed after an error may keep sending before we
// drop it: long enough for the client to read our response instead of a reset.
constexpr std::chrono::milliseconds kLingerTime{1000};

// Answers to a pipelining client's requests that already sit in the read buffer are written
// together, up to this many answers or bytes; a body above kInlineBody is written from the
// answer itself rather than copied beside the heads, and ends a run.
constexpr std::size_t kMaxCoalesced = 64;
constexpr std::size_t kCoalesceBytes = 64 << 10;
constexpr std::size_t kInlineBody = 4 << 10;

class Connection {
 public:
  virtual ~Connection() = default;
  virtual void shut() = 0;  // posts a close to the connection's strand
};

}  // namespace

struct HttpServer::State {
  asio::io_context& io;
  const Router& router;
  HttpServerLimits limits;

  std::mutex mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> live;  // guarded by mu
  std::atomic<std::size_t> rejecting{0};  // connections being told 503
  std::atomic<bool> stopping{false};

  // Which connections are served. Accepts on both listeners (their own strands) and ends of
  // connections (any thread) change several counters at once, so one mutex guards them all:
  // the limits then hold exactly, at the cost of one uncontended lock per connection.
  std::mutex admit_mu;
  std::size_t tcp_serving = 0;   // guarded by admit_mu
  std::size_t unix_serving = 0;  // guarded by admit_mu
  // Connections being served per client (Caller::client()); an entry leaves at zero, so the
  // map never holds more entries than connections being served.
  std::unordered_map<std::string, std::size_t> per_client;  // guarded by admit_mu
  std::atomic<std::size_t> serving{0};  // tcp_serving + unix_serving, for connections()
  bool has_unix = false;                // set by listen_unix(), before start()

  std::vector<std::function<void()>> starters;  // begin accepting, one per listener
  std::vector<std::function<void()>> closers;   // close each acceptor
  std::vector<std::string> endpoints;
  std::string unix_path;
  std::optional<std::pair<dev_t, ino_t>> unix_inode;

  std::mutex tls_mu;
  std::shared_ptr<asio::ssl::context> tls;  // guarded by tls_mu; for new TLS connections

  // The server's own loops (owned by HttpServer::Loops, set before start()); none: each
  // connection gets a strand of io.
  std::vector<asio::io_context*> loops;
  std::atomic<std::size_t> next_loop{0};

  State(asio::io_context& i, const Router& r, HttpServerLimits l) : io(i), router(r), limits(l) {}

  // Where the next accepted connection lives: the next loop in turn, or a strand of io.
  asio::any_io_executor executor_for_connection() {
    if (loops.empty()) return asio::make_strand(io);
    return loops[next_loop.fetch_add(1, std::memory_order_relaxed) % loops.size()]
        ->get_executor();
  }

  void add(Connection* c, std::weak_ptr<Connection> w) {
    std::lock_guard lock(mu);
    live.emplace(c, std::move(w));
  }
  void remove(Connection* c) {
    std::lock_guard lock(mu);
    live.erase(c);
  }

  // A connection's place among the served ones, given back by release() when it ends.
  struct Admission {
    bool admitted = false;
    bool tcp = false;
    std::string client;   // Caller::client()
    std::string refusal;  // not admitted: the limit that was hit, for the 503 and the log
  };

  // The checks run from the narrowest limit to the widest, so the message names the one
  // the client can do something about: its own share first.
  Admission admit(bool tcp, const Caller& caller) {
    Admission a{false, tcp, caller.client(), {}};
    const std::size_t tcp_allowance =
        has_unix ? limits.max_connections -
                       std::min(limits.unix_reserved_connections, limits.max_connections)
                 : limits.max_connections;
    std::lock_guard lock(admit_mu);
    const auto it = per_client.find(a.client);
    const std::size_t mine = it == per_client.end() ? 0 : it->second;
    if (mine >= limits.max_connections_per_client) {
      a.refusal = fmt::format("too many connections from {} (api.max_connections_per_client: "
                              "{}); retry later",
                              a.client, limits.max_connections_per_client);
    } else if (tcp && tcp_serving >= tcp_allowance) {
      a.refusal = fmt::format("too many TCP connections (api.max_connections: {}, of which "
                              "api.unix_reserved_connections: {} are kept for the Unix "
                              "socket); retry later",
                              limits.max_connections, limits.max_connections - tcp_allowance);
    } else if (tcp_serving + unix_serving >= limits.max_connections) {
      a.refusal = fmt::format("too many connections (api.max_connections: {}); retry later",
                              limits.max_connections);
    } else {
      a.admitted = true;
      ++per_client[a.client];
      ++(tcp ? tcp_serving : unix_serving);
      serving.fetch_add(1);
    }
    return a;
  }

  void release(const Admission& a) {
    if (!a.admitted) return;
    std::lock_guard lock(admit_mu);
    if (auto it = per_client.find(a.client); it != per_client.end() && --it->second == 0) {
      per_client.erase(it);
    }
    --(a.tcp ? tcp_serving : unix_serving);
    serving.fetch_sub(1);
  }

  std::shared_ptr<asio::ssl::context> tls_context() {
    std::lock_guard lock(tls_mu);
    return tls;
  }
};

namespace {

// Who is at the other end: the source address of a TCP peer, the credentials of a Unix one
// (SO_PEERCRED: what the kernel recorded at connect(), which the peer cannot forge).
Caller identify(tcp::socket& socket) {
  Caller c;
  c.via = Caller::Via::tcp;
  error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  if (!ec) {
    const auto a = remote.address();
    // An IPv4 peer on a dual-stack socket is one client whichever way it is written.
    c.address = a.is_v6() && a.to_v6().is_v4_mapped()
                    ? asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string()
                    : a.to_string();
  }
  return c;
}

Caller identify(unix_stream::socket& socket) {
  Caller c;
  c.via = Caller::Via::unix_socket;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    c.uid = cred.uid;
    c.gid = cred.gid;
  }
  return c;
}

// A connection's byte stream: a plain socket (TCP, Unix) or TLS over TCP. socket_of() is the
// socket underneath, for what TLS does not change (peer identity, cancel, close, options).
template <class Stream>
constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

template <class Stream>
auto& socket_of(Stream& s) {
  if constexpr (kTls<Stream>) {
    return s.next_layer();
  } else {
    return s;
  }
}

template <class Stream>
class Session final : public Connection, public std::enable_shared_from_this<Session<Stream>> {
 public:
  using Socket = std::remove_reference_t<decltype(socket_of(std::declval<Stream&>()))>;

  // `tls`: the context of a TLS connection (kept for the connection's life, so a reload that
  // swaps the server's context leaves this one alone); null for plain streams. Not admitted:
  // the connection is told why (503) and closed.
  Session(Socket socket, std::shared_ptr<asio::ssl::context> tls,
          std::shared_ptr<HttpServer::State> state, Caller caller,
          HttpServer::State::Admission admission)
      : tls_(std::move(tls)),
        io_(open_stream(std::move(socket), tls_.get())),
        timer_(io_.get_executor()),
        state_(std::move(state)),
        reject_(!admission.admitted),
        caller_(std::move(caller)),
        admission_(std::move(admission)) {}

  ~Session() override {
    state_->remove(this);
    if (reject_) {
      state_->rejecting.fetch_sub(1);
    } else {
      state_->release(admission_);
    }
  }

  void run() {
    caller_.tls = kTls<Stream>;
    state_->add(this, this->weak_from_this());
    asio::dispatch(io_.get_executor(), [self = this->shared_from_this()] {
      self->start_checks();
      if constexpr (kTls<Stream>) {
        self->do_handshake();
      } else {
        self->begin();
      }
    });
  }

  void shut() override {
    asio::post(io_.get_executor(), [self = this->shared_from_this()] { self->close(); });
  }

 private:
  enum class Phase { handshaking, reading, waiting, writing, lingering, streaming };
  using Clock = std::chrono::steady_clock;

  static Stream open_stream(Socket socket, asio::ssl::context* tls) {
    if constexpr (kTls<Stream>) {
      return Stream(std::move(socket), *tls);
    } else {
      (void)tls;
      return socket;
    }
  }

  Socket& socket() { return socket_of(io_); }

  // TLS: before anything HTTP. A failed handshake (plain HTTP, garbage, an old protocol
  // version, no or a foreign client certificate) only closes this connection.
  void do_handshake() {
    enter(Phase::handshaking);
    io_.async_handshake(asio::ssl::stream_base::server,
                        [self = this->shared_from_this()](error_code ec) {
                          if (self->closed_) return;
                          if (ec) {
                            log::debug("TLS handshake with {} failed: {}",
                                       self->caller_.client(), ec.message());
                            return self->close();
                          }
                          self->begin();
                        });
  }

  void begin() {
    if (reject_) {
      Response res =
          error_response(http::status::service_unavailable, "overloaded", admission_.refusal);
      res.set(http::field::retry_after, "1");
      return send_unrouted(std::move(res));
    }
    do_read_request();
  }

  // One timer per connection ticks every check_period and compares the phase's age with its
  // limit, instead of arming a timer per request: a keep-alive request then costs no timer
  // syscalls. Limits therefore hold to within one period (a quarter of the shorter limit).
  void start_checks() {
    const auto& l = state_->limits;
    period_ = std::clamp(std::min({l.read_timeout, l.idle_timeout, l.stream_keepalive}) / 4,
                         std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
    timer_.expires_after(period_);
    do_check();
  }

  void do_check() {
    timer_.async_wait([self = this->shared_from_this()](error_code ec) {
      if (ec || self->closed_) return;
      self->check(Clock::now());
      if (self->closed_) return;
      self->timer_.expires_at(self->timer_.expiry() + self->period_);
      self->do_check();
    });
  }

  void check(Clock::time_point now) {
    const auto& l = state_->limits;
    switch (phase_) {
      case Phase::handshaking:
        if (now - since_ >= l.read_timeout) {
          log::debug("TLS handshake with {} not done within api.read_timeout: closed",
                     caller_.client());
          close();
        }
        break;
      case Phase::reading: {
        const bool started = buffer_.size() > 0 || (parser_ && parser_->got_some());
        if (!started) {
          if (now - since_ >= l.idle_timeout) close();  // idle keep-alive: close quietly
        } else if (!request_seen_) {
          request_seen_ = now;
        } else if (now - *request_seen_ >= l.read_timeout) {
          // Stalled mid-request: abort the read; on_read answers 408.
          timed_out_ = true;
          error_code ignored;
          socket().cancel(ignored);
        }
        break;
      }
      case Phase::waiting:
        // Earlier answers still being written after read_timeout: the client stopped reading.
        if (flushing_ && now - since_ >= l.read_timeout) {
          close();
          break;
        }
        // An asynchronous route's backend bounds its own time (pool wait, command timeout);
        // this is the server's guarantee that a connection never waits forever regardless.
        if (now - since_ >= l.read_timeout) {
          ++answer_seq_;  // a late answer is dropped
          state_->router.count_unrouted(http::status::gateway_timeout);
          send(error_response(http::status::gateway_timeout, "backend_timeout",
                              "the presence backend did not answer within api.read_timeout"),
               false);
        }
        break;
      case Phase::writing:
        if (now - since_ >= l.read_timeout) close();  // client does not read its response
        break;
      case Phase::lingering:
        if (now - since_ >= kLingerTime) close();
        break;
      case Phase::streaming:
        if (writing_) {
          if (now - write_started_ >= l.read_timeout) close();  // the client stopped reading
        } else if (now - last_write_ >= l.stream_keepalive) {
          pending_ += ": keepalive\n\n";
          pump();
        }
        break;
    }
  }

  void enter(Phase phase) {
    phase_ = phase;
    since_ = Clock::now();
  }

  void do_read_request() {
    if (closed_) return;
    if (state_->stopping) return close();
    parser_.emplace();
    parser_->body_limit(state_->limits.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(state_->limits.max_header_bytes));
    timed_out_ = false;
    request_seen_.reset();
    enter(Phase::reading);
    if (out_.empty()) return start_read();
    // Answers wait in out_ (a pipelining client): the next request comes from the buffer
    // alone, and when it holds no whole request the answers go out before any read.
    error_code ec;
    while (!parser_->is_done() && buffer_.size() > 0) {
      const std::size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec) break;
    }
    if (parser_->is_done()) return on_read({});
    if (ec && ec != http::error::need_more) return on_read(ec);
    coalesced_ = 0;
    enter(Phase::writing);
    asio::async_write(io_, asio::buffer(out_),
                      [self = this->shared_from_this()](error_code e, std::size_t) {
                        if (e) return self->close();
                        self->out_.clear();
                        self->enter(Phase::reading);
                        self->start_read();
                      });
  }

  void start_read() {
    http::async_read(
        io_, buffer_, *parser_,
        [self = this->shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (closed_) return;
    if (timed_out_) {
      return send_unrouted(error_response(http::status::request_timeout, "request_timeout",
                                          "request not received within api.read_timeout"));
    }
    if (ec == http::error::end_of_stream) return close();
    if (ec == http::error::body_limit) {
      return send_unrouted(error_response(http::status::payload_too_large, "payload_too_large",
                                 "request body exceeds api.max_body_bytes (" +
                                     std::to_string(state_->limits.max_body_bytes) + " bytes)"));
    }
    if (ec == http::error::header_limit) {
      return send_unrouted(error_response(http::status::request_header_fields_too_large, "header_too_large",
                                 "request header exceeds api.max_header_bytes (" +
                                     std::to_string(state_->limits.max_header_bytes) + " bytes)"));
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_method).category()) {
      return send_unrouted(error_response(http::status::bad_request, "bad_request",
                                          "malformed HTTP request: " + ec.message()));
    }
    if (ec) return close();  // reset, aborted by stop(), ...

    Request req = parser_->release();
    const unsigned version = req.version() == 10 ? 10 : 11;
    const bool keep_alive = req.keep_alive();
    const std::uint64_t seq = ++answer_seq_;
    Routed routed = state_->router.dispatch(
        req,
        [weak = this->weak_from_this(), seq, version, keep_alive](Response res) {
          // From any thread, possibly before dispatch() returned: back onto the strand.
          if (auto self = weak.lock()) {
            auto exec = self->io_.get_executor();
            asio::post(exec, [self = std::move(self), seq, version, keep_alive,
                              res = std::move(res)]() mutable {
              self->on_answer(seq, version, keep_alive, std::move(res));
            });
          }
        },
        caller_);
    if (routed.deferred) {
      enter(Phase::waiting);
      // Answers to earlier pipelined requests go out while this one waits.
      if (!out_.empty()) flush_while_waiting();
      return;
    }
    if (routed.stream) return start_stream(std::move(routed.stream), req.version());
    Response& res = routed.response;
    res.version(version);
    send(std::move(res), keep_alive && !state_->stopping);
  }

  void on_answer(std::uint64_t seq, unsigned version, bool keep_alive, Response res) {
    if (closed_ || phase_ != Phase::waiting || seq != answer_seq_) return;
    res.version(version);
    send(std::move(res), keep_alive && !state_->stopping);
  }

  void send_unrouted(Response res) {
    state_->router.count_unrouted(res.result());
    send(std::move(res), false);
  }

  // The connection now carries the stream: a head without a length (the body ends with the
  // connection), then each batch the stream hands over, one write at a time.
  void start_stream(std::shared_ptr<ResponseStream> stream, unsigned version) {
    stream_ = std::move(stream);
    if constexpr (std::is_same_v<Socket, tcp::socket>) {
      // A client that vanished (host down, cable cut) leaves the keepalives unacknowledged:
      // the kernel gives up on them after read_timeout instead of ~15 minutes of retries.
      const unsigned ms = static_cast<unsigned>(state_->limits.read_timeout.count());
      setsockopt(socket().native_handle(), IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
    }
    enter(Phase::streaming);
    last_write_ = Clock::now();
    pending_ = std::exchange(out_, {});  // answers to earlier pipelined requests come first
    fmt::format_to(std::back_inserter(pending_),
                   "HTTP/1.{} 200 OK\r\nContent-Type: {}\r\nCache-Control: no-cache\r\n"
                   "Connection: close\r\n\r\n",
                   version == 10 ? 0 : 1, stream_->content_type());
    stream_->attach([weak = this->weak_from_this()] {
      if (auto self = weak.lock()) {
        asio::post(self->io_.get_executor(), [self] { self->pump(); });
      }
    });
    pump();
    // Anything the client sends now is read and dropped; its end (or an error) closes.
    do_drain();
  }

  void pump() {
    if (closed_ || !stream_ || writing_) return;
    if (!stream_ended_) stream_ended_ = !stream_->take(pending_);
    if (pending_.empty()) {
      if (stream_ended_) linger_close();
      return;
    }
    writing_ = true;
    sending_.swap(pending_);
    pending_.clear();
    write_started_ = Clock::now();
    asio::async_write(io_, asio::buffer(sending_),
                      [self = this->shared_from_this()](error_code ec, std::size_t) {
                        self->writing_ = false;
                        self->last_write_ = Clock::now();
                        if (ec) return self->close();
                        self->sending_.clear();
                        self->pump();
                      });
  }

  // The answer's head (and its body, when small) is written into out_ by append_head(), not
  // by Beast's serializer, so that answers can share a write: while the read buffer already
  // holds more of a pipelining client's bytes, a small keep-alive answer waits in out_ and the
  // next request is parsed (do_read_request() writes out_ once no whole request is left).
  void send(Response res, bool keep_alive) {
    if (closed_) return;
    if (flushing_) {  // earlier answers are being written: this one follows them
      stashed_.emplace(std::move(res), keep_alive);
      return;
    }
    response_ = std::move(res);
    response_.keep_alive(keep_alive);
    response_.prepare_payload();
    // A 304 stands for the 200 the client holds: "Content-Length: 0" would misstate that
    // representation (RFC 9110 8.6), and a 304 never has a body anyway.
    if (response_.result() == http::status::not_modified) {
      response_.erase(http::field::content_length);
    }
    append_head(response_);
    const bool inline_body = response_.body().size() <= kInlineBody;
    if (inline_body) out_.append(response_.body());
    if (keep_alive && inline_body && buffer_.size() > 0 && ++coalesced_ < kMaxCoalesced &&
        out_.size() < kCoalesceBytes) {
      return do_read_request();
    }
    coalesced_ = 0;
    enter(Phase::writing);
    const std::array<asio::const_buffer, 2> buffers{
        asio::buffer(out_), inline_body ? asio::const_buffer() : asio::buffer(response_.body())};
    asio::async_write(io_, buffers,
                      [self = this->shared_from_this(), keep_alive](error_code ec, std::size_t) {
                        if (ec) return self->close();
                        self->out_.clear();
                        if (keep_alive) return self->do_read_request();
                        self->linger_close();
                      });
  }

  // HTTP/1.x: the status line, the fields as the route and prepare_payload() left them, and
  // the blank line.
  void append_head(const Response& r) {
    fmt::format_to(std::back_inserter(out_), "HTTP/1.{} {} ", r.version() == 10 ? 0 : 1,
                   r.result_int());
    out_.append(r.reason());
    out_.append("\r\n");
    for (const auto& field : r) {
      out_.append(field.name_string());
      out_.append(": ");
      out_.append(field.value());
      out_.append("\r\n");
    }
    out_.append("\r\n");
  }

  // While an asynchronous route works: the answers to the requests before it, then (if it
  // has come meanwhile) its own.
  void flush_while_waiting() {
    flushing_ = true;
    coalesced_ = 0;
    asio::async_write(io_, asio::buffer(out_),
                      [self = this->shared_from_this()](error_code ec, std::size_t) {
                        self->flushing_ = false;
                        if (ec) return self->close();
                        self->out_.clear();
                        if (auto stashed = std::exchange(self->stashed_, std::nullopt)) {
                          self->send(std::move(stashed->first), stashed->second);
                        }
                      });
  }

  // After an error response or the end of a stream: stop sending, read and drop what the
  // client still sends for a moment, so that the kernel does not answer its unread bytes
  // with a reset that would destroy our response before the client reads it.
  //
  // TLS: a close_notify, then the client's (what it still sends is read and dropped on the
  // way), bounded by the same linger time. After a stream the drain's read is already
  // outstanding and a TLS shutdown cannot run beside it: the TCP shutdown alone ends it.
  void linger_close() {
    const bool draining = phase_ == Phase::streaming;  // start_stream() began the drain
    enter(Phase::lingering);
    if constexpr (kTls<Stream>) {
      if (!draining) {
        return io_.async_shutdown(
            [self = this->shared_from_this()](error_code) { self->close(); });
      }
    }
    error_code ignored;
    socket().shutdown(asio::socket_base::shutdown_send, ignored);
    if (!draining) do_drain();
  }

  void do_drain() {
    io_.async_read_some(asio::buffer(drain_),
                            [self = this->shared_from_this()](error_code ec, std::size_t) {
                              if (ec) return self->close();
                              self->do_drain();
                            });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    error_code ignored;
    socket().close(ignored);
    if (stream_) std::exchange(stream_, nullptr)->detach();
  }

  std::shared_ptr<asio::ssl::context> tls_;  // before io_: it must outlive it
  Stream io_;  // the connection's bytes: a socket, or TLS over one
  asio::steady_timer timer_;
  std::shared_ptr<HttpServer::State> state_;
  const bool reject_;
  Caller caller_;
  HttpServer::State::Admission admission_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Response response_;
  std::string out_;            // answers' bytes not yet written (see send())
  std::size_t coalesced_ = 0;  // answers in out_ waiting for the next request's
  bool flushing_ = false;      // out_ being written while an asynchronous route works
  std::optional<std::pair<Response, bool>> stashed_;  // its answer, if it came meanwhile
  Phase phase_ = Phase::reading;
  Clock::time_point since_ = Clock::now();         // when phase_ began
  std::optional<Clock::time_point> request_seen_;  // first check that saw request bytes
  std::chrono::milliseconds period_{1000};
  bool timed_out_ = false;
  bool closed_ = false;
  std::uint64_t answer_seq_ = 0;  // the request whose asynchronous answer is awaited
  std::array<char, 16384> drain_{};
  // Streaming (after start_stream()).
  std::shared_ptr<ResponseStream> stream_;
  std::string pending_;  // taken from the stream, not yet written
  std::string sending_;  // being written
  bool writing_ = false;
  bool stream_ended_ = false;
  Clock::time_point write_started_;
  Clock::time_point last_write_;
};

template <class Protocol>
class Listener final : public std::enable_shared_from_this<Listener<Protocol>> {
 public:
  using Acceptor = typename Protocol::acceptor;

  Listener(Acceptor acceptor, std::shared_ptr<HttpServer::State> state, bool tls = false)
      : acceptor_(std::move(acceptor)),
        backoff_(acceptor_.get_executor()),
        state_(std::move(state)),
        tls_(tls) {}

  void start() { do_accept(); }

  void close() {
    asio::post(acceptor_.get_executor(), [self = this->shared_from_this()] {
      error_code ignored;
      self->acceptor_.close(ignored);
      self->backoff_.cancel();
    });
  }

 private:
  void do_accept() {
    acceptor_.async_accept(
        state_->executor_for_connection(),
        [self = this->shared_from_this()](error_code ec, typename Protocol::socket socket) {
          self->on_accept(ec, std::move(socket));
        });
  }

  void on_accept(error_code ec, typename Protocol::socket socket) {
    if (ec == asio::error::operation_aborted || state_->stopping) return;
    if (ec) {
      // Out of descriptors or memory: wait a little instead of spinning on the error.
      log::warning("accept failed: {}; retrying in 100ms", ec.message());
      backoff_.expires_after(std::chrono::milliseconds(100));
      backoff_.async_wait([self = this->shared_from_this()](error_code e) {
        if (!e) self->do_accept();
      });
      return;
    }
    if constexpr (std::is_same_v<Protocol, tcp>) {
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
    }
    Caller caller = identify(socket);
    auto admission = state_->admit(std::is_same_v<Protocol, tcp>, caller);
    if (!admission.admitted) {
      state_->router.refused(Refusal::over_limit, caller, admission.refusal);
      // Tell the client why, unless even the rejections pile up: then just close.
      if (state_->rejecting.fetch_add(1) >= state_->limits.max_connections) {
        state_->rejecting.fetch_sub(1);
        return do_accept();
      }
    }
    spawn(std::move(socket), std::move(caller), std::move(admission));
    do_accept();
  }

  void spawn(typename Protocol::socket socket, Caller caller,
             HttpServer::State::Admission admission) {
    if constexpr (std::is_same_v<Protocol, tcp>) {
      if (tls_) {
        // The context in force now; a reload after this leaves this connection's alone.
        auto context = state_->tls_context();
        if (!context) {  // never plain on an HTTPS listener: drop it (closes the socket)
          if (admission.admitted) {
            state_->release(admission);
          } else {
            state_->rejecting.fetch_sub(1);
          }
          return;
        }
        std::make_shared<Session<TlsStream>>(std::move(socket), std::move(context), state_,
                                             std::move(caller), std::move(admission))
            ->run();
        return;
      }
    }
    std::make_shared<Session<typename Protocol::socket>>(
        std::move(socket), nullptr, state_, std::move(caller), std::move(admission))
        ->run();
  }

  Acceptor acceptor_;
  asio::steady_timer backoff_;
  std::shared_ptr<HttpServer::State> state_;
  const bool tls_;  // TCP only: every connection is TLS
};

[[noreturn]] void fail_listen(const std::string& where, const std::string& why) {
  throw std::runtime_error("cannot listen on " + where + ": " + why);
}

// A socket file is stale when nothing accepts on it any more.
bool socket_accepts(const std::string& path) {
  asio::io_context io;
  unix_stream::socket probe(io);
  error_code ec;
  probe.connect(unix_stream::endpoint(path), ec);
  return !ec;
}

}  // namespace

struct HttpServer::Loops {
  using Work = asio::executor_work_guard<asio::io_context::executor_type>;
  std::vector<std::unique_ptr<asio::io_context>> contexts;  // fixed at construction
  std::vector<Work> work;  // keeps each loop running while it has no connection; until stop()
  std::vector<std::thread> threads;  // started by start(), joined by join()
};

HttpServer::HttpServer(asio::io_context& io, const Router& router, HttpServerLimits limits,
                       unsigned loops)
    : state_(std::make_shared<State>(io, router, limits)) {
  if (loops == 0) return;
  loops_ = std::make_unique<Loops>();
  for (unsigned i = 0; i < loops; ++i) {
    // One thread runs each: the hint lets Asio skip what only several threads need.
    loops_->contexts.push_back(std::make_unique<asio::io_context>(1));
    loops_->work.emplace_back(loops_->contexts.back()->get_executor());
    state_->loops.push_back(loops_->contexts.back().get());
  }
}

HttpServer::~HttpServer() {
  stop();
  join();
}

void HttpServer::listen_tcp(const std::string& host, std::uint16_t port,
                            std::shared_ptr<asio::ssl::context> tls) {
  const std::string where =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  error_code ec;
  tcp::resolver resolver(state_->io);
  auto results = resolver.resolve(host, std::to_string(port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) fail_listen(where, "cannot resolve host: " + ec.message());
  const tcp::endpoint ep = results.begin()->endpoint();

  // On a strand: accept completions and close() from stop() never run at once.
  tcp::acceptor acceptor(asio::make_strand(state_->io));
  acceptor.open(ep.protocol(), ec);
  if (ec) fail_listen(where, ec.message());
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  acceptor.bind(ep, ec);
  if (ec) fail_listen(where, ec.message());
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail_listen(where, ec.message());
  const auto bound = acceptor.local_endpoint(ec);
  const bool with_tls = tls != nullptr;
  if (with_tls) set_tls_context(std::move(tls));
  state_->endpoints.push_back(
      std::string(with_tls ? "https://" : "") +
      (bound.address().is_v6()
          ? "[" + bound.address().to_string() + "]:" + std::to_string(bound.port())
          : bound.address().to_string() + ":" + std::to_string(bound.port())));
  auto l = std::make_shared<Listener<tcp>>(std::move(acceptor), state_, with_tls);
  state_->starters.push_back([l] { l->start(); });
  state_->closers.push_back([l] { l->close(); });
}

void HttpServer::listen_unix(const std::string& path) {
  const std::string where = "unix:" + path;
  // Before anything is removed or bound in it: nobody else may be able to replace the socket.
  if (auto why = prepare_socket_dir(path)) fail_listen(where, *why);
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) fail_listen(where, "path exists and is not a socket");
    if (socket_accepts(path)) {
      fail_listen(where, "socket is in use by a running process (another heartbeatd?)");
    }
    if (unlink(path.c_str()) != 0) {
      fail_listen(where, std::string("cannot remove stale socket: ") + std::strerror(errno));
    }
    log::info("removed stale socket {} left by a previous run", path);
  }

  error_code ec;
  unix_stream::acceptor acceptor(asio::make_strand(state_->io));
  acceptor.open(unix_stream(), ec);
  if (ec) fail_listen(where, ec.message());
  acceptor.bind(unix_stream::endpoint(path), ec);
  if (ec) fail_listen(where, ec.message());
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail_listen(where, ec.message());
  // Owner and group may connect: local services join the daemon's group to query it.
  if (chmod(path.c_str(), 0660) != 0) {
    fail_listen(where, std::string("cannot chmod 0660: ") + std::strerror(errno));
  }
  if (lstat(path.c_str(), &st) == 0) state_->unix_inode = {st.st_dev, st.st_ino};
  state_->unix_path = path;
  state_->has_unix = true;
  state_->endpoints.push_back(where);
  auto l = std::make_shared<Listener<unix_stream>>(std::move(acceptor), state_);
  state_->starters.push_back([l] { l->start(); });
  state_->closers.push_back([l] { l->close(); });
}

void HttpServer::start() {
  if (loops_ && loops_->threads.empty() && !state_->stopping) {
    for (std::size_t i = 0; i < loops_->contexts.size(); ++i) {
      loops_->threads.emplace_back([io = loops_->contexts[i].get(), i] {
        const std::string name = fmt::format("hb-api-{}", i);
        pthread_setname_np(pthread_self(), name.c_str());
        io->run();
      });
    }
  }
  for (auto& start : state_->starters) start();
}

void HttpServer::stop() {
  if (state_->stopping.exchange(true)) return;
  // Dropping the closures also breaks the State -> Listener -> State reference cycle.
  auto closers = std::move(state_->closers);
  state_->starters.clear();
  for (auto& close : closers) close();
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(state_->mu);
    for (auto& [_, weak] : state_->live) {
      if (auto c = weak.lock()) open.push_back(std::move(c));
    }
  }
  for (auto& c : open) c->shut();
  // Each loop ends once the connections it holds have closed.
  if (loops_) loops_->work.clear();
  if (state_->unix_inode) {
    struct stat st {};
    if (lstat(state_->unix_path.c_str(), &st) == 0 &&
        std::make_pair(st.st_dev, st.st_ino) == *state_->unix_inode) {
      unlink(state_->unix_path.c_str());
    }
  }
}

void HttpServer::join() {
  if (!loops_) return;
  for (auto& t : loops_->threads) {
    if (t.joinable()) t.join();
  }
}

void HttpServer::halt() {
  if (!loops_) return;
  for (auto& io : loops_->contexts) io->stop();
}

void HttpServer::set_tls_context(std::shared_ptr<asio::ssl::context> tls) {
  std::lock_guard lock(state_->tls_mu);
  state_->tls = std::move(tls);
}

std::vector<std::string> HttpServer::endpoints() const {
  return state_->endpoints;
}

std::size_t HttpServer::connections() const {
  return state_->serving.load();
}

std::size_t HttpServer::clients() const {
  std::lock_guard lock(state_->admit_mu);
  return state_->per_client.size();
}

}  // namespace heartbeatd::transport
