#include "transport/aws/dynamodb_client.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <random>
#include <string_view>

#include <fmt/format.h>

namespace heartbeatd::transport::aws {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::chrono::milliseconds kBackoffBase{25};
constexpr std::chrono::milliseconds kBackoffCap{400};

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  if (s.size() > 300) s.resize(300);
  return s;
}

DynamoError network_error(const boost::system::error_code& ec) {
  DynamoError e;
  e.kind = DynamoError::Kind::network;
  e.type = ec.category() == http_category() ? "pool" : "network";
  e.message = ec.message();
  return e;
}

}  // namespace

std::chrono::milliseconds backoff_pause(int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return backoff_pause(attempt, rng);
}

std::chrono::milliseconds backoff_pause(int attempt, std::mt19937_64& rng) {
  const auto ceiling = std::min<std::int64_t>(kBackoffCap.count(),
                                              kBackoffBase.count() << std::clamp(attempt, 0, 5));
  return std::chrono::milliseconds(std::uniform_int_distribution<std::int64_t>(0, ceiling)(rng));
}

DynamoError classify(unsigned status, const std::string& body) {
  DynamoError e;
  e.status = status;
  if (status >= 200 && status < 300) return e;
  // {"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"..."}
  // (the message key is "Message" in some answers).
  boost::system::error_code ec;
  const auto v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    if (const auto* t = o.if_contains("__type"); t && t->is_string()) {
      const std::string_view full = t->as_string();
      const auto hash = full.rfind('#');
      e.type = std::string(hash == std::string_view::npos ? full : full.substr(hash + 1));
    }
    for (const char* key : {"message", "Message"}) {
      if (const auto* m = o.if_contains(key); m && m->is_string()) {
        e.message = one_line(std::string(m->as_string()));
      }
    }
  }
  if (e.message.empty()) e.message = one_line(body.empty() ? "no body" : body);
  const std::string_view t = e.type;
  if (status >= 500) {
    e.kind = DynamoError::Kind::server;
  } else if (status == 408) {
    // Request Timeout: the server gave up on a connection before reading a request (some
    // send it on a kept-alive connection they are closing, where the next request finds
    // it). Nothing was done: send it again.
    e.kind = DynamoError::Kind::network;
  } else if (status == 429 || ends_with(t, "ProvisionedThroughputExceededException") ||
             ends_with(t, "ThrottlingException") || ends_with(t, "RequestLimitExceeded")) {
    e.kind = DynamoError::Kind::throttled;
  } else if (ends_with(t, "UnrecognizedClientException") ||
             ends_with(t, "InvalidSignatureException") || ends_with(t, "ExpiredTokenException") ||
             ends_with(t, "MissingAuthenticationTokenException") ||
             ends_with(t, "IncompleteSignatureException") || ends_with(t, "AccessDeniedException") ||
             status == 403) {
    e.kind = DynamoError::Kind::credentials;
  } else if (ends_with(t, "ResourceNotFoundException")) {
    e.kind = DynamoError::Kind::not_found;
  } else if (ends_with(t, "ConditionalCheckFailedException")) {
    e.kind = DynamoError::Kind::condition;
  } else {
    e.kind = DynamoError::Kind::invalid;
  }
  if (e.type.empty()) e.type = fmt::format("HTTP {}", status);
  return e;
}

struct DynamoClient::Call {
  std::string op;
  std::string body;
  std::chrono::steady_clock::time_point deadline;
  Done done;
  int attempts = 0;
  std::unique_ptr<asio::steady_timer> backoff;
};

DynamoClient::DynamoClient(asio::io_context& io, DynamoClientOptions options)
    : io_(io), options_(std::move(options)), pool_(io, options_.pool) {}

DynamoClient::~DynamoClient() {
  stop();
}

void DynamoClient::start() {
  pool_.start();
}

void DynamoClient::stop() {
  stopped_->store(true);
  pool_.stop();
}

void DynamoClient::call(std::string op, json::object body,
                        std::chrono::steady_clock::time_point deadline, Done done) {
  auto c = std::make_shared<Call>();
  c->op = std::move(op);
  c->body = json::serialize(body);
  c->deadline = deadline;
  c->done = std::move(done);
  attempt(std::move(c));
}

