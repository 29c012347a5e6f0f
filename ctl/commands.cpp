#include "ctl/commands.h"

#include <time.h>

#include <algorithm>
#include <exception>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace heartbeatd::ctl {
namespace json = boost::json;
namespace {

// Thrown while reading an answer that does not have the shape docs/API.md promises.
struct BadAnswer {
  std::string message;
};

std::string users_body(const std::vector<std::uint64_t>& users) {
  json::array ids;
  for (auto id : users) ids.emplace_back(id);
  return json::serialize(json::object{{"users", std::move(ids)}});
}

template <class Items>
std::string join(const Items& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : ",") + fmt::format("{}", item);
  return s;
}

const json::value& field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (!v) throw BadAnswer{fmt::format("no \"{}\" field", key)};
  return *v;
}
const json::object& object_of(const json::value& v, std::string_view what) {
  if (!v.is_object()) throw BadAnswer{fmt::format("{} is not a JSON object", what)};
  return v.get_object();
}
std::string string_field(const json::object& o, std::string_view key) {
  const auto& v = field(o, key);
  if (!v.is_string()) throw BadAnswer{fmt::format("\"{}\" is not a string", key)};
  return std::string(v.get_string());
}
bool bool_field(const json::object& o, std::string_view key) {
  const auto& v = field(o, key);
  if (!v.is_bool()) throw BadAnswer{fmt::format("\"{}\" is not a boolean", key)};
  return v.get_bool();
}
// A number field, or nullopt for null (and for an absent key when `optional`).
std::optional<std::int64_t> int_field(const json::object& o, std::string_view key,
                                      bool optional = false) {
  const auto* v = o.if_contains(key);
  if (!v && optional) return std::nullopt;
  if (!v) throw BadAnswer{fmt::format("no \"{}\" field", key)};
  if (v->is_null()) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= INT64_MAX) return static_cast<std::int64_t>(v->get_uint64());
  throw BadAnswer{fmt::format("\"{}\" is not an integer", key)};
}
std::vector<std::string> string_list(const json::object& o, std::string_view key) {
  const auto& v = field(o, key);
  if (!v.is_array()) throw BadAnswer{fmt::format("\"{}\" is not an array", key)};
  std::vector<std::string> items;
  for (const auto& item : v.get_array()) {
    if (!item.is_string()) throw BadAnswer{fmt::format("\"{}\" holds a non-string", key)};
    items.emplace_back(item.get_string());
  }
  return items;
}
// Numbers and ids as the daemon wrote them (user ids may exceed int64).
std::string scalar_text(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_null()) return "-";
  return json::serialize(v);
}

std::string last_seen(const json::object& o, std::int64_t now_ms, std::string_view if_null) {
  const auto ms = int_field(o, "last_seen_ms");
  return ms ? format_age(now_ms, *ms) : std::string(if_null);
}

// "role=db,zone=b", or "-" for none (or a daemon from before tags).
std::string tags_text(const json::object& m) {
  const auto* tags = m.if_contains("tags");
  if (!tags || !tags->is_object() || tags->get_object().empty()) return "-";
  std::string out;
  for (const auto& [k, v] : tags->get_object()) {
    out.append(out.empty() ? "" : ",").append(k).append("=").append(scalar_text(v));
  }
  return out;
}

std::vector<std::string> member_row(const json::value& v, std::int64_t now_ms) {
  const auto& m = object_of(v, "a member");
  return {string_field(m, "name"),     string_field(m, "address"),
          string_field(m, "state"),    scalar_text(field(m, "incarnation")),
          last_seen(m, now_ms, "-"),   tags_text(m)};
}
const std::vector<std::string> kMemberHeader = {"NAME",        "ADDRESS",   "STATE",
                                                "INCARNATION", "LAST_SEEN", "TAGS"};

// A tag filter's bytes in a query: letters, digits and "-._~:" as they are, the rest
// percent-encoded (values may hold spaces, '&', '#', '%' or '+').
std::string query_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '.' || c == '_' || c == '~' || c == ':';
    out += plain ? std::string(1, static_cast<char>(c)) : fmt::format("%{:02X}", c);
  }
  return out;
}

std::vector<std::string> user_row(const json::value& v, std::int64_t now_ms) {
  const auto& u = object_of(v, "a user");
  return {scalar_text(field(u, "user")), bool_field(u, "online") ? "yes" : "no",
          last_seen(u, now_ms, "never")};
}
const std::vector<std::string> kUserHeader = {"USER", "ONLINE", "LAST_SEEN"};

// {"a":1,"p":{"b":null}} -> rows "a 1", "p.b -".
void flatten(const json::object& o, const std::string& prefix,
             std::vector<std::vector<std::string>>& rows) {
  for (const auto& [key, value] : o) {
    const std::string name = prefix + std::string(key);
    if (value.is_object()) {
      flatten(value.get_object(), name + ".", rows);
    } else {
      rows.push_back({name, scalar_text(value)});
    }
  }
}

