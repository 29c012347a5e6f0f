// Decoding user ids: path segments and {"users":[...]} bodies, every kind of bad value named
// with its position.
#include "base/user_ids.h"

#include <gtest/gtest.h>

#include <random>

#include <fmt/format.h>

#include "tests/support/test_util.h"

namespace heartbeatd {
namespace {

std::vector<std::uint64_t> ok(std::string_view body, std::size_t max = 100) {
  auto r = parse_user_ids_body(body, max);
  if (auto* e = std::get_if<UserIdsError>(&r)) {
    ADD_FAILURE() << body << ": " << e->message;
    return {};
  }
  return std::get<std::vector<std::uint64_t>>(r);
}

UserIdsError bad(std::string_view body, std::size_t max = 100) {
  auto r = parse_user_ids_body(body, max);
  if (auto* e = std::get_if<UserIdsError>(&r)) return *e;
  ADD_FAILURE() << "accepted: " << body;
  return {};
}

TEST(UserId, PathSegments) {
  std::string why;
  EXPECT_EQ(parse_user_id("0", &why), 0u);
  EXPECT_EQ(parse_user_id("42", &why), 42u);
  EXPECT_EQ(parse_user_id("18446744073709551615", &why), UINT64_MAX);
  for (const char* s : {"", "-1", "1.5", "1e3", "abc", "18446744073709551616", "007", "4x", " 4"}) {
    EXPECT_FALSE(parse_user_id(s, &why)) << s;
  }
  parse_user_id("18446744073709551616", &why);
  EXPECT_EQ(why,
            "expected a user id (unsigned 64-bit integer), got 18446744073709551616 (above "
            "2^64-1)");
  parse_user_id("-3", &why);
  EXPECT_EQ(why, "expected a user id (unsigned 64-bit integer), got -3 (negative)");
}

TEST(UserIdsBody, Accepts) {
  EXPECT_EQ(ok(R"({"users":[1,2,3]})"), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(ok(" {\n \"users\" : [ 0 , 18446744073709551615 ]\t}\r\n"),
            (std::vector<std::uint64_t>{0, UINT64_MAX}));
  EXPECT_EQ(ok(R"({"users":[5,5,5]})"), (std::vector<std::uint64_t>{5, 5, 5})) << "duplicates";
}

TEST(UserIdsBody, AcceptsDecimalStringsLikeNumbers) {
  EXPECT_EQ(ok(R"({"users":["18446744073709551615", 7, "0"]})"),
            (std::vector<std::uint64_t>{UINT64_MAX, 7, 0}));
  EXPECT_EQ(ok(R"({"users":["9007199254740993"]})"), (std::vector<std::uint64_t>{9007199254740993u}))
      << "2^53+1, which a JavaScript number cannot hold";
}

TEST(UserIdsBody, NamesABadStringIdAndItsPosition) {
  const std::string prefix = "expected a user id (unsigned 64-bit integer), got ";
  EXPECT_EQ(bad(R"({"users":[1,"7x"]})").message,
            "users[1]: " + prefix + "the string \"7x\" (not a decimal number)");
  EXPECT_EQ(bad(R"({"users":[""]})").message, "users[0]: " + prefix + "an empty string");
  EXPECT_EQ(bad(R"({"users":["007"]})").message,
            "users[0]: " + prefix + "the string \"007\" (leading zero)");
  EXPECT_EQ(bad(R"({"users":["18446744073709551616"]})").message,
            "users[0]: " + prefix + "the string \"18446744073709551616\" (above 2^64-1)");
  for (const char* s : {R"({"users":["-1"]})", R"({"users":[" 1"]})", R"({"users":["1.0"]})",
                        R"({"users":["1e3"]})", R"({"users":["0x10"]})"}) {
    EXPECT_NE(bad(s).message.find("not a decimal number"), std::string::npos) << s;
  }
  EXPECT_NE(bad(R"({"users":["\u0031"]})").message.find("escapes"), std::string::npos);
  EXPECT_NE(bad(R"({"users":["1)").message.find("unterminated"), std::string::npos);
  EXPECT_NE(bad(R"({"users":["1"2]})").message.find("expected ',' or ']'"), std::string::npos);
}

TEST(UserIdsBody, NamesTheBadElementAndItsPosition) {
  EXPECT_EQ(bad(R"({"users":[1,2,-5]})").message,
            "users[2]: expected a user id (unsigned 64-bit integer), got -5 (negative)");
  EXPECT_EQ(bad(R"({"users":[1.5]})").message,
            "users[0]: expected a user id (unsigned 64-bit integer), got 1.5 (not an integer)");
  EXPECT_EQ(bad(R"({"users":[18446744073709551616]})").message,
            "users[0]: expected a user id (unsigned 64-bit integer), got 18446744073709551616 "
            "(above 2^64-1)");
  EXPECT_EQ(bad(R"({"users":[null]})").message,
            "users[0]: expected a user id (unsigned 64-bit integer), got null");
  EXPECT_NE(bad(R"({"users":[1e3]})").message.find("not an integer"), std::string::npos);
  EXPECT_NE(bad(R"({"users":[01]})").message.find("leading zero"), std::string::npos);
  EXPECT_NE(bad(R"({"users":[{}]})").message.find("an object"), std::string::npos);
  EXPECT_NE(bad(R"({"users":[true]})").message.find("a boolean"), std::string::npos);
}

TEST(UserIdsBody, RejectsWrongShapes) {
  EXPECT_EQ(bad("").message, R"(request body is empty; expected a body {"users":[id,...]})");
  EXPECT_NE(bad("[1,2]").message.find("not a JSON object"), std::string::npos);
  EXPECT_NE(bad("{}").message.find("missing field \"users\""), std::string::npos);
  EXPECT_NE(bad(R"({"ids":[1]})").message.find("unknown field \"ids\""), std::string::npos);
  EXPECT_EQ(bad(R"({"users":5})").message, "users: expected an array of user ids, got 5");
  EXPECT_EQ(bad(R"({"users":[]})").message, "users: the array is empty; send at least one user id");
  EXPECT_NE(bad(R"({"users":[1],"x":2})").message.find("only the field"), std::string::npos);
  EXPECT_NE(bad(R"({"users":[1]} x)").message.find("unexpected data"), std::string::npos);
  EXPECT_NE(bad(R"({"users":[1 2]})").message.find("expected ',' or ']'"), std::string::npos);
  EXPECT_NE(bad(R"({"users":[1,)").message.find("users[1]"), std::string::npos);
  EXPECT_NE(bad(R"({"users":[1])").message.find("expected '}'"), std::string::npos);
  EXPECT_NE(bad(R"({"users)").message.find("unterminated"), std::string::npos);
}

TEST(UserIdsBody, MoreThanMaxBatchIsTooMany) {
  const auto e = bad(R"({"users":[1,2,3,4]})", 3);
  EXPECT_TRUE(e.too_many);
  EXPECT_EQ(e.message, "users: more than 3 ids (presence.max_batch)");
  EXPECT_EQ(ok(R"({"users":[1,2,3]})", 3).size(), 3u);
}

TEST(UserIdsBody, RandomBytesNeverCrashAndNeverHalfParse) {
  auto rng = test::seeded_rng();
  const std::string alphabet = "{}[]\",:0123456789-.eE users\n\\tfn";
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    const std::size_t len = rng() % 40;
    for (std::size_t j = 0; j < len; ++j) s += alphabet[rng() % alphabet.size()];
    auto r = parse_user_ids_body(s, 5);
    if (auto* ids = std::get_if<std::vector<std::uint64_t>>(&r)) {
      EXPECT_FALSE(ids->empty());
      EXPECT_LE(ids->size(), 5u);
    } else {
      EXPECT_FALSE(std::get<UserIdsError>(r).message.empty());
    }
  }
}

std::string le(std::initializer_list<std::uint64_t> ids) {
  std::string out;
  for (std::uint64_t id : ids) {
    for (int b = 0; b < 8; ++b) out += static_cast<char>(id >> (8 * b) & 0xff);
  }
  return out;
}

TEST(UserIdsBinary, EightLittleEndianBytesPerId) {
  auto r = parse_user_ids_binary(le({0, 1, 256, UINT64_MAX, 1, 0x0102030405060708}), 10);
  ASSERT_TRUE(std::holds_alternative<std::vector<std::uint64_t>>(r))
      << std::get<UserIdsError>(r).message;
  EXPECT_EQ(std::get<std::vector<std::uint64_t>>(r),
            (std::vector<std::uint64_t>{0, 1, 256, UINT64_MAX, 1, 0x0102030405060708}));
  r = parse_user_ids_binary(std::string_view("\x08\x07\x06\x05\x04\x03\x02\x01", 8), 1);
  EXPECT_EQ(std::get<std::vector<std::uint64_t>>(r), (std::vector<std::uint64_t>{0x0102030405060708}));
}

TEST(UserIdsBinary, ASizeNotAMultipleOfEightIsRefusedNamingTheRest) {
  for (std::size_t size : {1u, 7u, 9u, 12u, 15u, 8001u}) {
    auto r = parse_user_ids_binary(std::string(size, '\xff'), 1000);
    ASSERT_TRUE(std::holds_alternative<UserIdsError>(r)) << size;
    const auto& e = std::get<UserIdsError>(r);
    EXPECT_FALSE(e.too_many);
    EXPECT_EQ(e.message, fmt::format("binary body of {} bytes is not a whole number of ids (8 "
                                     "bytes per id, little-endian); {} byte(s) left over",
                                     size, size % 8));
  }
}

TEST(UserIdsBinary, EmptyIsRefusedAndMoreThanMaxBatchIsTooManyAsInJson) {
  auto r = parse_user_ids_binary("", 3);
  ASSERT_TRUE(std::holds_alternative<UserIdsError>(r));
  EXPECT_EQ(std::get<UserIdsError>(r).message,
            "request body is empty; send at least one user id (8 bytes per id, little-endian)");
  EXPECT_FALSE(std::get<UserIdsError>(r).too_many);
  r = parse_user_ids_binary(le({1, 2, 3, 4}), 3);
  ASSERT_TRUE(std::holds_alternative<UserIdsError>(r));
  EXPECT_TRUE(std::get<UserIdsError>(r).too_many);
  EXPECT_EQ(std::get<UserIdsError>(r).message, bad(R"({"users":[1,2,3,4]})", 3).message);
  EXPECT_EQ(std::get<std::vector<std::uint64_t>>(parse_user_ids_binary(le({1, 2, 3}), 3)).size(),
            3u);
}

TEST(UserIdsBinary, RandomBytesGiveIdsOrAReason) {
  auto rng = test::seeded_rng();
  for (int i = 0; i < 5000; ++i) {
    std::string s(rng() % 70, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    auto r = parse_user_ids_binary(s, 5);
    if (auto* ids = std::get_if<std::vector<std::uint64_t>>(&r)) {
      ASSERT_EQ(ids->size() * 8, s.size());
      ASSERT_LE(ids->size(), 5u);
      ASSERT_EQ(le({(*ids)[0]}), s.substr(0, 8));
    } else {
      ASSERT_TRUE(s.size() % 8 != 0 || s.empty() || s.size() > 40) << s.size();
    }
  }
}

}  // namespace
}  // namespace heartbeatd
