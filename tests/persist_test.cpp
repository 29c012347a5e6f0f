// persist/: the record format (round trips, every kind of damage reported, never misread),
// the Store (open, write, load, and every bad state of a data directory with its error kind),
// and snapshots of a real PresenceTable put back with the same verdicts and last-seen times.
// In-process and on a manual clock; the real binary's restarts are in persist_daemon_test.
#include <gtest/gtest.h>

#include <rocksdb/db.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "membership/presence_table.h"
#include "persist/format.h"
#include "persist/snapshotter.h"
#include "persist/store.h"
#include "tests/support/test_util.h"

namespace heartbeatd::persist {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using membership::ManualClock;
using membership::PresenceTable;
using test::TempDir;

// ---- format ---------------------------------------------------------------------------

TEST(PersistFormat, RecordsRoundTrip) {
  EXPECT_EQ(std::get<std::uint32_t>(decode_format(encode_format(7))), 7u);

  auto self = std::get<SelfRecord>(decode_self(encode_self({"node-1", 42})));
  EXPECT_EQ(self.name, "node-1");
  EXPECT_EQ(self.incarnation, 42u);

  std::vector<MemberRecord> members{{"a", "127.0.0.1:7701", 0, 3, 1795925148650, 1795925140000, {}, {}},
                                    {"b", "[::1]:7702", 2, 0, 0, 1795925000000, {}, {}}};
  auto back = std::get<std::vector<MemberRecord>>(decode_members(encode_members(members)));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].name, "b");
  EXPECT_EQ(back[1].address, "[::1]:7702");
  EXPECT_EQ(back[1].state, 2);
  EXPECT_EQ(back[0].incarnation, 3u);
  EXPECT_EQ(back[0].last_seen_ms, 1795925148650);
  EXPECT_EQ(back[1].state_since_ms, 1795925000000);

  PresenceManifest m{1795925148650, 10'000'000, 61'000'000, 256};
  auto mb = std::get<PresenceManifest>(decode_manifest(encode_manifest(m)));
  EXPECT_EQ(mb.taken_ms, m.taken_ms);
  EXPECT_EQ(mb.users, m.users);
  EXPECT_EQ(mb.bytes, m.bytes);
  EXPECT_EQ(mb.chunks, m.chunks);
}

