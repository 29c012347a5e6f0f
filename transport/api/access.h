// Access control for the HTTP API: who a request comes from and which scopes it has.
//
// Two ways in (docs/API.md, "Securing the API"):
// - api.tokens_file: bearer tokens, one a line "NAME SCOPE[,SCOPE...] SECRET". Only SHA-256
//   digests are kept; a presented token is hashed and compared with every digest in constant
//   time. With a tokens file, every TCP request needs a token.
// - api.unix_scopes: the Unix socket decides by the peer's SO_PEERCRED uid/gid.
//
// The parsers are pure (text in, tokens or an error naming file and line out, never a
// secret). AccessPolicy is immutable: SIGHUP builds a new one and the Router swaps it in.
//
// Thread safety: AccessPolicy is immutable after construction; decide() may run on every API
// thread at once. The free functions are reentrant.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "transport/api/http_router.h"

namespace heartbeatd::transport {

using TokenDigest = std::array<unsigned char, 32>;  // SHA-256

// SHA-256 of a token as presented (the bytes after "Bearer ").
TokenDigest token_digest(std::string_view token);

struct TokenEntry {
  std::string name;  // for logs and metrics only; never sent to a client
  Scopes scopes = 0;
  TokenDigest digest{};
};

// "FILE:LINE: problem" (or "FILE: problem"); never contains a secret.
struct TokensError {
  std::string message;
};
using TokensResult = std::variant<std::vector<TokenEntry>, TokensError>;

// The rules of a tokens file: '#' starts a comment, blank lines are skipped, each other line
// is NAME (1 to 64 letters, digits, '.', '-', '_'), a comma-separated scope list, and the
// SECRET: the token itself (16 to 4096 characters a Bearer token may carry: letters, digits,
// '-', '.', '_', '~', '+', '/', trailing '=') or "sha256:" and 64 hex digits. Duplicate
// names and duplicate secrets are errors.
TokensResult parse_tokens(std::string_view text, std::string_view file_name);

// Reads and parses `path`, refusing a file that others (not the owner, not the group) may
// read or write, or that is not a regular file. The text read is wiped from memory after.
TokensResult load_tokens_file(const std::string& path);

// "read" -> Scope::read; nullopt for an unknown name.
std::optional<Scope> parse_scope(std::string_view name);

// The token of an Authorization header value "Bearer TOKEN" (scheme case-insensitive, one
// space, a token68 token), or nullopt and `why` (which never quotes the value).
std::optional<std::string_view> bearer_token(std::string_view header, std::string* why);

// One entry of api.unix_scopes, resolved at config load (user and group names become ids).
struct UnixScopeRule {
  enum class Kind { uid, gid, others };
  Kind kind = Kind::others;
  unsigned id = 0;  // uid or gid
  Scopes scopes = 0;
  std::string source;  // as written in the config: "uid:1000", "group:monitoring", "others"
  bool operator==(const UnixScopeRule&) const = default;
};

// What the policy concluded about one request.
struct AccessDecision {
  bool authenticated = true;  // false: answer 401
  Scopes scopes = 0;          // meaningful when authenticated
  // Whom api.rate_limit counts the request against: "token NAME" when a token vouched for
  // it, else Caller::client() ("203.0.113.7", "uid 1000").
  std::string principal;
  std::string problem;  // when !authenticated: what was wrong (for the log; no secret)
};

class AccessPolicy {
 public:
  struct Options {
    // nullopt: no api.tokens_file (TCP callers have every scope, tokens are not looked at).
    // An empty list: a tokens file with no tokens (every TCP request is refused).
    std::optional<std::vector<TokenEntry>> tokens;
    std::vector<UnixScopeRule> unix_scopes;
    unsigned own_uid = 0;  // the daemon's uid: all scopes on the socket unless mapped by uid
  };
  explicit AccessPolicy(Options options);

  // TCP: with tokens, a valid Bearer token is required and gives its scopes; without, every
  // scope. Unix socket: a request carrying an Authorization header is judged by its token
  // (when there are tokens); otherwise by the peer's credentials: a uid entry, else the
  // daemon's own uid (all scopes), else a gid entry, else the "others" entry, else every
  // scope (the socket's 0660 mode already limits who can connect). Internal: every scope.
  AccessDecision decide(const Request& request, const Caller& caller) const;

  bool has_tokens() const { return options_.tokens.has_value(); }
  std::size_t token_count() const { return options_.tokens ? options_.tokens->size() : 0; }

 private:
  Scopes unix_scopes(const Caller& caller) const;

  Options options_;
};

}  // namespace heartbeatd::transport