void DynamoClient::attempt(std::shared_ptr<Call> c) {
  ++c->attempts;
  const auto creds = options_.credentials ? options_.credentials() : nullptr;
  if (!creds) {
    DynamoError e;
    e.kind = DynamoError::Kind::credentials;
    e.type = "NoCredentials";
    e.message = "no AWS credentials to sign with";
    e.attempts = c->attempts;
    {
      std::lock_guard lock(mu_);
      ++stats_.failed;
    }
    asio::post(io_, [c, e] { c->done(e, nullptr); });
    return;
  }
  const std::int64_t now_s =
      options_.unix_seconds ? options_.unix_seconds()
                            : std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  const auto& ep = options_.pool.endpoint;
  const bool default_port = ep.port == (ep.tls ? 443 : 80);
  const std::string host = default_port ? ep.host : fmt::format("{}:{}", ep.host, ep.port);
  RequestToSign r;
  r.method = "POST";
  r.path = "/";
  r.headers = {{"host", host},
               {"content-type", "application/x-amz-json-1.0"},
               {"x-amz-date", amz_date(now_s)},
               {"x-amz-target", "DynamoDB_20120810." + c->op}};
  if (!creds->session_token.empty()) r.headers.emplace_back("x-amz-security-token", creds->session_token);
  r.payload = c->body;
  const auto sig = sign_v4(r, *creds, options_.region, "dynamodb", r.headers[2].second);
  HttpRequest req;
  req.method = "POST";
  req.target = "/";
  req.headers = std::move(r.headers);
  req.headers.emplace_back("authorization", sig.authorization);
  req.body = c->body;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      c->deadline - std::chrono::steady_clock::now());
  // The attempt's own timeout, but never much past the deadline: at least 50 ms so that an
  // attempt started just before it can still succeed.
  const auto timeout = std::max(std::min(options_.attempt_timeout, left),
                                std::chrono::milliseconds(50));
  {
    std::lock_guard lock(mu_);
    ++stats_.requests;
    if (c->attempts > 1) ++stats_.retries;
  }
  pool_.request(std::move(req), timeout,
                [this, self = shared_from_this(), c, stopped = stopped_](boost::system::error_code ec,
                                                              HttpResponse resp) {
                  DynamoError e = ec ? network_error(ec) : classify(resp.status, resp.body);
                  e.attempts = c->attempts;
                  json::value answer;
                  if (!e) {
                    boost::system::error_code jec;
                    answer = json::parse(resp.body, jec);
                    if (jec || !answer.is_object()) {
                      e.kind = DynamoError::Kind::server;
                      e.type = "BadAnswer";
                      e.message = "DynamoDB answered 2xx with a body that is not a JSON object";
                    } else {
                      count_capacity(answer, c->op);
                    }
                  }
                  if (e.retryable()) {
                    std::lock_guard lock(mu_);
                    if (e.kind == DynamoError::Kind::throttled) ++stats_.throttled;
                    if (e.kind == DynamoError::Kind::server) ++stats_.server_errors;
                    if (e.kind == DynamoError::Kind::network) ++stats_.network_errors;
                  }
                  if (e.retryable() && !stopped->load() && !(ec && ec == make_error(HttpErrc::stopped))) {
                    const auto pause = backoff_pause(c->attempts);
                    if (std::chrono::steady_clock::now() + pause < c->deadline) {
                      c->backoff = std::make_unique<asio::steady_timer>(io_, pause);
                      c->backoff->async_wait([this, self, c, stopped](boost::system::error_code) {
                        if (stopped->load()) {
                          DynamoError s;
                          s.kind = DynamoError::Kind::network;
                          s.type = "stopped";
                          s.message = "the DynamoDB client is stopping";
                          return c->done(s, nullptr);
                        }
                        attempt(c);
                      });
                      return;
                    }
                  }
                  if (e) {
                    std::lock_guard lock(mu_);
                    ++stats_.failed;
                  }
                  c->done(std::move(e), std::move(answer));
                });
}

void DynamoClient::count_capacity(const json::value& answer, std::string_view op) {
  const bool writes = op.find("Write") != op.npos || op.find("Put") != op.npos ||
                      op.find("Update") != op.npos || op.find("Delete") != op.npos;
  // "ConsumedCapacity": {"TableName":..,"CapacityUnits":1,"ReadCapacityUnits":..} or a list
  // of those (batch operations).
  const auto* cc = answer.as_object().if_contains("ConsumedCapacity");
  if (!cc) return;
  auto add = [&](const json::value& one) {
    if (!one.is_object()) return;
    const auto& o = one.as_object();
    auto number = [&](const char* key) -> double {
      const auto* v = o.if_contains(key);
      if (!v) return 0;
      if (v->is_double()) return v->as_double();
      if (v->is_int64()) return static_cast<double>(v->as_int64());
      if (v->is_uint64()) return static_cast<double>(v->as_uint64());
      return 0;
    };
    // CapacityUnits is the total; the read/write split is there only when asked for
    // INDEXES, so the operation says which it was.
    const double units = number("CapacityUnits");
    std::lock_guard lock(mu_);
    (writes ? stats_.write_units : stats_.read_units) += units;
  };
  if (cc->is_array()) {
    for (const auto& one : cc->as_array()) add(one);
  } else {
    add(*cc);
  }
}

DynamoStats DynamoClient::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

HttpPoolStats DynamoClient::pool_stats() const {
  return pool_.stats();
}

}  // namespace heartbeatd::transport::aws
