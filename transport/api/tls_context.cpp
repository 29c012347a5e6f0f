#include "transport/api/tls_context.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509err.h>
#include <sys/stat.h>

#include <boost/asio/ssl/context.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>

namespace heartbeatd::transport {

namespace ssl = boost::asio::ssl;
using boost::system::error_code;

namespace {

// Mozilla's "intermediate" list without finite-field DHE: forward secrecy and AEAD only.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Certificates and keys are a few KiB; anything much larger is not one.
constexpr std::size_t kMaxPemBytes = 1 << 20;

std::optional<std::string> read_pem(const std::string& key, const std::string& path,
                                    std::string* why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *why = fmt::format("{} {}: cannot read: {}", key, path, std::strerror(errno));
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string pem = text.str();
  if (in.bad()) {
    *why = fmt::format("{} {}: read error", key, path);
    return std::nullopt;
  }
  if (pem.size() > kMaxPemBytes) {
    *why = fmt::format("{} {}: larger than 1 MiB: not a PEM file", key, path);
    return std::nullopt;
  }
  if (pem.find("-----BEGIN ") == std::string::npos) {
    *why = fmt::format("{} {}: not a PEM file (no -----BEGIN line; DER files must be converted "
                       "with openssl x509/pkey -outform PEM)",
                       key, path);
    return std::nullopt;
  }
  return pem;
}

std::string openssl_reason(const error_code& ec) {
  std::string m = ec.message();
  return m.empty() ? "rejected by OpenSSL" : m;
}

TlsIdentity identity_of(SSL_CTX* ctx) {
  TlsIdentity id;
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (!cert) return id;
  if (char* s = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0)) {
    id.subject = s;
    OPENSSL_free(s);
  }
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(bn)) {
      id.serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(bn);
  }
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    if (ASN1_TIME_print(bio, X509_get0_notAfter(cert)) == 1) {
      char* data = nullptr;
      const long n = BIO_get_mem_data(bio, &data);
      id.not_after.assign(data, static_cast<std::size_t>(n));
    }
    BIO_free(bio);
  }
  return id;
}

}  // namespace

std::string TlsIdentity::to_string() const {
  return fmt::format("subject {}, serial {}, expires {}", subject, serial, not_after);
}

TlsContext make_server_tls_context(const TlsFiles& files, std::string* why) {
  TlsContext out;
  ERR_clear_error();  // the error queue is per thread: start from a clean one
  // The key first: a key others can read is refused before its contents are even used.
  struct stat st {};
  if (stat(files.key_file.c_str(), &st) != 0) {
    *why = fmt::format("api.tls.key_file {}: {}", files.key_file, std::strerror(errno));
    return out;
  }
  if (!S_ISREG(st.st_mode)) {
    *why = fmt::format("api.tls.key_file {}: not a regular file", files.key_file);
    return out;
  }
  if (st.st_mode & S_IRWXO) {
    // Like ssh with a private key: the group may read it (Debian's ssl-cert), others not.
    *why = fmt::format("api.tls.key_file {}: readable by others (mode {:04o}); a private key "
                       "must not be: chmod o-rwx {}",
                       files.key_file, st.st_mode & 07777, files.key_file);
    return out;
  }
  const auto cert = read_pem("api.tls.cert_file", files.cert_file, why);
  if (!cert) return out;
  const auto key = read_pem("api.tls.key_file", files.key_file, why);
  if (!key) return out;
  std::optional<std::string> ca;
  if (!files.client_ca_file.empty()) {
    ca = read_pem("api.tls.client_ca_file", files.client_ca_file, why);
    if (!ca) return out;
  }

  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  ctx->set_options(ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                   ssl::context::no_tlsv1_1 | ssl::context::no_compression |
                   ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
    *why = "api.tls: OpenSSL knows none of the TLS 1.2 ciphers we allow";
    return out;
  }

  error_code ec;
  ctx->use_certificate_chain(boost::asio::buffer(*cert), ec);
  if (ec) {
    *why = fmt::format("api.tls.cert_file {}: not a usable certificate: {}", files.cert_file,
                       openssl_reason(ec));
    return out;
  }
  ctx->use_private_key(boost::asio::buffer(*key), ssl::context::pem, ec);
  if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
    *why = fmt::format("api.tls.key_file {} does not match the certificate in api.tls.cert_file "
                       "{}",
                       files.key_file, files.cert_file);
    return out;
  }
  if (ec) {
    *why = fmt::format("api.tls.key_file {}: not a usable private key: {}", files.key_file,
                       openssl_reason(ec));
    return out;
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    *why = fmt::format("api.tls.key_file {} does not match the certificate in api.tls.cert_file "
                       "{}",
                       files.key_file, files.cert_file);
    return out;
  }
  if (ca) {
    ctx->add_certificate_authority(boost::asio::buffer(*ca), ec);
    if (ec) {
      *why = fmt::format("api.tls.client_ca_file {}: not a usable CA certificate: {}",
                         files.client_ca_file, openssl_reason(ec));
      return out;
    }
    // Tell clients which CA we accept, so one holding several certificates picks the right one.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(native, names);
    }
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    out.mutual = true;
  } else {
    ctx->set_verify_mode(ssl::verify_none);
  }
  ERR_clear_error();
  out.identity = identity_of(native);
  out.context = std::move(ctx);
  return out;
}

}  // namespace heartbeatd::transport
