#include "transport/aws/credentials.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

namespace heartbeatd::transport::aws {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// ---------------------------------------------------------------------------------------------
// What one link of the chain found. `nothing` lets the chain go on (and its note goes into the
// final "no AWS credentials found" message); `broken` stops it: the user configured this
// source, so falling through to another identity would be a surprise.
struct Outcome {
  enum Kind { found, nothing, broken };
  Kind kind = nothing;
  Credentials credentials;
  std::string note;

  static Outcome ok(Credentials c) { return {found, std::move(c), {}}; }
  static Outcome none(std::string why) { return {nothing, {}, std::move(why)}; }
  static Outcome error(std::string why) { return {broken, {}, std::move(why)}; }
};

class Environment {
 public:
  explicit Environment(const CredentialOptions& options) : env_(options.env) {}
  // An empty variable counts as unset, as in the AWS SDKs ("AWS_PROFILE=" selects nothing).
  std::optional<std::string> get(const std::string& name) const {
    std::optional<std::string> value;
    if (env_) {
      value = env_(name);
    } else if (const char* v = std::getenv(name.c_str())) {
      value = v;
    }
    if (value && value->empty()) value.reset();
    return value;
  }

 private:
  const std::function<std::optional<std::string>(const std::string&)>& env_;
};

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n";
  std::size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  std::size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Header values come from the environment or a file: a CR or LF would start a header of its
// own (request smuggling), so such a value is refused, not sent.
bool safe_header_value(std::string_view v) {
  for (char c : v) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// 1. Environment.

Outcome from_environment(const Environment& env) {
  auto id = env.get("AWS_ACCESS_KEY_ID");
  auto secret = env.get("AWS_SECRET_ACCESS_KEY");
  if (!id && !secret) return Outcome::none("AWS_ACCESS_KEY_ID not set");
  if (!secret) {
    return Outcome::error("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
  }
  if (!id) return Outcome::error("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  Credentials c;
  c.access_key_id = *id;
  c.secret_access_key = *secret;
  c.session_token = env.get("AWS_SESSION_TOKEN").value_or("");
  c.source = "environment";
  return Outcome::ok(std::move(c));
}

// ---------------------------------------------------------------------------------------------
// 2. Shared credentials and config files.

using Section = std::map<std::string, std::string>;  // key (lower case) -> value
using IniFile = std::map<std::string, Section>;      // section name as written, trimmed

// The AWS INI dialect: [section], key = value, full-line comments (# or ;), inline comments
// after whitespace, and indented sub-properties under a key with an empty value (the
// "s3 =\n  max_concurrent_requests = 20" form), which no credential key uses, so they are
// skipped. A section seen twice merges, later keys winning.
IniFile parse_ini(std::string_view text) {
  IniFile out;
  Section* current = nullptr;
  bool in_sub_properties = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    const bool indented = raw.front() == ' ' || raw.front() == '\t';
    if (indented && in_sub_properties) continue;
    if (line.front() == '[') {
      in_sub_properties = false;
      std::size_t close = line.find(']');
      // A malformed header ends the previous section, so its keys cannot leak into it.
      current = close == std::string_view::npos
                    ? nullptr
                    : &out[std::string(trim(line.substr(1, close - 1)))];
      continue;
    }
    std::size_t eq = line.find('=');
    if (current == nullptr || eq == std::string_view::npos) continue;
    std::string_view key = trim(line.substr(0, eq));
    std::string_view value = trim(line.substr(eq + 1));
    for (std::size_t i = 1; i < value.size(); ++i) {
      if ((value[i] == '#' || value[i] == ';') && (value[i - 1] == ' ' || value[i - 1] == '\t')) {
        value = trim(value.substr(0, i));
        break;
      }
    }
    in_sub_properties = value.empty();
    (*current)[lower(key)] = std::string(value);
  }
  return out;
}

enum class FileState { read, missing, unreadable };

FileState read_whole_file(const std::string& path, std::string* content, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return FileState::missing;
    *error = path + ": " + std::strerror(err);
    return FileState::unreadable;
  }
  std::ostringstream s;
  s << in.rdbuf();
  *content = s.str();
  return FileState::read;
}

Outcome from_shared_files(const Environment& env, const CredentialOptions& options) {
  std::string profile = options.profile;
  bool chosen = !profile.empty();
  if (!chosen) {
    if (auto p = env.get("AWS_PROFILE")) {
      profile = *p;
      chosen = true;
    } else {
      profile = "default";
    }
  }

  auto home = env.get("HOME");
  auto credentials_path = env.get("AWS_SHARED_CREDENTIALS_FILE");
  if (!credentials_path && home) credentials_path = *home + "/.aws/credentials";
  auto config_path = env.get("AWS_CONFIG_FILE");
  if (!config_path && home) config_path = *home + "/.aws/config";

  // Where the profile's keys were found: the credentials file wins over the config file,
  // key by key, as in the AWS CLI.
  struct Found {
    std::string value;
    std::string file;
  };
  std::map<std::string, Found> keys;
  std::vector<std::string> notes;
  bool profile_seen = false;

  auto load = [&](const std::optional<std::string>& path, const char* what,
                  const std::vector<std::string>& section_names) -> std::optional<Outcome> {
    if (!path) {
      notes.push_back(std::string(what) + " file: HOME not set");
      return std::nullopt;
    }
    std::string text, error;
    switch (read_whole_file(*path, &text, &error)) {
      case FileState::missing:
        notes.push_back(*path + " not found");
        return std::nullopt;
      case FileState::unreadable:
        return Outcome::error(error);
      case FileState::read:
        break;
    }
    IniFile ini = parse_ini(text);
    bool here = false;
    for (const std::string& name : section_names) {
      auto it = ini.find(name);
      if (it == ini.end()) continue;
      here = true;
      // try_emplace: a key already read from the credentials file stays.
      for (const auto& [key, value] : it->second) keys.try_emplace(key, Found{value, *path});
    }
    if (here) {
      profile_seen = true;
    } else {
      notes.push_back("no profile " + profile + " in " + *path);
    }
    return std::nullopt;
  };

  std::vector<std::string> config_sections = {"profile " + profile};
  if (profile == "default") config_sections.insert(config_sections.begin(), "default");
  if (auto broken = load(credentials_path, "credentials", {profile})) return *broken;
  if (auto broken = load(config_path, "config", config_sections)) return *broken;

  auto joined_notes = [&] {
    std::string s;
    for (const auto& n : notes) s += (s.empty() ? "" : ", ") + n;
    return s;
  };
  if (!profile_seen) {
    // A profile the user named must exist; the implicit "default" may well not.
    if (chosen) return Outcome::error("profile " + profile + " not found (" + joined_notes() + ")");
    return Outcome::none(joined_notes());
  }

  auto id = keys.find("aws_access_key_id");
  auto secret = keys.find("aws_secret_access_key");
  if (id == keys.end() && secret == keys.end()) {
    std::string why = "profile " + profile + " has no aws_access_key_id";
    if (keys.count("role_arn") || keys.count("sso_start_url") || keys.count("sso_session") ||
        keys.count("credential_process") || keys.count("web_identity_token_file")) {
      why += " (role, SSO, web-identity and credential_process profiles are not supported)";
    }
    // A named profile without keys is a misconfiguration; a default profile holding only a
    // region is normal and lets the chain go on.
    if (chosen) return Outcome::error(why);
    return Outcome::none(why);
  }
  if (id == keys.end() || id->second.value.empty()) {
    return Outcome::error("profile " + profile + " in " + secret->second.file +
                          " has aws_secret_access_key but no aws_access_key_id");
  }
  if (secret == keys.end() || secret->second.value.empty()) {
    return Outcome::error("profile " + profile + " in " + id->second.file +
                          " has aws_access_key_id but no aws_secret_access_key");
  }
  Credentials c;
  c.access_key_id = id->second.value;
  c.secret_access_key = secret->second.value;
  if (auto token = keys.find("aws_session_token"); token != keys.end()) {
    c.session_token = token->second.value;
  }
  c.source = "profile " + profile + " in " + id->second.file;
  return Outcome::ok(std::move(c));
}

// ---------------------------------------------------------------------------------------------
// A blocking HTTP/1.1 exchange on a private io_context: the whole exchange (resolve, connect,
// write, read) must finish within `timeout`, or it is abandoned.

// A short, printable excerpt of an answer for an error message.
std::string excerpt(std::string_view body) {
  std::string out;
  for (char c : body.substr(0, 120)) {
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  if (body.size() > 120) out += "...";
  return out.empty() ? "(empty body)" : "\"" + out + "\"";
}

struct Url {
  std::string host;  // without brackets for IPv6
  std::string port = "80";
  std::string target = "/";
  std::string text;  // as given, for messages
};

// "http://host[:port][/path]"; https is not needed by the metadata endpoints we talk to.
std::optional<Url> parse_http_url(const std::string& text, std::string* why) {
  constexpr std::string_view kScheme = "http://";
  if (lower(text.substr(0, kScheme.size())) != kScheme) {
    *why = text + ": only http:// URLs are supported";
    return std::nullopt;
  }
  // A CR or LF here would end the request line early and smuggle in headers.
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      *why = excerpt(text) + ": a space or control character in the URL";
      return std::nullopt;
    }
  }
  Url url;
  url.text = text;
  std::string_view rest = std::string_view(text).substr(kScheme.size());
  std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) url.target = std::string(rest.substr(slash));
  if (authority.find('@') != std::string_view::npos) {
    *why = text + ": user information in the URL is not supported";
    return std::nullopt;
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      *why = text + ": unterminated IPv6 address";
      return std::nullopt;
    }
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        *why = text + ": bad host";
        return std::nullopt;
      }
      port = after.substr(1);
    }
  } else {
    std::size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (url.host.empty()) {
    *why = text + ": no host";
    return std::nullopt;
  }
  if (!port.empty()) {
    unsigned value = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || (value = value * 10 + static_cast<unsigned>(c - '0')) > 65535) {
        *why = text + ": bad port";
        return std::nullopt;
      }
    }
    if (value == 0) {
      *why = text + ": bad port";
      return std::nullopt;
    }
    url.port = std::string(port);
  }
  return url;
}

