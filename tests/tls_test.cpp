// HTTPS on the API's TCP listener, on the real binary: the same routes over TLS, mutual TLS
// accepted and refused, certificate rotation by SIGHUP with a keep-alive connection open, a
// rotation that fails to load, bad TLS config (exit 2), and bad input to the HTTPS port
// (plain HTTP, garbage, TLS 1.1, a stalled handshake) that closes only that connection.
//
// The test makes its own CAs and certificates with the openssl CLI (tests/support/test_pki.h).
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/daemon_process.h"
#include "tests/support/https_client.h"
#include "tests/support/test_pki.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {
namespace {

using namespace std::chrono_literals;

class Tls : public ::testing::Test {
 protected:
  void SetUp() override {
    if (run_program("openssl", {"version"}).exit_code != 0) GTEST_SKIP() << "no openssl CLI";
    ASSERT_TRUE(test_pki().ok()) << test_pki().error();
  }

  // A daemon (not started) serving server-1's certificate from files of the test's own (so
  // that a test can replace them), with `extra` keys on top.
  std::unique_ptr<DaemonProcess> make_daemon(DaemonProcess::Keys extra = {}) {
    cert_ = files_.file("server.pem");
    key_ = files_.file("server.key");
    copy_pem(test_pki().pem("server-1"), cert_);
    copy_pem(test_pki().key("server-1"), key_);
    DaemonProcess::Keys keys{{"api.tls.cert_file", cert_}, {"api.tls.key_file", key_}};
    for (auto& [k, v] : extra) keys[k] = v;
    return std::make_unique<DaemonProcess>(keys);
  }

  TlsClientOptions trusting() const { return {test_pki().pem("ca"), "", "", 0, 0}; }

