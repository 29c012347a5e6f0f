#include "tests/support/https_client.h"

#include <openssl/bn.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <optional>

namespace heartbeatd::test {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

struct HttpsClient::Impl {
  asio::io_context io;
  ssl::context ctx{ssl::context::tls_client};
  std::optional<ssl::stream<tcp::socket>> stream;
  boost::beast::flat_buffer buffer;

  // Runs one asynchronous operation to its end or the deadline (then the socket is closed and
  // the result is timed_out).
  template <class Start>
  error_code wait(Start start, std::chrono::milliseconds deadline) {
    std::optional<error_code> result;
    start([&result](error_code ec, auto&&...) { result = ec; });
    io.restart();
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!result) {
      if (io.run_one_until(until) == 0 && !result) {
        error_code ignored;
        stream->next_layer().close(ignored);
        io.restart();
        while (!result) io.run_one();
        return asio::error::timed_out;
      }
    }
    return *result;
  }
};

HttpsClient::HttpsClient(std::uint16_t port, TlsClientOptions o, std::chrono::milliseconds deadline)
    : impl_(std::make_unique<Impl>()) {
  auto& ctx = impl_->ctx;
  error_code ec;
  if (!o.ca_file.empty()) {
    ctx.load_verify_file(o.ca_file, ec);
    ctx.set_verify_mode(ssl::verify_peer);
  }
  if (!ec && !o.cert_file.empty()) ctx.use_certificate_chain_file(o.cert_file, ec);
  if (!ec && !o.key_file.empty()) ctx.use_private_key_file(o.key_file, ssl::context::pem, ec);
  if (ec) {
    error_ = "client setup: " + ec.message();
    return;
  }
  if (o.min_version || o.max_version) {
    // An old protocol needs OpenSSL's security level 0 on the client side to be offered.
    SSL_CTX_set_security_level(ctx.native_handle(), 0);
    if (o.min_version) SSL_CTX_set_min_proto_version(ctx.native_handle(), o.min_version);
    if (o.max_version) SSL_CTX_set_max_proto_version(ctx.native_handle(), o.max_version);
  }
  impl_->stream.emplace(impl_->io, ctx);
  auto& s = *impl_->stream;
  if (!o.ca_file.empty()) s.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  ec = impl_->wait([&](auto h) { s.next_layer().async_connect(ep, h); }, deadline);
  if (ec) {
    error_ = "connect: " + ec.message();
    return;
  }
  ec = impl_->wait([&](auto h) { s.async_handshake(ssl::stream_base::client, h); }, deadline);
  if (ec) error_ = "handshake: " + ec.message();
}

HttpsClient::~HttpsClient() = default;

std::string HttpsClient::peer_subject() const {
  if (!impl_->stream) return {};
  X509* cert = SSL_get0_peer_certificate(impl_->stream->native_handle());
  if (!cert) return {};
  char* s = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0);
  std::string out = s ? s : "";
  OPENSSL_free(s);
  return out;
}

std::string HttpsClient::peer_serial() const {
  if (!impl_->stream) return {};
  X509* cert = SSL_get0_peer_certificate(impl_->stream->native_handle());
  if (!cert) return {};
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out = hex ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

HttpResult HttpsClient::request(const std::string& method, const std::string& target,
                                const std::string& body, std::chrono::milliseconds deadline) {
  HttpResult r;
  if (!connected()) {
    r.error = error_;
    return r;
  }
  auto& s = *impl_->stream;
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, "127.0.0.1");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  error_code ec = impl_->wait([&](auto h) { http::async_write(s, req, h); }, deadline);
  if (ec) {
    r.error = "write: " + ec.message();
    return r;
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  ec = impl_->wait([&](auto h) { http::async_read(s, impl_->buffer, parser, h); }, deadline);
  if (ec) {
    r.error = "read: " + ec.message();
    return r;
  }
  auto res = parser.release();
  r.status = static_cast<int>(res.result_int());
  r.body = res.body();
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = std::string(f.value());
  }
  r.closed = !res.keep_alive();
  return r;
}

bool HttpsClient::send_raw(const std::string& bytes, std::chrono::milliseconds deadline) {
  if (!connected()) return false;
  return !impl_->wait(
      [&](auto h) { asio::async_write(*impl_->stream, asio::buffer(bytes), h); }, deadline);
}

std::string HttpsClient::read_until(const std::string& needle, std::chrono::milliseconds deadline) {
  std::string got;
  if (!connected()) return got;
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (got.find(needle) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    char chunk[4096];
    std::size_t n = 0;
    const error_code ec = impl_->wait(
        [&](auto h) {
          impl_->stream->async_read_some(asio::buffer(chunk),
                                         [&n, h](error_code e, std::size_t k) mutable {
                                           n = k;
                                           h(e);
                                         });
        },
        left);
    got.append(chunk, n);
    if (ec) break;
  }
  return got;
}

}  // namespace heartbeatd::test