TEST(PersistFormat, UsersRoundTripSortedWithFlagsAndExtremes) {
  const std::int64_t base = 1795925148650;
  std::vector<UserRecord> users{{UINT64_MAX, base - 1, false},
                                {0, base - 86'400'000, true},
                                {5, base, false},
                                {4'000'000'000, base + 5000, false},  // later than base
                                {6, base - 29'999, true}};
  const auto chunk = encode_users(users, base);
  std::vector<UserRecord> back;
  ASSERT_FALSE(decode_users(chunk, back).has_value());
  ASSERT_EQ(back.size(), 5u);
  const std::vector<std::uint64_t> ids{0, 5, 6, 4'000'000'000, UINT64_MAX};
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(back[i].id, ids[i]);
  EXPECT_EQ(back[0].last_seen_ms, base - 86'400'000);
  EXPECT_TRUE(back[0].logged_out);
  EXPECT_EQ(back[1].last_seen_ms, base);
  EXPECT_EQ(back[2].last_seen_ms, base - 29'999);
  EXPECT_TRUE(back[2].logged_out);
  EXPECT_EQ(back[3].last_seen_ms, base);  // stored as base: never in the future
  EXPECT_EQ(back[4].last_seen_ms, base - 1);
  EXPECT_FALSE(back[4].logged_out);
}

TEST(PersistFormat, DenseUsersCostFewBytes) {
  // 40 000 dense ids (one shard's share of 10^7), ages up to 30 s: the layout's promise.
  std::mt19937_64 rng(1);
  std::vector<UserRecord> users;
  for (std::uint64_t id = 0; id < 40'000 * 256; id += 256) {
    users.push_back(
        {id + rng() % 256, 1'000'000 - static_cast<std::int64_t>(rng() % 30'000), false});
  }
  const auto chunk = encode_users(users, 1'000'000);
  EXPECT_LE(static_cast<double>(chunk.size()) / users.size(), 5.1);
}

// Every truncation and every single-byte change of every kind of record is reported as an
// error naming the record, never decoded into something else.
TEST(PersistFormat, EveryTruncationAndByteFlipIsReported) {
  std::vector<UserRecord> users{{1, 900, false}, {300, 800, true}, {70000, 1000, false}};
  std::vector<MemberRecord> members{{"node-1", "127.0.0.1:7701", 0, 9, 100, 50, {}, {}}};
  const std::vector<std::pair<std::string, std::function<bool(std::string_view)>>> cases{
      {encode_format(1),
       [](auto v) { return std::holds_alternative<FormatError>(decode_format(v)); }},
      {encode_self({"n", 1}),
       [](auto v) { return std::holds_alternative<FormatError>(decode_self(v)); }},
      {encode_members(members),
       [](auto v) { return std::holds_alternative<FormatError>(decode_members(v)); }},
      {encode_manifest({1, 2, 3, 4}),
       [](auto v) { return std::holds_alternative<FormatError>(decode_manifest(v)); }},
      {encode_member_tags({{"node-1", "127.0.0.1:7701", 0, 9, 100, 50, {{"role", "db"}}, 7}}),
       [](auto v) {
         std::vector<MemberRecord> out{{"node-1", "127.0.0.1:7701", 0, 9, 100, 50, {}, {}}};
         return decode_member_tags(v, out).has_value();
       }},
      {encode_users(users, 1000),
       [](auto v) {
         std::vector<UserRecord> out;
         return decode_users(v, out).has_value();
       }},
  };
  for (const auto& [value, fails] : cases) {
    for (std::size_t n = 0; n < value.size(); ++n) {
      EXPECT_TRUE(fails(std::string_view(value).substr(0, n))) << "prefix " << n;
    }
    for (std::size_t i = 0; i < value.size(); ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string damaged = value;
        damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
        EXPECT_TRUE(fails(damaged)) << "byte " << i << " bit " << bit;
      }
    }
  }
}

TEST(PersistFormat, MemberTagsRoundTripBesideTheMembersAndAreChecked) {
  std::vector<MemberRecord> members{
      {"a", "127.0.0.1:7701", 0, 9, 1, 1, {{"role", "db"}, {"zone", ""}}, 7},
      {"b", "127.0.0.1:7702", 0, 4, 1, 1, {}, 4},  // announced none: kept, unlike never
      {"c", "127.0.0.1:7703", 2, 2, 1, 1, {}, {}}};
  const std::string value = encode_member_tags(members);
  std::vector<MemberRecord> back = members;
  for (auto& m : back) m.tags.clear(), m.tags_at.reset();
  back.push_back({"d", "127.0.0.1:7704", 0, 1, 1, 1, {}, {}});
  ASSERT_FALSE(decode_member_tags(value, back).has_value());
  EXPECT_EQ(back[0].tags, members[0].tags);
  EXPECT_EQ(back[0].tags_at, 7u);
  EXPECT_TRUE(back[1].tags.empty());
  EXPECT_EQ(back[1].tags_at, 4u);
  EXPECT_FALSE(back[2].tags_at);
  EXPECT_FALSE(back[3].tags_at);
  // Tags from after the member's incarnation: damage, not something to guess about.
  back[0].incarnation = 6;
  auto e = decode_member_tags(value, back);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->message, "member a has tags from incarnation 7, after its 6");
  // Tags of a member not in the list are dropped; limits hold.
  std::vector<MemberRecord> none;
  EXPECT_FALSE(decode_member_tags(value, none).has_value());
  std::vector<MemberRecord> many{{"a", "x", 0, 9, 1, 1, {}, 9}};
  for (int i = 0; i < 17; ++i) many[0].tags.emplace_back("k" + std::to_string(i), "v");
  e = decode_member_tags(encode_member_tags(many), many);
  ASSERT_TRUE(e);
  EXPECT_NE(e->message.find("member a has 17 tags"), std::string::npos) << e->message;
  std::vector<MemberRecord> long_key{{"a", "x", 0, 9, 1, 1, {{std::string(65, 'k'), "v"}}, 9}};
  EXPECT_TRUE(decode_member_tags(encode_member_tags(long_key), long_key).has_value());
}

TEST(PersistFormat, UsersOfAnyIdsComeBackSorted) {
  std::mt19937_64 rng(7);
  std::vector<UserRecord> users;
  for (int i = 0; i < 5000; ++i) {
    const std::uint64_t id = i % 2 ? rng() : rng() % 100'000;  // 64-bit and dense, mixed
    users.push_back({id, 1000 - static_cast<std::int64_t>(i % 900), i % 5 == 0});
  }
  std::sort(users.begin(), users.end(), [](auto& a, auto& b) { return a.id < b.id; });
  users.erase(
      std::unique(users.begin(), users.end(), [](auto& a, auto& b) { return a.id == b.id; }),
      users.end());
  auto expected = users;
  std::shuffle(users.begin(), users.end(), rng);
  std::vector<UserRecord> back;
  ASSERT_FALSE(decode_users(encode_users(users, 1000), back).has_value());
  ASSERT_EQ(back.size(), expected.size());
  for (std::size_t i = 0; i < back.size(); ++i) {
    ASSERT_EQ(back[i].id, expected[i].id) << i;
    ASSERT_EQ(back[i].last_seen_ms, expected[i].last_seen_ms) << i;
    ASSERT_EQ(back[i].logged_out, expected[i].logged_out) << i;
  }
}

// Found by tests/fuzz/persist_fuzz.cpp: a chunk whose base time is near INT64_MIN and whose
// age would take a last-seen below it is an error, not a signed overflow.
TEST(PersistFormat, AnAgeBeyondTheBaseIsAnError) {
  std::string payload;
  const auto base = static_cast<std::uint64_t>(INT64_MIN + 5);
  for (int i = 0; i < 8; ++i) payload.push_back(static_cast<char>(base >> (8 * i)));
  payload += std::string("\x01\x07\xd2\x03", 4);  // one user: id 7, age 233 (varint 466)
  std::vector<UserRecord> out;
  const auto e = decode_users(make_record(4, payload), out);
  ASSERT_TRUE(e.has_value());
  EXPECT_NE(e->message.find("age out of range"), std::string::npos) << e->message;
  // The same user with a base that leaves room decodes.
  payload[7] = 0;
  payload.replace(0, 8, std::string(8, '\0'));
  payload[1] = 0x10;  // base 4096
  out.clear();
  ASSERT_FALSE(decode_users(make_record(4, payload), out).has_value());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id, 7u);
  EXPECT_EQ(out[0].last_seen_ms, 4096 - 233);
}

TEST(PersistFormat, WrongKindIsNamed) {
  auto d = decode_self(encode_format(1));
  ASSERT_TRUE(std::holds_alternative<FormatError>(d));
  EXPECT_NE(std::get<FormatError>(d).message.find("self record"), std::string::npos);
}

// ---- store ----------------------------------------------------------------------------

std::unique_ptr<Store> open_ok(const std::string& dir) {
  auto r = Store::open(dir, {});
  if (auto* e = std::get_if<StoreError>(&r)) {
    ADD_FAILURE() << e->message;
    return nullptr;
  }
  return std::move(std::get<std::unique_ptr<Store>>(r));
}

StoreError open_error(const std::string& dir, bool create_parents = false) {
  auto r = Store::open(dir, {.create_parents = create_parents});
  if (auto* e = std::get_if<StoreError>(&r)) return *e;
  ADD_FAILURE() << dir << " opened";
  return {};
}

LoadedState load_ok(Store& s, std::vector<UserRecord>* users = nullptr) {
  auto r = s.load([&](std::vector<UserRecord>& chunk) {
    if (users) users->insert(users->end(), chunk.begin(), chunk.end());
  });
  if (auto* e = std::get_if<StoreError>(&r)) {
    ADD_FAILURE() << e->message;
    return {};
  }
  return std::get<LoadedState>(r);
}

// Writes a presence snapshot of these chunks; nullopt on success.
std::optional<std::string> write_snapshot(Store& s, std::vector<std::vector<UserRecord>> chunks,
                                          std::int64_t base) {
  auto r = s.write_presence(base, static_cast<std::uint32_t>(chunks.size()), [&](std::uint32_t i) {
    return Chunk{encode_users(chunks[i], base), chunks[i].size()};
  });
  if (auto* e = std::get_if<std::string>(&r)) return *e;
  return std::nullopt;
}

TEST(PersistStore, WritesAndLoadsEverything) {
  TempDir tmp;
  const auto dir = tmp.file("data");
  {
    auto s = open_ok(dir);
    ASSERT_TRUE(s);
    auto st = load_ok(*s);
    EXPECT_FALSE(st.self);
    EXPECT_FALSE(st.presence);
    EXPECT_FALSE(write_snapshot(*s, {{{1, 900, false}, {2, 950, true}}, {{3, 1000, false}}}, 1000));
    WriteSet set;
    set.self = SelfRecord{"node-1", 5};
    set.members = std::vector<MemberRecord>{{"node-2", "127.0.0.1:9", 0, 1, 990, 10, {{"role", "db"}}, 1}};
    EXPECT_FALSE(s->write(set).has_value());
    EXPECT_GT(s->disk_bytes(), 0u);
  }
  auto s = open_ok(dir);
  ASSERT_TRUE(s);
  std::vector<UserRecord> users;
  auto st = load_ok(*s, &users);
  ASSERT_TRUE(st.self);
  EXPECT_EQ(st.self->incarnation, 5u);
  ASSERT_EQ(st.members.size(), 1u);
  EXPECT_EQ(st.members[0].name, "node-2");
  EXPECT_EQ(st.members[0].tags, (std::vector<std::pair<std::string, std::string>>{{"role", "db"}}));
  EXPECT_EQ(st.members[0].tags_at, 1u);
  ASSERT_TRUE(st.presence);
  EXPECT_EQ(st.presence->users, 3u);
  ASSERT_EQ(users.size(), 3u);
  EXPECT_TRUE(users[1].logged_out);
  EXPECT_EQ(users[2].last_seen_ms, 1000);
}

TEST(PersistStore, ANewSnapshotReplacesTheWholePreviousOne) {
  TempDir tmp;
  auto s = open_ok(tmp.file("data"));
  ASSERT_TRUE(s);
  ASSERT_FALSE(write_snapshot(*s, {{{1, 10, false}}, {{2, 10, false}}}, 10));
  ASSERT_FALSE(write_snapshot(*s, {{{7, 20, false}}}, 20));
  std::vector<UserRecord> users;
  auto st = load_ok(*s, &users);
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].id, 7u);
  EXPECT_EQ(st.presence->taken_ms, 20);
}

TEST(PersistStore, MissingParentIsNotCreatedForAConfiguredPath) {
  TempDir tmp;
  auto e = open_error(tmp.file("no/such/parent/data"));
  EXPECT_EQ(e.kind, StoreErrorKind::unusable);
  EXPECT_NE(e.message.find("parent directory"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find(tmp.file("no/such/parent")), std::string::npos) << e.message;
  EXPECT_FALSE(fs::exists(tmp.file("no")));
  // The built-in default path gets its parents.
  auto r = Store::open(tmp.file("xdg/state/heartbeatd"), {.create_parents = true});
  EXPECT_TRUE(std::holds_alternative<std::unique_ptr<Store>>(r));
}

TEST(PersistStore, AFileInsteadOfADirectoryIsUnusable) {
  TempDir tmp;
  tmp.write("data", "not a directory");
  auto e = open_error(tmp.file("data"));
  EXPECT_EQ(e.kind, StoreErrorKind::unusable);
  EXPECT_NE(e.message.find("not a directory"), std::string::npos) << e.message;
}

TEST(PersistStore, ASecondOpenIsLockedAndNamesTheHolder) {
  TempDir tmp;
  auto first = open_ok(tmp.file("data"));
  ASSERT_TRUE(first);
  auto e = open_error(tmp.file("data"));
  EXPECT_EQ(e.kind, StoreErrorKind::locked);
  EXPECT_NE(e.message.find("pid " + std::to_string(::getpid())), std::string::npos) << e.message;
  first.reset();
  EXPECT_TRUE(open_ok(tmp.file("data")));  // released with the store
}

// Writes raw keys with RocksDB itself, as another program (or a future version) would.
void put_raw(const std::string& db_path, const std::string& key, const std::string& value) {
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(o, db_path, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, value).ok());
}

TEST(PersistStore, ANewerFormatIsIncompatibleAndLeftAlone) {
  TempDir tmp;
  { ASSERT_TRUE(open_ok(tmp.file("data"))); }
  put_raw(tmp.file("data/db"), std::string(kKeyFormat), encode_format(kFormatVersion + 1));
  auto e = open_error(tmp.file("data"));
  EXPECT_EQ(e.kind, StoreErrorKind::incompatible);
  EXPECT_NE(e.message.find("newer"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("format " + std::to_string(kFormatVersion + 1)), std::string::npos);
  // Still there for the newer build.
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), tmp.file("data/db"), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string v;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), std::string(kKeyFormat), &v).ok());
  EXPECT_EQ(std::get<std::uint32_t>(decode_format(v)), kFormatVersion + 1);
}

