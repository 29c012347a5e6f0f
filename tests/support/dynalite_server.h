// DynaliteServer: dynalite (tests/dynamodb, an in-memory DynamoDB under node, installed by
// scripts/setup) for tests, on a free loopback port, with no creation or deletion delay
// (--createTableMs 0: a new table is ACTIVE on dynalite's next event-loop turn, not always
// by the time CreateTable answers). start() waits for it to answer a
// ListTables (deadline); stop() kills it; start() again brings it back on the same port,
// empty (it keeps nothing on disk).
//
// What dynalite 4.0.0 does, as tests/dynalite_support_test.cpp checks:
//  - every request needs an Authorization header starting "AWS4-" with Credential=,
//    SignedHeaders= and Signature= parts, and an X-Amz-Date or Date header; the signature is
//    never checked (dynamo_request() sends such headers);
//  - UpdateTimeToLive is not implemented (400 UnknownOperationException); DescribeTimeToLive
//    always answers DISABLED;
//  - BatchWriteItem: at most 25 requests per table (ValidationException), but the total over
//    several tables is not limited (DynamoDB's limit is 25 in all); BatchGetItem: at most 100
//    keys per table and in all; duplicate keys in either: ValidationException;
//  - table names have 3 to 255 characters; errors are 400 {"__type":
//    "com.amazon.coral.validate#ValidationException" or "com.amazonaws.dynamodb.v20120810#...",
//    "message": ...}.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/support/http_client.h"
#include "tests/support/test_util.h"

namespace heartbeatd::test {

class DynaliteServer {
 public:
  // Empty when dynalite can run; else why not ("... missing: run scripts/setup").
  static std::string problem();
  // tests/dynamodb in the source tree.
  static std::string dynamodb_dir();
  // node on PATH, or "" when there is none.
  static std::string node_binary();

  // Extra dynalite options (say {"--maxItemSizeKb", "10"}) go to every start().
  explicit DynaliteServer(std::vector<std::string> extra_args = {});
  ~DynaliteServer();
  DynaliteServer(const DynaliteServer&) = delete;
  DynaliteServer& operator=(const DynaliteServer&) = delete;

  bool start(std::chrono::milliseconds deadline = std::chrono::seconds(15));
  void stop();  // SIGKILL, then reaped
  bool running() const { return pid_ > 0; }
  std::uint16_t port() const { return port_; }
  std::string endpoint() const;  // "http://127.0.0.1:PORT"
  std::string log() const;       // dynalite's stdout and stderr so far

 private:
  TempDir dir_;
  std::vector<std::string> extra_;
  std::uint16_t port_;
  pid_t pid_ = -1;
};

// One DynamoDB call (X-Amz-Target DynamoDB_20120810.<operation>, a JSON body) on a fresh
// connection to 127.0.0.1:port, with the signed-looking headers dynalite wants.
HttpResult dynamo_request(std::uint16_t port, const std::string& operation,
                          const std::string& body,
                          std::chrono::milliseconds deadline = std::chrono::seconds(5));

// The environment a heartbeatd under test needs to talk to dynalite: static test keys, and
// every other credential source closed (no shared files, no instance metadata), so that
// nothing of the machine's own AWS setup leaks in.
std::map<std::string, std::string> dynalite_credentials();

// Creates a table whose partition key is `key` of type `type` ("S", "N", "B"): true on 200.
bool create_dynamo_table(std::uint16_t port, const std::string& table, const std::string& key,
                         const std::string& type);

// Starts `argv` (argv[0] a path) with stdin from /dev/null and stdout and stderr appended to
// `log_path`, killed when the test process dies. The pid, or -1.
pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log_path);
// SIGKILL, then reaped; pid becomes -1.
void kill_and_reap(pid_t& pid);

}  // namespace heartbeatd::test