struct HttpAnswer {
  unsigned status = 0;
  std::string body;
};

std::string ms_text(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

std::optional<HttpAnswer> http_exchange(
    const Url& url, http::verb method, const std::string& target,
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::chrono::milliseconds timeout, std::string* why) {
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  beast::flat_buffer buffer;
  http::request<http::string_body> request{method, target, 11};
  std::string host_header =
      url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  if (url.port != "80") host_header += ":" + url.port;
  request.set(http::field::host, host_header);
  request.set(http::field::user_agent, "heartbeatd");
  request.set(http::field::connection, "close");
  for (const auto& [name, value] : headers) request.set(name, value);
  request.prepare_payload();
  http::response_parser<http::string_body> parser;
  parser.body_limit(1 << 20);  // a credentials document is a few hundred bytes

  // Which step is under way, so a timeout names it.
  const char* step = "resolve";
  bool done = false;
  beast::error_code failure;

  resolver.async_resolve(
      url.host, url.port, [&](beast::error_code ec, tcp::resolver::results_type results) {
        if (ec) {
          failure = ec;
          done = true;
          return;
        }
        step = "connect";
        stream.async_connect(results, [&](beast::error_code ec, const tcp::endpoint&) {
          if (ec) {
            failure = ec;
            done = true;
            return;
          }
          step = "send";
          http::async_write(stream, request, [&](beast::error_code ec, std::size_t) {
            if (ec) {
              failure = ec;
              done = true;
              return;
            }
            step = "answer";
            http::async_read(stream, buffer, parser, [&](beast::error_code ec, std::size_t) {
              failure = ec;
              done = true;
            });
          });
        });
      });
  ioc.run_for(timeout);
  if (!done) {
    // Pending operations die with the io_context, their handlers never run.
    *why = url.text + ": " + step + " timed out after " + ms_text(timeout);
    return std::nullopt;
  }
  if (failure) {
    *why = url.text + ": " + step + " failed: " + failure.message();
    return std::nullopt;
  }
  HttpAnswer answer;
  answer.status = parser.get().result_int();
  answer.body = std::move(parser.get().body());
  return answer;
}

// ---------------------------------------------------------------------------------------------
// The credentials document both metadata services answer with.

// "2026-12-05T10:00:00Z" (fractional seconds and a +00:00 offset accepted) -> Unix seconds.
std::optional<std::int64_t> parse_iso8601_utc(std::string_view s) {
  auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    if (at + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  auto y = digits(0, 4), mo = digits(5, 2), d = digits(8, 2), h = digits(11, 2), mi = digits(14, 2),
       sec = digits(17, 2);
  if (!y || !mo || !d || !h || !mi || !sec || s.size() < 20 || s[4] != '-' || s[7] != '-' ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  std::size_t pos = 19;
  if (s[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  std::string_view zone = s.substr(pos);
  if (zone != "Z" && zone != "z" && zone != "+00:00") return std::nullopt;
  std::chrono::year_month_day date{std::chrono::year{*y},
                                   std::chrono::month{static_cast<unsigned>(*mo)},
                                   std::chrono::day{static_cast<unsigned>(*d)}};
  if (!date.ok() || *h > 23 || *mi > 59 || *sec > 60) return std::nullopt;
  std::int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
  return days * 86400 + *h * 3600 + *mi * 60 + *sec;
}

Outcome parse_credentials_document(std::string_view body, const std::string& where,
                                   std::string source, std::int64_t now) {
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(body, ec);
  if (ec)
    return Outcome::error(where + ": answer is not JSON (" + ec.message() + "): " + excerpt(body));
  const boost::json::object* object = doc.if_object();
  if (object == nullptr)
    return Outcome::error(where + ": answer is not a JSON object: " + excerpt(body));
  auto string_field = [&](const char* name) -> const boost::json::string* {
    const boost::json::value* v = object->if_contains(name);
    return v ? v->if_string() : nullptr;
  };
  // IMDS says whether it succeeded; the container endpoint has no Code field.
  if (const boost::json::string* code = string_field("Code"); code && *code != "Success") {
    return Outcome::error(where + ": Code is " + std::string(*code));
  }
  const boost::json::string* id = string_field("AccessKeyId");
  const boost::json::string* secret = string_field("SecretAccessKey");
  if (id == nullptr || id->empty())
    return Outcome::error(where + ": answer has no AccessKeyId string");
  if (secret == nullptr || secret->empty()) {
    return Outcome::error(where + ": answer has no SecretAccessKey string");
  }
  Credentials c;
  c.access_key_id = std::string(*id);
  c.secret_access_key = std::string(*secret);
  if (const boost::json::string* token = string_field("Token"))
    c.session_token = std::string(*token);
  if (const boost::json::value* expiration = object->if_contains("Expiration")) {
    const boost::json::string* text = expiration->if_string();
    std::optional<std::int64_t> at = text ? parse_iso8601_utc(*text) : std::nullopt;
    if (!at) {
      return Outcome::error(where + ": Expiration is not an ISO-8601 UTC time: " +
                            excerpt(boost::json::serialize(*expiration)));
    }
    if (*at <= now) {
      return Outcome::error(where + ": credentials expired at " + std::string(*text));
    }
    c.expires = *at;
  }
  c.source = std::move(source);
  return Outcome::ok(std::move(c));
}

// ---------------------------------------------------------------------------------------------
// 3. Container endpoint (ECS task role, EKS Pod Identity).

// Credentials must only be asked of the local agent: a FULL_URI pointing elsewhere would hand
// the authorization token, and trust, to another host.
bool allowed_container_host(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) return false;
  if (address.is_v4()) {
    const auto v4 = address.to_v4();
    return (v4.to_uint() >> 24) == 127 || v4 == asio::ip::make_address_v4("169.254.170.2") ||
           v4 == asio::ip::make_address_v4("169.254.170.23");
  }
  const auto v6 = address.to_v6();
  return v6.is_loopback() || v6 == asio::ip::make_address_v6("fd00:ec2::23");
}

Outcome from_container(const Environment& env, const CredentialOptions& options, std::int64_t now) {
  std::optional<Url> url;
  std::string why;
  if (auto relative = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
    if (relative->front() != '/') {
      return Outcome::error("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI does not start with '/': " +
                            *relative);
    }
    url = parse_http_url("http://169.254.170.2" + *relative, &why);
  } else if (auto full = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
    url = parse_http_url(*full, &why);
    if (url && !allowed_container_host(url->host)) {
      return Outcome::error("AWS_CONTAINER_CREDENTIALS_FULL_URI " + *full + ": host " + url->host +
                            " is not loopback nor the ECS/EKS agent address (169.254.170.2, "
                            "169.254.170.23, fd00:ec2::23); refused");
    }
  } else {
    return Outcome::none("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI not set");
  }
  if (!url) return Outcome::error(why);

  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<std::string> token;
  if (auto token_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
    // The file wins over the variable: EKS rotates the token in place.
    std::string content, error;
    switch (read_whole_file(*token_file, &content, &error)) {
      case FileState::missing:
        return Outcome::error("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + *token_file +
                              " not found");
      case FileState::unreadable:
        return Outcome::error("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + error);
      case FileState::read:
        token = std::string(trim(content));
    }
  } else {
    token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  }
  if (token) {
    if (!safe_header_value(*token)) {
      return Outcome::error("the container authorization token holds a line break; refused");
    }
    headers.emplace_back("Authorization", *token);
  }

  const std::string where = "container endpoint " + url->text;
  auto answer =
      http_exchange(*url, http::verb::get, url->target, headers, options.http_timeout, &why);
  if (!answer) return Outcome::error(why);
  if (answer->status != 200) {
    return Outcome::error(where + ": HTTP " + std::to_string(answer->status) + " " +
                          excerpt(answer->body));
  }
  return parse_credentials_document(answer->body, where, where, now);
}

// ---------------------------------------------------------------------------------------------
// 4. EC2 instance metadata, IMDSv2 only (a session token first: v1's plain GETs are what SSRF
// attacks on instances abuse, and many accounts turn v1 off).

// IAM role names are [\w+=,.@-]{1,64}; anything else in that answer is not a role name.
bool valid_role_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    std::strchr("_+=,.@-", c) != nullptr;
    if (!ok) return false;
  }
  return true;
}

Outcome from_instance_metadata(const Environment& env, const CredentialOptions& options,
                               std::int64_t now) {
  if (auto disabled = env.get("AWS_EC2_METADATA_DISABLED");
      disabled && lower(*disabled) == "true") {
    return Outcome::none("disabled by AWS_EC2_METADATA_DISABLED");
  }
  std::string endpoint =
      env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT").value_or("http://169.254.169.254");
  std::string why;
  std::optional<Url> url = parse_http_url(endpoint, &why);
  if (!url) return Outcome::error("AWS_EC2_METADATA_SERVICE_ENDPOINT " + why);
  std::string base = url->target;
  while (!base.empty() && base.back() == '/') base.pop_back();

  // Not reachable or not answering: not on EC2 (or the hop limit), nothing configured wrong.
  auto token_answer = http_exchange(*url, http::verb::put, base + "/latest/api/token",
                                    {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}},
                                    options.http_timeout, &why);
  if (!token_answer) return Outcome::none(why);
  if (token_answer->status != 200) {
    return Outcome::none(endpoint + ": token PUT answered HTTP " +
                         std::to_string(token_answer->status));
  }
  std::string token(trim(token_answer->body));
  if (token.empty() || !safe_header_value(token)) {
    return Outcome::error(endpoint + ": token PUT answered an unusable token " + excerpt(token));
  }
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"X-aws-ec2-metadata-token", token}};

  const std::string roles_path = base + "/latest/meta-data/iam/security-credentials/";
  auto roles =
      http_exchange(*url, http::verb::get, roles_path, headers, options.http_timeout, &why);
  if (!roles) return Outcome::none(why);
  if (roles->status == 404)
    return Outcome::none(endpoint + ": no IAM role attached to the instance");
  if (roles->status != 200) {
    return Outcome::error(endpoint + roles_path + ": HTTP " + std::to_string(roles->status) + " " +
                          excerpt(roles->body));
  }
  std::string_view listing = roles->body;
  std::string role(trim(listing.substr(0, listing.find('\n'))));
  if (role.empty()) return Outcome::none(endpoint + ": no IAM role attached to the instance");
  if (!valid_role_name(role)) {
    return Outcome::error(endpoint + roles_path + ": not a role name: " + excerpt(role));
  }

  auto document =
      http_exchange(*url, http::verb::get, roles_path + role, headers, options.http_timeout, &why);
  if (!document) return Outcome::error(why);
  const std::string where = "instance metadata " + endpoint + " role " + role;
  if (document->status != 200) {
    return Outcome::error(where + ": HTTP " + std::to_string(document->status) + " " +
                          excerpt(document->body));
  }
  return parse_credentials_document(document->body, where, "instance metadata role " + role, now);
}

}  // namespace

std::optional<Credentials> resolve_credentials(const CredentialOptions& options, std::string* why) {
  const Environment env(options);
  const std::int64_t now = options.now ? options.now()
                                       : std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count();

  struct Link {
    const char* name;
    std::function<Outcome()> look;
  };
  const Link chain[] = {
      {"environment", [&] { return from_environment(env); }},
      {"shared files", [&] { return from_shared_files(env, options); }},
      {"container", [&] { return from_container(env, options, now); }},
      {"instance metadata", [&] { return from_instance_metadata(env, options, now); }},
  };
  std::string tried;
  for (const Link& link : chain) {
    Outcome outcome = link.look();
    switch (outcome.kind) {
      case Outcome::found:
        return std::move(outcome.credentials);
      case Outcome::broken:
        if (why) *why = std::string("AWS credentials: ") + link.name + ": " + outcome.note;
        return std::nullopt;
      case Outcome::nothing:
        tried += (tried.empty() ? "" : "; ") + std::string(link.name) + ": " + outcome.note;
        break;
    }
  }
  if (why) *why = "no AWS credentials found: " + tried;
  return std::nullopt;
}

}  // namespace heartbeatd::transport::aws
