// docs/openapi.yaml against the routes the daemon really registers: every route of a Daemon
// (built from the default config, never started) is an operation of the spec, every
// operation of the spec is a route, and each operation states the route's scope, as
// `x-heartbeatd-scope` and as the scopes of its bearer security requirement (`security: []`
// and `x-heartbeatd-scope: none` for a route that needs no token, Scope::none). The examples of
// docs/API.md are checked against the same spec by tests/openapi/ (node --test).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "daemon/daemon.h"
#include "transport/api/http_router.h"

namespace heartbeatd {
namespace {

const std::string kSpec = std::string(HEARTBEATD_SOURCE_DIR) + "/docs/openapi.yaml";
const std::set<std::string> kMethods = {"get", "put", "post", "delete", "options",
                                        "head", "patch", "trace"};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// "get /v1/users/{id}": how both sides name an operation.
std::string key(std::string_view method, std::string_view path) {
  return lower(method) + " " + std::string(path);
}

// The scope a route needs, as the spec writes it.
std::string scope_name(const transport::RouteInfo& r) {
  return std::string(transport::to_string(r.scope));
}

std::map<std::string, transport::RouteInfo> daemon_routes() {
  Daemon daemon(default_config(), std::nullopt);
  std::map<std::string, transport::RouteInfo> out;
  for (auto& r : daemon.router().routes()) {
    const auto k = key(transport::http::to_string(r.method), r.pattern);
    EXPECT_FALSE(out.count(k)) << "registered twice: " << k;
    out.emplace(k, std::move(r));
  }
  return out;
}

struct SpecOperation {
  YAML::Node node;
  YAML::Node security;  // the operation's own, else the document's
};

std::map<std::string, SpecOperation> spec_operations(const YAML::Node& doc) {
  std::map<std::string, SpecOperation> out;
  for (const auto& path : doc["paths"]) {
    for (const auto& item : path.second) {
      const auto method = item.first.as<std::string>();
      if (!kMethods.count(method)) continue;  // parameters, summary, ...
      const YAML::Node op = item.second;
      out[key(method, path.first.as<std::string>())] = {
          op, op["security"] ? op["security"] : doc["security"]};
    }
  }
  return out;
}

class OpenApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_THROW(doc = YAML::LoadFile(kSpec)) << kSpec;
    ASSERT_TRUE(doc["paths"].IsMap()) << kSpec << " has no paths";
    routes = daemon_routes();
    ASSERT_FALSE(routes.empty());
    ops = spec_operations(doc);
  }
  YAML::Node doc;
  std::map<std::string, transport::RouteInfo> routes;
  std::map<std::string, SpecOperation> ops;
};

TEST_F(OpenApiTest, SpecIsOpenApi31) {
  ASSERT_TRUE(doc["openapi"]);
  EXPECT_EQ(doc["openapi"].as<std::string>().rfind("3.1.", 0), 0u) << doc["openapi"];
}

TEST_F(OpenApiTest, EveryRouteIsInTheSpec) {
  for (const auto& [k, r] : routes) {
    EXPECT_TRUE(ops.count(k)) << "the daemon serves " << k << " but docs/openapi.yaml does not "
                              << "describe it";
  }
}

TEST_F(OpenApiTest, EveryOperationInTheSpecIsARoute) {
  for (const auto& [k, op] : ops) {
    EXPECT_TRUE(routes.count(k)) << "docs/openapi.yaml describes " << k
                                 << " but the daemon registers no such route";
  }
}

TEST_F(OpenApiTest, EachOperationNamesItsRoutesScope) {
  for (const auto& [k, r] : routes) {
    auto it = ops.find(k);
    if (it == ops.end()) continue;  // EveryRouteIsInTheSpec says so
    const auto scope = scope_name(r);
    const YAML::Node x = it->second.node["x-heartbeatd-scope"];
    ASSERT_TRUE(x && x.IsScalar()) << k << ": no x-heartbeatd-scope";
    EXPECT_EQ(x.as<std::string>(), scope) << k;

    const YAML::Node sec = it->second.security;
    ASSERT_TRUE(sec && sec.IsSequence()) << k << ": no security requirement";
    if (scope == "none") {
      EXPECT_EQ(sec.size(), 0u) << k << ": a public route has security: []";
      continue;
    }
    // Exactly one requirement: the bearer token, with the route's scope as its role.
    ASSERT_EQ(sec.size(), 1u) << k;
    ASSERT_TRUE(sec[0].IsMap() && sec[0].size() == 1u) << k;
    const YAML::Node roles = sec[0]["bearerAuth"];
    ASSERT_TRUE(roles && roles.IsSequence()) << k << ": the requirement is not bearerAuth";
    ASSERT_EQ(roles.size(), 1u) << k;
    EXPECT_EQ(roles[0].as<std::string>(), scope) << k;
  }
}

TEST_F(OpenApiTest, TheBearerSchemeIsDefined) {
  const YAML::Node s = doc["components"]["securitySchemes"]["bearerAuth"];
  ASSERT_TRUE(s);
  EXPECT_EQ(s["type"].as<std::string>(), "http");
  EXPECT_EQ(lower(s["scheme"].as<std::string>()), "bearer");
}

// The router and the spec agree on which parameter names a templated path has: the
// route "/v1/members/{name}" is the spec's path "/v1/members/{name}", and each path
// parameter is declared.
TEST_F(OpenApiTest, PathParametersAreDeclared) {
  for (const auto& path : doc["paths"]) {
    const auto p = path.first.as<std::string>();
    std::set<std::string> templated;
    for (std::size_t open = p.find('{'); open != std::string::npos; open = p.find('{', open + 1)) {
      templated.insert(p.substr(open + 1, p.find('}', open) - open - 1));
    }
    for (const auto& item : path.second) {
      if (!kMethods.count(item.first.as<std::string>())) continue;
      std::set<std::string> declared;
      auto collect = [&](const YAML::Node& params) {
        if (!params) return;
        for (const auto& prm : params) {
          YAML::Node resolved = prm;
          if (prm["$ref"]) {
            // "#/components/parameters/X"
            const auto ref = prm["$ref"].as<std::string>();
            const auto name = ref.substr(ref.rfind('/') + 1);
            resolved = doc["components"]["parameters"][name];
            ASSERT_TRUE(resolved) << p << ": unresolved " << ref;
          }
          if (resolved["in"].as<std::string>() == "path") {
            declared.insert(resolved["name"].as<std::string>());
          }
        }
      };
      collect(path.second["parameters"]);
      collect(item.second["parameters"]);
      EXPECT_EQ(declared, templated) << item.first.as<std::string>() << " " << p;
    }
  }
}

}  // namespace
}  // namespace heartbeatd
