#include "daemon/config.h"

#include <arpa/inet.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/parse_int.h"
#include "membership/member.h"
#include "transport/api/tls_context.h"
#include "transport/aws/http_pool.h"
#include "transport/cluster/datagram_seal.h"

namespace heartbeatd {
namespace {

// Thrown inside the loader only; load_config_* turn it into a ConfigError value.
struct ParseError {
  int line;  // 1-based; 0 when unknown
  std::string text;
};

std::string describe_node(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return fmt::format("\"{}\"", n.Scalar());
    default:
      return "an undefined value";
  }
}

[[noreturn]] void fail(int line, std::string_view key, std::string_view expected,
                       const YAML::Node& got) {
  throw ParseError{line, fmt::format("{}: expected {}, got {}", key, expected, describe_node(got))};
}

std::string scalar(const YAML::Node& n, int line, std::string_view key, std::string_view expected) {
  if (!n.IsScalar()) fail(line, key, expected, n);
  return n.Scalar();
}

std::string format_size(std::size_t bytes) {
  return std::to_string(bytes);
}

std::optional<std::size_t> parse_size(std::string_view s) {
  static constexpr std::pair<std::string_view, std::size_t> kUnits[] = {
      {"GiB", std::size_t{1} << 30}, {"MiB", std::size_t{1} << 20}, {"KiB", std::size_t{1} << 10}};
  std::size_t mult = 1;
  for (auto [suffix, m] : kUnits) {
    if (s.size() > suffix.size() && s.ends_with(suffix)) {
      s.remove_suffix(suffix.size());
      mult = m;
      break;
    }
  }
  auto v = parse_int<std::size_t>(s);
  if (!v || *v > std::numeric_limits<std::size_t>::max() / mult) return std::nullopt;
  return *v * mult;
}

std::string default_node_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) == 0 && buf[0] != '\0') return buf;
  return "heartbeatd";
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// systemd's StateDirectory=/RuntimeDirectory= may list several paths separated by ':'.
std::string first_path(const std::string& list) {
  return list.substr(0, list.find(':'));
}

// ---------------------------------------------------------------------------------------------
// The key table. Each field knows how to parse its YAML value, print its effective value, and
// copy itself between configs (for SIGHUP). Accessors are generic lambdas so one lambda serves
// both the const and the mutable config.

struct Field {
  std::string key;
  bool reloadable;
  std::function<void(Config&, const YAML::Node&, int line)> parse;
  std::function<std::string(const Config&)> show;
  std::function<void(Config&, const Config&)> copy;
};

template <class Get, class Parse, class Show>
Field make_field(std::string key, bool reloadable, Get get, Parse parse, Show show) {
  return Field{
      key, reloadable,
      [get, parse, key](Config& c, const YAML::Node& n, int line) { get(c) = parse(n, line, key); },
      [get, show](const Config& c) { return show(get(c)); },
      [get](Config& dst, const Config& src) { get(dst) = get(src); }};
}

// Config durations are whole milliseconds (parse_duration's unit); the protocol's structs
// hold them as membership::Duration.
template <class Duration>
std::string show_duration(Duration d) {
  return format_duration(std::chrono::duration_cast<Millis>(d));
}

template <class Get>
Field duration_field(std::string key, bool reloadable, Millis min, Millis max, Get get) {
  const std::string expected = fmt::format("a duration from {} to {} (such as 250ms, 30s, 2m)",
                                           format_duration(min), format_duration(max));
  return make_field(
      std::move(key), reloadable, get,
      [=](const YAML::Node& n, int line, const std::string& k) {
        auto d = parse_duration(scalar(n, line, k, expected));
        if (!d || *d < min || *d > max) fail(line, k, expected, n);
        return *d;
      },
      [](auto d) { return show_duration(d); });
}

template <class Int, class Get>
Field int_field(std::string key, bool reloadable, Int min, Int max, Get get) {
  const std::string expected = fmt::format("an integer from {} to {}", min, max);
  return make_field(
      std::move(key), reloadable, get,
      [=](const YAML::Node& n, int line, const std::string& k) {
        auto v = parse_int<Int>(scalar(n, line, k, expected));
        if (!v || *v < min || *v > max) fail(line, k, expected, n);
        return *v;
      },
      [](Int v) { return std::to_string(v); });
}

template <class Get>
Field size_field(std::string key, std::size_t min, std::size_t max, Get get) {
  const std::string expected =
      fmt::format("a size in bytes from {} to {} (suffixes KiB, MiB, GiB allowed)", min, max);
  return make_field(
      std::move(key), false, get,
      [=](const YAML::Node& n, int line, const std::string& k) {
        auto v = parse_size(scalar(n, line, k, expected));
        if (!v || *v < min || *v > max) fail(line, k, expected, n);
        return *v;
      },
      format_size);
}

template <class Get>
Field double_field(std::string key, bool reloadable, double min, double max, Get get) {
  const std::string expected = fmt::format("a number from {} to {}", min, max);
  return make_field(
      std::move(key), reloadable, get,
      [=](const YAML::Node& n, int line, const std::string& k) {
        const std::string s = scalar(n, line, k, expected);
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end != '\0' || !(v >= min && v <= max)) fail(line, k, expected, n);
        return v;
      },
      [](double v) { return fmt::format("{}", v); });
}

template <class Enum, class Get>
Field enum_field(std::string key, bool reloadable, std::vector<std::pair<std::string, Enum>> names,
                 Get get) {
  std::string expected = "one of";
  for (std::size_t i = 0; i < names.size(); ++i) {
    expected.append(i ? ", " : " ").append(names[i].first);
  }
  return make_field(
      std::move(key), reloadable, get,
      [=](const YAML::Node& n, int line, const std::string& k) {
        const std::string s = scalar(n, line, k, expected);
        for (const auto& [name, value] : names) {
          if (name == s) return value;
        }
        fail(line, k, expected, n);
      },
      [=](Enum v) {
        for (const auto& [name, value] : names) {
          if (value == v) return name;
        }
        return std::string("?");
      });
}

// A string; `allow_empty` lets "" (or no value) mean "disabled".
template <class Check, class Get>
Field string_field(std::string key, bool allow_empty, std::string expected, Check check, Get get) {
  return make_field(
      std::move(key), false, get,
      [=](const YAML::Node& n, int line, const std::string& k) {
        if (n.IsNull() && allow_empty) return std::string();
        std::string s = scalar(n, line, k, expected);
        if ((s.empty() && !allow_empty) || (!s.empty() && !check(s))) fail(line, k, expected, n);
        return s;
      },
      [](const std::string& s) { return s; });
}

