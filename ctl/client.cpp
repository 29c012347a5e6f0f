#include "ctl/client.h"

#include <signal.h>

#include <chrono>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "heartbeatd/version.h"

namespace heartbeatd::ctl {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using Socket = asio::generic::stream_protocol::socket;

// A whole non-streamed answer is at most this big (a members list of 10000 is ~1.5 MB).
constexpr std::size_t kMaxBody = 64 << 20;

class Session {
 public:
  explicit Session(const Options& o)
      : o_(o), deadline_(Clock::now() + o.timeout), socket_(io_), signals_(io_) {
    where_ = o.http ? (o.tls.enabled ? "https://" : "http://") + o.http->to_string()
                    : "unix socket " + o.socket_path;
  }

  // HTTPS: the handshake, within the same deadline; the daemon's certificate is checked
  // against --ca-file (or the system's CAs) and the host name or IP address given.
  void handshake() {
    namespace ssl = asio::ssl;
    tls_ctx_.emplace(ssl::context::tls_client);
    auto& ctx = *tls_ctx_;
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    error_code ec;
    if (o_.tls.ca_file.empty()) {
      ctx.set_default_verify_paths(ec);
    } else {
      ctx.load_verify_file(o_.tls.ca_file, ec);
      if (ec) throw Unreachable(fmt::format("--ca-file {}: {}", o_.tls.ca_file, ec.message()));
    }
    if (!o_.tls.cert_file.empty()) {
      ctx.use_certificate_chain_file(o_.tls.cert_file, ec);
      if (ec) throw Unreachable(fmt::format("--cert {}: {}", o_.tls.cert_file, ec.message()));
      ctx.use_private_key_file(o_.tls.key_file, ssl::context::pem, ec);
      if (ec) throw Unreachable(fmt::format("--key {}: {}", o_.tls.key_file, ec.message()));
    }
    ctx.set_verify_mode(ssl::verify_peer);
    tls_.emplace(socket_, ctx);
    tls_->set_verify_callback(ssl::host_name_verification(o_.http->host));
    error_code not_ip;
    asio::ip::make_address(o_.http->host, not_ip);
    if (not_ip) SSL_set_tlsext_host_name(tls_->native_handle(), o_.http->host.c_str());  // SNI
    ec = wait([&](auto h) { tls_->async_handshake(ssl::stream_base::client, h); });
    if (ec == asio::error::timed_out) lost(ec);
    if (ec) {
      throw Unreachable(fmt::format("TLS handshake with {} failed: {}{}", where_, ec.message(),
                                    o_.tls.ca_file.empty() ? " (see --ca-file)" : ""));
    }
  }

  void connect() {
    if (!o_.http) {
      const asio::local::stream_protocol::endpoint ep(o_.socket_path);
      const error_code ec = wait([&](auto h) { socket_.async_connect(ep, h); });
      if (ec) {
        throw Unreachable(fmt::format("cannot connect to the daemon at {}: {} (is heartbeatd "
                                      "running? see --socket)", where_, ec.message()));
      }
      return;
    }
    asio::ip::tcp::resolver::results_type endpoints;
    error_code ec = wait([&](auto h) {
      resolver_.async_resolve(o_.http->host, std::to_string(o_.http->port),
                             [&endpoints, h](error_code e, auto results) mutable {
                               endpoints = std::move(results);
                               h(e);
                             });
    });
    if (ec) throw Unreachable(fmt::format("cannot resolve {}: {}", o_.http->host, ec.message()));
    for (const auto& entry : endpoints) {
      socket_.close();
      ec = wait([&](auto h) { socket_.async_connect(entry.endpoint(), h); });
      if (!ec || ec == asio::error::timed_out) break;
    }
    if (ec) throw Unreachable(fmt::format("cannot connect to the daemon at {}: {}", where_, ec.message()));
    if (o_.tls.enabled) handshake();
  }

  void send(const HttpRequest& r) {
    http::request<http::string_body> req(http::string_to_verb(r.method), r.target, 11);
    req.set(http::field::host, o_.http ? o_.http->to_string() : "localhost");
    req.set(http::field::user_agent, std::string("heartbeatctl/") + kVersion);
    if (o_.command == Command::watch) req.set(http::field::accept, "text/event-stream");
    if (!r.body.empty()) req.set(http::field::content_type, "application/json");
    if (!o_.token.empty()) req.set(http::field::authorization, "Bearer " + o_.token);
    req.body() = r.body;
    req.prepare_payload();
    const error_code ec =
        wait([&](auto h) { on_stream([&](auto& s) { http::async_write(s, req, h); }); });
    if (ec) lost(ec);
  }