TEST(PersistStore, ADatabaseWithoutAFormatRecordIsNotOurs) {
  TempDir tmp;
  fs::create_directories(tmp.file("data"));
  put_raw(tmp.file("data/db"), "someone/else", "x");
  auto e = open_error(tmp.file("data"));
  EXPECT_EQ(e.kind, StoreErrorKind::corrupted);
  EXPECT_NE(e.message.find("no format record"), std::string::npos) << e.message;
}

TEST(PersistStore, FilesWithoutCurrentAreCorruptedNotStartedOver) {
  TempDir tmp;
  { ASSERT_TRUE(open_ok(tmp.file("data"))); }
  fs::remove(tmp.file("data/db/CURRENT"));
  auto e = open_error(tmp.file("data"));
  EXPECT_EQ(e.kind, StoreErrorKind::corrupted);
  EXPECT_NE(e.message.find("no CURRENT"), std::string::npos) << e.message;
  EXPECT_FALSE(fs::exists(tmp.file("data/db/CURRENT")));  // nothing created over it
}

TEST(PersistStore, ADamagedCurrentFileIsCorrupted) {
  TempDir tmp;
  { ASSERT_TRUE(open_ok(tmp.file("data"))); }
  tmp.write("data/db/CURRENT", "garbage\n");
  auto e = open_error(tmp.file("data"));
  EXPECT_TRUE(e.kind == StoreErrorKind::corrupted) << e.message;
  EXPECT_NE(e.message.find(tmp.file("data/db")), std::string::npos) << e.message;
}

