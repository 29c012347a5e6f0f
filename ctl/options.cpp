#include "ctl/options.h"

#include <fmt/format.h>

#include "base/user_ids.h"
#include "membership/member.h"

namespace heartbeatd::ctl {
namespace {

// The longest path a sockaddr_un holds (108 bytes with the terminating NUL), as in the daemon.
constexpr std::size_t kMaxSocketPath = 107;

struct CommandInfo {
  std::string_view name;
  Command command;
};
constexpr CommandInfo kCommands[] = {
    {"health", Command::health}, {"members", Command::members},     {"member", Command::member},
    {"user", Command::user},     {"users", Command::users},         {"heartbeat", Command::heartbeat},
    {"offline", Command::offline}, {"watch", Command::watch},     {"keys", Command::keys},
    {"reload", Command::reload},   {"join", Command::join},         {"force-leave", Command::force_leave},
};

std::optional<Command> find_command(std::string_view name) {
  for (const auto& c : kCommands) {
    if (c.name == name) return c.command;
  }
  return std::nullopt;
}

// Thrown inside the parser only; parse_args turns it into a UsageError value.
struct Usage {
  std::string message;
};

std::uint64_t user_id(std::string_view text) {
  std::string why;
  auto id = parse_user_id(text, &why);
  if (!id) throw Usage{fmt::format("bad user id '{}': {}", text, why)};
  return *id;
}

std::string member_name(std::string_view text) {
  if (!membership::valid_name(text)) {
    throw Usage{fmt::format("bad member name '{}': expected 1 to 128 letters, digits, '.', '-' or '_'",
                            text)};
  }
  return std::string(text);
}

// "1,2,3" -> its items; an empty item is an error.
std::vector<std::string_view> split_list(std::string_view option, std::string_view list) {
  std::vector<std::string_view> items;
  std::size_t start = 0;
  while (true) {
    const auto comma = list.find(',', start);
    const auto item = list.substr(start, comma == std::string_view::npos ? comma : comma - start);
    if (item.empty()) throw Usage{fmt::format("{}: empty item in '{}'", option, list)};
    items.push_back(item);
    if (comma == std::string_view::npos) return items;
    start = comma + 1;
  }
}

// --state S[,S]: the states GET /v1/members?state= knows, checked here so that a typo is a
// usage error (exit 2) rather than the daemon's 400 (exit 1).
std::vector<std::string> member_states(std::string_view list) {
  std::vector<std::string> states;
  for (auto s : split_list("--state", list)) {
    if (s != "alive" && s != "suspect" && s != "dead" && s != "left") {
      throw Usage{fmt::format("--state: unknown state '{}' (expected alive, suspect, dead or left)", s)};
    }
    states.emplace_back(s);
  }
  return states;
}

// --name GLOB: the daemon's rule for `name=` patterns (docs/API.md, "Filters and paging").
std::string name_pattern(std::string_view glob) {
  if (!membership::valid_name_pattern(glob)) {
    throw Usage{fmt::format("--name: bad pattern '{}': expected 1 to {} letters, digits, '.', '-', "
                            "'_' and the wildcards '*' and '?'",
                            glob, membership::kMaxNamePatternBytes)};
  }
  return std::string(glob);
}

// --tag KEY:VALUE or KEY: the daemon's rule for tag keys and values (membership/member.h).
std::string tag_filter(std::string_view tag) {
  const auto colon = tag.find(':');
  const auto key = tag.substr(0, colon);
  if (!membership::valid_tag_key(key)) {
    throw Usage{fmt::format("--tag: bad key '{}': expected KEY:VALUE or KEY, the key 1 to {} "
                            "letters, digits, '.', '-' or '_'",
                            key, membership::kMaxTagKeyBytes)};
  }
  if (colon != std::string_view::npos && !membership::valid_tag_value(tag.substr(colon + 1))) {
    throw Usage{fmt::format("--tag: bad value for {}: at most {} printable ASCII characters", key,
                            membership::kMaxTagValueBytes)};
  }
  return std::string(tag);
}

void expect_count(std::string_view command, const std::vector<std::string>& operands,
                  std::size_t min, std::size_t max, std::string_view what) {
  const auto n = operands.size();
  if (n < min) {
    throw Usage{fmt::format("{} needs {} {}", command, max == 1 ? "a" : "at least one", what)};
  }
  if (n > max) {
    throw Usage{max == 0   ? fmt::format("{} takes no arguments, got '{}'", command, operands[0])
                : max == 1 ? fmt::format("{} takes exactly one {}, got {}", command, what, n)
                           : fmt::format("{} takes at most {} {} arguments, got {}", command, max, what, n)};
  }
}

bool is_token68(std::string_view s) {
  std::size_t i = 0;
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
  };
  while (i < s.size() && ok(s[i])) ++i;
  if (i == 0) return false;
  while (i < s.size() && s[i] == '=') ++i;
  return i == s.size();
}

// --token-file wins over $HEARTBEATD_TOKEN: what is on the command line is what was meant.
// Like the daemon's tokens file, a token file others may read or write is refused. Messages
// never quote the token.
std::string resolve_token(const std::optional<std::string>& token_file, const Environment& env) {
  if (token_file) {
    if (!env.read_secret_file)
      throw Usage{fmt::format("--token-file {}: cannot read", *token_file)};
    const SecretFile f = env.read_secret_file(*token_file);
    if (!f.error.empty()) throw Usage{fmt::format("--token-file {}: {}", *token_file, f.error)};
    if (f.mode & 0006) {
      throw Usage{
          fmt::format("--token-file {}: readable or writable by others (mode {:04o}); "
                      "it holds an API token: chmod o-rwx {}",
                      *token_file, f.mode, *token_file)};
    }
    std::string_view line = f.text;
    line = line.substr(0, line.find('\n'));
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    if (line.empty())
      throw Usage{fmt::format("--token-file {}: the first line is empty", *token_file)};
    if (!is_token68(line)) {
      throw Usage{
          fmt::format("--token-file {}: the first line is not a token (letters, digits, "
                      "'-', '.', '_', '~', '+', '/', trailing '=')",
                      *token_file)};
    }
    return std::string(line);
  }
  const auto value = env.getenv("HEARTBEATD_TOKEN");
  if (!value || value->empty()) return {};
  if (!is_token68(*value)) {
    throw Usage{
        "HEARTBEATD_TOKEN is not a token (letters, digits, '-', '.', '_', '~', '+', '/', "
        "trailing '=')"};
  }
  return *value;
}

Options parse(const std::vector<std::string>& args, const Environment& env) {
  Options o;
  std::optional<std::string> token_file;
  std::optional<std::string> socket;
  std::optional<std::string> users_list, members_list, states_list, name_glob;
  std::vector<std::string> tag_filters;  // --tag, repeatable
  bool timeout_given = false;
  bool prune = false;
  std::optional<std::string> command_name;
  std::vector<std::string> operands;

  auto value = [&](std::size_t& i, std::string_view option, std::string_view what,
                   std::optional<std::string_view> inline_value) -> std::string {
    if (inline_value) return std::string(*inline_value);
    if (i + 1 >= args.size()) throw Usage{fmt::format("{} needs a {} argument", option, what)};
    return args[++i];
  };
  auto once = [](bool given, std::string_view option) {
    if (given) throw Usage{fmt::format("{} given twice", option)};
  };

  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    // "-1" is an operand (a bad user id, reported as such), not an option.
    const bool negative_number = arg.size() > 1 && arg[0] == '-' && arg[1] >= '0' && arg[1] <= '9';
    if (options_done || !arg.starts_with("-") || arg == "-" || negative_number) {
      if (!command_name) {
        command_name = std::string(arg);
      } else {
        operands.emplace_back(arg);
      }
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::optional<std::string_view> inline_value;
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto no_value = [&] {
      if (inline_value) throw Usage{fmt::format("{} takes no value", arg)};
    };
    if (arg == "--help" || arg == "-h") {
      no_value();
      throw ShowHelp{};
    }
    if (arg == "--version") {
      no_value();
      throw ShowVersion{};
    }
    if (arg == "--json") {
      no_value();
      o.json = true;
    } else if (arg == "--socket") {
      once(socket.has_value(), arg);
      socket = value(i, arg, "PATH", inline_value);
      if (socket->empty()) throw Usage{"--socket: the path is empty"};
      if (socket->size() > kMaxSocketPath) {
        throw Usage{fmt::format("--socket: the path is longer than {} bytes", kMaxSocketPath)};
      }
    } else if (arg == "--http") {
      once(o.http.has_value(), arg);
      const std::string given = value(i, arg, "HOST:PORT", inline_value);
      std::string_view v = given;
      if (v.starts_with("https://")) {
        o.tls.enabled = true;
        v.remove_prefix(8);
      } else if (v.starts_with("http://")) {
        v.remove_prefix(7);
      }
      std::string why;
      o.http = parse_host_port(v, &why);
      if (!o.http) {
        throw Usage{fmt::format("--http: bad address '{}': {} (expected HOST:PORT, such as "
                                "127.0.0.1:7700 or [::1]:7700)", given, why)};
      }
    } else if (arg == "--ca-file" || arg == "--cert" || arg == "--key") {
      std::string& file = arg == "--ca-file" ? o.tls.ca_file
                          : arg == "--cert"  ? o.tls.cert_file
                                             : o.tls.key_file;
      once(!file.empty(), arg);
      file = value(i, arg, "FILE", inline_value);
      if (file.empty()) throw Usage{fmt::format("{}: the path is empty", arg)};
    } else if (arg == "--timeout") {
      once(timeout_given, arg);
      timeout_given = true;
      const std::string v = value(i, arg, "DURATION", inline_value);
      auto d = parse_duration(v);
      if (!d || *d <= std::chrono::milliseconds(0) || *d > std::chrono::hours(1)) {
        throw Usage{fmt::format("--timeout: expected a duration from 1ms to 1h (such as 500ms, "
                                "5s, 1m), got '{}'", v)};
      }
      o.timeout = *d;
    } else if (arg == "--token-file") {
      once(token_file.has_value(), arg);
      token_file = value(i, arg, "FILE", inline_value);
      if (token_file->empty()) throw Usage{"--token-file: the path is empty"};
    } else if (arg == "--users") {
      once(users_list.has_value(), arg);
      users_list = value(i, arg, "ID,... list", inline_value);
    } else if (arg == "--members") {
      once(members_list.has_value(), arg);
      members_list = value(i, arg, "NAME,... list", inline_value);
    } else if (arg == "--state") {
      once(states_list.has_value(), arg);
      states_list = value(i, arg, "STATE,... list", inline_value);
    } else if (arg == "--prune") {
      no_value();
      once(prune, arg);
      prune = true;
    } else if (arg == "--name") {
      once(name_glob.has_value(), arg);
      name_glob = value(i, arg, "GLOB", inline_value);
    } else if (arg == "--tag") {
      tag_filters.push_back(value(i, arg, "KEY:VALUE", inline_value));
    } else {
      throw Usage{fmt::format("unknown option '{}'", args[i])};
    }
  }

  if (socket && o.http) throw Usage{"--socket and --http cannot be used together"};
  const auto& t = o.tls;
  if (!t.enabled && !(t.ca_file.empty() && t.cert_file.empty() && t.key_file.empty())) {
    throw Usage{fmt::format("{} needs --http https://HOST:PORT",
                            !t.ca_file.empty() ? "--ca-file" : !t.cert_file.empty() ? "--cert"
                                                                                    : "--key")};
  }
  if (t.cert_file.empty() != t.key_file.empty()) {
    throw Usage{"--cert and --key go together (a client certificate and its key)"};
  }
  o.socket_path = o.http ? std::string() : socket ? *socket : default_socket_path(env);
  o.token = resolve_token(token_file, env);

  if (!command_name) throw Usage{"no command given"};
  const auto command = find_command(*command_name);
  if (!command) throw Usage{fmt::format("unknown command '{}'", *command_name)};
  o.command = *command;
  const std::string_view name = *command_name;
  if (o.command != Command::watch && (users_list || members_list)) {
    throw Usage{fmt::format("{} is an option of watch only", users_list ? "--users" : "--members")};
  }
  if (o.command != Command::force_leave && prune) {
    throw Usage{"--prune is an option of force-leave only"};
  }
  if (o.command != Command::members && (states_list || name_glob || !tag_filters.empty())) {
    throw Usage{fmt::format("{} is an option of members only",
                            states_list ? "--state" : name_glob ? "--name" : "--tag")};
  }

  switch (o.command) {
    case Command::health:
    case Command::keys:
    case Command::reload:
      expect_count(name, operands, 0, 0, "");
      break;
    case Command::members:
      expect_count(name, operands, 0, 0, "");
      if (states_list) o.states = member_states(*states_list);
      if (name_glob) o.name_glob = name_pattern(*name_glob);
      for (const auto& t : tag_filters) o.tags.push_back(tag_filter(t));
      break;
    case Command::member:
      expect_count(name, operands, 1, 1, "NAME");
      o.member = member_name(operands[0]);
      break;
    case Command::force_leave:
      expect_count(name, operands, 1, 1, "NAME");
      o.member = member_name(operands[0]);
      o.prune = prune;
      break;
    case Command::join:
      // The daemon's limit (POST /v1/join), checked here so that it is a usage error.
      expect_count(name, operands, 1, kMaxJoinAddresses, "ADDRESS");
      for (const auto& a : operands) {
        std::string why;
        if (!parse_host_port(a, &why)) {
          throw Usage{fmt::format("join: bad address '{}': {} (expected HOST:PORT, the node's "
                                  "cluster address, such as 10.0.0.2:7701)",
                                  a, why)};
        }
        o.addresses.push_back(a);
      }
      break;
    case Command::user:
    case Command::offline:
      expect_count(name, operands, 1, 1, "ID");
      o.users.push_back(user_id(operands[0]));
      break;
    case Command::users:
    case Command::heartbeat:
      expect_count(name, operands, 1, SIZE_MAX, "ID");
      for (const auto& id : operands) o.users.push_back(user_id(id));
      break;
    case Command::watch:
      expect_count(name, operands, 0, 0, "");
      if (users_list) {
        for (auto id : split_list("--users", *users_list)) o.users.push_back(user_id(id));
      }
      if (members_list) {
        for (auto m : split_list("--members", *members_list)) o.members.push_back(member_name(m));
      }
      break;
  }
  return o;
}

}  // namespace

std::string default_socket_path(const Environment& env) {
  auto nonempty = [&](const char* name) {
    auto v = env.getenv(name);
    return v && !v->empty() ? v : std::nullopt;
  };
  const std::string uid = std::to_string(env.uid);
  if (auto explicit_path = nonempty("HEARTBEATD_SOCKET")) return *explicit_path;
  if (env.exists(std::string(kSystemdSocket))) return std::string(kSystemdSocket);
  std::string path = "/tmp/heartbeatd-" + uid + "/heartbeatd.sock";
  if (auto xdg = nonempty("XDG_RUNTIME_DIR")) path = *xdg + "/heartbeatd.sock";
  if (path.size() > kMaxSocketPath) path = "/tmp/heartbeatd-" + uid + ".sock";
  return path;
}

ParseResult parse_args(const std::vector<std::string>& args, const Environment& env) {
  try {
    return parse(args, env);
  } catch (const Usage& u) {
    return UsageError{u.message};
  } catch (const ShowHelp& h) {
    return h;
  } catch (const ShowVersion& v) {
    return v;
  }
}

}  // namespace heartbeatd::ctl