// A YAML sequence whose items parse_item reads (named "key[i]" in errors); shown as a
// comma-separated list.
template <class T, class ParseItem, class ShowItem, class Get>
Field list_field(std::string key, std::string expected, ParseItem parse_item, ShowItem show_item,
                 Get get) {
  return make_field(
      std::move(key), false, get,
      [=](const YAML::Node& n, int line, const std::string& k) {
        std::vector<T> items;
        if (n.IsNull()) return items;
        if (!n.IsSequence()) fail(line, k, expected, n);
        for (std::size_t i = 0; i < n.size(); ++i) {
          const int item_line = n[i].Mark().line >= 0 ? n[i].Mark().line + 1 : line;
          items.push_back(parse_item(n[i], item_line, fmt::format("{}[{}]", k, i)));
        }
        return items;
      },
      [=](const std::vector<T>& items) {
        std::string s;
        for (const auto& item : items) s.append(s.empty() ? "" : ",").append(show_item(item));
        return s;
      });
}

HostPort host_port_scalar(const YAML::Node& n, int line, const std::string& key) {
  const std::string expected = "an address host:port (such as 127.0.0.1:7700 or [::1]:7700)";
  std::string why;
  auto hp = parse_host_port(scalar(n, line, key, expected), &why);
  if (!hp) fail(line, key, fmt::format("{} ({})", expected, why), n);
  return *hp;
}

// An address that "" (or no value) disables.
std::optional<HostPort> optional_host_port(const YAML::Node& n, int line, const std::string& key) {
  if (n.IsNull() || (n.IsScalar() && n.Scalar().empty())) return std::nullopt;
  return host_port_scalar(n, line, key);
}

std::string show_optional(const std::optional<HostPort>& hp) {
  return hp ? hp->to_string() : "";
}

bool parse_bool(const YAML::Node& n, int line, const std::string& key) {
  const std::string v = scalar(n, line, key, "true or false");
  if (v == "true") return true;
  if (v == "false") return false;
  fail(line, key, "true or false", n);
}

// A reloadable cluster flag whose default follows cluster.key_file (true with a key). Shown
// as its effective value, so a reload that sets key_file reports the flags turning on too.
Field key_dependent_flag(std::string key, std::optional<bool> Config::Cluster::*flag) {
  return Field{key, true,
               [key, flag](Config& c, const YAML::Node& n, int line) {
                 c.cluster.*flag = parse_bool(n, line, key);
               },
               [flag](const Config& c) {
                 return std::string(
                     (c.cluster.*flag).value_or(!c.cluster.key_file.empty()) ? "true" : "false");
               },
               [flag](Config& dst, const Config& src) { dst.cluster.*flag = src.cluster.*flag; }};
}

// A share of api.max_connections whose default follows it (Config::Api). Shown as the value
// in force, so --check-config tells what a small max_connections made of the default.
Field connection_share_field(std::string key, std::size_t min,
                             std::optional<std::size_t> Config::Api::*value,
                             std::size_t (Config::Api::*effective)() const) {
  const std::string expected = fmt::format("an integer from {} to 1000000", min);
  return Field{key, false,
               [=](Config& c, const YAML::Node& n, int line) {
                 auto v = parse_int<std::size_t>(scalar(n, line, key, expected));
                 if (!v || *v < min || *v > 1'000'000) fail(line, key, expected, n);
                 c.api.*value = *v;
               },
               [=](const Config& c) { return std::to_string((c.api.*effective)()); },
               [=](Config& dst, const Config& src) { dst.api.*value = src.api.*value; }};
}

// The node name goes on the wire: the codec's rule is the only rule (and, unlike isalnum,
// does not depend on the locale).
bool valid_node_name(const std::string& s) {
  return membership::valid_name(s);
}

int line_of(const YAML::Node& n);

// api.unix_scopes: {uid:N | gid:N | user:NAME | group:NAME | others: [scope, ...]}. Names are
// resolved now, so an unknown one is a config error rather than a silent miss at run time.
transport::UnixScopeRule unix_scope_rule(const YAML::Node& key, const YAML::Node& value,
                                         const std::string& parent) {
  using Kind = transport::UnixScopeRule::Kind;
  const int line = line_of(key);
  const std::string name = key.IsScalar() ? key.Scalar() : "";
  const std::string k = parent + "." + name;
  transport::UnixScopeRule r;
  r.source = name;
  const auto colon = name.find(':');
  const std::string kind = name.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : name.substr(colon + 1);
  if (name == "others") {
    r.kind = Kind::others;
  } else if ((kind == "uid" || kind == "gid") && colon != std::string::npos) {
    const auto id = parse_int<unsigned>(arg);
    if (!id) throw ParseError{line, fmt::format("{}: {} must be a number", k, kind)};
    r.kind = kind == "uid" ? Kind::uid : Kind::gid;
    r.id = *id;
  } else if (kind == "user" && colon != std::string::npos) {
    const passwd* pw = getpwnam(arg.c_str());
    if (!pw) throw ParseError{line, fmt::format("{}: no user named {} on this system", k, arg)};
    r.kind = Kind::uid;
    r.id = pw->pw_uid;
  } else if (kind == "group" && colon != std::string::npos) {
    const group* gr = getgrnam(arg.c_str());
    if (!gr) throw ParseError{line, fmt::format("{}: no group named {} on this system", k, arg)};
    r.kind = Kind::gid;
    r.id = gr->gr_gid;
  } else {
    throw ParseError{line, fmt::format("{}: expected a key uid:N, gid:N, user:NAME, group:NAME "
                                       "or others",
                                       k)};
  }
  constexpr std::string_view kExpected =
      "a list of scopes (read, write, admin, metrics), possibly empty";
  std::vector<std::string> names;
  if (value.IsSequence()) {
    for (const auto& item : value) names.push_back(scalar(item, line_of(item), k, kExpected));
  } else if (value.IsScalar()) {
    std::string list = value.Scalar();
    for (std::size_t start = 0; start <= list.size();) {
      auto comma = list.find(',', start);
      if (comma == std::string::npos) comma = list.size();
      names.push_back(list.substr(start, comma - start));
      start = comma + 1;
    }
  } else if (!value.IsNull()) {
    fail(line, k, kExpected, value);
  }
  for (auto& n : names) {
    n.erase(0, n.find_first_not_of(' '));
    n.erase(n.find_last_not_of(' ') + 1);
    const auto scope = transport::parse_scope(n);
    if (!scope) {
      throw ParseError{line, fmt::format("{}: unknown scope \"{}\" (known: read, write, admin, "
                                         "metrics)",
                                         k, n)};
    }
    r.scopes |= transport::bit(*scope);
  }
  return r;
}