TEST(PersistStore, ADamagedOrMissingChunkFailsTheLoad) {
  TempDir tmp;
  {
    auto s = open_ok(tmp.file("data"));
    ASSERT_TRUE(s);
    ASSERT_FALSE(write_snapshot(*s, {{{1, 10, false}}, {{2, 10, false}}}, 10));
  }
  put_raw(tmp.file("data/db"), chunk_key(1, 1), "damaged");
  {
    auto s = open_ok(tmp.file("data"));
    ASSERT_TRUE(s);
    auto r = s->load([](auto&) {});
    ASSERT_TRUE(std::holds_alternative<StoreError>(r));
    const auto& e = std::get<StoreError>(r);
    EXPECT_EQ(e.kind, StoreErrorKind::corrupted);
    EXPECT_NE(e.message.find(chunk_key(1, 1)), std::string::npos) << e.message;
  }
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), tmp.file("data/db"), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), chunk_key(1, 1)).ok());
  }
  auto s = open_ok(tmp.file("data"));
  ASSERT_TRUE(s);
  auto r = s->load([](auto&) {});
  ASSERT_TRUE(std::holds_alternative<StoreError>(r));
  EXPECT_NE(std::get<StoreError>(r).message.find("missing"), std::string::npos);
}

// A directory written by the first release of format 1 (tests/data/format-1/README.md):
// every build that claims to read format 1 must read it.
TEST(PersistStore, ReadsADirectoryWrittenInFormat1) {
  ASSERT_LE(kOldestReadableFormat, 1u);
  TempDir tmp;
  fs::create_directories(tmp.file("data"));
  fs::copy(std::string(HEARTBEATD_SOURCE_DIR) + "/tests/data/format-1/db", tmp.file("data/db"),
           fs::copy_options::recursive);
  auto s = open_ok(tmp.file("data"));
  ASSERT_TRUE(s);
  std::vector<UserRecord> users;
  auto st = load_ok(*s, &users);
  EXPECT_EQ(st.format, 1u);
  ASSERT_TRUE(st.self);
  EXPECT_EQ(st.self->name, "fixture-node");
  EXPECT_TRUE(st.members.empty());
  ASSERT_TRUE(st.presence);
  EXPECT_EQ(st.presence->users, 101u);
  ASSERT_EQ(users.size(), 101u);
  std::sort(users.begin(), users.end(), [](auto& a, auto& b) { return a.id < b.id; });
  for (std::uint64_t i = 0; i < 100; ++i) {
    EXPECT_EQ(users[i].id, i + 1);
    EXPECT_EQ(users[i].logged_out, i + 1 == 7) << users[i].id;
    EXPECT_LE(users[i].last_seen_ms, st.presence->taken_ms);
    EXPECT_GT(users[i].last_seen_ms, st.presence->taken_ms - 60'000);
  }
  EXPECT_EQ(users[100].id, 5'000'000'000u);
  // The upgrade: the format record moves on when writing begins, the old snapshot stays
  // readable until the first new one replaces it, and then it is gone.
  ASSERT_FALSE(s->begin_writing().has_value());
  EXPECT_EQ(load_ok(*s).format, kFormatVersion);
  std::vector<UserRecord> again;
  EXPECT_EQ(load_ok(*s, &again).presence->users, 101u);
  ASSERT_FALSE(write_snapshot(*s, {{{42, 5000, false}}}, 5000));
  s.reset();
  auto reopened = open_ok(tmp.file("data"));
  ASSERT_TRUE(reopened);
  users.clear();
  st = load_ok(*reopened, &users);
  EXPECT_EQ(st.format, kFormatVersion);
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].id, 42u);
  ASSERT_FALSE(reopened->begin_writing());
  rocksdb::DB* raw = nullptr;
  reopened.reset();
  ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), tmp.file("data/db"), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string v;
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), std::string(kKeyPresenceV1), &v).IsNotFound());
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), chunk_key_v1(0), &v).IsNotFound());
}

