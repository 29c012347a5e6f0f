#include "transport/api/http_router.h"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <future>

#include <fmt/format.h>

#include "base/log.h"
#include "transport/api/access.h"
#include "transport/api/rate_limiter.h"

namespace heartbeatd::transport {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t start = 1;  // skip the leading '/'
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

bool is_param(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

std::size_t literal_count(const std::vector<std::string>& segments) {
  return static_cast<std::size_t>(std::count_if(segments.begin(), segments.end(),
                                                [](const std::string& s) { return !is_param(s); }));
}

}  // namespace

std::string_view RouteMatch::param(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return {};
}

Response json_response(http::status status, std::string body) {
  Response res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response error_response(http::status status, std::string_view code, std::string_view message) {
  boost::json::object o;
  o["error"] = code;
  o["message"] = message;
  return json_response(status, boost::json::serialize(o));
}

Response empty_response() {
  Response res{http::status::no_content, 11};
  res.prepare_payload();
  return res;
}

void Router::add_route(http::verb method, std::string pattern, Scope scope, StreamHandler handler,
                       AsyncHandler async_handler) {
  Route r{method,
          pattern,
          scope,
          {},
          std::move(handler),
          std::move(async_handler),
          std::make_shared<Stats>()};
  for (auto s : split_path(pattern)) r.segments.emplace_back(s);
  routes_.push_back(std::move(r));
}

void Router::add(http::verb method, std::string pattern, Scope scope, Handler handler) {
  add_route(method, std::move(pattern), scope,
            [h = std::move(handler)](const Request& req, const RouteMatch& m) {
              return Routed{h(req, m), nullptr};
            });
}

void Router::add_stream(http::verb method, std::string pattern, Scope scope,
                        StreamHandler handler) {
  add_route(method, std::move(pattern), scope, std::move(handler));
}

void Router::add_async(http::verb method, std::string pattern, Scope scope, AsyncHandler handler) {
  add_route(method, std::move(pattern), scope, nullptr, std::move(handler));
}

std::vector<RouteInfo> Router::routes() const {
  std::vector<RouteInfo> out;
  out.reserve(routes_.size());
  for (const auto& r : routes_) out.push_back({r.method, r.pattern, r.scope});
  return out;
}

void Router::set_access(std::shared_ptr<const AccessPolicy> policy) {
  std::lock_guard lock(access_->mu);
  access_->policy = std::move(policy);
}

void Router::set_rate_limiter(std::shared_ptr<RateLimiter> limiter) {
  access_->limiter = std::move(limiter);
}

std::string_view to_string(Scope s) {
  switch (s) {
    case Scope::none:
      return "none";
    case Scope::read:
      return "read";
    case Scope::write:
      return "write";
    case Scope::admin:
      return "admin";
    case Scope::metrics:
      return "metrics";
  }
  return "unknown";
}

std::string scopes_to_string(Scopes s) {
  std::string out;
  for (Scope one : {Scope::read, Scope::write, Scope::admin, Scope::metrics}) {
    if (s & bit(one)) out.append(out.empty() ? "" : ",").append(to_string(one));
  }
  return out;
}

std::string Caller::client() const {
  switch (via) {
    case Via::tcp:
      return address;
    case Via::unix_socket:
      return uid ? "uid " + std::to_string(*uid) : "unix socket";
    case Via::internal:
      break;
  }
  return "internal";
}

std::string_view to_string(Refusal r) {
  switch (r) {
    case Refusal::unauthenticated:
      return "unauthenticated";
    case Refusal::forbidden:
      return "forbidden";
    case Refusal::over_limit:
      return "over_limit";
    case Refusal::rate_limited:
      return "rate_limited";
  }
  return "unknown";
}

Response Router::route(const Request& request, const Caller& caller) const {
  auto answer = std::make_shared<std::promise<Response>>();
  auto future = answer->get_future();
  Routed r = dispatch(
      request, [answer](Response res) { answer->set_value(std::move(res)); }, caller);
  return r.deferred ? future.get() : std::move(r.response);
}

void Router::Stats::count(unsigned status) {
  const unsigned i = status >= 100 && status < 600 ? status - 100 : 599 - 100;
  by_status[i].fetch_add(1, std::memory_order_relaxed);
}

void Router::count_unrouted(http::status status) const {
  unrouted_->count(static_cast<unsigned>(status));
}

void Router::refused(Refusal reason, const Caller& caller, std::string_view detail) const {
  refusals_->by_reason[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  if (!log::enabled(LogLevel::warning)) return;
  constexpr auto kLogEvery = std::chrono::minutes(1);
  constexpr std::size_t kMaxRemembered = 4096;
  const auto now = std::chrono::steady_clock::now();
  std::string key = caller.client();
  key.append("/").append(to_string(reason));
  {
    std::lock_guard lock(refusals_->mu);
    auto& logged = refusals_->logged;
    if (auto it = logged.find(key); it != logged.end() && now - it->second < kLogEvery) return;
    // Many distinct clients: forget them all rather than grow; at worst one more line each.
    if (logged.size() >= kMaxRemembered) logged.clear();
    logged[key] = now;
  }
  log::warning({{"client", caller.client()}, {"refusal", to_string(reason)}},
               "API: refused {} ({}): {} (logged at most once a minute per client)",
               caller.client(), to_string(reason), detail);
}

void Router::write_metrics(MetricsWriter& w) const {
  auto each = [&](auto f) {
    for (const auto& r : routes_) f(r.pattern, http::to_string(r.method), *r.stats);
    f(std::string_view("unmatched"), std::string_view(""), *unmatched_);
    f(std::string_view("unrouted"), std::string_view(""), *unrouted_);
  };
  w.family("heartbeatd_api_requests_total", "counter",
           "API requests answered, by route pattern, method and status code (route "
           "\"unmatched\": no route; \"unrouted\": refused before routing).");
  each([&](std::string_view route, std::string_view method, const Stats& st) {
    for (std::size_t i = 0; i < st.by_status.size(); ++i) {
      const auto n = st.by_status[i].load(std::memory_order_relaxed);
      if (n == 0) continue;
      const std::string code = std::to_string(i + 100);
      w.sample("heartbeatd_api_requests_total",
               {{"route", route}, {"method", method}, {"code", code}}, n);
    }
  });
  w.family("heartbeatd_api_refused_total", "counter",
           "Requests and connections turned away, by reason: unauthenticated (no or unknown "
           "token), forbidden (token or uid lacks the scope), over_limit (connections), "
           "rate_limited (api.rate_limit).");
  for (const Refusal r : {Refusal::unauthenticated, Refusal::forbidden, Refusal::over_limit,
                          Refusal::rate_limited}) {
    w.sample("heartbeatd_api_refused_total", {{"reason", to_string(r)}},
             refusals_->by_reason[static_cast<std::size_t>(r)].load(std::memory_order_relaxed));
  }
  w.family("heartbeatd_api_request_duration_seconds", "histogram",
           "Time from a routed request to its response (or a stream's start), in the handler.");
  for (const auto& r : routes_) {
    if (r.stats->latency.count() == 0) continue;
    r.stats->latency.write(w, "heartbeatd_api_request_duration_seconds",
                           {{"route", r.pattern}, {"method", http::to_string(r.method)}});
  }
}

bool Router::match(const Route& r, const std::vector<std::string_view>& path, RouteMatch* m) {
  if (r.segments.size() != path.size()) return false;
  m->params.clear();
  for (std::size_t i = 0; i < path.size(); ++i) {
    const std::string& seg = r.segments[i];
    if (is_param(seg)) {
      if (path[i].empty()) return false;
      m->params.emplace_back(std::string_view(seg).substr(1, seg.size() - 2), path[i]);
    } else if (seg != path[i]) {
      return false;
    }
  }
  return true;
}

const Router::Route* Router::find(http::verb method, const std::vector<std::string_view>& path,
                                  RouteMatch* m, std::vector<http::verb>* allowed) const {
  const Route* best = nullptr;
  RouteMatch candidate;
  for (const auto& r : routes_) {
    if (!match(r, path, &candidate)) continue;
    if (allowed && std::find(allowed->begin(), allowed->end(), r.method) == allowed->end()) {
      allowed->push_back(r.method);
    }
    if (r.method != method) continue;
    if (!best || literal_count(r.segments) > literal_count(best->segments)) {
      best = &r;
      m->params = candidate.params;
    }
  }
  return best;
}

Routed Router::dispatch(const Request& request, Respond later, const Caller& caller) const {
  // Who is calling comes first: an unauthenticated caller learns nothing, not even which
  // paths exist. The rate limit counts refused requests too, so that guessing tokens costs
  // the guesser its own budget.
  Scopes scopes = kAllScopes;
  std::string principal;
  const auto policy = [&] {
    std::lock_guard lock(access_->mu);
    return access_->policy;
  }();
  std::optional<AccessDecision> decision;
  if (policy) decision = policy->decide(request, caller);
  if (access_->limiter) {
    std::chrono::seconds retry_after{1};
    if (!access_->limiter->take(decision ? decision->principal : caller.client(),
                                std::chrono::steady_clock::now(), &retry_after)) {
      refused(
          Refusal::rate_limited, caller,
          fmt::format("{} over api.rate_limit", decision ? decision->principal : caller.client()));
      unrouted_->count(429);
      Response res = error_response(http::status::too_many_requests, "rate_limited",
                                    "too many requests (api.rate_limit); retry later");
      res.set(http::field::retry_after, std::to_string(retry_after.count()));
      return {std::move(res), nullptr};
    }
  }
  const std::string_view target = request.target();
  const bool absolute = !target.empty() && target.front() == '/';
  const std::size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const auto segments = absolute ? split_path(path) : std::vector<std::string_view>{};
  RouteMatch m;
  if (q != std::string_view::npos) m.query = target.substr(q + 1);
  std::vector<http::verb> allowed;
  const Route* best = absolute ? find(request.method(), segments, &m, &allowed) : nullptr;
  if (decision) {
    // A public route (Scope::none) is served to anyone: it is the only thing an
    // unauthenticated caller can reach, and only by its exact method and path.
    const bool public_route = best && best->scope == Scope::none;
    if (!decision->authenticated && !public_route) {
      refused(Refusal::unauthenticated, caller, decision->problem);
      unrouted_->count(401);
      Response res =
          error_response(http::status::unauthorized, "unauthenticated",
                         "this API needs a valid token: send \"Authorization: Bearer TOKEN\"");
      res.set(http::field::www_authenticate, "Bearer realm=\"heartbeatd\"");
      return {std::move(res), nullptr};
    }
    scopes = decision->authenticated ? decision->scopes : Scopes{0};
    principal = std::move(decision->principal);
  }
  if (!absolute) {
    unmatched_->count(400);
    return {error_response(http::status::bad_request, "bad_request",
                           "request target must be an absolute path"),
            nullptr};
  }
  if (!best) {
    if (allowed.empty()) {
      unmatched_->count(404);
      return {error_response(http::status::not_found, "not_found",
                             "no route for " + std::string(path)),
              nullptr};
    }
    std::string allow;
    for (auto v : allowed) allow.append(allow.empty() ? "" : ", ").append(http::to_string(v));
    Response res = error_response(http::status::method_not_allowed, "method_not_allowed",
                                  std::string(request.method_string()) + " is not allowed on " +
                                      std::string(path) + "; allowed: " + allow);
    res.set(http::field::allow, allow);
    unmatched_->count(405);
    return {std::move(res), nullptr};
  }
  const RouteMatch& best_match = m;
  if (best->scope != Scope::none && !(scopes & bit(best->scope))) {
    refused(Refusal::forbidden, caller,
            fmt::format("{} lacks the {} scope for {} {}", principal, to_string(best->scope),
                        std::string_view(request.method_string()), path));
    best->stats->count(403);
    return {error_response(http::status::forbidden, "forbidden",
                           fmt::format("this caller lacks the {} scope that {} {} needs",
                                       to_string(best->scope),
                                       std::string_view(request.method_string()), best->pattern)),
            nullptr};
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (best->async_handler) {
    if (!later) {
      return {error_response(http::status::internal_server_error, "internal",
                             "asynchronous route dispatched without a responder"),
              nullptr};
    }
    // Counted and timed when the answer comes. `answered` makes a handler that both
    // responded and then threw answer once. An answer given before the handler returned (the
    // embedded presence table always answers so) is returned from here, as a synchronous
    // route's is: no hop through `later`.
    struct Answer {
      std::atomic<bool> answered{false};
      std::mutex mu;
      bool returned = false;             // guarded by mu: the handler has returned
      std::optional<Response> in_place;  // guarded by mu
    };
    auto answer = std::make_shared<Answer>();
    Respond respond = [stats = best->stats, t0, later, answer](Response res) {
      if (answer->answered.exchange(true)) return;
      stats->latency.observe(std::chrono::steady_clock::now() - t0);
      stats->count(res.result_int());
      {
        std::lock_guard lock(answer->mu);
        if (!answer->returned) {
          answer->in_place = std::move(res);
          return;
        }
      }
      later(std::move(res));
    };
    try {
      best->async_handler(request, best_match, std::move(respond));
    } catch (const std::exception& e) {
      if (!answer->answered.exchange(true)) {
        Response res = error_response(http::status::internal_server_error, "internal", e.what());
        best->stats->latency.observe(std::chrono::steady_clock::now() - t0);
        best->stats->count(res.result_int());
        std::lock_guard lock(answer->mu);
        answer->in_place = std::move(res);
      }
    }
    std::lock_guard lock(answer->mu);
    answer->returned = true;
    if (answer->in_place) return {std::move(*answer->in_place), nullptr};
    return {Response{}, nullptr, true};
  }
  Routed out;
  try {
    out = best->handler(request, best_match);
  } catch (const std::exception& e) {
    out = {error_response(http::status::internal_server_error, "internal", e.what()), nullptr};
  }
  best->stats->latency.observe(std::chrono::steady_clock::now() - t0);
  best->stats->count(out.stream ? 200 : out.response.result_int());
  return out;
}

}  // namespace heartbeatd::transport