Field unix_scopes_field() {
  const std::string key = "api.unix_scopes";
  return Field{key, true,
               [key](Config& c, const YAML::Node& n, int line) {
                 std::vector<transport::UnixScopeRule> rules;
                 if (!n.IsNull()) {
                   if (!n.IsMap()) fail(line, key, "a mapping such as {uid:1000: [read]}", n);
                   for (const auto& kv : n) {
                     auto r = unix_scope_rule(kv.first, kv.second, key);
                     for (const auto& other : rules) {
                       if (other.kind == r.kind && other.id == r.id) {
                         throw ParseError{
                             line_of(kv.first),
                             fmt::format("{}.{}: the same {} as {}", key, r.source,
                                         r.kind == transport::UnixScopeRule::Kind::gid   ? "group"
                                         : r.kind == transport::UnixScopeRule::Kind::uid ? "user"
                                                                                         : "entry",
                                         other.source)};
                       }
                     }
                     rules.push_back(std::move(r));
                   }
                 }
                 c.api.unix_scopes = std::move(rules);
               },
               [](const Config& c) {
                 std::string out;
                 for (const auto& r : c.api.unix_scopes) {
                   out.append(out.empty() ? "" : "; ").append(r.source).append(": [");
                   out.append(transport::scopes_to_string(r.scopes)).append("]");
                 }
                 return out;
               },
               [](Config& dst, const Config& src) { dst.api.unix_scopes = src.api.unix_scopes; }};
}

