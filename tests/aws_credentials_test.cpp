// The AWS credential chain: environment, shared files (profiles, precedence, errors), the
// container endpoint and IMDSv2 against a fake metadata server on 127.0.0.1, and every way a
// metadata answer can be wrong. The environment is injected; no test reads the real one or
// leaves loopback.
#include "transport/aws/credentials.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <cctype>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "tests/support/test_util.h"

namespace heartbeatd::transport::aws {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::int64_t kNow = 1796000000;      // 2026-11-29, before the answers expire
constexpr std::int64_t kExpires = 1796464800;  // 2026-12-05T10:00:00Z
constexpr const char* kExpiration = "2026-12-05T10:00:00Z";

using Env = std::map<std::string, std::string>;

// Options over an injected environment. IMDS is off unless a test turns it on, so no test
// ever reaches for 169.254.169.254.
CredentialOptions options_for(Env env) {
  env.emplace("AWS_EC2_METADATA_DISABLED", "true");
  CredentialOptions o;
  o.env = [env = std::move(env)](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  o.now = [] { return kNow; };
  o.http_timeout = std::chrono::milliseconds(2000);
  return o;
}

std::optional<Credentials> resolve(const Env& env, std::string* why, std::string profile = "") {
  CredentialOptions o = options_for(env);
  o.profile = std::move(profile);
  return resolve_credentials(o, why);
}

std::string credentials_json(const std::string& id = "ASIAFAKE", const std::string& token = "tok") {
  return R"({"AccessKeyId":")" + id + R"(","SecretAccessKey":"s3cr3t","Token":")" + token +
         R"(","Expiration":")" + kExpiration + R"("})";
}

// A canned HTTP/1.1 server on 127.0.0.1 (one connection at a time, Connection: close), its
// answers chosen per request by `handler`; it records what it was asked.
class FakeEndpoint {
 public:
  struct Request {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // names lower-cased
  };
  struct Answer {
    unsigned status = 200;
    std::string body;
  };
  using Handler = std::function<Answer(const Request&)>;

  explicit FakeEndpoint(Handler handler) : handler_(std::move(handler)) {
    acceptor_.open(tcp::v4());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    do_accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~FakeEndpoint() {
    ioc_.stop();
    thread_.join();
  }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  std::vector<Request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  struct Session {
    explicit Session(asio::io_context& ioc) : socket(ioc) {}
    tcp::socket socket;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::response<http::string_body> response;
  };

  void do_accept() {
    auto session = std::make_shared<Session>(ioc_);
    acceptor_.async_accept(session->socket, [this, session](beast::error_code ec) {
      if (ec) return;
      http::async_read(session->socket, session->buffer, session->request,
                       [this, session](beast::error_code ec, std::size_t) {
                         if (!ec) respond(session);
                       });
      do_accept();
    });
  }

  void respond(const std::shared_ptr<Session>& session) {
    Request r;
    r.method = std::string(session->request.method_string());
    r.target = std::string(session->request.target());
    for (const auto& field : session->request) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(field.value());
    }
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(r);
    }
    Answer a = handler_(r);
    session->response.result(a.status);
    session->response.version(11);
    session->response.body() = a.body;
    session->response.set(http::field::connection, "close");
    session->response.prepare_payload();
    http::async_write(session->socket, session->response,
                      [session](beast::error_code, std::size_t) {
                        beast::error_code ignored;
                        session->socket.shutdown(tcp::socket::shutdown_both, ignored);
                      });
  }

  Handler handler_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<Request> requests_;  // guarded by mutex_
};

// A fake IMDSv2: the token PUT first, then the role listing and the role's document, each
// refused (401) without the token, as a real instance with v1 turned off does.
FakeEndpoint::Handler imds_handler(std::string role_listing, std::string document) {
  return [role_listing, document](const FakeEndpoint::Request& r) -> FakeEndpoint::Answer {
    if (r.target == "/latest/api/token") {
      if (r.method != "PUT") return {405, ""};
      if (r.headers.count("x-aws-ec2-metadata-token-ttl-seconds") == 0) return {400, ""};
      return {200, "IMDS-TOKEN"};
    }
    auto token = r.headers.find("x-aws-ec2-metadata-token");
    if (r.method != "GET" || token == r.headers.end() || token->second != "IMDS-TOKEN") {
      return {401, ""};
    }
    if (r.target == "/latest/meta-data/iam/security-credentials/") return {200, role_listing};
    if (r.target == "/latest/meta-data/iam/security-credentials/web-role") return {200, document};
    return {404, ""};
  };
}