// The daemon's error body {"error":..., "message":...}, or the raw body when it is not one.
std::string describe_error(const HttpAnswer& a) {
  json::error_code jec;
  const auto v = json::parse(a.body, jec);
  if (!jec && v.is_object()) {
    const auto& o = v.get_object();
    const auto* error = o.if_contains("error");
    const auto* message = o.if_contains("message");
    if (error && error->is_string() && message && message->is_string()) {
      return fmt::format("{} {}: {}", a.status, std::string_view(error->get_string()),
                         std::string_view(message->get_string()));
    }
  }
  std::string body = a.body.substr(0, 200);
  std::replace(body.begin(), body.end(), '\n', ' ');
  return body.empty() ? std::to_string(a.status) : fmt::format("{} {}", a.status, body);
}

Outcome fail(int code, std::string message) {
  return Outcome{code, "", "heartbeatctl: " + message + "\n"};
}

// The answer to a successful request.
Outcome render(const Options& o, const HttpAnswer& a, std::int64_t now_ms) {
  if (a.body.empty()) {
    // 204: heartbeat of one user, offline.
    if (o.command == Command::heartbeat) return {kExitOk, o.json ? "" : "accepted 1\n", ""};
    if (o.command == Command::offline) {
      return {kExitOk, o.json ? "" : fmt::format("user {} offline\n", o.users[0]), ""};
    }
    throw BadAnswer{"the answer has no body"};
  }
  json::error_code jec;
  const json::value v = json::parse(a.body, jec);
  if (jec) throw BadAnswer{fmt::format("the answer is not JSON ({})", jec.message())};
  const auto& top = object_of(v, "the answer");
  Outcome out;
  switch (o.command) {
    case Command::health: {
      const auto status = string_field(top, "status");
      out.exit_code = status == "ok" ? kExitOk : kExitNegative;
      std::vector<std::vector<std::string>> rows;
      flatten(top, "", rows);
      out.out = format_table(rows);
      break;
    }
    case Command::members: {
      const auto& list = field(top, "members");
      if (!list.is_array()) throw BadAnswer{"\"members\" is not an array"};
      std::vector<std::vector<std::string>> rows{kMemberHeader};
      for (const auto& m : list.get_array()) rows.push_back(member_row(m, now_ms));
      out.out = format_table(rows);
      break;
    }
    case Command::member:
      out.exit_code = string_field(top, "state") == "alive" ? kExitOk : kExitNegative;
      out.out = format_table({kMemberHeader, member_row(v, now_ms)});
      break;
    case Command::user:
      out.exit_code = bool_field(top, "online") ? kExitOk : kExitNegative;
      out.out = format_table({kUserHeader, user_row(v, now_ms)});
      break;
    case Command::users: {
      const auto& list = field(top, "users");
      if (!list.is_array()) throw BadAnswer{"\"users\" is not an array"};
      std::vector<std::vector<std::string>> rows{kUserHeader};
      for (const auto& u : list.get_array()) {
        rows.push_back(user_row(u, now_ms));
        if (!bool_field(u.get_object(), "online")) out.exit_code = kExitNegative;
      }
      out.out = format_table(rows);
      break;
    }
    case Command::heartbeat:
      out.out = fmt::format("accepted {}\n", scalar_text(field(top, "accepted")));
      break;
    case Command::keys: {
      const auto& list = field(top, "keys");
      if (!list.is_array()) throw BadAnswer{"\"keys\" is not an array"};
      std::vector<std::vector<std::string>> rows{{"KEY", "PRIMARY", "MEMBERS"}};
      for (const auto& k : list.get_array()) {
        const auto& key = object_of(k, "a key");
        rows.push_back({string_field(key, "fingerprint"), bool_field(key, "primary") ? "yes" : "no",
                        scalar_text(field(key, "members"))});
      }
      rows.push_back({"plaintext", "-", scalar_text(field(top, "plaintext_members"))});
      if (const auto* unknown = top.if_contains("unknown_members")) {
        rows.push_back({"unknown", "-", scalar_text(*unknown)});
      }
      out.out = format_table(rows) + fmt::format("seal_outgoing: {}, require_sealed: {}\n",
                                                 bool_field(top, "seal_outgoing"),
                                                 bool_field(top, "require_sealed"));
      break;
    }
    case Command::join: {
      // Some joined: a line per address; exit 1 if any failed.
      std::string lines;
      for (const auto* key : {"joined", "failed"}) {
        const auto& list = field(top, key);
        if (!list.is_array()) throw BadAnswer{fmt::format("\"{}\" is not an array", key)};
        for (const auto& t : list.get_array()) {
          const auto& target = object_of(t, "an address");
          if (std::string_view(key) == "joined") {
            lines += fmt::format("joined {} (member {})\n", string_field(target, "address"),
                                 string_field(target, "member"));
          } else {
            out.exit_code = kExitNegative;
            out.err += fmt::format("heartbeatctl: join {} failed: {}\n",
                                   string_field(target, "address"), string_field(target, "error"));
          }
        }
      }
      out.out = lines;
      break;
    }
    case Command::force_leave:
      out.out = fmt::format("{} {} (was {})\n", string_field(top, "member"),
                            bool_field(top, "forgotten") ? "left and forgotten" : "left",
                            string_field(top, "previous_state"));
      break;
    case Command::reload: {
      const auto result = string_field(top, "result");
      if (result != "applied" && result != "unchanged") {
        throw BadAnswer{fmt::format("\"result\" is \"{}\"", result)};
      }
      const auto applied = string_list(top, "applied");
      const auto needs_restart = string_list(top, "needs_restart");
      if (result == "unchanged") out.out = "unchanged: the file matches the running configuration\n";
      for (const auto& a : applied) out.out += "applied: " + a + "\n";
      for (const auto& n : needs_restart) out.out += "needs a restart: " + n + "\n";
      if (!needs_restart.empty()) out.exit_code = kExitNeedsRestart;
      break;
    }
    case Command::offline:
    case Command::watch:
      throw BadAnswer{"unexpected body"};
  }
  if (o.json) out.out = json::serialize(v) + "\n";
  return out;
}

}  // namespace

