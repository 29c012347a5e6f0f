// persist/ under a disk that fails on command (tests/support/fault_env.h): a full disk, a
// failed fsync and a write torn by a crash, at every write and sync a snapshot or a
// membership write makes. What docs/PERSISTENCE.md promises: the failure is reported with
// its cause, the previous state stays readable whole, a reopen finds the old state or the
// new one (never a mix, never a refused start), and the next write succeeds once the disk
// works again. In-process and deterministic; the full-disk cases on the real binary, in a
// small tmpfs, are in persist_daemon_test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "persist/format.h"
#include "persist/store.h"
#include "tests/support/fault_env.h"
#include "tests/support/test_util.h"

namespace heartbeatd::persist {
namespace {

namespace fs = std::filesystem;
using test::FaultEnv;
using test::TempDir;

std::unique_ptr<Store> open_ok(const std::string& dir, FaultEnv& disk) {
  auto r = Store::open(dir, {.env = disk.env()});
  if (auto* e = std::get_if<StoreError>(&r)) {
    ADD_FAILURE() << e->message;
    return nullptr;
  }
  return std::move(std::get<std::unique_ptr<Store>>(r));
}

// What a store holds, read back whole.
struct State {
  std::optional<std::uint64_t> incarnation;
  std::vector<std::string> members;
  std::optional<std::int64_t> taken_ms;
  std::vector<std::uint64_t> users;
  bool operator==(const State&) const = default;
};

std::ostream& operator<<(std::ostream& os, const State& s) {
  os << "{incarnation " << (s.incarnation ? std::to_string(*s.incarnation) : "-") << ", members";
  for (const auto& m : s.members) os << ' ' << m;
  os << ", snapshot " << (s.taken_ms ? std::to_string(*s.taken_ms) : "-") << ", users";
  for (auto u : s.users) os << ' ' << u;
  return os << '}';
}

std::optional<State> load(Store& s) {
  State st;
  auto r = s.load([&](std::vector<UserRecord>& chunk) {
    for (const auto& u : chunk) st.users.push_back(u.id);
  });
  if (auto* e = std::get_if<StoreError>(&r)) {
    ADD_FAILURE() << e->message;
    return std::nullopt;
  }
  const auto& loaded = std::get<LoadedState>(r);
  if (loaded.self) st.incarnation = loaded.self->incarnation;
  for (const auto& m : loaded.members) st.members.push_back(m.name);
  if (loaded.presence) st.taken_ms = loaded.presence->taken_ms;
  return st;
}

// Reopens `dir` on a healthy disk, as the next process would, reads it back and makes it
// writable.
std::optional<State> reopen(const std::string& dir, FaultEnv& disk, std::unique_ptr<Store>& s) {
  s.reset();
  disk.heal();
  s = open_ok(dir, disk);
  if (!s) return std::nullopt;
  auto st = load(*s);
  if (auto err = s->begin_writing()) {
    ADD_FAILURE() << err->message;
    return std::nullopt;
  }
  return st;
}

// The snapshot "taken at `taken_ms`": two chunks whose users all carry that number, so a
// mix of two snapshots shows.
std::variant<PresenceManifest, std::monostate, std::string> snapshot(Store& s,
                                                                     std::int64_t taken_ms) {
  const auto id = static_cast<std::uint64_t>(taken_ms) * 1000;
  std::vector<std::vector<UserRecord>> chunks{{{id + 1, taken_ms, false}},
                                              {{id + 2, taken_ms, true}}};
  return s.write_presence(taken_ms, 2, [&](std::uint32_t i) {
    return Chunk{encode_users(chunks[i], taken_ms), chunks[i].size()};
  });
}

std::optional<std::string> error_of(
    const std::variant<PresenceManifest, std::monostate, std::string>& r) {
  if (const auto* e = std::get_if<std::string>(&r)) return *e;
  return std::nullopt;
}

// Membership "number n": the incarnation and a member named after it, in one write.
WriteSet membership(std::uint64_t n) {
  WriteSet set;
  set.self = SelfRecord{"node-1", n};
  set.members =
      std::vector<MemberRecord>{{"member-" + std::to_string(n), "127.0.0.1:9", 0, 1, 1000, 10, {}, {}}};
  return set;
}

State expected(std::uint64_t membership_n, std::int64_t taken_ms) {
  const auto id = static_cast<std::uint64_t>(taken_ms) * 1000;
  return {membership_n, {"member-" + std::to_string(membership_n)}, taken_ms, {id + 1, id + 2}};
}

// A data directory holding membership 1 and the snapshot taken at 100.
std::unique_ptr<Store> with_old_state(const std::string& dir, FaultEnv& disk) {
  auto s = open_ok(dir, disk);
  if (!s) return nullptr;
  EXPECT_FALSE(s->write(membership(1)));
  EXPECT_FALSE(error_of(snapshot(*s, 100)));
  return s;
}

// The appends and syncs that writing one more snapshot makes, in order.
std::vector<FaultEnv::Op> ops_of_a_snapshot() {
  TempDir tmp;
  FaultEnv disk;
  auto s = with_old_state(tmp.file("data"), disk);
  disk.forget_ops();
  EXPECT_FALSE(error_of(snapshot(*s, 200)));
  return disk.ops();
}

std::string describe(const std::vector<FaultEnv::Op>& ops) {
  std::string out;
  for (const auto& op : ops) {
    out += op.kind == FaultEnv::Op::Kind::sync
               ? " sync " + op.file
               : " append " + op.file + " " + std::to_string(op.bytes);
  }
  return out;
}

// The table files in the database directory.
std::set<std::string> table_files(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir + "/db")) {
    if (e.path().extension() == ".sst") names.insert(e.path().filename().string());
  }
  return names;
}