// A port on 127.0.0.1 with nothing listening (bound once, then closed).
std::uint16_t closed_port() {
  asio::io_context ioc;
  tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// --- Environment ------------------------------------------------------------------------------

TEST(AwsCredentials, EnvironmentWinsOverSharedFile) {
  test::TempDir dir;
  dir.write("credentials", "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = f\n");
  std::string why;
  auto c = resolve({{"AWS_ACCESS_KEY_ID", "ENVKEY"},
                    {"AWS_SECRET_ACCESS_KEY", "envsecret"},
                    {"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")}},
                   &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "ENVKEY");
  EXPECT_EQ(c->secret_access_key, "envsecret");
  EXPECT_EQ(c->session_token, "");
  EXPECT_FALSE(c->expires);
  EXPECT_EQ(c->source, "environment");
}

TEST(AwsCredentials, EnvironmentSessionToken) {
  std::string why;
  auto c = resolve({{"AWS_ACCESS_KEY_ID", "ASIAENV"},
                    {"AWS_SECRET_ACCESS_KEY", "s"},
                    {"AWS_SESSION_TOKEN", "session"}},
                   &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->session_token, "session");
}

TEST(AwsCredentials, HalfSetEnvironmentIsAnErrorNamingTheMissingVariable) {
  test::TempDir dir;
  // A good file must not paper over the half-set environment.
  dir.write("credentials", "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = f\n");
  std::string why;
  EXPECT_FALSE(resolve(
      {{"AWS_ACCESS_KEY_ID", "ENVKEY"}, {"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")}},
      &why));
  EXPECT_TRUE(contains(why, "AWS_SECRET_ACCESS_KEY is not")) << why;
  EXPECT_FALSE(resolve(
      {{"AWS_SECRET_ACCESS_KEY", "s"}, {"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")}},
      &why));
  EXPECT_TRUE(contains(why, "AWS_ACCESS_KEY_ID is not")) << why;
}

// --- Shared files -----------------------------------------------------------------------------

const char* kSeveralProfiles =
    "# team credentials\n"
    "; written by hand\n"
    "[default]\n"
    "aws_access_key_id=DEFAULTKEY\n"
    "aws_secret_access_key=defaultsecret\n"
    "\n"
    "  [ prod ]  \n"
    "\taws_access_key_id   =   PRODKEY   \n"
    "aws_secret_access_key = prod/secret+x== ; rotated monthly\n"
    "aws_session_token = prodtoken # inline comment\n"
    "region = eu-west-1\n"
    "s3 =\n"
    "  max_concurrent_requests = 20\n"
    "\n"
    "[staging]\n"
    "AWS_ACCESS_KEY_ID = STAGINGKEY\n"
    "aws_secret_access_key = stagingsecret\n";

TEST(AwsCredentials, DefaultProfileFromCredentialsFile) {
  test::TempDir dir;
  dir.write("credentials", kSeveralProfiles);
  std::string why;
  auto c = resolve({{"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")}}, &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "DEFAULTKEY");
  EXPECT_EQ(c->secret_access_key, "defaultsecret");
  EXPECT_EQ(c->source, "profile default in " + dir.file("credentials"));
}

TEST(AwsCredentials, ProfileChosenByAwsProfileWithCommentsAndWhitespace) {
  test::TempDir dir;
  dir.write("credentials", kSeveralProfiles);
  std::string why;
  auto c = resolve(
      {{"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")}, {"AWS_PROFILE", "prod"}}, &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "PRODKEY");
  EXPECT_EQ(c->secret_access_key, "prod/secret+x==");
  EXPECT_EQ(c->session_token, "prodtoken");
  EXPECT_EQ(c->source, "profile prod in " + dir.file("credentials"));
}

TEST(AwsCredentials, OptionsProfileOverridesAwsProfile) {
  test::TempDir dir;
  dir.write("credentials", kSeveralProfiles);
  std::string why;
  auto c =
      resolve({{"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")}, {"AWS_PROFILE", "prod"}},
              &why, "staging");
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "STAGINGKEY");  // key names are case-insensitive
}

TEST(AwsCredentials, HomeDirectoryFilesByDefault) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.file(".aws"));
  dir.write(".aws/credentials", kSeveralProfiles);
  std::string why;
  auto c = resolve({{"HOME", dir.path()}}, &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->source, "profile default in " + dir.file(".aws/credentials"));
}