// Each snapshot is a generation of its own; the newest is read, and older ones are dropped
// with their files, so the disk holds one snapshot however many were written.
TEST(PersistStore, TheNewestGenerationWinsAndOlderOnesAreDropped) {
  TempDir tmp;
  auto s = open_ok(tmp.file("data"));
  ASSERT_TRUE(s);
  std::vector<UserRecord> big;
  for (std::uint64_t id = 0; id < 50'000; ++id) big.push_back({id * 3, 1000, false});
  std::vector<std::uint64_t> sizes;
  for (int round = 0; round < 6; ++round) {
    ASSERT_FALSE(write_snapshot(*s, {big, {{7'000'000ULL + round, 1000, true}}}, 1000));
    sizes.push_back(s->disk_bytes());
  }
  // No growth with the number of snapshots (within a snapshot's size of slack).
  const std::uint64_t one = sizes.front();
  EXPECT_LT(sizes.back(), one + one / 2) << sizes.front() << " -> " << sizes.back();
  s.reset();
  auto r = open_ok(tmp.file("data"));
  ASSERT_TRUE(r);
  std::vector<UserRecord> users;
  auto st = load_ok(*r, &users);
  ASSERT_EQ(users.size(), big.size() + 1);
  EXPECT_EQ(users.back().id, 7'000'005u);  // the sixth snapshot's own user
  EXPECT_TRUE(users.back().logged_out);
  // And the next write continues the generations.
  ASSERT_FALSE(r->begin_writing());
  ASSERT_FALSE(write_snapshot(*r, {{{1, 1000, false}}}, 1000));
  users.clear();
  load_ok(*r, &users);
  ASSERT_EQ(users.size(), 1u);
}

TEST(PersistFormat, GenerationKeysSortAndParse) {
  EXPECT_LT(chunk_key(1, 255), manifest_key(1));
  EXPECT_LT(manifest_key(1), chunk_key(2, 0));
  EXPECT_LT(manifest_key(0xf), chunk_key(0x10, 0));
  EXPECT_EQ(generation_of(chunk_key(0x1234abcd, 7)), 0x1234abcdu);
  EXPECT_EQ(generation_of(manifest_key(UINT64_MAX)), UINT64_MAX);
  EXPECT_FALSE(generation_of("presence/g/123/manifest"));
  EXPECT_FALSE(generation_of("presence/manifest"));
  EXPECT_FALSE(generation_of("presence/g/000000000000000G/manifest"));
}

// Existing state is read-only until begin_writing().
TEST(PersistStore, ExistingStateIsReadOnlyUntilReadBack) {
  TempDir tmp;
  { ASSERT_FALSE(open_ok(tmp.file("data"))->write(WriteSet{SelfRecord{"n", 1}, {}})); }
  auto s = open_ok(tmp.file("data"));
  ASSERT_TRUE(s);
  auto err = s->write(WriteSet{SelfRecord{"n", 2}, {}});
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("not open for writing"), std::string::npos) << *err;
  ASSERT_FALSE(s->begin_writing().has_value());
  EXPECT_FALSE(s->write(WriteSet{SelfRecord{"n", 2}, {}}));
  EXPECT_EQ(load_ok(*s).self->incarnation, 2u);
}