std::vector<std::string> added(const std::set<std::string>& before,
                               const std::set<std::string>& after) {
  std::vector<std::string> out;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                      std::back_inserter(out));
  return out;
}

// The seam itself: a store opened with an Env writes every file through it.
TEST(PersistFault, TheEnvSeesEveryFileTheStoreWrites) {
  const auto ops = ops_of_a_snapshot();
  auto touched = [&](FaultEnv::Op::Kind kind, const std::string& file) {
    return std::any_of(ops.begin(), ops.end(), [&](const FaultEnv::Op& op) {
      return op.kind == kind && op.file.find(file) != std::string::npos;
    });
  };
  EXPECT_TRUE(touched(FaultEnv::Op::Kind::append, std::string(kSnapshotTempFile))) << describe(ops);
  EXPECT_TRUE(touched(FaultEnv::Op::Kind::append, "MANIFEST")) << describe(ops);
  EXPECT_TRUE(touched(FaultEnv::Op::Kind::sync, "MANIFEST")) << describe(ops);
}

// ---- a full disk ------------------------------------------------------------------------

// The disk fills while the snapshot file is written: the database itself is not touched.
TEST(PersistFault, AFullDiskFailsTheSnapshotKeepsThePreviousOneAndPassesWhenSpaceIsBack) {
  TempDir tmp;
  FaultEnv disk;
  const auto dir = tmp.file("data");
  const auto temp_file = dir + "/" + std::string(kSnapshotTempFile);
  auto s = with_old_state(dir, disk);
  ASSERT_TRUE(s);
  disk.fill_disk_after(0, std::string(kSnapshotTempFile));
  const auto err = error_of(snapshot(*s, 200));
  ASSERT_TRUE(err) << "the snapshot was written on a full disk";
  EXPECT_GT(disk.faults(), 0u);
  EXPECT_NE(err->find("cannot write the snapshot file " + temp_file), std::string::npos) << *err;
  EXPECT_NE(err->find("No space left on device"), std::string::npos) << *err;
  EXPECT_NE(err->find("the previous snapshot is kept"), std::string::npos) << *err;
  EXPECT_FALSE(fs::exists(temp_file));
  // Space is back: the same store (the daemon does not restart) writes the next one.
  disk.heal();
  EXPECT_FALSE(error_of(snapshot(*s, 300)));
  EXPECT_EQ(reopen(dir, disk, s), expected(1, 300));
}

