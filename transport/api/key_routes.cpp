#include "transport/api/key_routes.h"

#include <boost/json.hpp>

namespace heartbeatd::transport {

void add_key_routes(Router& router, std::function<KeyUsage()> usage) {
  router.add(http::verb::get, "/v1/keys", Scope::admin, [usage](const Request&, const RouteMatch&) {
    const KeyUsage u = usage();
    boost::json::array keys;
    for (const auto& k : u.keys) {
      keys.push_back(boost::json::object{
          {"fingerprint", k.fingerprint}, {"primary", k.primary}, {"members", k.members}});
    }
    boost::json::object body;
    body["keys"] = std::move(keys);
    body["plaintext_members"] = u.plaintext_members;
    body["unknown_members"] = u.unknown_members;
    body["seal_outgoing"] = u.seal_outgoing;
    body["require_sealed"] = u.require_sealed;
    return json_response(http::status::ok, boost::json::serialize(body));
  });
}

}  // namespace heartbeatd::transport
