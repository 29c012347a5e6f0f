#include "transport/api/ui_routes.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace heartbeatd::transport {
namespace {

// Same-origin only: no inline scripts or styles, no other hosts, no framing (the page
// shows nothing worth clickjacking, but nothing needs to frame it either).
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void set_common_headers(Response& res, const UiAsset& asset) {
  res.set(http::field::etag, asset.etag);
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Content-Security-Policy", kContentSecurityPolicy);
  res.set(http::field::x_frame_options, "DENY");
  res.set("Referrer-Policy", "no-referrer");
}

Response serve(const Request& req, const UiAsset& asset) {
  const auto inm = req.find(http::field::if_none_match);
  if (inm != req.end() && if_none_match(inm->value(), asset.etag)) {
    Response res{http::status::not_modified, req.version()};
    set_common_headers(res, asset);
    return res;
  }
  Response res{http::status::ok, req.version()};
  res.set(http::field::content_type, ui_content_type(asset.name));
  set_common_headers(res, asset);
  res.body().assign(asset.body.data(), asset.body.size());
  res.prepare_payload();
  return res;
}

}  // namespace

std::string_view ui_content_type(std::string_view name) {
  struct Type {
    std::string_view extension, type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const auto& t : kTypes) {
    if (name.ends_with(t.extension)) return t.type;
  }
  return "application/octet-stream";
}

bool if_none_match(std::string_view header, std::string_view etag) {
  if (trim(header) == "*") return true;
  const auto opaque = [](std::string_view tag) {
    tag = trim(tag);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    return tag;
  };
  const std::string_view mine = opaque(etag);
  while (!header.empty()) {
    // Entity tags are quoted and cannot contain '"', so a comma outside quotes separates them.
    std::size_t i = 0;
    bool quoted = false;
    while (i < header.size() && (quoted || header[i] != ',')) {
      if (header[i] == '"') quoted = !quoted;
      ++i;
    }
    if (opaque(header.substr(0, i)) == mine) return true;
    header.remove_prefix(std::min(header.size(), i + 1));
  }
  return false;
}

void add_ui_routes(Router& router, std::span<const UiAsset> assets) {
  const auto index = std::find_if(assets.begin(), assets.end(),
                                  [](const UiAsset& a) { return a.name == "index.html"; });
  if (index == assets.end()) throw std::invalid_argument("the status page has no index.html");
  const UiAsset& page = *index;
  for (const char* path : {"/ui", "/ui/"}) {
    router.add(http::verb::get, path, Scope::none,
               [&page](const Request& req, const RouteMatch&) { return serve(req, page); });
  }
  // Only the embedded names exist: "..", "%2e%2e" or "a/b" are not among them, so nothing
  // outside the page can be named (the router does not decode or normalise paths either).
  router.add(http::verb::get, "/ui/{name}", Scope::none,
             [assets](const Request& req, const RouteMatch& m) {
               const std::string_view name = m.param("name");
               for (const auto& a : assets) {
                 if (a.name == name) return serve(req, a);
               }
               return error_response(http::status::not_found, "not_found",
                                     "no status page file named " + std::string(name));
             });
}

}  // namespace heartbeatd::transport