HttpRequest build_request(const Options& o) {
  switch (o.command) {
    case Command::health:
      return {"GET", "/v1/health", ""};
    case Command::members: {
      // States are words and patterns [A-Za-z0-9._*?-] (checked by parse_args); only '?',
      // which would read as the start of the query, needs escaping.
      std::string target = "/v1/members";
      char sep = '?';
      if (!o.states.empty()) target += sep + ("state=" + join(o.states)), sep = '&';
      if (!o.name_glob.empty()) {
        target += sep + std::string("name=");
        for (char c : o.name_glob) target += c == '?' ? std::string("%3F") : std::string(1, c);
        sep = '&';
      }
      for (const auto& t : o.tags) target += sep + ("tag=" + query_escape(t)), sep = '&';
      return {"GET", target, ""};
    }
    case Command::keys:
      return {"GET", "/v1/keys", ""};
    case Command::join: {
      json::array addresses;
      for (const auto& a : o.addresses) addresses.emplace_back(a);
      return {"POST", "/v1/join", json::serialize(json::object{{"addresses", std::move(addresses)}})};
    }
    case Command::force_leave:
      return {"POST", "/v1/members/" + o.member + "/leave" + (o.prune ? "?prune=true" : ""), ""};
    case Command::reload:
      return {"POST", "/v1/reload", ""};
    case Command::member:
      return {"GET", "/v1/members/" + o.member, ""};
    case Command::user:
      return {"GET", fmt::format("/v1/users/{}", o.users[0]), ""};
    case Command::users:
      return {"POST", "/v1/users/status", users_body(o.users)};
    case Command::heartbeat:
      if (o.users.size() == 1) return {"POST", fmt::format("/v1/users/{}/heartbeat", o.users[0]), ""};
      return {"POST", "/v1/users/heartbeat", users_body(o.users)};
    case Command::offline:
      return {"DELETE", fmt::format("/v1/users/{}", o.users[0]), ""};
    case Command::watch: {
      // Ids are digits and names [A-Za-z0-9._-] (checked by parse_args): nothing to escape.
      std::string target = "/v1/events";
      char sep = '?';
      if (!o.users.empty()) target += sep + ("users=" + join(o.users)), sep = '&';
      if (!o.members.empty()) target += sep + ("members=" + join(o.members));
      return {"GET", target, ""};
    }
  }
  return {};
}