// A first start that crashed after RocksDB made its files but before the format record:
// an empty database, opened as new rather than refused.
TEST(PersistStore, AnEmptyDatabaseOpensAsNew) {
  TempDir tmp;
  fs::create_directories(tmp.file("data"));
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, tmp.file("data/db"), &raw).ok());
    delete raw;
  }
  auto s = open_ok(tmp.file("data"));
  ASSERT_TRUE(s);
  auto st = load_ok(*s);
  EXPECT_FALSE(st.self);
  EXPECT_FALSE(st.presence);
  ASSERT_FALSE(s->begin_writing());
  ASSERT_FALSE(s->write(WriteSet{SelfRecord{"n", 1}, {}}));
  s.reset();
  auto again = open_ok(tmp.file("data"));
  ASSERT_TRUE(again);
  EXPECT_EQ(load_ok(*again).format, kFormatVersion);
}

// A crash earlier in the first start leaves db.new (never db): removed, and a new database
// made.
TEST(PersistStore, ALeftoverDbNewIsRemoved) {
  TempDir tmp;
  fs::create_directories(tmp.file("data/db.new"));
  tmp.write("data/db.new/MANIFEST-000001", "half written");
  tmp.write("data/db.new/IDENTITY", "x");
  auto s = open_ok(tmp.file("data"));
  ASSERT_TRUE(s);
  EXPECT_FALSE(fs::exists(tmp.file("data/db.new")));
  EXPECT_TRUE(fs::exists(tmp.file("data/db/CURRENT")));
  EXPECT_FALSE(s->write(WriteSet{SelfRecord{"n", 1}, {}}));
}

// A crash after the first format-2 snapshot of an upgraded directory and before its
// format-1 snapshot was dropped leaves both: the generation wins.
TEST(PersistStore, AfterAnUpgradeTheNewestGenerationWinsOverFormat1) {
  TempDir tmp;
  fs::create_directories(tmp.file("data"));
  fs::copy(std::string(HEARTBEATD_SOURCE_DIR) + "/tests/data/format-1/db", tmp.file("data/db"),
           fs::copy_options::recursive);
  std::vector<UserRecord> one{{99, 500, false}};
  put_raw(tmp.file("data/db"), chunk_key(1, 0), encode_users(one, 500));
  put_raw(tmp.file("data/db"), manifest_key(1), encode_manifest({500, 1, 0, 1}));
  put_raw(tmp.file("data/db"), std::string(kKeyFormat), encode_format(2));
  auto s = open_ok(tmp.file("data"));
  ASSERT_TRUE(s);
  std::vector<UserRecord> users;
  auto st = load_ok(*s, &users);
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].id, 99u);
  EXPECT_EQ(st.presence->taken_ms, 500);
}