// The disk fills at the commit point: the snapshot file is written, and the MANIFEST
// record that would add it to the database is not. The database is closed then (RocksDB
// refuses writes after a failed one) and reopened by the next write.
TEST(PersistFault, AFullDiskWhenTheSnapshotJoinsTheDatabaseKeepsThePreviousOne) {
  TempDir tmp;
  FaultEnv disk;
  const auto dir = tmp.file("data");
  auto s = with_old_state(dir, disk);
  ASSERT_TRUE(s);
  disk.fill_disk_after(0, "MANIFEST");
  const auto err = error_of(snapshot(*s, 200));
  ASSERT_TRUE(err) << "the snapshot joined the database on a full disk";
  EXPECT_NE(err->find("cannot add the snapshot to the database"), std::string::npos) << *err;
  EXPECT_NE(err->find("No space left on device"), std::string::npos) << *err;
  // Still full: the reopen fails too, and says so.
  const auto again = error_of(snapshot(*s, 250));
  ASSERT_TRUE(again);
  EXPECT_NE(again->find("No space left on device"), std::string::npos) << *again;
  disk.heal();
  EXPECT_FALSE(s->write(membership(2)));
  EXPECT_FALSE(error_of(snapshot(*s, 300)));
  EXPECT_EQ(reopen(dir, disk, s), expected(2, 300));
}

// The disk fills at every byte boundary of every write a snapshot makes, and in the middle
// of each: the old snapshot or the new one comes back whole, and a failed snapshot always
// leaves the old one.
TEST(PersistFault, AFullDiskAtEveryWriteOfASnapshotLeavesTheOldOrTheNewOneWhole) {
  const auto ops = ops_of_a_snapshot();
  std::vector<std::uint64_t> budgets;
  std::uint64_t written = 0;
  for (const auto& op : ops) {
    if (op.kind != FaultEnv::Op::Kind::append) continue;
    budgets.push_back(written);
    budgets.push_back(written + op.bytes / 2);
    written += op.bytes;
  }
  budgets.push_back(written);  // room for all of it
  ASSERT_GE(budgets.size(), 5u) << describe(ops);
  for (const auto budget : budgets) {
    SCOPED_TRACE("disk full after " + std::to_string(budget) + " bytes of" + describe(ops));
    TempDir tmp;
    FaultEnv disk;
    const auto dir = tmp.file("data");
    auto s = with_old_state(dir, disk);
    ASSERT_TRUE(s);
    const auto before = table_files(dir);
    disk.fill_disk_after(budget);
    const auto err = error_of(snapshot(*s, 200));
    if (err) {
      EXPECT_NE(err->find("No space left on device"), std::string::npos) << *err;
      EXPECT_LT(budget, written) << "failed with room for all of it: " << *err;
    }
    const auto left = added(before, table_files(dir));
    EXPECT_EQ(reopen(dir, disk, s), err ? expected(1, 100) : expected(1, 200));
    ASSERT_TRUE(s);
    EXPECT_FALSE(s->write(membership(2)));
    EXPECT_FALSE(error_of(snapshot(*s, 300)));
    EXPECT_EQ(reopen(dir, disk, s), expected(2, 300));
    for (const auto& f : left) EXPECT_FALSE(table_files(dir).contains(f)) << f << " left behind";
  }
}

