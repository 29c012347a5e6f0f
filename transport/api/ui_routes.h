// The status page's static files (ui/ at the top of the repository), compiled into the binary
// by cmake/embed_ui.cmake and served at /ui (docs/API.md, "The status page"):
//   GET /ui, GET /ui/   -> index.html
//   GET /ui/{name}      -> that file; 404 for any name that is not one of them
// The routes are public (Scope::none): they hold no data, and the page's own API calls carry
// the token its user enters. Each answer has a strong ETag (SHA-256 of the content, computed at
// build time), `Cache-Control: no-cache` (names are not versioned, so a browser revalidates
// every time and If-None-Match gets a bodiless 304), `X-Content-Type-Options: nosniff` and a
// Content-Security-Policy allowing only same-origin scripts, styles and connections.
//
// Thread safety: the assets are immutable; the handlers may run on every API thread at once.
#pragma once

#include <span>
#include <string_view>

#include "transport/api/http_router.h"

namespace heartbeatd::transport {

struct UiAsset {
  std::string_view name;  // "app.js": letters, digits, '.', '-', '_'; never starts with '.'
  std::string_view etag;  // quoted, as sent: "\"sha256-<32 hex digits>\""
  std::string_view body;
};

// What the build embedded (the generated ui_assets.cpp), sorted by name.
std::span<const UiAsset> embedded_ui_assets();

// "text/html; charset=utf-8" for "index.html", and so on by extension;
// "application/octet-stream" for an extension it does not know.
std::string_view ui_content_type(std::string_view name);

// Does an If-None-Match header value match `etag`? "*" matches; otherwise a comma-separated
// list of entity tags compared weakly (a W/ prefix is ignored), as RFC 9110 13.1.2 says.
bool if_none_match(std::string_view header, std::string_view etag);

// Registers the routes above, serving `assets` (which must outlive the router and include
// index.html).
void add_ui_routes(Router& router, std::span<const UiAsset> assets = embedded_ui_assets());

}  // namespace heartbeatd::transport