TEST(PersistStore, AnAbandonedSnapshotLeavesThePreviousOne) {
  TempDir tmp;
  auto s = open_ok(tmp.file("data"));
  ASSERT_TRUE(s);
  ASSERT_FALSE(write_snapshot(*s, {{{1, 10, false}}, {{2, 10, false}}}, 10));
  auto r = s->write_presence(20, 2, [](std::uint32_t i) -> std::optional<Chunk> {
    if (i == 1) return std::nullopt;
    std::vector<UserRecord> u{{3, 20, false}};
    return Chunk{encode_users(u, 20), 1};
  });
  EXPECT_TRUE(std::holds_alternative<std::monostate>(r));
  EXPECT_FALSE(fs::exists(tmp.file("data/") + std::string(kSnapshotTempFile)));
  std::vector<UserRecord> users;
  load_ok(*s, &users);
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0].id, 1u);
}

TEST(PersistSnapshot, AbsurdStoredTimesAreClampedNotOverflowed) {
  std::atomic<std::int64_t> anchor{0};
  ManualClock clock;
  const WallConverter wall(clock.now(), anchor);
  const auto now = clock.now();
  const auto century = std::chrono::milliseconds(100LL * 365 * 24 * 3600 * 1000);
  EXPECT_EQ(wall.to_mono(INT64_MIN), now - century);
  EXPECT_EQ(wall.to_mono(INT64_MAX), now);
  EXPECT_EQ(wall.to_mono(wall.to_unix_ms(now) + 1), now);
  const auto t = std::chrono::floor<std::chrono::milliseconds>(now) - 5s;
  EXPECT_EQ(wall.to_mono(wall.to_unix_ms(t)), t);  // exact within range
}

// ---- snapshots of the presence table ---------------------------------------------------