TEST(PersistFault, AFullDiskFailsAMembershipWriteUntilSpaceIsBack) {
  TempDir tmp;
  FaultEnv disk;
  const auto dir = tmp.file("data");
  auto s = with_old_state(dir, disk);
  ASSERT_TRUE(s);
  disk.fill_disk_after(0);
  const auto err = s->write(membership(2));
  ASSERT_TRUE(err) << "membership written on a full disk";
  EXPECT_NE(err->find("cannot write membership"), std::string::npos) << *err;
  EXPECT_NE(err->find("No space left on device"), std::string::npos) << *err;
  const auto again = s->write(membership(3));
  ASSERT_TRUE(again);
  EXPECT_NE(again->find("cannot reopen after the previous failed write"), std::string::npos)
      << *again;
  disk.heal();
  EXPECT_FALSE(s->write(membership(4)));
  EXPECT_EQ(reopen(dir, disk, s), expected(4, 100));
}

// In-process twins of persist_daemon_test's FullDiskAtStartExits3 and
// FullDiskWithAnExistingDatabaseExits3 (which need user namespaces).
TEST(PersistFault, AFullDiskAtStartIsUnusableAndLeavesNoHalfMadeDatabase) {
  TempDir tmp;
  FaultEnv disk;
  disk.fill_disk_after(0);
  auto r = Store::open(tmp.file("data"), {.env = disk.env()});
  ASSERT_TRUE(std::holds_alternative<StoreError>(r));
  const auto& e = std::get<StoreError>(r);
  EXPECT_EQ(e.kind, StoreErrorKind::unusable);
  EXPECT_NE(e.message.find("the disk is full"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find(tmp.file("data")), std::string::npos) << e.message;
  EXPECT_FALSE(fs::exists(tmp.file("data/db")));
  disk.heal();
  auto s = open_ok(tmp.file("data"), disk);
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->write(membership(1)));
}

TEST(PersistFault, AFullDiskWhenExistingStateOpensForWritingIsUnusable) {
  TempDir tmp;
  FaultEnv disk;
  const auto dir = tmp.file("data");
  auto s = with_old_state(dir, disk);
  ASSERT_TRUE(s);
  s.reset();
  disk.fill_disk_after(0);
  s = open_ok(dir, disk);  // read-only: writes nothing
  ASSERT_TRUE(s);
  EXPECT_EQ(load(*s), expected(1, 100));
  const auto err = s->begin_writing();
  ASSERT_TRUE(err);
  EXPECT_EQ(err->kind, StoreErrorKind::unusable);
  EXPECT_NE(err->message.find(dir + "/db: cannot open the database for writing: the disk is full"),
            std::string::npos)
      << err->message;
  EXPECT_EQ(reopen(dir, disk, s), expected(1, 100));
}

// ---- a failed fsync ---------------------------------------------------------------------

// The write-ahead log's fsync fails: the write is reported failed, and what comes back is
// the previous membership or the new one, whole (the bytes may have reached the disk
// without the fsync).
TEST(PersistFault, AFailedLogSyncFailsTheMembershipWrite) {
  TempDir tmp;
  FaultEnv disk;
  const auto dir = tmp.file("data");
  auto s = with_old_state(dir, disk);
  ASSERT_TRUE(s);
  disk.fail_syncs_after(0, ".log");
  const auto err = s->write(membership(2));
  ASSERT_TRUE(err) << "a write whose fsync failed was reported written";
  EXPECT_NE(err->find("cannot write membership"), std::string::npos) << *err;
  EXPECT_NE(err->find("Input/output error"), std::string::npos) << *err;
  EXPECT_NE(err->find(dir + "/db"), std::string::npos) << *err;
  const auto back = reopen(dir, disk, s);
  EXPECT_TRUE(back == expected(1, 100) || back == expected(2, 100)) << *back;
  EXPECT_FALSE(s->write(membership(3)));
  EXPECT_EQ(reopen(dir, disk, s), expected(3, 100));
}