TEST(AwsCredentials, ConfigFileProfile) {
  test::TempDir dir;
  dir.write("credentials", kSeveralProfiles);
  // In the config file a named profile is "[profile NAME]"; a bare "[dev]" is not it.
  dir.write("config",
            "[default]\nregion = us-east-1\n"
            "[dev]\naws_access_key_id = WRONG\naws_secret_access_key = wrong\n"
            "[profile dev]\naws_access_key_id = DEVKEY\naws_secret_access_key = devsecret\n");
  std::string why;
  auto c = resolve({{"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")},
                    {"AWS_CONFIG_FILE", dir.file("config")},
                    {"AWS_PROFILE", "dev"}},
                   &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "DEVKEY");
  EXPECT_EQ(c->source, "profile dev in " + dir.file("config"));

  // The default profile's keys come from the credentials file; config adds only a region.
  c = resolve({{"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")},
               {"AWS_CONFIG_FILE", dir.file("config")}},
              &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "DEFAULTKEY");

  // Keys under [default] in the config file alone are enough.
  dir.write("config2", "[default]\naws_access_key_id = CFGKEY\naws_secret_access_key = c\n");
  c = resolve({{"AWS_SHARED_CREDENTIALS_FILE", dir.file("missing")},
               {"AWS_CONFIG_FILE", dir.file("config2")}},
              &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "CFGKEY");
}

TEST(AwsCredentials, MissingNamedProfileIsAnError) {
  test::TempDir dir;
  dir.write("credentials", kSeveralProfiles);
  std::string why;
  EXPECT_FALSE(resolve({{"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")},
                        {"AWS_CONFIG_FILE", dir.file("none")},
                        {"AWS_PROFILE", "typo"}},
                       &why));
  EXPECT_TRUE(contains(why, "profile typo not found")) << why;
  EXPECT_TRUE(contains(why, dir.file("credentials"))) << why;
  EXPECT_FALSE(contains(why, "no AWS credentials found")) << why;  // it stopped there
}

TEST(AwsCredentials, ProfileWithoutSecretIsAnErrorNamingFileAndProfile) {
  test::TempDir dir;
  dir.write("credentials", "[default]\naws_access_key_id = ONLYKEY\n");
  std::string why;
  EXPECT_FALSE(resolve({{"AWS_SHARED_CREDENTIALS_FILE", dir.file("credentials")}}, &why));
  EXPECT_TRUE(contains(why, "profile default in " + dir.file("credentials"))) << why;
  EXPECT_TRUE(contains(why, "no aws_secret_access_key")) << why;
}