  TempDir files_;
  std::string cert_, key_;
};

TEST_F(Tls, ServesTheSameRoutesOverHttpsWithKeepAlive) {
  auto d = make_daemon();
  ASSERT_TRUE(d->start()) << d->failure_reason();
  EXPECT_TRUE(d->wait_log("api.http serves HTTPS: subject /CN=server-1, serial 1001"));

  HttpsClient c(d->port(), trusting());
  ASSERT_TRUE(c.connected()) << c.connect_error();
  EXPECT_EQ(c.peer_subject(), "/CN=server-1");
  auto r = c.request("GET", "/v1/health");
  EXPECT_EQ(r.status, 200) << r.error;
  r = c.request("POST", "/v1/users/42/heartbeat");
  EXPECT_EQ(r.status, 204) << r.error << r.body;
  r = c.request("POST", "/v1/users/heartbeat", R"({"users":[43,44]})");
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  r = c.request("GET", "/v1/users/42");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_NE(r.body.find("\"online\":true"), std::string::npos) << r.body;
  EXPECT_FALSE(r.closed);  // all on one connection

  // The Unix socket stays plain; the TCP port no longer speaks plain HTTP.
  EXPECT_EQ(http_unix(d->socket_path(), "GET", "/v1/health").status, 200);
  auto plain = HttpClient::tcp(d->port());
  ASSERT_TRUE(plain.send_raw("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(plain.wait_closed(5s));
}

TEST_F(Tls, EventStreamsWorkOverHttps) {
  auto d = make_daemon();
  ASSERT_TRUE(d->start()) << d->failure_reason();
  HttpsClient events(d->port(), trusting());
  ASSERT_TRUE(events.connected()) << events.connect_error();
  ASSERT_TRUE(events.send_raw("GET /v1/events?users=7&members= HTTP/1.1\r\nHost: x\r\n"
                              "Accept: text/event-stream\r\n\r\n"));
  std::string got = events.read_until("\"initial\":true");
  ASSERT_NE(got.find("200 OK"), std::string::npos) << got;
  ASSERT_NE(got.find("text/event-stream"), std::string::npos) << got;
  HttpsClient writer(d->port(), trusting());
  EXPECT_EQ(writer.request("POST", "/v1/users/7/heartbeat").status, 204);
  got = events.read_until("\"online\":true");
  EXPECT_NE(got.find("\"user\":7,\"online\":true"), std::string::npos) << got;
}

TEST_F(Tls, MutualTlsAcceptsTheCasClientsOnly) {
  auto d = make_daemon({{"api.tls.client_ca_file", test_pki().pem("ca")}});
  ASSERT_TRUE(d->start()) << d->failure_reason();
  EXPECT_TRUE(d->wait_log("api.http serves HTTPS with client certificates"));

  HttpsClient good(d->port(), {test_pki().pem("ca"), test_pki().pem("client"), test_pki().key("client"), 0, 0});
  ASSERT_TRUE(good.connected()) << good.connect_error();
  EXPECT_EQ(good.request("GET", "/v1/health").status, 200);

  // TLS 1.3 reports a refused client certificate after the client's side of the handshake:
  // then the first request fails instead.
  auto refused = [&](TlsClientOptions o) {
    HttpsClient c(d->port(), std::move(o));
    return !c.connected() || c.request("GET", "/v1/health").status == 0;
  };
  EXPECT_TRUE(refused(trusting()));
  EXPECT_TRUE(refused({test_pki().pem("ca"), test_pki().pem("stranger"), test_pki().key("stranger"), 0, 0}));
  EXPECT_EQ(good.request("GET", "/v1/health").status, 200);  // unaffected
}

TEST_F(Tls, SighupRotatesTheCertificateForNewConnections) {
  auto d = make_daemon();
  ASSERT_TRUE(d->start()) << d->failure_reason();
  HttpsClient old_conn(d->port(), trusting());
  ASSERT_TRUE(old_conn.connected()) << old_conn.connect_error();
  ASSERT_EQ(old_conn.request("GET", "/v1/health").status, 200);
  EXPECT_EQ(old_conn.peer_serial(), "1001");

  copy_pem(test_pki().pem("server-2"), cert_);
  copy_pem(test_pki().key("server-2"), key_);
  d->signal(SIGHUP);
  ASSERT_TRUE(d->wait_log("SIGHUP: TLS certificate (re)loaded for new connections: subject "
                          "/CN=server-2, serial 1002"))
      << d->log();

  HttpsClient new_conn(d->port(), trusting());
  ASSERT_TRUE(new_conn.connected()) << new_conn.connect_error();
  EXPECT_EQ(new_conn.peer_serial(), "1002");
  EXPECT_EQ(new_conn.request("GET", "/v1/health").status, 200);
  // The connection opened before the reload keeps working, on its certificate.
  auto r = old_conn.request("POST", "/v1/users/9/heartbeat");
  EXPECT_EQ(r.status, 204) << r.error;
  EXPECT_EQ(old_conn.peer_serial(), "1001");
}

// POST /v1/reload names a certificate that changed under the same paths, and only then.
TEST_F(Tls, TheReloadApiReportsARotatedCertificateOnce) {
  auto d = make_daemon();
  ASSERT_TRUE(d->start()) << d->failure_reason();
  auto reload = [&] {
    d->notifications();  // the notify socket's queue is short: read RELOADING=1, READY=1
    return http_unix(d->socket_path(), "POST", "/v1/reload");
  };
  auto r = reload();
  EXPECT_EQ(r.body, R"({"result":"unchanged","applied":[],"needs_restart":[]})") << r.error;
  copy_pem(test_pki().pem("server-2"), cert_);
  copy_pem(test_pki().key("server-2"), key_);
  r = reload();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body.rfind(R"({"result":"applied","applied":["api.tls: certificate reloaded: )"
                         R"(subject /CN=server-2, serial 1002)",
                         0),
            0u)
      << r.body;
  r = reload();
  EXPECT_EQ(r.body, R"({"result":"unchanged","applied":[],"needs_restart":[]})") << r.error;
  HttpsClient c(d->port(), trusting());
  ASSERT_TRUE(c.connected()) << c.connect_error();
  EXPECT_EQ(c.peer_serial(), "1002");
}

TEST_F(Tls, AFailedRotationKeepsTheOldCertificate) {
  auto d = make_daemon();
  ASSERT_TRUE(d->start()) << d->failure_reason();
  TempDir scratch;
  scratch.write("garbage", "this is not a certificate\n");
  copy_pem(scratch.file("garbage"), cert_);
  d->signal(SIGHUP);
  // Rejected like any invalid config: the files are checked when the config is read.
  ASSERT_TRUE(d->wait_log("new config rejected, the running config stays in force: " +
                          d->config_path() + ": api.tls.cert_file " + cert_ + ": not a PEM file"))
      << d->log();
  // Next: a key that does not match the certificate.
  copy_pem(test_pki().pem("server-2"), cert_);
  copy_pem(test_pki().key("server-1"), key_);
  d->signal(SIGHUP);
  ASSERT_TRUE(d->wait_log("does not match the certificate")) << d->log();

  ASSERT_TRUE(d->running());
  HttpsClient c(d->port(), trusting());
  ASSERT_TRUE(c.connected()) << c.connect_error();
  EXPECT_EQ(c.peer_serial(), "1001");
  EXPECT_EQ(c.request("GET", "/v1/health").status, 200);
}

TEST_F(Tls, BadTlsConfigExitsTwoNamingTheKey) {
  struct Case {
    std::string name;
    std::function<void(DaemonProcess::Keys&, const TempDir&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"key missing", [](auto& k, auto&) { k.erase("api.tls.key_file"); },
       "api.tls.cert_file is set but api.tls.key_file is not"},
      {"key file absent",
       [](auto& k, auto& dir) { k["api.tls.key_file"] = dir.file("nope.key"); },
       "No such file or directory"},
      {"mismatched pair",
       [](auto& k, auto& dir) {
         copy_pem(test_pki().key("server-2"), dir.file("other.key"));
         k["api.tls.key_file"] = dir.file("other.key");
       },
       "does not match the certificate in api.tls.cert_file"},
      {"world-readable key",
       [](auto& k, auto& dir) {
         copy_pem(test_pki().key("server-1"), dir.file("open.key"));
         chmod(dir.file("open.key").c_str(), 0644);
         k["api.tls.key_file"] = dir.file("open.key");
       },
       "readable by others (mode 0644)"},
      {"not PEM",
       [](auto& k, auto& dir) {
         dir.write("der.pem", std::string("\x30\x82\x01\x0a", 4));
         k["api.tls.cert_file"] = dir.file("der.pem");
       },
       "api.tls.cert_file"},
      {"client CA unreadable",
       [](auto& k, auto& dir) { k["api.tls.client_ca_file"] = dir.file("none.pem"); },
       "api.tls.client_ca_file"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    DaemonProcess::Keys keys{{"api.tls.cert_file", test_pki().pem("server-1")},
                             {"api.tls.key_file", test_pki().key("server-1")}};
    c.edit(keys, dir);
    DaemonProcess d(keys);
    EXPECT_FALSE(d.start(10s));
    EXPECT_EQ(d.wait_exit(5s), 2);
    EXPECT_NE(d.log().find(c.message), std::string::npos) << d.log();
  }
}

TEST_F(Tls, BadInputOnTheHttpsPortClosesOnlyThatConnection) {
  auto d = make_daemon({{"api.read_timeout", "300ms"}});
  ASSERT_TRUE(d->start()) << d->failure_reason();
  HttpsClient bystander(d->port(), trusting());
  ASSERT_TRUE(bystander.connected()) << bystander.connect_error();

  auto plain = HttpClient::tcp(d->port());  // plain HTTP
  ASSERT_TRUE(plain.send_raw("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(plain.wait_closed(5s));

  auto rng = seeded_rng();
  std::string garbage(2000, '\0');
  for (auto& ch : garbage) ch = static_cast<char>(rng());
  auto noise = HttpClient::tcp(d->port());
  noise.send_raw(garbage);
  EXPECT_TRUE(noise.wait_closed(5s));

  HttpsClient old_tls(d->port(), {test_pki().pem("ca"), "", "", TLS1_VERSION, TLS1_1_VERSION});
  EXPECT_FALSE(old_tls.connected());
  EXPECT_NE(old_tls.connect_error().find("handshake"), std::string::npos)
      << old_tls.connect_error();

  // A handshake that stops halfway (a ClientHello's record header and nothing more), and a
  // client that connects and says nothing: closed after api.read_timeout.
  auto truncated = HttpClient::tcp(d->port());
  truncated.send_raw(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
  auto silent = HttpClient::tcp(d->port());
  EXPECT_TRUE(truncated.wait_closed(5s));
  EXPECT_TRUE(silent.wait_closed(5s));

  ASSERT_TRUE(d->running());
  EXPECT_EQ(bystander.request("GET", "/v1/health").status, 200);
  HttpsClient fresh(d->port(), trusting());
  EXPECT_EQ(fresh.request("GET", "/v1/health").status, 200);
}

TEST_F(Tls, MaxConnectionsCountsTlsConnections) {
  auto d = make_daemon({{"api.max_connections", "2"}});
  ASSERT_TRUE(d->start()) << d->failure_reason();
  HttpsClient a(d->port(), trusting()), b(d->port(), trusting());
  ASSERT_EQ(a.request("GET", "/v1/health").status, 200);
  ASSERT_EQ(b.request("GET", "/v1/health").status, 200);
  HttpsClient c(d->port(), trusting());
  const auto r = c.request("GET", "/v1/health");
  EXPECT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(r.header("retry-after"), "1");
}

TEST_F(Tls, SigtermEndsTheDaemonWithTlsConnectionsOpen) {
  auto d = make_daemon();
  ASSERT_TRUE(d->start()) << d->failure_reason();
  HttpsClient idle(d->port(), trusting());
  ASSERT_EQ(idle.request("GET", "/v1/health").status, 200);
  auto half = HttpClient::tcp(d->port());  // mid-handshake
  half.send_raw(std::string("\x16\x03\x01\x02\x00", 5));
  HttpsClient events(d->port(), trusting());
  events.send_raw("GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n");
  events.read_until("text/event-stream");
  const auto t0 = std::chrono::steady_clock::now();
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait_exit(5s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);
}

TEST_F(Tls, HeartbeatctlSpeaksHttps) {
  auto d = make_daemon({{"api.tls.client_ca_file", test_pki().pem("ca")}});
  ASSERT_TRUE(d->start()) << d->failure_reason();
  const std::string url = "https://127.0.0.1:" + std::to_string(d->port());
  const std::vector<std::string> mtls = {"--http", url, "--ca-file", test_pki().pem("ca"), "--cert",
                                         test_pki().pem("client"), "--key", test_pki().key("client")};
  auto with = [&](std::vector<std::string> args, std::vector<std::string> more) {
    args.insert(args.end(), more.begin(), more.end());
    return run_program(HEARTBEATCTL_BINARY, args);
  };
  auto r = with(mtls, {"heartbeat", "5"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = with(mtls, {"user", "5"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Without the CA the daemon's certificate is not trusted; without a client certificate
  // the daemon refuses the handshake.
  r = with({"--http", url}, {"health"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("TLS handshake with " + url + " failed"), std::string::npos) << r.err;
  r = with({"--http", url, "--ca-file", test_pki().pem("ca")}, {"health"});
  EXPECT_EQ(r.exit_code, 3) << r.out;
}

}  // namespace
}  // namespace heartbeatd::test