// node.tags: {key: value, ...}, checked by the protocol's own rule (membership/member.h).
Field tags_field() {
  const std::string key = "node.tags";
  Field f{key, true,
          [key](Config& c, const YAML::Node& n, int line) {
            membership::Tags tags;
            if (!n.IsNull()) {
              if (!n.IsMap()) fail(line, key, "a mapping such as {role: db, zone: b}", n);
              for (const auto& kv : n) {
                const int at = line_of(kv.first);
                const std::string k = scalar(kv.first, at, key, "a tag name");
                const std::string v =
                    kv.second.IsNull() ? "" : scalar(kv.second, line_of(kv.second), key + "." + k,
                                                     "a string of printable ASCII");
                if (!tags.emplace(k, v).second) {
                  throw ParseError{at, fmt::format("{}: tag {} is given twice", key, k)};
                }
                if (auto problem = membership::tags_problem({{k, v}})) {
                  throw ParseError{at, fmt::format("{}: {}", key, *problem)};
                }
              }
              if (auto problem = membership::tags_problem(tags)) {
                throw ParseError{line, fmt::format("{}: {}", key, *problem)};
              }
            }
            c.node.tags = std::move(tags);
          },
          [](const Config& c) {
            std::string out = "{";
            for (const auto& [k, v] : c.node.tags) {
              out.append(out.size() > 1 ? ", " : "").append(k).append(": ").append(v);
            }
            return out + "}";
          },
          [](Config& dst, const Config& src) { dst.node.tags = src.node.tags; }};
  return f;
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = [] {
    using M = Millis;
    std::vector<Field> f;
    f.push_back(string_field(
        "node.name", false, "a name of 1 to 128 letters, digits, '.', '-' or '_'", valid_node_name,
        [](auto& c) -> auto& { return c.node.name; }));
    f.push_back(string_field(
        "node.data_dir", false, "a directory path", [](const std::string&) { return true; },
        [](auto& c) -> auto& { return c.node.data_dir; }));
    f.push_back(tags_field());

    f.push_back(make_field(
        "api.http", false, [](auto& c) -> auto& { return c.api.http; }, optional_host_port,
        show_optional));
    f.push_back(make_field(
        "api.insecure", false, [](auto& c) -> auto& { return c.api.insecure; },
        [](const YAML::Node& n, int line, const std::string& k) { return parse_bool(n, line, k); },
        [](bool v) { return std::string(v ? "true" : "false"); }));
    f.push_back(string_field(
        "api.unix_socket", true, "a socket path of at most 107 bytes",
        [](const std::string& s) { return s.size() <= 107; },
        [](auto& c) -> auto& { return c.api.unix_socket; }));
    f.push_back(int_field<unsigned>(
        "api.threads", false, 1, 256, [](auto& c) -> auto& { return c.api.threads; }));
    f.push_back(size_field(
        "api.max_body_bytes", 64, std::size_t{256} << 20,
        [](auto& c) -> auto& { return c.api.limits.max_body_bytes; }));
    f.push_back(size_field(
        "api.max_header_bytes", 1024, std::size_t{1} << 20,
        [](auto& c) -> auto& { return c.api.limits.max_header_bytes; }));
    f.push_back(int_field<std::size_t>(
        "api.max_connections", false, 1, 1'000'000,
        [](auto& c) -> auto& { return c.api.limits.max_connections; }));
    f.push_back(connection_share_field("api.max_connections_per_client", 1,
                                       &Config::Api::max_connections_per_client,
                                       &Config::Api::connections_per_client));
    f.push_back(connection_share_field("api.unix_reserved_connections", 0,
                                       &Config::Api::unix_reserved_connections,
                                       &Config::Api::unix_reserve));
    f.push_back(duration_field(
        "api.read_timeout", false, M(10), M(600'000),
        [](auto& c) -> auto& { return c.api.limits.read_timeout; }));
    f.push_back(duration_field(
        "api.idle_timeout", false, M(10), M(3'600'000),
        [](auto& c) -> auto& { return c.api.limits.idle_timeout; }));
    // Re-read on every SIGHUP, even when the path is unchanged (adding a token edits it).
    Field tokens_file = string_field(
        "api.tokens_file", true, "a file path", [](const std::string&) { return true; },
        [](auto& c) -> auto& { return c.api.tokens_file; });
    tokens_file.reloadable = true;
    f.push_back(std::move(tokens_file));
    f.push_back(unix_scopes_field());
    f.push_back(double_field(
        "api.rate_limit.requests_per_second", false, 0, 1'000'000,
        [](auto& c) -> auto& { return c.api.rate_limit.requests_per_second; }));
    f.push_back(int_field<std::size_t>(
        "api.rate_limit.burst", false, 0, 10'000'000,
        [](auto& c) -> auto& { return c.api.rate_limit.burst; }));
    f.push_back(int_field<std::size_t>(
        "api.rate_limit.max_clients", false, 1, 10'000'000,
        [](auto& c) -> auto& { return c.api.rate_limit.max_clients; }));

    // Re-read on every SIGHUP, like cluster.key_file (a rotation replaces the files in place);
    // turning TLS on or off needs a restart (plan_reload()).
    for (auto [key, member] : {std::pair{"api.tls.cert_file", &Config::Api::Tls::cert_file},
                               std::pair{"api.tls.key_file", &Config::Api::Tls::key_file},
                               std::pair{"api.tls.client_ca_file",
                                         &Config::Api::Tls::client_ca_file}}) {
      Field tls = string_field(
          key, true, "a file path", [](const std::string&) { return true; },
          [member](auto& c) -> auto& { return c.api.tls.*member; });
      tls.reloadable = true;
      f.push_back(std::move(tls));
    }

    f.push_back(string_field(
        "cluster.name", false, "a name of 1 to 64 letters, digits, '.', '-' or '_'",
        [](const std::string& s) { return s.size() <= 64 && valid_node_name(s); },
        [](auto& c) -> auto& { return c.cluster.name; }));
    f.push_back(make_field(
        "cluster.bind", false, [](auto& c) -> auto& { return c.cluster.bind; }, host_port_scalar,
        [](const HostPort& hp) { return hp.to_string(); }));
    f.push_back(make_field(
        "cluster.advertise", false, [](auto& c) -> auto& { return c.cluster.advertise; },
        optional_host_port, show_optional));
    f.push_back(list_field<HostPort>(
        "cluster.seeds", "a list of host:port addresses", host_port_scalar,
        [](const HostPort& hp) { return hp.to_string(); },
        [](auto& c) -> auto& { return c.cluster.seeds; }));
    // Re-read on every SIGHUP, even when the path is unchanged (a rotation edits the file).
    Field key_file = string_field(
        "cluster.key_file", true, "a file path", [](const std::string&) { return true; },
        [](auto& c) -> auto& { return c.cluster.key_file; });
    key_file.reloadable = true;
    f.push_back(std::move(key_file));
    f.push_back(key_dependent_flag("cluster.seal_outgoing", &Config::Cluster::seal_outgoing));
    f.push_back(key_dependent_flag("cluster.require_sealed", &Config::Cluster::require_sealed));
    f.push_back(make_field(
        "cluster.plaintext", true, [](auto& c) -> auto& { return c.cluster.plaintext; },
        [](const YAML::Node& n, int line, const std::string& k) { return parse_bool(n, line, k); },
        [](bool v) { return std::string(v ? "true" : "false"); }));

    f.push_back(duration_field(
        "membership.interval", true, M(10), M(60'000),
        [](auto& c) -> auto& { return c.membership.timings.interval; }));
    f.push_back(int_field<unsigned>(
        "membership.miss_threshold", true, 1, 100,
        [](auto& c) -> auto& { return c.membership.timings.miss_threshold; }));
    f.push_back(duration_field(
        "membership.suspicion_timeout", true, M(0), M(600'000),
        [](auto& c) -> auto& { return c.membership.timings.suspicion_timeout; }));
    f.push_back(duration_field(
        "membership.suspicion_max_timeout", true, M(0), M(600'000),
        [](auto& c) -> auto& { return c.membership.timings.suspicion_max_timeout; }));
    f.push_back(duration_field(
        "membership.probe_timeout", true, M(1), M(60'000),
        [](auto& c) -> auto& { return c.membership.timings.probe_timeout; }));
    f.push_back(int_field<unsigned>(
        "membership.monitors", true, 1, 32,
        [](auto& c) -> auto& { return c.membership.timings.monitors; }));
    f.push_back(int_field<unsigned>(
        "membership.indirect_checks", true, 0, 16,
        [](auto& c) -> auto& { return c.membership.timings.indirect_checks; }));
    f.push_back(int_field<unsigned>(
        "membership.gossip_fanout", true, 1, 32,
        [](auto& c) -> auto& { return c.membership.timings.gossip_fanout; }));
    f.push_back(int_field<unsigned>(
        "membership.retransmit_mult", true, 1, 32,
        [](auto& c) -> auto& { return c.membership.timings.retransmit_mult; }));
    f.push_back(duration_field(
        "membership.sync_interval", true, M(100), M(3'600'000),
        [](auto& c) -> auto& { return c.membership.timings.sync_interval; }));
    f.push_back(duration_field(
        "membership.reconnect_interval", true, M(10), M(3'600'000),
        [](auto& c) -> auto& { return c.membership.timings.reconnect_interval; }));
    f.push_back(int_field<std::size_t>(
        "membership.max_members", true, 2, 1'000'000,
        [](auto& c) -> auto& { return c.membership.timings.max_members; }));
    f.push_back(duration_field(
        "membership.reap_after", true, M(1000), M(30LL * 24 * 3600 * 1000),
        [](auto& c) -> auto& { return c.membership.timings.reap_after; }));
    f.push_back(enum_field<MachineDetector>(
        "membership.detector", true,
        {{"miss_threshold", MachineDetector::miss_threshold},
         {"phi_accrual", MachineDetector::phi_accrual}},
        [](auto& c) -> auto& { return c.membership.detector; }));
    f.push_back(double_field(
        "membership.phi.threshold", true, 0.5, 100,
        [](auto& c) -> auto& { return c.membership.phi.threshold; }));
    f.push_back(int_field<std::size_t>(
        "membership.phi.window", true, 2, 100'000,
        [](auto& c) -> auto& { return c.membership.phi.window; }));
    f.push_back(duration_field(
        "membership.phi.min_std_dev", true, M(1), M(60'000),
        [](auto& c) -> auto& { return c.membership.phi.min_std_dev; }));
    f.push_back(duration_field(
        "membership.phi.acceptable_pause", true, M(0), M(600'000),
        [](auto& c) -> auto& { return c.membership.phi.acceptable_pause; }));

    f.push_back(duration_field(
        "presence.timeout", true, M(100), M(3600 * 1000),
        [](auto& c) -> auto& { return c.presence.timeout; }));
    f.push_back(duration_field(
        "presence.forget_after", false, M(1000), M(20LL * 24 * 3600 * 1000),
        [](auto& c) -> auto& { return c.presence.forget_after; }));
    f.push_back(int_field<std::size_t>(
        "presence.max_users", false, 1, 10'000'000'000,
        [](auto& c) -> auto& { return c.presence.max_users; }));
    f.push_back(int_field<std::size_t>(
        "presence.max_batch", false, 1, 1'000'000,
        [](auto& c) -> auto& { return c.presence.max_batch; }));
    f.push_back(duration_field(
        "presence.history.interval", false, M(100), M(3600 * 1000),
        [](auto& c) -> auto& { return c.presence.history.interval; }));
    f.push_back(int_field<std::size_t>(
        "presence.history.points", false, 1, 100'000,
        [](auto& c) -> auto& { return c.presence.history.points; }));

    f.push_back(enum_field<PresenceBackend>(
        "presence.backend", false,
        {{"memory", PresenceBackend::memory},
         {"redis", PresenceBackend::redis},
         {"dynamodb", PresenceBackend::dynamodb}},
        [](auto& c) -> auto& { return c.presence.backend; }));
    f.push_back(list_field<HostPort>(
        "presence.redis.nodes", "a list of host:port addresses", host_port_scalar,
        [](const HostPort& hp) { return hp.to_string(); },
        [](auto& c) -> auto& { return c.presence.redis.nodes; }));
    f.push_back(enum_field<bool>(
        "presence.redis.cluster", false, {{"false", false}, {"true", true}},
        [](auto& c) -> auto& { return c.presence.redis.cluster; }));
    f.push_back(string_field(
        "presence.redis.username", true, "an ACL user name without spaces",
        [](const std::string& s) {
          return s.size() <= 256 && s.find_first_of(" \t\r\n") == std::string::npos;
        },
        [](auto& c) -> auto& { return c.presence.redis.username; }));
    f.push_back(string_field(
        "presence.redis.password_file", true, "a file path",
        [](const std::string&) { return true; },
        [](auto& c) -> auto& { return c.presence.redis.password_file; }));
    f.push_back(string_field(
        "presence.redis.key_prefix", false,
        "1 to 64 letters, digits, ':', '.', '-' or '_' (no braces: they are hash tags)",
        [](const std::string& s) {
          return s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char ch) {
                   return std::isalnum(static_cast<unsigned char>(ch)) || ch == ':' ||
                          ch == '.' || ch == '-' || ch == '_';
                 });
        },
        [](auto& c) -> auto& { return c.presence.redis.key_prefix; }));
    f.push_back(int_field<unsigned>(
        "presence.redis.shards", false, 1, 16384,
        [](auto& c) -> auto& { return c.presence.redis.shards; }));
    f.push_back(int_field<std::size_t>(
        "presence.redis.pool.min", false, 1, 1024,
        [](auto& c) -> auto& { return c.presence.redis.pool.min; }));
    f.push_back(int_field<std::size_t>(
        "presence.redis.pool.max", false, 1, 1024,
        [](auto& c) -> auto& { return c.presence.redis.pool.max; }));
    f.push_back(duration_field(
        "presence.redis.pool.wait", false, M(0), M(60'000),
        [](auto& c) -> auto& { return c.presence.redis.pool.wait; }));
    f.push_back(duration_field(
        "presence.redis.pool.idle_timeout", false, M(100), M(3'600'000),
        [](auto& c) -> auto& { return c.presence.redis.pool.idle_timeout; }));
    f.push_back(int_field<std::size_t>(
        "presence.redis.pool.max_waiters", false, 1, 1'000'000,
        [](auto& c) -> auto& { return c.presence.redis.pool.max_waiters; }));
    f.push_back(duration_field(
        "presence.redis.timeout", false, M(10), M(60'000),
        [](auto& c) -> auto& { return c.presence.redis.timeout; }));
    f.push_back(duration_field(
        "presence.redis.dedup_window", false, M(0), M(60'000),
        [](auto& c) -> auto& { return c.presence.redis.dedup_window; }));
    f.push_back(duration_field(
        "presence.redis.sweep_interval", false, M(100), M(24LL * 3600 * 1000),
        [](auto& c) -> auto& { return c.presence.redis.sweep_interval; }));

    f.push_back(string_field(
        "presence.dynamodb.table", false,
        "3 to 255 letters, digits, '_', '-' or '.' (DynamoDB's table name rule)",
        [](const std::string& s) {
          return s.size() >= 3 && s.size() <= 255 && std::all_of(s.begin(), s.end(), [](char ch) {
                   return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' ||
                          ch == '-' || ch == '.';
                 });
        },
        [](auto& c) -> auto& { return c.presence.dynamodb.table; }));
    f.push_back(string_field(
        "presence.dynamodb.region", true, "an AWS region name such as eu-west-1",
        [](const std::string& s) {
          return s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char ch) {
                   return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-';
                 });
        },
        [](auto& c) -> auto& { return c.presence.dynamodb.region; }));
    f.push_back(string_field(
        "presence.dynamodb.endpoint", true, "an http:// or https:// URL with a host",
        [](const std::string& s) {
          std::string why;
          return s.empty() || !transport::aws::Endpoint::parse(s, &why).host.empty();
        },
        [](auto& c) -> auto& { return c.presence.dynamodb.endpoint; }));
    f.push_back(string_field(
        "presence.dynamodb.ca_file", true, "a file path",
        [](const std::string&) { return true; },
        [](auto& c) -> auto& { return c.presence.dynamodb.ca_file; }));
    f.push_back(string_field(
        "presence.dynamodb.profile", true, "a profile name without spaces",
        [](const std::string& s) {
          return s.size() <= 128 && s.find_first_of(" \t\r\n[]") == std::string::npos;
        },
        [](auto& c) -> auto& { return c.presence.dynamodb.profile; }));
    f.push_back(enum_field<bool>(
        "presence.dynamodb.create_table", false, {{"false", false}, {"true", true}},
        [](auto& c) -> auto& { return c.presence.dynamodb.create_table; }));
    f.push_back(int_field<std::size_t>(
        "presence.dynamodb.pool.min", false, 1, 1024,
        [](auto& c) -> auto& { return c.presence.dynamodb.pool.min; }));
    f.push_back(int_field<std::size_t>(
        "presence.dynamodb.pool.max", false, 1, 1024,
        [](auto& c) -> auto& { return c.presence.dynamodb.pool.max; }));
    f.push_back(duration_field(
        "presence.dynamodb.pool.wait", false, M(0), M(60'000),
        [](auto& c) -> auto& { return c.presence.dynamodb.pool.wait; }));
    f.push_back(duration_field(
        "presence.dynamodb.pool.idle_timeout", false, M(100), M(3'600'000),
        [](auto& c) -> auto& { return c.presence.dynamodb.pool.idle_timeout; }));
    f.push_back(int_field<std::size_t>(
        "presence.dynamodb.pool.max_waiters", false, 1, 1'000'000,
        [](auto& c) -> auto& { return c.presence.dynamodb.pool.max_waiters; }));
    f.push_back(duration_field(
        "presence.dynamodb.timeout", false, M(10), M(60'000),
        [](auto& c) -> auto& { return c.presence.dynamodb.timeout; }));
    f.push_back(duration_field(
        "presence.dynamodb.dedup_window", false, M(0), M(60'000),
        [](auto& c) -> auto& { return c.presence.dynamodb.dedup_window; }));
    f.push_back(duration_field(
        "presence.dynamodb.watch_interval", false, M(100), M(3'600'000),
        [](auto& c) -> auto& { return c.presence.dynamodb.watch_interval; }));
    f.push_back(duration_field(
        "presence.dynamodb.count_interval", false, M(0), M(24LL * 3600 * 1000),
        [](auto& c) -> auto& { return c.presence.dynamodb.count_interval; }));

    f.push_back(duration_field(
        "persist.presence_interval", true, M(100), M(3600 * 1000),
        [](auto& c) -> auto& { return c.persist.presence_interval; }));

    f.push_back(int_field<std::size_t>(
        "events.max_subscribers", false, 1, 100'000,
        [](auto& c) -> auto& { return c.events.max_subscribers; }));
    f.push_back(int_field<std::size_t>(
        "events.max_watched_users", false, 1, 100'000,
        [](auto& c) -> auto& { return c.events.max_watched_users; }));
    f.push_back(size_field(
        "events.max_queue_bytes", 4096, std::size_t{64} << 20,
        [](auto& c) -> auto& { return c.events.max_queue_bytes; }));
    f.push_back(duration_field(
        "events.keepalive", false, M(100), M(3'600'000),
        [](auto& c) -> auto& { return c.api.limits.stream_keepalive; }));

    f.push_back(string_field(
        "hooks.on_member_change", true, "an absolute path to an executable",
        [](const std::string& s) { return s.starts_with('/'); },
        [](auto& c) -> auto& { return c.hooks.on_member_change; }));
    f.push_back(string_field(
        "hooks.on_user_change", true, "an absolute path to an executable",
        [](const std::string& s) { return s.starts_with('/'); },
        [](auto& c) -> auto& { return c.hooks.on_user_change; }));
    f.push_back(list_field<std::uint64_t>(
        "hooks.users", "a list of user ids (integers from 0 to 2^64-1)",
        [](const YAML::Node& n, int line, const std::string& k) {
          auto id = parse_int<std::uint64_t>(scalar(n, line, k, "a user id"));
          if (!id) fail(line, k, "a user id (an integer from 0 to 2^64-1)", n);
          return *id;
        },
        [](std::uint64_t id) { return std::to_string(id); },
        [](auto& c) -> auto& { return c.hooks.users; }));
    f.push_back(int_field<unsigned>(
        "hooks.max_concurrent", false, 1, 256,
        [](auto& c) -> auto& { return c.hooks.max_concurrent; }));
    f.push_back(duration_field(
        "hooks.timeout", false, M(10), M(3'600'000),
        [](auto& c) -> auto& { return c.hooks.timeout; }));
    f.push_back(int_field<std::size_t>(
        "hooks.max_queue", false, 1, 1'000'000,
        [](auto& c) -> auto& { return c.hooks.max_queue; }));

    f.push_back(enum_field<LogLevel>(
        "log.level", true,
        {{"debug", LogLevel::debug},
         {"info", LogLevel::info},
         {"warning", LogLevel::warning},
         {"error", LogLevel::error}},
        [](auto& c) -> auto& { return c.log.level; }));
    f.push_back(enum_field<LogFormat>(
        "log.format", true, {{"text", LogFormat::text}, {"json", LogFormat::json}},
        [](auto& c) -> auto& { return c.log.format; }));
    return f;
  }();
  return table;
}

const Field* find_field(const std::string& key) {
  for (const auto& f : fields()) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

bool is_section(const std::string& prefix) {
  return std::any_of(fields().begin(), fields().end(),
                     [&](const Field& f) { return f.key.starts_with(prefix + "."); });
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string unknown_key_message(const std::string& path) {
  std::string best;
  std::size_t best_distance = 3;  // suggest only near misses
  for (const auto& f : fields()) {
    const std::size_t d = edit_distance(path, f.key);
    if (d < best_distance) best_distance = d, best = f.key;
  }
  if (!best.empty()) return fmt::format("unknown key {} (did you mean {}?)", path, best);
  return fmt::format("unknown key {}", path);
}

int line_of(const YAML::Node& n) {
  return n.Mark().line >= 0 ? n.Mark().line + 1 : 0;
}

void walk(Config& cfg, const YAML::Node& map, const std::string& prefix, int line) {
  if (!map.IsMap()) {
    if (prefix.empty()) fail(line_of(map), "the file", "a mapping of sections", map);
    fail(line, prefix, "a mapping", map);
  }
  std::set<std::string> seen;
  for (const auto& kv : map) {
    const int key_line = line_of(kv.first);
    if (!kv.first.IsScalar()) throw ParseError{key_line, "keys must be plain names"};
    const std::string name = kv.first.Scalar();
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    if (!seen.insert(name).second)
      throw ParseError{key_line, fmt::format("duplicate key {}", path)};
    if (const Field* f = find_field(path)) {
      f->parse(cfg, kv.second, key_line);
    } else if (is_section(path)) {
      if (!kv.second.IsNull()) walk(cfg, kv.second, path, key_line);
    } else {
      throw ParseError{key_line, unknown_key_message(path)};
    }
  }
}

// Checks that involve more than one key, and (check_files) that hook programs exist: at
// start and in --check-config, not at SIGHUP (hooks are read at start only; a hook file
// being replaced must not make reloads of other keys fail).
}  // namespace

std::optional<std::string> read_secret_file(const std::string& path, std::string* why) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) {
    *why = std::strerror(errno);
    return std::nullopt;
  }
  std::string text(4096, '\0');
  const std::size_t n = std::fread(text.data(), 1, text.size(), f);
  const bool more = n == text.size() && std::fgetc(f) != EOF;
  std::fclose(f);
  text.resize(n);
  if (more) {
    *why = "longer than 4 KiB: not a password";
    return std::nullopt;
  }
  const auto end = text.find_first_of("\r\n");
  if (end != std::string::npos) text.resize(end);
  if (text.empty()) {
    *why = "the first line is empty";
    return std::nullopt;
  }
  return text;
}

namespace {

// Whether api.http listens where more than this host can reach it.
bool api_beyond_loopback(const Config& c) {
  return c.api.http && !is_loopback(c.api.http->host) && c.api.http->host != "localhost";
}


void validate(const Config& c, bool check_files = true) {
  if (!c.api.http && c.api.unix_socket.empty()) {
    throw ParseError{0, "api.http and api.unix_socket are both disabled: enable at least one"};
  }
  if (c.api.connections_per_client() > c.api.limits.max_connections) {
    throw ParseError{0, fmt::format("api.max_connections_per_client ({}) is above "
                                    "api.max_connections ({})",
                                    c.api.connections_per_client(), c.api.limits.max_connections)};
  }
  if (c.api.http && !c.api.unix_socket.empty() &&
      c.api.unix_reserve() >= c.api.limits.max_connections) {
    throw ParseError{0, fmt::format("api.unix_reserved_connections ({}) leaves none of "
                                    "api.max_connections ({}) for TCP: lower it, or disable "
                                    "api.http",
                                    c.api.unix_reserve(), c.api.limits.max_connections)};
  }
  // Secure defaults: the API writes presence and reads who is online, so beyond this host it
  // needs both TLS (nobody reads or alters it on the way) and tokens (nobody else may call it).
  if (api_beyond_loopback(c) && !c.api.insecure) {
    std::vector<std::string> missing;
    if (!c.api.tls.enabled()) missing.push_back("TLS (api.tls.cert_file and api.tls.key_file)");
    if (c.api.tokens_file.empty()) missing.push_back("tokens (api.tokens_file)");
    if (!missing.empty()) {
      throw ParseError{
          0, fmt::format("api.http {} is not a loopback address and the API there would have no "
                         "{}: anyone who can reach it could post heartbeats, log users out and "
                         "read who is online. Set {}, bind api.http to 127.0.0.1, or set "
                         "api.insecure: true to accept it (docs/API.md, \"Securing the API\")",
                         c.api.http->to_string(), fmt::join(missing, " and "),
                         fmt::join(missing, " and "))};
    }
  }
  if (c.api.rate_limit.burst > 0 && c.api.rate_limit.requests_per_second == 0) {
    throw ParseError{0,
                     "api.rate_limit.burst is set but api.rate_limit.requests_per_second is "
                     "0 (the limit is off): set requests_per_second too"};
  }
  if (!c.api.tokens_file.empty() && check_files) {
    auto tokens = transport::load_tokens_file(c.api.tokens_file);
    if (auto* e = std::get_if<transport::TokensError>(&tokens)) {
      throw ParseError{0, "api.tokens_file " + e->message};
    }
  }
  if (c.membership.timings.suspicion_max_timeout < c.membership.timings.suspicion_timeout) {
    throw ParseError{0,
                     fmt::format("membership.suspicion_max_timeout ({}) must not be shorter than "
                                 "membership.suspicion_timeout ({})",
                                 show_duration(c.membership.timings.suspicion_max_timeout),
                                 show_duration(c.membership.timings.suspicion_timeout))};
  }
  if (!c.hooks.on_user_change.empty() && c.hooks.users.empty()) {
    throw ParseError{0, "hooks.on_user_change is set but hooks.users is empty: list the users "
                        "whose online/offline changes run it"};
  }
  if (c.hooks.users.size() > c.events.max_watched_users) {
    throw ParseError{0, fmt::format("hooks.users lists {} users, more than "
                                    "events.max_watched_users ({})",
                                    c.hooks.users.size(), c.events.max_watched_users)};
  }
  for (const auto* hook : {&c.hooks.on_member_change, &c.hooks.on_user_change}) {
    if (hook->empty() || !check_files) continue;
    struct stat st {};
    if (stat(hook->c_str(), &st) != 0) {
      throw ParseError{0, fmt::format("hook {}: {}", *hook, std::strerror(errno))};
    }
    if (!S_ISREG(st.st_mode) || access(hook->c_str(), X_OK) != 0) {
      throw ParseError{0, fmt::format("hook {}: not an executable file", *hook)};
    }
  }
  if (c.presence.backend == PresenceBackend::redis) {
    const auto& r = c.presence.redis;
    if (r.nodes.empty()) {
      throw ParseError{0, "presence.backend is redis but presence.redis.nodes is empty: list the "
                          "Redis server (or, with presence.redis.cluster, some cluster nodes)"};
    }
    if (!r.cluster && r.nodes.size() > 1) {
      throw ParseError{0, fmt::format("presence.redis.nodes lists {} servers but "
                                      "presence.redis.cluster is false: a standalone Redis is one "
                                      "server (set cluster: true for a Redis Cluster)",
                                      r.nodes.size())};
    }
    if (r.key_prefix.empty()) throw ParseError{0, "presence.redis.key_prefix must not be empty"};
    if (r.pool.min > r.pool.max) {
      throw ParseError{0, fmt::format("presence.redis.pool.min ({}) is above "
                                      "presence.redis.pool.max ({})",
                                      r.pool.min, r.pool.max)};
    }
    if (2 * (r.pool.wait + r.timeout) > c.api.limits.read_timeout) {
      throw ParseError{0, fmt::format("presence.redis.pool.wait ({}) plus presence.redis.timeout "
                                      "({}) must be at most half of api.read_timeout ({}): a "
                                      "request may wait for a connection and then for Redis "
                                      "twice (a redirection or a reconnect) before the server "
                                      "gives up on it",
                                      format_duration(r.pool.wait), format_duration(r.timeout),
                                      format_duration(c.api.limits.read_timeout))};
    }
    if (r.dedup_window * 4 > c.presence.timeout) {
      throw ParseError{0, fmt::format("presence.redis.dedup_window ({}) must be at most a quarter "
                                      "of presence.timeout ({}): a skipped heartbeat may make a "
                                      "user look offline up to the window early",
                                      format_duration(r.dedup_window),
                                      format_duration(c.presence.timeout))};
    }
    if (!r.password_file.empty() && check_files) {
      std::string why;
      if (!read_secret_file(r.password_file, &why)) {
        throw ParseError{0, fmt::format("presence.redis.password_file {}: {}", r.password_file,
                                        why)};
      }
    }
  }
  if (c.presence.backend == PresenceBackend::dynamodb) {
    const auto& d = c.presence.dynamodb;
    if (d.pool.min > d.pool.max) {
      throw ParseError{0, fmt::format("presence.dynamodb.pool.min ({}) is above "
                                      "presence.dynamodb.pool.max ({})",
                                      d.pool.min, d.pool.max)};
    }
    if (2 * (d.pool.wait + d.timeout) > c.api.limits.read_timeout) {
      throw ParseError{0, fmt::format("presence.dynamodb.pool.wait ({}) plus "
                                      "presence.dynamodb.timeout ({}) must be at most half of "
                                      "api.read_timeout ({}): a request retries within that "
                                      "bound before the server gives up on it",
                                      format_duration(d.pool.wait), format_duration(d.timeout),
                                      format_duration(c.api.limits.read_timeout))};
    }
    if (d.dedup_window * 4 > c.presence.timeout) {
      throw ParseError{0, fmt::format("presence.dynamodb.dedup_window ({}) must be at most a "
                                      "quarter of presence.timeout ({}): a skipped heartbeat may "
                                      "make a user look offline up to the window early",
                                      format_duration(d.dedup_window),
                                      format_duration(c.presence.timeout))};
    }
    if (!d.ca_file.empty() && check_files && access(d.ca_file.c_str(), R_OK) != 0) {
      throw ParseError{0, fmt::format("presence.dynamodb.ca_file {}: {}", d.ca_file,
                                      std::strerror(errno))};
    }
  }
  const auto& tls = c.api.tls;
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    throw ParseError{0, fmt::format("{} is set but {} is not: TLS needs both the certificate and "
                                    "its private key",
                                    tls.cert_file.empty() ? "api.tls.key_file" : "api.tls.cert_file",
                                    tls.cert_file.empty() ? "api.tls.cert_file" : "api.tls.key_file")};
  }
  if (!tls.client_ca_file.empty() && !tls.enabled()) {
    throw ParseError{0, "api.tls.client_ca_file is set but api.tls.cert_file and "
                        "api.tls.key_file are not: client certificates need TLS"};
  }
  if (tls.enabled() && !c.api.http) {
    throw ParseError{0, "api.tls is set but api.http is disabled: TLS serves the TCP listener "
                        "(the Unix socket stays plain)"};
  }
  if (tls.enabled() && check_files) {
    std::string why;
    if (!transport::make_server_tls_context(
             {tls.cert_file, tls.key_file, tls.client_ca_file}, &why)
             .context) {
      throw ParseError{0, why};
    }
  }
  const auto& cl = c.cluster;
  if (cl.key_file.empty()) {
    for (const auto& [flag, name] : {std::pair{cl.seal_outgoing, "cluster.seal_outgoing"},
                                     std::pair{cl.require_sealed, "cluster.require_sealed"}}) {
      if (flag.value_or(false)) {
        throw ParseError{0, fmt::format("{} is true but cluster.key_file is not set: there is "
                                        "no key to seal with",
                                        name)};
      }
    }
    if (!is_loopback(cl.bind.host) && !cl.plaintext) {
      throw ParseError{0, fmt::format("cluster.bind {} is not a loopback address and there is no "
                                      "cluster.key_file: anyone who can reach it could forge "
                                      "heartbeats; set cluster.key_file, or cluster.plaintext: "
                                      "true to accept an unauthenticated cluster",
                                      cl.bind.to_string())};
    }
  } else if (!cl.sends_sealed() && cl.requires_sealed()) {
    throw ParseError{0,
                     "cluster.require_sealed is true but cluster.seal_outgoing is false: nodes "
                     "configured alike would drop each other's datagrams. Turn seal_outgoing "
                     "on first (docs/PROTOCOL.md, \"Turning encryption on\")"};
  }
  if (!cl.key_file.empty() && check_files) {
    std::string why;
    if (!transport::read_key_file(cl.key_file, &why)) {
      throw ParseError{0, "cluster.key_file " + why};
    }
  }
  if (c.presence.forget_after < c.presence.timeout) {
    throw ParseError{0, fmt::format("presence.forget_after ({}) must not be shorter than "
                                    "presence.timeout ({}): online users would be forgotten",
                                    format_duration(c.presence.forget_after),
                                    format_duration(c.presence.timeout))};
  }
}

}  // namespace

bool is_loopback(const std::string& host) {
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6;
  if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

std::vector<std::string> security_warnings(const Config& c) {
  std::vector<std::string> w;
  if (api_beyond_loopback(c) && c.api.insecure &&
      (!c.api.tls.enabled() || c.api.tokens_file.empty())) {
    w.push_back(fmt::format("API on {} without {} (api.insecure)", c.api.http->to_string(),
                            !c.api.tls.enabled() && c.api.tokens_file.empty() ? "TLS and tokens"
                            : !c.api.tls.enabled()                              ? "TLS"
                                                                           : "tokens"));
  }
  const auto& cl = c.cluster;
  if (is_loopback(cl.bind.host)) return w;
  if (cl.key_file.empty()) {
    w.push_back(
        fmt::format("cluster is unauthenticated on {} (cluster.plaintext)", cl.bind.to_string()));
  } else if (!cl.requires_sealed()) {
    w.push_back(
        fmt::format("cluster accepts unauthenticated datagrams on {} "
                    "(cluster.require_sealed: false)",
                    cl.bind.to_string()));
  }
  return w;
}

std::size_t Config::Api::connections_per_client() const {
  return max_connections_per_client.value_or(
      std::min(limits.max_connections_per_client, limits.max_connections));
}

std::size_t Config::Api::unix_reserve() const {
  return unix_reserved_connections.value_or(
      std::min(limits.unix_reserved_connections, limits.max_connections / 4));
}

transport::HttpServerLimits Config::Api::server_limits() const {
  transport::HttpServerLimits l = limits;
  l.max_connections_per_client = connections_per_client();
  l.unix_reserved_connections = unix_reserve();
  return l;
}

membership::ProtocolTimings Config::Membership::protocol_timings() const {
  membership::ProtocolTimings t = timings;
  t.phi.reset();
  if (detector == MachineDetector::phi_accrual) {
    t.phi = phi;
    t.phi->suspicion_timeout = t.suspicion_timeout;  // one key for both detectors
  }
  return t;
}

double Config::Api::RateLimit::effective_burst() const {
  if (burst > 0) return static_cast<double>(burst);
  return std::max(1.0, std::ceil(requests_per_second));
}

Config default_config() {
  Config c;
  c.node.name = default_node_name();
  const std::string uid = std::to_string(getuid());
  if (auto state = env_or_empty("STATE_DIRECTORY"); !state.empty()) {
    c.node.data_dir = first_path(state);
  } else if (auto xdg = env_or_empty("XDG_STATE_HOME"); !xdg.empty()) {
    c.node.data_dir = xdg + "/heartbeatd";
  } else if (auto home = env_or_empty("HOME"); !home.empty()) {
    c.node.data_dir = home + "/.local/state/heartbeatd";
  } else {
    c.node.data_dir = "/tmp/heartbeatd-" + uid + "/data";
  }
  if (auto run = env_or_empty("RUNTIME_DIRECTORY"); !run.empty()) {
    c.api.unix_socket = first_path(run) + "/heartbeatd.sock";
  } else if (auto xdg = env_or_empty("XDG_RUNTIME_DIR"); !xdg.empty()) {
    c.api.unix_socket = xdg + "/heartbeatd.sock";
  } else {
    c.api.unix_socket = "/tmp/heartbeatd-" + uid + "/heartbeatd.sock";
  }
  if (c.api.unix_socket.size() > 107) c.api.unix_socket = "/tmp/heartbeatd-" + uid + ".sock";
  // Half the cores: the API's clients are local services sharing the same cores, and a
  // connection waits whenever its loop's thread is off the CPU. With as many loops as cores,
  // a client saturating the rest made single heartbeats' p99 2.5x worse (bench/RESULTS.md,
  // issue #20); with half, both rate and p99 were better on 2 cores.
  c.api.threads = std::clamp(std::thread::hardware_concurrency() / 2, 1u, 256u);
  return c;
}

ConfigResult load_config_text(const std::string& yaml, const std::string& origin) {
  Config cfg = default_config();
  try {
    const YAML::Node root = YAML::Load(yaml);
    if (!root.IsNull()) walk(cfg, root, "", 1);
    validate(cfg);
  } catch (const ParseError& e) {
    if (e.line > 0) return ConfigError{fmt::format("{}:{}: {}", origin, e.line, e.text)};
    return ConfigError{fmt::format("{}: {}", origin, e.text)};
  } catch (const YAML::Exception& e) {
    return ConfigError{fmt::format("{}:{}: not valid YAML: {}", origin, e.mark.line + 1, e.msg)};
  }
  return cfg;
}

ConfigResult load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ConfigError{fmt::format("{}: cannot read: {}", path, std::strerror(errno))};
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return ConfigError{fmt::format("{}: read error", path)};
  return load_config_text(text.str(), path);
}

std::vector<std::pair<std::string, std::string>> describe(const Config& c) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : fields()) out.emplace_back(f.key, f.show(c));
  return out;
}

ReloadPlan plan_reload(const Config& current, const Config& next) {
  ReloadPlan plan{current, {}, {}, std::nullopt};
  const bool tls_switched = current.api.tls.enabled() != next.api.tls.enabled();
  for (const auto& f : fields()) {
    // Copied even when shown the same: an explicit value may equal today's default yet
    // differ once another key changes it (cluster.seal_outgoing: false with a new key_file).
    // The listener is HTTPS or plain from the start: files may change, TLS on or off not.
    const bool reloadable = f.reloadable && !(f.key.starts_with("api.tls.") && tls_switched);
    if (reloadable) f.copy(plan.effective, next);
    const std::string before = f.show(current), after = f.show(next);
    if (before == after) continue;
    const std::string change = fmt::format("{}: {} -> {}", f.key, before, after);
    (reloadable ? plan.applied : plan.needs_restart).push_back(change);
  }
  try {
    validate(plan.effective, false);
  } catch (const ParseError& e) {
    plan.error = "with the keys that need a restart kept at their running values, " + e.text;
  }
  return plan;
}

}  // namespace heartbeatd