// Which of a snapshot's syncs is the MANIFEST's after the record that adds the ingested
// table file (the first MANIFEST sync after that file's own sync); nullopt if none is.
std::optional<std::uint64_t> commit_sync(const std::vector<FaultEnv::Op>& ops) {
  std::uint64_t k = 0;
  bool table_synced = false;
  for (const auto& op : ops) {
    if (op.kind != FaultEnv::Op::Kind::sync) continue;
    if (table_synced && op.file.starts_with("MANIFEST")) return k;
    if (op.file.ends_with(".sst")) table_synced = true;
    ++k;
  }
  return std::nullopt;
}

// Every fsync a snapshot makes, failed in turn, the MANIFEST's at the commit point included
// (below).
TEST(PersistFault, AFailedSyncAtEveryStepOfASnapshotLeavesTheOldOrTheNewOneWhole) {
  const auto ops = ops_of_a_snapshot();
  const auto syncs = std::count_if(ops.begin(), ops.end(), [](const FaultEnv::Op& op) {
    return op.kind == FaultEnv::Op::Kind::sync;
  });
  ASSERT_GE(syncs, 2) << describe(ops);
  ASSERT_TRUE(commit_sync(ops)) << describe(ops);
  for (std::uint64_t k = 0; k < static_cast<std::uint64_t>(syncs); ++k) {
    SCOPED_TRACE("sync " + std::to_string(k) + " fails, of" + describe(ops));
    TempDir tmp;
    FaultEnv disk;
    const auto dir = tmp.file("data");
    auto s = with_old_state(dir, disk);
    ASSERT_TRUE(s);
    const auto before = table_files(dir);
    disk.fail_syncs_after(k);
    const auto err = error_of(snapshot(*s, 200));
    if (err) {
      EXPECT_NE(err->find("Input/output error"), std::string::npos) << *err;
    }
    const auto left = added(before, table_files(dir));
    const auto back = reopen(dir, disk, s);
    if (err) {
      EXPECT_TRUE(back == expected(1, 100) || back == expected(1, 200))
          << ::testing::PrintToString(back);
    } else {
      EXPECT_EQ(back, expected(1, 200));
    }
    ASSERT_TRUE(s);
    EXPECT_FALSE(error_of(snapshot(*s, 300)));
    EXPECT_EQ(reopen(dir, disk, s), expected(1, 300));
    for (const auto& f : left) EXPECT_FALSE(table_files(dir).contains(f)) << f << " left behind";
  }
}

// The commit point: the MANIFEST record that adds the snapshot's table file is written
// whole but its fsync fails, so whether the snapshot joined the database is unknown until
// the MANIFEST is read back (the record is in the page cache, and on the disk if the
// writeback succeeds later). RocksDB 7.8's ingestion deletes the table file it linked in on
// any failure, so the next open found a record naming a missing file: "the stored state is
// damaged", exit 5 at the next start, for one failed fsync on a healthy directory. The store
// keeps that file (persist/store.cpp, IngestionGuard): the next start reads the old snapshot
// or the new one, whole, and the next snapshot succeeds.
TEST(PersistFault, AFailedManifestSyncAtTheCommitPointLeavesAReadableDirectory) {
  const auto commit = commit_sync(ops_of_a_snapshot());
  ASSERT_TRUE(commit);
  TempDir tmp;
  FaultEnv disk;
  const auto dir = tmp.file("data");
  auto s = with_old_state(dir, disk);
  ASSERT_TRUE(s);
  const auto before = table_files(dir);
  disk.fail_syncs_after(*commit);
  const auto err = error_of(snapshot(*s, 200));
  ASSERT_TRUE(err) << "a snapshot whose commit was not synced was reported written";
  EXPECT_EQ(disk.faults(), 1u);
  EXPECT_NE(err->find("cannot add the snapshot to the database"), std::string::npos) << *err;
  EXPECT_NE(err->find("MANIFEST"), std::string::npos) << *err;
  EXPECT_NE(err->find("Input/output error"), std::string::npos) << *err;
  // The snapshot's table file is still there, whatever the MANIFEST ends up saying.
  const auto kept = added(before, table_files(dir));
  EXPECT_EQ(kept.size(), 1u) << ::testing::PrintToString(kept);
  const auto back = reopen(dir, disk, s);
  EXPECT_TRUE(back == expected(1, 100) || back == expected(1, 200))
      << ::testing::PrintToString(back);
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->write(membership(2)));
  EXPECT_FALSE(error_of(snapshot(*s, 300)));
  EXPECT_EQ(reopen(dir, disk, s), expected(2, 300));
  // ... and gone once a newer snapshot is in: nothing is left behind.
  for (const auto& f : kept) EXPECT_FALSE(table_files(dir).contains(f)) << f;
}