TEST(AwsCredentials, NothingAnywhereSaysWhatWasTried) {
  test::TempDir dir;
  std::string why;
  EXPECT_FALSE(resolve({{"HOME", dir.path()}}, &why));
  EXPECT_TRUE(contains(why, "no AWS credentials found")) << why;
  EXPECT_TRUE(contains(why, "environment: AWS_ACCESS_KEY_ID not set")) << why;
  EXPECT_TRUE(contains(why, dir.file(".aws/credentials") + " not found")) << why;
  EXPECT_TRUE(contains(why, "container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) << why;
  EXPECT_TRUE(contains(why, "instance metadata: disabled by AWS_EC2_METADATA_DISABLED")) << why;
  // A default profile holding only a region is not an error either.
  dir.write("config", "[default]\nregion = eu-west-1\n");
  EXPECT_FALSE(resolve({{"HOME", dir.path()}, {"AWS_CONFIG_FILE", dir.file("config")}}, &why));
  EXPECT_TRUE(contains(why, "no AWS credentials found")) << why;
  EXPECT_TRUE(contains(why, "profile default has no aws_access_key_id")) << why;
}

// --- Container endpoint -----------------------------------------------------------------------

TEST(AwsCredentials, ContainerFullUriWithAuthorizationToken) {
  FakeEndpoint server([](const FakeEndpoint::Request& r) -> FakeEndpoint::Answer {
    auto auth = r.headers.find("authorization");
    if (auth == r.headers.end() || auth->second != "Bearer pod-token") return {401, "no"};
    if (r.target != "/v1/credentials") return {404, ""};
    return {200, credentials_json("ASIACONTAINER", "ctoken")};
  });
  std::string why;
  auto c = resolve({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/v1/credentials"},
                    {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer pod-token"}},
                   &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "ASIACONTAINER");
  EXPECT_EQ(c->secret_access_key, "s3cr3t");
  EXPECT_EQ(c->session_token, "ctoken");
  EXPECT_EQ(c->expires, kExpires);
  EXPECT_EQ(c->source, "container endpoint " + server.url() + "/v1/credentials");
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].method, "GET");
}

TEST(AwsCredentials, ContainerTokenFromFileWinsOverVariable) {
  test::TempDir dir;
  dir.write("token", "from-file\n");
  FakeEndpoint server([](const FakeEndpoint::Request& r) -> FakeEndpoint::Answer {
    auto auth = r.headers.find("authorization");
    if (auth == r.headers.end() || auth->second != "from-file") return {403, "denied"};
    return {200, credentials_json()};
  });
  std::string why;
  auto c = resolve({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds"},
                    {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "from-variable"},
                    {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", dir.file("token")}},
                   &why);
  ASSERT_TRUE(c) << why;

  EXPECT_FALSE(resolve({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds"},
                        {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", dir.file("absent")}},
                       &why));
  EXPECT_TRUE(contains(why, dir.file("absent") + " not found")) << why;
}

TEST(AwsCredentials, ContainerRefusalIsAnError) {
  FakeEndpoint server([](const FakeEndpoint::Request&) -> FakeEndpoint::Answer {
    return {403, R"({"message":"token rejected"})"};
  });
  std::string why;
  EXPECT_FALSE(resolve({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds"},
                        {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong"}},
                       &why));
  EXPECT_TRUE(contains(why, "container")) << why;
  EXPECT_TRUE(contains(why, "HTTP 403")) << why;
  EXPECT_TRUE(contains(why, "token rejected")) << why;
}

TEST(AwsCredentials, ContainerFullUriToAnotherHostIsRefused) {
  for (const char* uri : {"http://10.0.0.1/creds", "http://example.com:8080/creds",
                          "http://169.254.169.254/latest", "https://127.0.0.1/creds",
                          "http://[2001:db8::1]/creds", "http://127.0.0.1.example.com/x"}) {
    std::string why;
    EXPECT_FALSE(resolve({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", uri}}, &why)) << uri;
    EXPECT_TRUE(contains(why, "refused") || contains(why, "only http://")) << uri << ": " << why;
  }
}

TEST(AwsCredentials, ContainerEndpointDownIsAnError) {
  std::string why;
  const std::string url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/creds";
  EXPECT_FALSE(resolve({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url}}, &why));
  EXPECT_TRUE(contains(why, url + ": connect failed")) << why;
}

// An endpoint that answers bytes that are not HTTP: an error naming the endpoint, no crash.
TEST(AwsCredentials, ContainerEndpointAnsweringNonHttpIsAnError) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  const std::string url =
      "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/creds";
  tcp::socket peer(ioc);
  const std::string garbage = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
  acceptor.async_accept(peer, [&](beast::error_code ec) {
    if (!ec) asio::async_write(peer, asio::buffer(garbage), [](beast::error_code, std::size_t) {});
  });
  // Bounded: the thread ends when the exchange does or after 10 s, whichever comes first.
  std::thread server([&] { ioc.run_for(std::chrono::seconds(10)); });
  std::string why;
  EXPECT_FALSE(resolve({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url}}, &why));
  EXPECT_TRUE(contains(why, url + ": answer failed")) << why;
  ioc.stop();
  server.join();
}

TEST(AwsCredentials, ContainerRelativeUriMustBeAPath) {
  std::string why;
  EXPECT_FALSE(resolve({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/credentials"}}, &why));
  EXPECT_TRUE(contains(why, "does not start with '/'")) << why;
  EXPECT_FALSE(resolve({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/a b"}}, &why));
  EXPECT_TRUE(contains(why, "a space or control character in the URL")) << why;
}

// A line break in the URL would smuggle headers into the request: refused before connecting.
TEST(AwsCredentials, ContainerUriWithLineBreakIsRefused) {
  FakeEndpoint server([](const FakeEndpoint::Request&) -> FakeEndpoint::Answer {
    return {200, credentials_json()};
  });
  std::string why;
  EXPECT_FALSE(resolve(
      {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds\r\nX-Injected: 1\r\n"}},
      &why));
  EXPECT_TRUE(contains(why, "a space or control character in the URL")) << why;
  EXPECT_TRUE(server.requests().empty());
}

// Whatever the endpoint answers, the chain says what was wrong and never crashes.
TEST(AwsCredentials, MalformedCredentialDocumentsAreClearErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {"not json at all", "not JSON"},
      {"", "not JSON"},
      {"{\"AccessKeyId\":\"A\",", "not JSON"},
      {"[1,2,3]", "not a JSON object"},
      {"\"AccessKeyId\"", "not a JSON object"},
      {R"({"SecretAccessKey":"s"})", "no AccessKeyId"},
      {R"({"AccessKeyId":"A"})", "no SecretAccessKey"},
      {R"({"AccessKeyId":42,"SecretAccessKey":"s"})", "no AccessKeyId"},
      {R"({"AccessKeyId":"A","SecretAccessKey":null})", "no SecretAccessKey"},
      {R"({"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"tomorrow"})", "Expiration"},
      {R"({"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"2026-02-30T00:00:00Z"})",
       "Expiration"},
      {R"({"AccessKeyId":"A","SecretAccessKey":"s","Expiration":1796464800})", "Expiration"},
      {R"({"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"2020-01-01T00:00:00Z"})",
       "expired"},
      {R"({"Code":"Failure","AccessKeyId":"A","SecretAccessKey":"s"})", "Code is Failure"},
      {std::string("\x00\xff\xfe{", 4), "not JSON"},
  };
  for (const auto& [body, expected] : cases) {
    FakeEndpoint server([body = body](const FakeEndpoint::Request&) -> FakeEndpoint::Answer {
      return {200, body};
    });
    std::string why;
    EXPECT_FALSE(resolve({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds"}}, &why))
        << body;
    EXPECT_TRUE(contains(why, expected)) << body << " -> " << why;
  }
}

TEST(AwsCredentials, ExpirationFormsAccepted) {
  for (const char* expiration :
       {"2026-12-05T10:00:00Z", "2026-12-05T10:00:00.000Z", "2026-12-05T10:00:00+00:00"}) {
    const std::string body =
        std::string(R"({"AccessKeyId":"A","SecretAccessKey":"s","Expiration":")") + expiration +
        "\"}";
    FakeEndpoint server([body](const FakeEndpoint::Request&) -> FakeEndpoint::Answer {
      return {200, body};
    });
    std::string why;
    auto c = resolve({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url() + "/creds"}}, &why);
    ASSERT_TRUE(c) << expiration << ": " << why;
    EXPECT_EQ(c->expires, kExpires) << expiration;
    EXPECT_EQ(c->session_token, "");
  }
}

// --- Instance metadata (IMDSv2) ---------------------------------------------------------------

Env imds_env(const std::string& endpoint) {
  return {{"AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint}, {"AWS_EC2_METADATA_DISABLED", "false"}};
}

std::optional<Credentials> resolve_imds(
    const Env& env, std::string* why, std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
  CredentialOptions o = options_for({});
  Env merged = env;
  o.env = [merged](const std::string& name) -> std::optional<std::string> {
    auto it = merged.find(name);
    if (it == merged.end()) return std::nullopt;
    return it->second;
  };
  o.http_timeout = timeout;
  return resolve_credentials(o, why);
}

TEST(AwsCredentials, InstanceMetadataV2Flow) {
  FakeEndpoint server(imds_handler("web-role\n", credentials_json("ASIAINSTANCE", "itoken")));
  std::string why;
  auto c = resolve_imds(imds_env(server.url()), &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "ASIAINSTANCE");
  EXPECT_EQ(c->session_token, "itoken");
  EXPECT_EQ(c->expires, kExpires);
  EXPECT_EQ(c->source, "instance metadata role web-role");

  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].target, "/latest/api/token");
  EXPECT_EQ(requests[0].headers["x-aws-ec2-metadata-token-ttl-seconds"], "21600");
  EXPECT_EQ(requests[1].target, "/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(requests[2].target, "/latest/meta-data/iam/security-credentials/web-role");
  EXPECT_EQ(requests[2].headers["x-aws-ec2-metadata-token"], "IMDS-TOKEN");
}

TEST(AwsCredentials, InstanceMetadataWithoutRole) {
  FakeEndpoint server([](const FakeEndpoint::Request& r) -> FakeEndpoint::Answer {
    if (r.target == "/latest/api/token") return {200, "IMDS-TOKEN"};
    return {404, ""};
  });
  std::string why;
  EXPECT_FALSE(resolve_imds(imds_env(server.url()), &why));
  EXPECT_TRUE(contains(why, "no AWS credentials found")) << why;
  EXPECT_TRUE(contains(why, "no IAM role attached")) << why;
}

TEST(AwsCredentials, InstanceMetadataTokenRefused) {
  FakeEndpoint server([](const FakeEndpoint::Request&) -> FakeEndpoint::Answer {
    return {403, ""};
  });
  std::string why;
  EXPECT_FALSE(resolve_imds(imds_env(server.url()), &why));
  EXPECT_TRUE(contains(why, "token PUT answered HTTP 403")) << why;
}

TEST(AwsCredentials, InstanceMetadataDisabled) {
  FakeEndpoint server(imds_handler("web-role", credentials_json()));
  Env env = imds_env(server.url());
  env["AWS_EC2_METADATA_DISABLED"] = "TRUE";
  std::string why;
  EXPECT_FALSE(resolve_imds(env, &why));
  EXPECT_TRUE(contains(why, "instance metadata: disabled by AWS_EC2_METADATA_DISABLED")) << why;
  EXPECT_TRUE(server.requests().empty());
}

TEST(AwsCredentials, InstanceMetadataUnreachable) {
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(closed_port());
  std::string why;
  EXPECT_FALSE(resolve_imds(imds_env(endpoint), &why, std::chrono::milliseconds(500)));
  EXPECT_TRUE(contains(why, "instance metadata: " + endpoint + ": connect failed")) << why;
}

// A server that accepts (the kernel's backlog does) but never answers: the timeout, not the
// server, ends the wait.
TEST(AwsCredentials, InstanceMetadataSilentTimesOut) {
  asio::io_context ioc;
  tcp::acceptor silent(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  std::string why;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(resolve_imds(imds_env(endpoint), &why, std::chrono::milliseconds(300)));
  EXPECT_TRUE(contains(why, endpoint + ": answer timed out after 300 ms")) << why;
  // A hang guard, not a speed test: far above the 300 ms bound.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(AwsCredentials, InstanceMetadataMalformedAnswers) {
  struct Case {
    std::string listing, document, expected;
  };
  const Case cases[] = {
      {"web-role", "{broken", "not JSON"},
      {"web-role", R"({"Code":"Success"})", "no AccessKeyId"},
      {"../../secret", credentials_json(), "not a role name"},
      {"role with spaces", credentials_json(), "not a role name"},
      {"other-role", credentials_json(), "HTTP 404"},
      {"\n", credentials_json(), "no IAM role attached"},
  };
  for (const Case& c : cases) {
    FakeEndpoint server(imds_handler(c.listing, c.document));
    std::string why;
    EXPECT_FALSE(resolve_imds(imds_env(server.url()), &why)) << c.listing;
    EXPECT_TRUE(contains(why, c.expected)) << c.listing << " / " << c.document << " -> " << why;
  }
}

TEST(AwsCredentials, BadMetadataEndpointValue) {
  std::string why;
  EXPECT_FALSE(resolve_imds(imds_env("ftp://127.0.0.1"), &why));
  EXPECT_TRUE(contains(why, "AWS_EC2_METADATA_SERVICE_ENDPOINT")) << why;
  EXPECT_FALSE(resolve_imds(imds_env("http://127.0.0.1:99999"), &why));
  EXPECT_TRUE(contains(why, "bad port")) << why;
}

// The earlier sources still win when IMDS would answer.
TEST(AwsCredentials, ChainOrder) {
  FakeEndpoint imds(imds_handler("web-role", credentials_json("ASIAINSTANCE")));
  FakeEndpoint container([](const FakeEndpoint::Request&) -> FakeEndpoint::Answer {
    return {200, credentials_json("ASIACONTAINER")};
  });
  Env env = imds_env(imds.url());
  std::string why;
  auto c = resolve_imds(env, &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "ASIAINSTANCE");

  env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = container.url() + "/creds";
  c = resolve_imds(env, &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "ASIACONTAINER");

  env["AWS_ACCESS_KEY_ID"] = "ENVKEY";
  env["AWS_SECRET_ACCESS_KEY"] = "e";
  c = resolve_imds(env, &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->access_key_id, "ENVKEY");
}

}  // namespace
}  // namespace heartbeatd::transport::aws
