#include "transport/api/access.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include <fmt/format.h>

namespace heartbeatd::transport {
namespace {

constexpr std::string_view kSha256Prefix = "sha256:";
constexpr std::size_t kMinSecret = 16;    // guessing stays out of reach
constexpr std::size_t kMaxSecret = 4096;  // far above any real token
constexpr std::size_t kMaxFileBytes = 1 << 20;

bool is_token68_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

// RFC 7235 token68: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool is_token68(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && is_token68_char(s[i])) ++i;
  if (i == 0) return false;
  while (i < s.size() && s[i] == '=') ++i;
  return i == s.size();
}

bool valid_token_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

// A field that may be quoted in an error without risking a secret: short lowercase words
// (a misspelt scope), which no valid secret (16 characters at least) can be.
bool safe_to_quote(std::string_view s) {
  if (s.empty() || s.size() > 12) return false;
  for (char c : s) {
    if (c < 'a' || c > 'z') return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i == line.size()) break;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

TokenDigest token_digest(std::string_view token) {
  TokenDigest d{};
  crypto_hash_sha256(d.data(), reinterpret_cast<const unsigned char*>(token.data()), token.size());
  return d;
}

std::optional<Scope> parse_scope(std::string_view name) {
  for (Scope s : {Scope::read, Scope::write, Scope::admin, Scope::metrics}) {
    if (to_string(s) == name) return s;
  }
  return std::nullopt;
}

TokensResult parse_tokens(std::string_view text, std::string_view file_name) {
  std::vector<TokenEntry> tokens;
  std::map<std::string, int, std::less<>> name_lines;
  std::vector<int> lines;  // the line of each token, for duplicate-secret messages
  auto error = [&](int line, std::string problem) {
    return TokensError{fmt::format("{}:{}: {}", file_name, line, problem)};
  };
  int line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    ++line_no;
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    // A Bearer token cannot contain '#', so a comment may start anywhere on the line.
    if (const auto hash = line.find('#'); hash != std::string_view::npos) {
      line = line.substr(0, hash);
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto f = fields_of(line);
    if (f.empty()) continue;
    if (f.size() != 3) {
      return error(line_no, fmt::format("expected NAME SCOPE[,SCOPE...] SECRET, got {} field{}",
                                        f.size(), f.size() == 1 ? "" : "s"));
    }
    TokenEntry t;
    if (!valid_token_name(f[0])) {
      return error(line_no, "bad token name: expected 1 to 64 letters, digits, '.', '-' or '_'");
    }
    t.name = std::string(f[0]);
    std::size_t start = 0;
    const std::string_view list = f[1];
    while (true) {
      const auto comma = list.find(',', start);
      const auto item = list.substr(
          start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      const auto scope = parse_scope(item);
      if (!scope) {
        return error(
            line_no,
            item.empty() ? std::string("empty scope in the scope list")
            : safe_to_quote(item)
                ? fmt::format("unknown scope \"{}\" (known: read, write, admin, metrics)", item)
                : std::string("unknown scope (known: read, write, admin, metrics)"));
      }
      t.scopes |= bit(*scope);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    const std::string_view secret = f[2];
    if (secret.starts_with(kSha256Prefix)) {
      const auto hex = secret.substr(kSha256Prefix.size());
      bool ok = hex.size() == 64;
      for (std::size_t i = 0; ok && i < 32; ++i) {
        const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        ok = hi >= 0 && lo >= 0;
        if (ok) t.digest[i] = static_cast<unsigned char>(hi * 16 + lo);
      }
      if (!ok) return error(line_no, "sha256: must be followed by 64 hex digits");
    } else {
      if (secret.size() < kMinSecret || secret.size() > kMaxSecret) {
        return error(line_no, fmt::format("the secret must be {} to {} characters long (such as "
                                          "`head -c 32 /dev/urandom | base64`)",
                                          kMinSecret, kMaxSecret));
      }
      if (!is_token68(secret)) {
        return error(line_no,
                     "the secret has characters a Bearer token cannot carry (allowed: "
                     "letters, digits, '-', '.', '_', '~', '+', '/', trailing '=')");
      }
      t.digest = token_digest(secret);
    }
    if (auto it = name_lines.find(t.name); it != name_lines.end()) {
      return error(line_no,
                   fmt::format("token name {} already used on line {}", t.name, it->second));
    }
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (sodium_memcmp(tokens[i].digest.data(), t.digest.data(), t.digest.size()) == 0) {
        return error(line_no,
                     fmt::format("same secret as line {}: every token must be unique", lines[i]));
      }
    }
    name_lines.emplace(t.name, line_no);
    lines.push_back(line_no);
    tokens.push_back(std::move(t));
  }
  return tokens;
}

TokensResult load_tokens_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return TokensError{fmt::format("{}: {}", path, std::strerror(errno))};
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return TokensError{fmt::format("{}: not a regular file", path)};
  }
  if (st.st_mode & (S_IROTH | S_IWOTH)) {
    ::close(fd);
    return TokensError{
        fmt::format("{}: readable or writable by others (mode {:04o}); it holds "
                    "API credentials: chmod o-rwx {}",
                    path, st.st_mode & 07777, path)};
  }
  std::string text;
  text.resize(kMaxFileBytes + 1);
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      sodium_memzero(text.data(), text.size());
      return TokensError{fmt::format("{}: {}", path, std::strerror(err))};
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  TokensResult result = got > kMaxFileBytes
                            ? TokensResult{TokensError{fmt::format("{}: larger than 1 MiB", path)}}
                            : parse_tokens(std::string_view(text.data(), got), path);
  // The plaintext secrets leave memory with the buffer; only digests remain.
  sodium_memzero(text.data(), text.size());
  return result;
}

std::optional<std::string_view> bearer_token(std::string_view header, std::string* why) {
  auto no = [&](const char* text) -> std::optional<std::string_view> {
    *why = text;
    return std::nullopt;
  };
  if (header.empty()) return no("empty Authorization header");
  const auto space = header.find(' ');
  const std::string_view scheme = header.substr(0, space);
  if (!ascii_iequals(scheme, "Bearer")) return no("Authorization scheme is not Bearer");
  if (space == std::string_view::npos) return no("Bearer without a token");
  const std::string_view token = header.substr(space + 1);
  if (token.empty()) return no("Bearer without a token");
  if (!is_token68(token)) {
    return no("malformed Bearer token (expected \"Bearer\", one space, and the token)");
  }
  return token;
}

AccessPolicy::AccessPolicy(Options options) : options_(std::move(options)) {}

Scopes AccessPolicy::unix_scopes(const Caller& caller) const {
  const auto find = [&](UnixScopeRule::Kind kind,
                        std::optional<unsigned> id) -> const UnixScopeRule* {
    for (const auto& r : options_.unix_scopes) {
      if (r.kind == kind && (kind == UnixScopeRule::Kind::others || (id && r.id == *id))) {
        return &r;
      }
    }
    return nullptr;
  };
  if (const auto* r = find(UnixScopeRule::Kind::uid, caller.uid)) return r->scopes;
  // The daemon's own user (its operator's heartbeatctl) is never locked out by a group rule.
  if (caller.uid && *caller.uid == options_.own_uid) return kAllScopes;
  if (const auto* r = find(UnixScopeRule::Kind::gid, caller.gid)) return r->scopes;
  if (const auto* r = find(UnixScopeRule::Kind::others, std::nullopt)) return r->scopes;
  return kAllScopes;
}

AccessDecision AccessPolicy::decide(const Request& request, const Caller& caller) const {
  AccessDecision d;
  d.principal = caller.client();
  const bool has_header = request.find(http::field::authorization) != request.end();
  const bool by_token = options_.tokens && (caller.via == Caller::Via::tcp ||
                                            (caller.via == Caller::Via::unix_socket && has_header));
  if (!by_token) {
    d.scopes = caller.via == Caller::Via::unix_socket ? unix_scopes(caller) : kAllScopes;
    return d;
  }
  d.authenticated = false;
  if (!has_header) {
    d.problem = "no Authorization header";
    return d;
  }
  if (request.count(http::field::authorization) > 1) {
    d.problem = "more than one Authorization header";
    return d;
  }
  const auto token = bearer_token(request[http::field::authorization], &d.problem);
  if (!token) return d;
  const TokenDigest presented = token_digest(*token);
  // Every digest is compared, whatever matched before: the time taken says nothing about
  // which token (if any) matched.
  const TokenEntry* match = nullptr;
  for (const auto& t : *options_.tokens) {
    const bool equal = sodium_memcmp(t.digest.data(), presented.data(), presented.size()) == 0;
    match = equal ? &t : match;
  }
  if (!match) {
    d.problem = "unknown token";
    return d;
  }
  d.authenticated = true;
  d.scopes = match->scopes;
  d.principal = "token " + match->name;
  return d;
}

}  // namespace heartbeatd::transport