// The other way the same failure can go: the record whose fsync failed never reaches the
// disk (the machine loses power before the page cache is written back; simulated by cutting
// the record off the MANIFEST). The file the store kept is then named by nothing: the
// previous snapshot comes back whole, the file is removed, and the next snapshot succeeds.
TEST(PersistFault, AFailedManifestSyncWhoseRecordIsLostLeavesThePreviousSnapshot) {
  const auto commit = commit_sync(ops_of_a_snapshot());
  ASSERT_TRUE(commit);
  TempDir tmp;
  FaultEnv disk;
  const auto dir = tmp.file("data");
  auto s = with_old_state(dir, disk);
  ASSERT_TRUE(s);
  const auto before = table_files(dir);
  disk.forget_ops();
  disk.fail_syncs_after(*commit);
  ASSERT_TRUE(error_of(snapshot(*s, 200)));
  const auto kept = added(before, table_files(dir));
  EXPECT_EQ(kept.size(), 1u) << ::testing::PrintToString(kept);
  s.reset();  // and the power goes
  const auto ops = disk.ops();
  const auto record = std::find_if(ops.rbegin(), ops.rend(), [](const FaultEnv::Op& op) {
    return op.kind == FaultEnv::Op::Kind::append && op.file.starts_with("MANIFEST");
  });
  ASSERT_NE(record, ops.rend()) << describe(ops);
  const auto manifest = dir + "/db/" + record->file;
  const auto size = fs::file_size(manifest);
  ASSERT_GE(size, record->bytes);
  fs::resize_file(manifest, size - record->bytes);
  EXPECT_EQ(reopen(dir, disk, s), expected(1, 100));
  ASSERT_TRUE(s);
  for (const auto& f : kept) EXPECT_FALSE(table_files(dir).contains(f)) << f << " left behind";
  EXPECT_FALSE(error_of(snapshot(*s, 300)));
  EXPECT_EQ(reopen(dir, disk, s), expected(1, 300));
}

// The same failure while the daemon goes on running: the next write reopens the database
// (as a restart would) and the next snapshot succeeds, without a restart.
TEST(PersistFault, AFailedManifestSyncAtTheCommitPointDoesNotStopTheNextSnapshot) {
  const auto commit = commit_sync(ops_of_a_snapshot());
  ASSERT_TRUE(commit);
  TempDir tmp;
  FaultEnv disk;
  const auto dir = tmp.file("data");
  auto s = with_old_state(dir, disk);
  ASSERT_TRUE(s);
  const auto before = table_files(dir);
  disk.fail_syncs_after(*commit);
  ASSERT_TRUE(error_of(snapshot(*s, 200)));
  const auto kept = added(before, table_files(dir));
  EXPECT_EQ(kept.size(), 1u) << ::testing::PrintToString(kept);
  disk.heal();
  EXPECT_FALSE(s->write(membership(2)));
  EXPECT_FALSE(error_of(snapshot(*s, 300)));
  // The failed commit's file is gone with the next snapshot (a generation above it, so it
  // is dropped whole if it joined, and removed at the reopen if it did not).
  for (const auto& f : kept) EXPECT_FALSE(table_files(dir).contains(f)) << f;
  EXPECT_EQ(reopen(dir, disk, s), expected(2, 300));
  ASSERT_TRUE(s);
  EXPECT_FALSE(error_of(snapshot(*s, 400)));
  EXPECT_EQ(reopen(dir, disk, s), expected(2, 400));
}

