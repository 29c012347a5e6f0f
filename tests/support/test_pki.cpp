#include "tests/support/test_pki.h"

#include <filesystem>

#include "tests/support/daemon_process.h"

namespace heartbeatd::test {

using namespace std::chrono_literals;

TestPki::TestPki() {
  const std::string script = R"(set -e
cd "$1"
ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=$1" 2>/dev/null; }
leaf() {  # name ca serial extension
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" \
    -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -set_serial "$3" -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
ca ca
ca other-ca
leaf server-1 ca 4097 "subjectAltName=IP:127.0.0.1"
leaf server-2 ca 4098 "subjectAltName=IP:127.0.0.1"
leaf client ca 4099 "extendedKeyUsage=clientAuth"
leaf stranger other-ca 4100 "extendedKeyUsage=clientAuth"
chmod 600 ./*.key
)";
  ProgramOptions options;
  options.deadline = 20s;
  const auto r = run_program("sh", {"-c", script, "sh", dir_.path()}, options);
  ok_ = r.exit_code == 0;
  error_ = r.err;
}

const TestPki& test_pki() {
  static const TestPki* p = new TestPki();  // never destroyed: tests may run until exit
  return *p;
}

void copy_pem(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::permissions(to, fs::perms::owner_read | fs::perms::owner_write);
}

}  // namespace heartbeatd::test