TEST(PersistSnapshot, UsersComeBackWithTheirVerdictsAndLastSeen) {
  TempDir tmp;
  ManualClock clock;
  auto anchor = std::make_shared<std::atomic<std::int64_t>>(0);
  membership::PresenceOptions opt{30s, 24h, 1000};
  const auto t0 = std::chrono::floor<std::chrono::milliseconds>(clock.now());
  PresenceTable before(opt, t0 - 25h);
  ASSERT_EQ(before.heartbeat(1, clock.now()), PresenceTable::HeartbeatResult::ok);
  clock.advance(10s);
  before.heartbeat(2, clock.now());
  before.heartbeat(4'000'000'000ULL, clock.now());
  before.logout(2, clock.now());
  clock.advance(25s);  // user 1: 35 s old (offline, last-seen kept); 2: logged out
  before.heartbeat(3, clock.now());
  const auto now = clock.now();
  std::map<std::uint64_t, PresenceTable::Status> expected;
  for (std::uint64_t id : {1ULL, 2ULL, 3ULL, 4'000'000'000ULL, 5ULL}) {
    expected[id] = before.status(id, now);
  }
  {
    auto store = open_ok(tmp.file("data"));
    ASSERT_TRUE(store);
    Snapshotter snap(*store, &before, clock, anchor, nullptr, 5s);
    ASSERT_FALSE(snap.snapshot_on_stop().has_value());
    const auto st = snap.stats();
    EXPECT_EQ(st.users, 4u);
    ASSERT_TRUE(st.last_ms);
    EXPECT_EQ(st.snapshots, 1u);
  }
  // "After the restart": a new table with another epoch, the same clock and anchor.
  PresenceTable after(opt, t0 - 26h);
  auto store = open_ok(tmp.file("data"));
  ASSERT_TRUE(store);
  const WallConverter wall(now, *anchor);
  PresenceTable::RestoreResult restored;
  auto loaded = store->load([&](std::vector<UserRecord>& chunk) {
    auto r = after.restore(to_table_records(chunk, wall), now);
    restored.restored += r.restored;
  });
  ASSERT_TRUE(std::holds_alternative<LoadedState>(loaded));
  EXPECT_EQ(restored.restored, 4u);
  for (const auto& [id, want] : expected) {
    const auto got = after.status(id, now);
    EXPECT_EQ(got.online, want.online) << id;
    EXPECT_EQ(got.last_seen, want.last_seen) << id;
  }
  EXPECT_EQ(after.counts(now).online, before.counts(now).online);
  EXPECT_EQ(after.counts(now).tracked, 4u);
  // The restored online user goes offline exactly when the timeout passes, and the count
  // follows.
  const auto last3 = *after.status(3, now).last_seen;
  EXPECT_TRUE(after.status(3, last3 + 30s - 1ms).online);
  EXPECT_FALSE(after.status(3, last3 + 30s).online);
  EXPECT_EQ(after.counts(now).online, 2u);       // users 3 and 4'000'000'000
  EXPECT_EQ(after.counts(now + 5s).online, 1u);  // 4'000'000'000 is 30 s old
  EXPECT_EQ(after.counts(last3 + 30s).online, 0u);
}

TEST(PersistSnapshot, RestoreLeavesOutForgottenUsersAndRespectsTheLimit) {
  ManualClock clock;
  const auto now = clock.now();
  PresenceTable t(membership::PresenceOptions{30s, 1h, 3}, now - 2h);
  std::vector<PresenceTable::Record> in{{1, now - 2h, false},   // forgotten
                                        {2, now - 10s, false},  // online
                                        {3, now - 1min, true},  // offline
                                        {4, now + 5s, false},   // "later than now": now
                                        {2, now, false}};       // already tracked
  const auto r = t.restore(in, now);
  EXPECT_EQ(r.restored, 3u);
  EXPECT_EQ(r.forgotten, 1u);
  EXPECT_EQ(r.over_limit, 1u);
  EXPECT_TRUE(t.status(2, now).online);
  EXPECT_EQ(t.status(2, now).last_seen, now - 10s);
  EXPECT_FALSE(t.status(3, now).online);
  EXPECT_EQ(t.status(3, now).last_seen, now - 1min);
  EXPECT_EQ(t.status(4, now).last_seen, now);
  EXPECT_FALSE(t.status(1, now).last_seen);
  EXPECT_EQ(t.counts(now).online, 2u);
  EXPECT_EQ(t.counts(now).tracked, 3u);

  // Beyond max_users (lowered since the snapshot): some are left out, and counted.
  PresenceTable small(membership::PresenceOptions{30s, 1h, 1}, now - 2h);
  const std::vector<PresenceTable::Record> two{{5, now, false}, {6, now, false}};
  const auto r2 = small.restore(two, now);
  EXPECT_EQ(r2.restored, 1u);
  EXPECT_EQ(r2.over_limit, 1u);
  EXPECT_EQ(small.counts(now).tracked, 1u);
  EXPECT_EQ(small.counts(now).online, 1u);
}

// Many users at once (the tables are sized before the inserts): every one comes back.
TEST(PersistSnapshot, RestoresManyUsersAcrossAllShards) {
  ManualClock clock;
  const auto now = clock.now();
  PresenceTable t(membership::PresenceOptions{30s, 1h, 1'000'000}, now - 2h);
  std::vector<PresenceTable::Record> in;
  for (std::uint64_t id = 0; id < 200'000; ++id) {
    in.push_back({id * 7 + (id % 3 == 0 ? (1ULL << 40) : 0),
                  now - std::chrono::milliseconds(id % 60'000), id % 11 == 0});
  }
  const auto r = t.restore(in, now);
  EXPECT_EQ(r.restored, in.size());
  std::size_t online = 0;
  for (const auto& u : in) {
    const auto st = t.status(u.id, now);
    ASSERT_EQ(st.last_seen, u.last_seen) << u.id;
    online += st.online;
    ASSERT_EQ(st.online, !u.logged_out && now - u.last_seen < 30s) << u.id;
  }
  EXPECT_EQ(t.counts(now).online, online);
  EXPECT_EQ(t.counts(now).tracked, in.size());
}

TEST(PersistSnapshot, MembershipComesBackAboveThePersistedIncarnation) {
  LoadedState st;
  st.self = SelfRecord{"node-1", 7};
  st.members = {{"node-2", "127.0.0.1:9002", 0, 3, 1000, 900, {}, {}},
                {"node-3", "127.0.0.1:9003", 2, 1, 500, 800, {}, {}},
                {"node-1", "127.0.0.1:9001", 0, 7, 0, 0, {}, {}},
                {"node-4", "not an address", 0, 0, 0, 0, {}, {}}};
  std::atomic<std::int64_t> anchor{0};
  ManualClock clock;
  const WallConverter wall(clock.now(), anchor);
  auto r = restore_membership(st, "node-1", wall);
  EXPECT_EQ(r.incarnation, 8u);
  ASSERT_EQ(r.members.size(), 2u);
  EXPECT_EQ(r.members[0].name, "node-2");
  EXPECT_EQ(r.members[1].state, membership::MemberState::dead);
  EXPECT_EQ(wall.to_unix_ms(r.members[1].state_since), 800);
  EXPECT_EQ(r.unreadable, 1u);
  // Another node's directory: its incarnation is not ours.
  EXPECT_EQ(restore_membership(st, "node-9", wall).incarnation, 0u);
}

}  // namespace
}  // namespace heartbeatd::persist