// ---- a write torn by a crash ------------------------------------------------------------

// A crash in the middle of writing the snapshot file leaves a prefix of it; the next start
// never reads it as the state and removes it.
TEST(PersistFault, ATornSnapshotFileNeverBecomesTheState) {
  TempDir tmp;
  FaultEnv disk;
  const auto dir = tmp.file("data");
  const auto temp_file = dir + "/" + std::string(kSnapshotTempFile);
  auto s = with_old_state(dir, disk);
  ASSERT_TRUE(s);
  disk.tear_write(0, std::string(kSnapshotTempFile));
  EXPECT_TRUE(error_of(snapshot(*s, 200)));
  EXPECT_TRUE(disk.crashed());
  s.reset();  // the process is gone
  ASSERT_TRUE(fs::exists(temp_file)) << "the crash left no torn file to test with";
  EXPECT_GT(fs::file_size(temp_file), 0u);
  EXPECT_EQ(reopen(dir, disk, s), expected(1, 100));
  EXPECT_FALSE(fs::exists(temp_file));
  EXPECT_FALSE(error_of(snapshot(*s, 300)));
  EXPECT_EQ(reopen(dir, disk, s), expected(1, 300));
}

// A crash in the middle of a membership write leaves a torn record at the end of the log:
// the previous membership comes back.
TEST(PersistFault, ATornLogRecordLeavesThePreviousMembership) {
  TempDir tmp;
  FaultEnv disk;
  const auto dir = tmp.file("data");
  auto s = with_old_state(dir, disk);
  ASSERT_TRUE(s);
  disk.tear_write(0, ".log");
  EXPECT_TRUE(s->write(membership(2)));
  EXPECT_TRUE(disk.crashed());
  EXPECT_EQ(reopen(dir, disk, s), expected(1, 100));
  EXPECT_FALSE(s->write(membership(3)));
  EXPECT_EQ(reopen(dir, disk, s), expected(3, 100));
}

// A crash tearing each write a snapshot makes in turn: a snapshot that failed leaves the
// old one, and the next start always reads a whole one.
TEST(PersistFault, ATornWriteAtEveryStepOfASnapshotLeavesTheOldOrTheNewOneWhole) {
  const auto ops = ops_of_a_snapshot();
  const auto appends = std::count_if(ops.begin(), ops.end(), [](const FaultEnv::Op& op) {
    return op.kind == FaultEnv::Op::Kind::append;
  });
  ASSERT_GE(appends, 2) << describe(ops);
  for (std::uint64_t k = 0; k < static_cast<std::uint64_t>(appends); ++k) {
    SCOPED_TRACE("append " + std::to_string(k) + " torn, of" + describe(ops));
    TempDir tmp;
    FaultEnv disk;
    const auto dir = tmp.file("data");
    auto s = with_old_state(dir, disk);
    ASSERT_TRUE(s);
    disk.tear_write(k);
    const auto err = error_of(snapshot(*s, 200));
    EXPECT_TRUE(disk.crashed());
    EXPECT_EQ(reopen(dir, disk, s), err ? expected(1, 100) : expected(1, 200));
    ASSERT_TRUE(s);
    EXPECT_FALSE(fs::exists(dir + "/" + std::string(kSnapshotTempFile)));
    EXPECT_FALSE(error_of(snapshot(*s, 300)));
    EXPECT_EQ(reopen(dir, disk, s), expected(1, 300));
  }
}

}  // namespace
}  // namespace heartbeatd::persist