Outcome interpret(const Options& o, const HttpAnswer& a, std::int64_t now_ms) {
  if ((o.command == Command::member || o.command == Command::force_leave) && a.status == 404) {
    json::error_code jec;
    const auto v = json::parse(a.body, jec);
    const auto* error = !jec && v.is_object() ? v.get_object().if_contains("error") : nullptr;
    if (error && error->is_string() && error->get_string() == "unknown_member") {
      return fail(kExitNegative, fmt::format("unknown member {}", o.member));
    }
  }
  if (o.command == Command::join && a.status == 502) {
    // join_failed: the daemon is fine, the addresses did not answer (a proxy's 502 is not
    // this, and is reported as a 5xx below).
    json::error_code jec;
    const auto v = json::parse(a.body, jec);
    const auto* error = !jec && v.is_object() ? v.get_object().if_contains("error") : nullptr;
    const auto* message = !jec && v.is_object() ? v.get_object().if_contains("message") : nullptr;
    if (error && error->is_string() && error->get_string() == "join_failed" && message &&
        message->is_string()) {
      return fail(kExitNegative, fmt::format("join failed: {}", std::string_view(message->get_string())));
    }
  }
  if (o.command == Command::reload && a.status == 422) {
    // The answer is the whole story here: --json hands it on as it came.
    Outcome out = fail(kExitNegative, "the daemon rejected the new configuration; the running "
                                      "one stays in force: " + describe_error(a));
    json::error_code jec;
    const auto v = json::parse(a.body, jec);
    if (o.json && !jec) out.out = json::serialize(v) + "\n";
    return out;
  }
  if (a.status >= 500 && a.status <= 599) {
    return fail(kExitUnreachable, "the daemon failed: " + describe_error(a));
  }
  if (a.status == 401) {
    return fail(kExitNegative, fmt::format("the daemon wants a valid API token: {}. Give one "
                                           "with --token-file FILE or HEARTBEATD_TOKEN",
                                           describe_error(a)));
  }
  if (a.status == 403) {
    return fail(kExitNegative,
                "this token (or, on the socket, this user) may not do that: " + describe_error(a));
  }
  if (a.status >= 400 && a.status <= 499) {
    return fail(kExitNegative, "the daemon refused the request: " + describe_error(a));
  }
  if (a.status < 200 || a.status > 299) {
    return fail(kExitUnreachable, "unexpected answer: HTTP status " + std::to_string(a.status));
  }
  if (o.command == Command::watch) {
    return fail(kExitUnreachable, fmt::format("expected an event stream (text/event-stream), got "
                                              "'{}'", a.content_type));
  }
  try {
    return render(o, a, now_ms);
  } catch (const BadAnswer& bad) {
    return fail(kExitUnreachable, "not a heartbeatd answer: " + bad.message);
  }
}

EventOutcome interpret_event(const SseEvent& e, bool json_mode) {
  if (e.name != "member" && e.name != "user" && e.name != "dropped") return {};
  try {
    json::error_code jec;
    const json::value v = json::parse(e.data, jec);
    if (jec) throw BadAnswer{fmt::format("data is not JSON ({})", jec.message())};
    const auto& data = object_of(v, "data");
    if (e.name == "dropped") {
      return {"", fmt::format("heartbeatctl: the daemon dropped this watch: {}\n",
                              string_field(data, "reason")),
              kExitNegative};
    }
    const auto time = int_field(data, "time_ms");
    const std::string when = time ? format_utc(*time) : "-";
    const auto* initial_v = data.if_contains("initial");
    const bool initial = initial_v && initial_v->is_bool() && initial_v->get_bool();
    std::string line;
    if (e.name == "member") {
      const auto* previous = data.if_contains("previous");
      const std::string change =
          previous && previous->is_string()
              ? fmt::format("{} -> {}", std::string_view(previous->get_string()),
                            string_field(data, "state"))
              : string_field(data, "state");
      line = fmt::format("{} member {} {} (incarnation {}{})", when, string_field(data, "name"),
                         change, scalar_text(field(data, "incarnation")),
                         initial ? ", initial" : "");
    } else {
      line = fmt::format("{} user {} {}{}", when, scalar_text(field(data, "user")),
                         bool_field(data, "online") ? "online" : "offline",
                         initial ? " (initial)" : "");
    }
    if (json_mode) {
      json::object tagged{{"event", e.name}};
      for (const auto& [key, value] : data) tagged[key] = value;
      line = json::serialize(tagged);
    }
    return {line + "\n", "", std::nullopt};
  } catch (const BadAnswer& bad) {
    return {"", fmt::format("heartbeatctl: not a heartbeatd event ({}): {}\n", e.name, bad.message),
            kExitUnreachable};
  }
}

std::string format_utc(std::int64_t unix_ms) {
  const std::int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : -((-unix_ms + 999) / 1000);
  const auto ms = unix_ms - secs * 1000;
  const time_t t = static_cast<time_t>(secs);
  tm parts{};
  gmtime_r(&t, &parts);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", parts.tm_year + 1900,
                     parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, ms);
}

std::string format_age(std::int64_t now_ms, std::int64_t then_ms) {
  const std::int64_t d = std::max<std::int64_t>(0, now_ms - then_ms);  // clocks may disagree
  const std::int64_t s = d / 1000;
  if (s < 60) return fmt::format("{}.{}s ago", s, d % 1000 / 100);
  if (s < 3600) return fmt::format("{}m{}s ago", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{}m ago", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{}h ago", s / 86400, s % 86400 / 3600);
}

std::string format_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out.append(widths[i] - row[i].size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

std::string usage_message(std::string_view message) {
  return fmt::format("heartbeatctl: {}\nTry 'heartbeatctl --help'.\n", message);
}

}  // namespace heartbeatd::ctl
