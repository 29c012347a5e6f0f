// GET /v1/keys: the cluster keyring in force and which key each live member was last seen
// sealing with (docs/API.md), so an operator knows when a rotation step has reached every
// member. Keys appear by fingerprint only.
//   -> {"keys":[{"fingerprint":HEX16,"primary":BOOL,"members":N},...],
//       "plaintext_members":N,"unknown_members":N,"seal_outgoing":BOOL,"require_sealed":BOOL}
#pragma once

#include <functional>

#include "transport/cluster/cluster_transport.h"
#include "transport/api/http_router.h"

namespace heartbeatd::transport {

// `usage` is called from API threads; the provider does its own locking.
void add_key_routes(Router& router, std::function<KeyUsage()> usage);

}  // namespace heartbeatd::transport
