// base/log: the JSON line encoder, the journal field mapping, and whole lines from many
// threads. The journal itself is not reachable here (no journald in the test environment):
// what would be handed to sd_journal_sendv is tested as the pure function journal_fields().
#include "base/log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_util.h"

namespace heartbeatd {
namespace {

using namespace std::chrono_literals;

std::string json(std::string_view s) {
  std::string out;
  log::append_json_string(out, s);
  return out;
}

// What a JSON parser reads back from json(s); throws if it is not valid JSON.
std::string round_trip(std::string_view s) {
  return std::string(boost::json::parse(json(s)).as_string());
}

TEST(LogTimestamp, IsUtcWithMilliseconds) {
  const auto t = std::chrono::system_clock::time_point(1'796'454'000'123ms);
  EXPECT_EQ(log::timestamp(t), "2026-12-05T07:00:00.123Z");
  EXPECT_EQ(log::timestamp(std::chrono::system_clock::time_point(-1ms)),
            "1969-12-31T23:59:59.999Z");
}

TEST(LogJsonString, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json("plain"), "\"plain\"");
  EXPECT_EQ(json("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(json("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(json(std::string_view("\0\x01\x1f\x7f", 4)), R"("\u0000\u0001\u001f\u007f")");
  EXPECT_EQ(json("/"), "\"/\"");  // JSON allows it unescaped
}

TEST(LogJsonString, KeepsValidUtf8AsItIs) {
  const std::string s =
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";  // é € 😀 U+10FFFF
  EXPECT_EQ(json(s), "\"" + s + "\"");
  EXPECT_EQ(round_trip(s), s);
}

// Each byte outside a valid sequence becomes one U+FFFD, never a Latin-1 guess (\u00XX would
// read back as another character) and never the raw byte (the line would not be JSON).
TEST(LogJsonString, ReplacesEachByteOfInvalidUtf8) {
  EXPECT_EQ(json("\xff"), R"("\ufffd")");
  EXPECT_EQ(json("a\x80z"), R"("a\ufffdz")");                            // stray continuation
  EXPECT_EQ(json("\xc0\xaf"), R"("\ufffd\ufffd")");                      // overlong '/'
  EXPECT_EQ(json("\xe0\x80\xaf"), R"("\ufffd\ufffd\ufffd")");            // overlong, 3 bytes
  EXPECT_EQ(json("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");            // a UTF-16 surrogate
  EXPECT_EQ(json("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // beyond U+10FFFF
  EXPECT_EQ(json("\xe2\x82"), R"("\ufffd\ufffd")");                      // cut short at the end
  EXPECT_EQ(json("\xe2\x82x"), R"("\ufffd\ufffdx")");                    // cut short in the middle
  EXPECT_EQ(json("\xf0\x9f\x98"), R"("\ufffd\ufffd\ufffd")");
}

TEST(LogJsonString, EveryByteStringIsValidJsonOnOneLine) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string encoded = json(all);
  EXPECT_EQ(encoded.find('\n'), std::string::npos);
  EXPECT_NO_THROW(boost::json::parse(encoded));

  std::mt19937 rng(19);  // fixed seed: replayable
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 24, '\0');
    for (auto& c : s) c = static_cast<char>(rng() % 256);
    const std::string e = json(s);
    ASSERT_EQ(e.find('\n'), std::string::npos) << testing::PrintToString(s);
    std::string back;
    ASSERT_NO_THROW(back = std::string(boost::json::parse(e).as_string()))
        << testing::PrintToString(s);
    // Control characters and DEL come back unchanged; other ASCII too.
    bool ascii = true;
    for (const char c : s) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
    if (ascii) {
      EXPECT_EQ(back, s);
    }
  }
}

TEST(LogJsonLine, IsOneObjectWithTsLevelMsgAndTheFields) {
  const log::Fields fields{{"member", "db-3"}, {"state", "dead"}, {"incarnation", 7}};
  const std::string line =
      log::json_line("2026-12-05T07:00:00.123Z", LogLevel::warning, "member db-3 is dead", fields);
  EXPECT_EQ(line,
            R"({"ts":"2026-12-05T07:00:00.123Z","level":"warning","msg":"member db-3 is dead",)"
            R"("member":"db-3","state":"dead","incarnation":7})"
            "\n");
  const auto v = boost::json::parse(line);
  EXPECT_EQ(v.at("incarnation").as_int64(), 7);
}

TEST(LogJsonLine, KeepsTheLineOnOneLineWhateverTheMessage) {
  const log::Fields fields{{"user", "a\nb"}};
  const std::string line =
      log::json_line("t", LogLevel::info, "two\nlines and \"quotes\" \xff", fields);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  const auto v = boost::json::parse(line);
  EXPECT_EQ(v.at("msg").as_string(), "two\nlines and \"quotes\" \xef\xbf\xbd");
  EXPECT_EQ(v.at("user").as_string(), "a\nb");
}

TEST(LogJsonLine, LeavesOutFieldsThatWouldReplaceItsOwnKeys) {
  const log::Fields fields{{"ts", "x"}, {"level", "x"}, {"msg", "x"}, {"", "x"}, {"ok", "y"}};
  EXPECT_EQ(log::json_line("t", LogLevel::error, "m", fields),
            "{\"ts\":\"t\",\"level\":\"error\",\"msg\":\"m\",\"ok\":\"y\"}\n");
}

TEST(LogJsonLine, NegativeAndLargeIntegersAreNumbers) {
  const log::Fields fields{{"a", -5}, {"b", std::uint64_t{18'446'744'073'709'551'615u}}};
  EXPECT_EQ(log::json_line("t", LogLevel::debug, "m", fields),
            "{\"ts\":\"t\",\"level\":\"debug\",\"msg\":\"m\",\"a\":-5,"
            "\"b\":18446744073709551615}\n");
}

TEST(LogJournalFields, MapsMessagePriorityIdentifierAndUpperCaseFields) {
  const log::Fields fields{{"member", "db-3"},
                           {"state", "dead"},
                           {"previous_state", "suspect"},
                           {"incarnation", 7},
                           {"user", "42"}};
  EXPECT_EQ(log::journal_fields(LogLevel::info, "cluster: member db-3 is dead", fields),
            (std::vector<std::string>{"MESSAGE=cluster: member db-3 is dead", "PRIORITY=6",
                                      "SYSLOG_IDENTIFIER=heartbeatd", "MEMBER=db-3", "STATE=dead",
                                      "PREVIOUS_STATE=suspect", "INCARNATION=7", "USER=42"}));
}

TEST(LogJournalFields, PrioritiesAreSyslogs) {
  EXPECT_EQ(log::journal_fields(LogLevel::debug, "m", {})[1], "PRIORITY=7");
  EXPECT_EQ(log::journal_fields(LogLevel::info, "m", {})[1], "PRIORITY=6");
  EXPECT_EQ(log::journal_fields(LogLevel::warning, "m", {})[1], "PRIORITY=4");
  EXPECT_EQ(log::journal_fields(LogLevel::error, "m", {})[1], "PRIORITY=3");
}

// journald takes any bytes in a value (sd_journal_sendv sends values with newlines in its
// binary form), but only A-Z, 0-9 and '_' in names, not first '_' (its own) nor a digit.
TEST(LogJournalFields, NamesAreSanitisedAndReservedOnesLeftOut) {
  const log::Fields fields{
      {"config-key", "a\nb"},
      {"message", "x"},
      {"priority", "x"},
      {"syslog_identifier", "x"},
      {"_pid", "1"},
      {"9lives", "x"},
      {"", "x"},
      {std::string_view("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm"),
       "65 chars"}};
  const auto out = log::journal_fields(LogLevel::info, "m", fields);
  EXPECT_EQ(out, (std::vector<std::string>{"MESSAGE=m", "PRIORITY=6",
                                           "SYSLOG_IDENTIFIER=heartbeatd", "CONFIG_KEY=a\nb"}));
}

// Lines written at once from several threads each arrive whole: every line of the captured
// stderr is one JSON object.
TEST(LogWrite, LinesFromManyThreadsNeverInterleave) {
  test::TempDir dir;
  const std::string path = dir.path() + "/stderr";
  std::fflush(stderr);
  const int saved = dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  dup2(fileno(f), STDERR_FILENO);

  log::init();
  log::set_level(LogLevel::info);
  log::set_format(LogFormat::json);
  constexpr int kThreads = 4, kLines = 500;
  std::vector<std::thread> threads;
  const std::string long_text(3000, 'x');  // beyond one stdio buffer's worth of small lines
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &long_text] {
      for (int i = 0; i < kLines; ++i) {
        log::info({{"thread", t}, {"i", i}}, "line {} of thread {}: {}", i, t, long_text);
      }
    });
  }
  for (auto& th : threads) th.join();
  log::set_format(LogFormat::text);
  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::fclose(f);

