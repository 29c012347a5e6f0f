// TestPki: a throwaway certificate authority for TLS tests, made with the openssl CLI in a
// scratch directory: CAs "ca" and "other-ca"; server certificates "server-1" (serial 1001 hex)
// and "server-2" (serial 1002) for IP 127.0.0.1, issued by ca; client certificates "client"
// (ca) and "stranger" (other-ca). P-256 keys, mode 0600, valid for two days.
#pragma once

#include <string>

#include "tests/support/test_util.h"

namespace heartbeatd::test {

class TestPki {
 public:
  TestPki();  // runs openssl; ok() says whether it worked
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  std::string pem(const std::string& name) const { return dir_.file(name + ".pem"); }
  std::string key(const std::string& name) const { return dir_.file(name + ".key"); }

 private:
  TempDir dir_;
  bool ok_ = false;
  std::string error_;
};

// One TestPki per test process, made on first use and kept until exit.
const TestPki& test_pki();

// Copies a PEM file, private to its owner (0600).
void copy_pem(const std::string& from, const std::string& to);

}  // namespace heartbeatd::test
