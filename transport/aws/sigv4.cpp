#include "transport/aws/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <stdexcept>
#include <vector>

namespace heartbeatd::transport::aws {
namespace {

using Digest = std::array<unsigned char, 32>;

Digest sha256(std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size()) {
    // Only an OpenSSL that cannot do SHA-256 at all gets here: nothing could be signed.
    throw std::runtime_error("sigv4: OpenSSL SHA-256 failed");
  }
  return out;
}

Digest hmac_sha256(std::string_view key, std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
           &len) == nullptr ||
      len != out.size()) {
    throw std::runtime_error("sigv4: OpenSSL HMAC-SHA256 failed");
  }
  return out;
}

std::string_view as_view(const Digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

std::string to_hex(const Digest& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(d.size() * 2);
  for (unsigned char c : d) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xF]);
  }
  return out;
}

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

// SigV4's URI encoding: RFC 3986 unreserved characters kept, every other byte %XX with
// upper-case hex (AWS compares the canonical request byte for byte, so "%2f" would not do).
void uri_encode(std::string_view in, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : in) {
    if (is_unreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The query as sent may already be percent-encoded ("%E1%88%B4=1") or not ("ሴ=1"); decoding
// first and encoding once gives the same canonical form for both. A '%' not followed by two
// hex digits is taken literally.
std::string percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

// Every service but S3 signs the normalised path (RFC 3986 remove_dot_segments, empty
// segments dropped): "//example//" and "/a/b/../.." are signed as "/example/" and "/".
std::string canonical_uri(std::string_view path, bool normalize) {
  if (path.empty()) return "/";
  std::vector<std::string_view> segments;
  std::size_t start = path.front() == '/' ? 1 : 0;
  bool trailing_slash = false;
  while (true) {
    std::size_t slash = path.find('/', start);
    std::string_view segment = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    bool last = slash == std::string_view::npos;
    if (!normalize) {
      segments.push_back(segment);
    } else if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
      trailing_slash = last;
    } else if (segment == "." || segment.empty()) {
      trailing_slash = last && !segments.empty();
    } else {
      segments.push_back(segment);
      trailing_slash = false;
    }
    if (last) break;
    start = slash + 1;
  }
  std::string out;
  for (std::string_view segment : segments) {
    out.push_back('/');
    uri_encode(segment, out);
  }
  if (out.empty() || (normalize && trailing_slash)) out.push_back('/');
  return out;
}

std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  std::size_t start = 0;
  while (start <= query.size()) {
    std::size_t amp = query.find('&', start);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view param = query.substr(start, amp - start);
    if (!param.empty()) {
      std::size_t eq = param.find('=');
      std::string name, value;
      uri_encode(percent_decode(param.substr(0, eq)), name);
      if (eq != std::string_view::npos) uri_encode(percent_decode(param.substr(eq + 1)), value);
      params.emplace_back(std::move(name), std::move(value));
    }
    start = amp + 1;
  }
  // Sorted by encoded name, then value: byte order, which is what AWS computes.
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// Leading and trailing whitespace dropped, each inner run (a folded line included) one space.
std::string trim_header_value(std::string_view value) {
  std::string out;
  bool pending_space = false;
  for (char c : value) {
    if (is_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

Signature sign_v4(const RequestToSign& request, const Credentials& credentials,
                  std::string_view region, std::string_view service, std::string_view amz_date) {
  // Headers by lower-case name; a name sent several times is signed once, its values joined
  // with ',' in the order sent (a stable sort keeps that order).
  std::vector<std::pair<std::string, std::string>> headers;
  headers.reserve(request.headers.size());
  for (const auto& [name, value] : request.headers) {
    headers.emplace_back(lower(trim_header_value(name)), trim_header_value(value));
  }
  std::stable_sort(headers.begin(), headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  std::string canonical_headers;
  std::string signed_headers;
  for (std::size_t i = 0; i < headers.size(); ++i) {
    if (i > 0 && headers[i].first == headers[i - 1].first) {
      canonical_headers.back() = ',';  // replaces the previous value's '\n'
    } else {
      if (!signed_headers.empty()) signed_headers.push_back(';');
      signed_headers += headers[i].first;
      canonical_headers += headers[i].first;
      canonical_headers.push_back(':');
    }
    canonical_headers += headers[i].second;
    canonical_headers.push_back('\n');
  }

  Signature out;
  out.canonical_request.reserve(256 + canonical_headers.size());
  out.canonical_request += request.method;
  out.canonical_request.push_back('\n');
  out.canonical_request += canonical_uri(request.path, service != "s3");
  out.canonical_request.push_back('\n');
  out.canonical_request += canonical_query(request.query);
  out.canonical_request.push_back('\n');
  out.canonical_request += canonical_headers;
  out.canonical_request.push_back('\n');
  out.canonical_request += signed_headers;
  out.canonical_request.push_back('\n');
  out.canonical_request += sha256_hex(request.payload);

  std::string_view date = amz_date.substr(0, 8);
  std::string scope;
  scope.append(date).append("/").append(region).append("/").append(service).append("/aws4_request");

  out.string_to_sign = "AWS4-HMAC-SHA256\n";
  out.string_to_sign.append(amz_date).append("\n").append(scope).append("\n").append(
      sha256_hex(out.canonical_request));

  // The signing key is derived per day, region and service, so a leaked key is worth little.
  Digest k_date = hmac_sha256("AWS4" + credentials.secret_access_key, date);
  Digest k_region = hmac_sha256(as_view(k_date), region);
  Digest k_service = hmac_sha256(as_view(k_region), service);
  Digest k_signing = hmac_sha256(as_view(k_service), "aws4_request");
  out.signature = to_hex(hmac_sha256(as_view(k_signing), out.string_to_sign));

  out.authorization = "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" + scope +
                      ", SignedHeaders=" + signed_headers + ", Signature=" + out.signature;
  return out;
}

std::string amz_date(std::int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return std::string(buf, n);
}

std::string sha256_hex(std::string_view data) {
  return to_hex(sha256(data));
}

}  // namespace heartbeatd::transport::aws