  std::istringstream in(test::read_file(path));
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    ++count;
    boost::json::value v;
    ASSERT_NO_THROW(v = boost::json::parse(line)) << line.substr(0, 200);
    ASSERT_TRUE(v.is_object());
    EXPECT_EQ(v.at("level").as_string(), "info");
    EXPECT_TRUE(v.as_object().contains("ts"));
    EXPECT_TRUE(v.as_object().contains("thread"));
  }
  EXPECT_EQ(count, kThreads * kLines);
}

// Under the journal ($JOURNAL_STREAM names stderr), lines go to the sink with their fields,
// not to stderr, whatever log.format says; a sink that fails leaves the line to stderr with
// journald's priority prefix.
std::vector<std::vector<std::string>> g_sent;
bool g_sink_ok = true;
bool capture(std::span<const std::string> fields) {
  g_sent.emplace_back(fields.begin(), fields.end());
  return g_sink_ok;
}

TEST(LogWrite, UnderTheJournalLinesGoToTheSinkWithTheirFields) {
  test::TempDir dir;
  const std::string path = dir.path() + "/stderr";
  std::fflush(stderr);
  const int saved = dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  dup2(fileno(f), STDERR_FILENO);
  struct stat st {};
  ASSERT_EQ(fstat(STDERR_FILENO, &st), 0);
  const std::string stream = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  setenv("JOURNAL_STREAM", stream.c_str(), 1);
  log::init();
  log::set_journal_sink(&capture);
  log::set_format(LogFormat::json);

  log::warning({{"member", "db-3"}, {"state", "dead"}}, "member {} is {}", "db-3", "dead");
  g_sink_ok = false;
  log::error({{"user", "42"}}, "refused");

  log::set_journal_sink(nullptr);
  log::set_format(LogFormat::text);
  unsetenv("JOURNAL_STREAM");
  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::fclose(f);
  log::init();

  ASSERT_EQ(g_sent.size(), 2u);
  EXPECT_EQ(g_sent[0], (std::vector<std::string>{"MESSAGE=member db-3 is dead", "PRIORITY=4",
                                                 "SYSLOG_IDENTIFIER=heartbeatd", "MEMBER=db-3",
                                                 "STATE=dead"}));
  EXPECT_EQ(test::read_file(path), "<3>refused\n");  // only the line the sink refused
}

}  // namespace
}  // namespace heartbeatd