  HttpAnswer read_header() {
    parser_.body_limit(boost::none);
    const error_code ec = wait([&](auto h) {
      on_stream([&](auto& s) { http::async_read_header(s, buffer_, parser_, h); });
    });
    if (ec) lost(ec);
    HttpAnswer a;
    a.status = static_cast<int>(parser_.get().result_int());
    a.content_type = std::string(parser_.get()[http::field::content_type]);
    return a;
  }

  // Reads the body into pieces passed to `piece` until it ends (true) or `piece` returns
  // false or a signal arrives (false). Without `bounded`, no deadline.
  bool read_body(bool bounded, const std::function<bool(std::string_view)>& piece) {
    while (!parser_.is_done()) {
      char chunk[16384];
      parser_.get().body().data = chunk;
      parser_.get().body().size = sizeof chunk;
      error_code ec =
          wait([&](auto h) { on_stream([&](auto& s) { http::async_read_some(s, buffer_, parser_, h); }); },
               bounded);
      if (ec == http::error::need_buffer) ec = {};
      if (interrupted_) return false;
      if (ec) lost(ec);
      if (!piece(std::string_view(chunk, sizeof chunk - parser_.get().body().size))) return false;
    }
    return true;
  }

  void catch_signals() {
    signals_.add(SIGINT);
    signals_.add(SIGTERM);
    signals_.async_wait([this](error_code ec, int) {
      if (ec) return;
      interrupted_ = true;
      socket_.close();
    });
  }
  bool interrupted() const { return interrupted_; }
  const std::string& where() const { return where_; }

 private:
  // The byte stream: TLS over the socket after handshake(), else the socket itself.
  template <class F>
  void on_stream(F f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(socket_);
    }
  }

  [[noreturn]] void lost(error_code ec) {
    if (ec == asio::error::timed_out) {
      throw Unreachable(fmt::format("no answer from the daemon at {} within {}", where_,
                                    format_duration(o_.timeout)));
    }
    if (ec.category() == error_code(http::error::end_of_stream).category() &&
        ec != http::error::end_of_stream) {
      throw Unreachable(fmt::format("the answer from {} is not HTTP: {}", where_, ec.message()));
    }
    throw Unreachable(fmt::format("lost the connection to the daemon at {}: {}", where_, ec.message()));
  }

  // Starts an operation (start(handler)) and runs the io_context until it completes, or until
  // the deadline (if `bounded`): then the socket is closed and the result is timed_out.
  template <class Start>
  error_code wait(Start start, bool bounded = true) {
    std::optional<error_code> result;
    start([&result](error_code ec, auto&&...) { result = ec; });
    io_.restart();
    bool timed_out = false;
    while (!result) {
      const std::size_t ran = bounded && !timed_out ? io_.run_one_until(deadline_) : io_.run_one();
      if (ran == 0 && !result && !timed_out) {
        timed_out = true;
        error_code ignored;
        socket_.close(ignored);  // cancels the operation; its handler still runs
        resolver_.cancel();
        io_.restart();
      }
    }
    return timed_out ? error_code(asio::error::timed_out) : *result;
  }

  const Options& o_;
  const Clock::time_point deadline_;
  asio::io_context io_;
  Socket socket_;
  asio::ip::tcp::resolver resolver_{io_};
  asio::signal_set signals_;
  boost::beast::flat_buffer buffer_;
  http::response_parser<http::buffer_body> parser_;
  std::optional<asio::ssl::context> tls_ctx_;
  std::optional<asio::ssl::stream<Socket&>> tls_;
  std::string where_;
  bool interrupted_ = false;
};

}  // namespace

HttpAnswer fetch(const Options& o, const HttpRequest& request) {
  Session s(o);
  s.connect();
  s.send(request);
  HttpAnswer a = s.read_header();
  s.read_body(true, [&](std::string_view bytes) {
    if (a.body.size() + bytes.size() > kMaxBody) {
      throw Unreachable(fmt::format("the answer from {} is larger than {} bytes", s.where(), kMaxBody));
    }
    a.body.append(bytes);
    return true;
  });
  return a;
}

std::optional<HttpAnswer> stream(const Options& o, const HttpRequest& request,
                                 const std::function<bool(std::string_view)>& on_bytes,
                                 bool* interrupted) {
  Session s(o);
  s.catch_signals();
  try {
    s.connect();
    s.send(request);
    HttpAnswer a = s.read_header();
    if (a.status != 200 || !a.content_type.starts_with("text/event-stream")) {
      s.read_body(true, [&](std::string_view bytes) {
        if (a.body.size() < 4096) a.body.append(bytes);  // enough for an error message
        return true;
      });
      return a;
    }
    if (s.read_body(false, on_bytes)) {
      throw Unreachable(fmt::format("the daemon at {} closed the event stream", s.where()));
    }
  } catch (const Unreachable&) {
    if (!s.interrupted()) throw;  // else the signal closed the socket: a normal end
  }
  *interrupted = s.interrupted();
  return std::nullopt;
}

}  // namespace heartbeatd::ctl
