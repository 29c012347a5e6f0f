// TLS for the API's TCP listener: building the server's OpenSSL context from the files named
// by api.tls.* (certificate chain, private key, optionally the CA that client certificates
// must chain to), with every file problem reported as one sentence naming the key, the file
// and the cause, so that a bad config exits 2 at start and a bad rotation is refused at
// SIGHUP with the same words.
//
// Defaults are fixed, not configurable: TLS 1.2 minimum, ECDHE key exchange with AEAD
// ciphers only for 1.2 (OpenSSL's TLS 1.3 suites are all AEAD), server cipher preference,
// no compression (CRIME), no renegotiation (client-initiated renegotiation is a DoS lever).
//
// Thread safety: make_server_tls_context() is reentrant. The context it returns is shared
// by the connections made from it and must not be modified afterwards; a reload makes a new
// one.
#pragma once

#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace heartbeatd::transport {

struct TlsFiles {
  std::string cert_file;       // PEM: the server certificate, then any intermediates
  std::string key_file;        // PEM: its private key; refused if others may read it
  std::string client_ca_file;  // PEM; empty: no client certificate asked for
};

// What a context serves, for logs: "subject CN=node1, serial 1A2B, expires 2027-01-01".
struct TlsIdentity {
  std::string subject;
  std::string serial;  // hex
  std::string not_after;
  std::string to_string() const;
};

struct TlsContext {
  std::shared_ptr<boost::asio::ssl::context> context;
  TlsIdentity identity;
  bool mutual = false;  // client certificates required (client_ca_file set)
};

// The context, or nullopt-like (context == nullptr) with *why, such as
// "api.tls.key_file /etc/x.key: readable by others (mode 0644); chmod o-rwx it".
TlsContext make_server_tls_context(const TlsFiles& files, std::string* why);

}  // namespace heartbeatd::transport
