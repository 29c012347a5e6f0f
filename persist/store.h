// Store: heartbeatd's state in an embedded RocksDB under node.data_dir (docs/PERSISTENCE.md).
//
// open() takes the data directory for this process (an exclusive lock file naming the holder's
// pid), opens or creates the database inside it and checks its format version; load() reads
// everything back; begin_writing() then makes it writable. Existing state stays read-only
// until it has been read back whole, so a directory that turns out unreadable is left
// byte for byte as it was. Every way this can fail is a StoreError whose kind maps to a documented
// exit code and whose message names the path and the cause. A directory holding data that
// cannot be read is never started over or written to.
//
// Writes: write() applies the membership records in one batch through the write-ahead log,
// synced. write_presence() writes a snapshot as one table file and adds it to the database in
// one step (RocksDB's file ingestion), so a crash at any moment leaves either the whole new
// snapshot or the whole previous one. So does a failed commit: when the fsync of the MANIFEST
// record that adds the file fails, it is unknown whether the record is on the disk, so the
// file is kept (RocksDB 7.8 would delete it) and the next open reads whichever it finds.
//
// Files: every file RocksDB reads and writes, the snapshot file included, goes through the
// rocksdb::Env of StoreOptions (the real disk unless a test passes another); the lock file
// and the checks of the directory itself use the OS directly. Tests pass an Env that fills
// the disk, fails an fsync or tears a write on command (tests/support/fault_env.h), so each
// failure above is tested in-process (tests/persist_fault_test.cpp).
//
// Thread safety: one call at a time (the Snapshotter serialises its writes; load() and
// begin_writing() run before it starts).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "persist/format.h"

namespace rocksdb {
class DB;
class Env;
struct ReadOptions;
class Status;
}  // namespace rocksdb

namespace heartbeatd::persist {

class IngestionGuard;

enum class StoreErrorKind {
  unusable,      // the directory cannot be used: missing parent, not writable, disk full
  locked,        // another heartbeatd holds it
  corrupted,     // it holds data that cannot be read
  incompatible,  // written by a format this build does not read
};

struct StoreError {
  StoreErrorKind kind;
  std::string message;  // names the path and the cause
};

// Everything persisted but the users, as read back at start.
struct LoadedState {
  std::uint32_t format = kFormatVersion;
  std::optional<SelfRecord> self;
  std::vector<MemberRecord> members;
  std::optional<PresenceManifest> presence;
};

// One atomic, synced write of membership records.
struct WriteSet {
  std::optional<SelfRecord> self;
  std::optional<std::vector<MemberRecord>> members;
};

// One chunk of a presence snapshot: encode_users() of its users.
struct Chunk {
  std::string value;
  std::uint64_t users = 0;
};

// Where a snapshot file is written before it joins the database (in node.data_dir).
inline constexpr std::string_view kSnapshotTempFile = "snapshot.sst.tmp";

struct StoreOptions {
  // Make missing parent directories too (the built-in default path); otherwise the parent
  // must exist, so a mistyped path is reported rather than created.
  bool create_parents = false;
  // Every file RocksDB reads and writes (the database, and the snapshot file before it joins
  // it) goes through this Env's file system (its threads and clock are not used: RocksDB's
  // default ones are). Not owned; it must outlive the Store. nullptr (the default):
  // rocksdb::Env::Default(), the real disk. Tests pass one that fails on command.
  rocksdb::Env* env = nullptr;
};

class Store {
 public:
  static std::variant<std::unique_ptr<Store>, StoreError> open(const std::string& data_dir,
                                                               const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Reads everything back; the users of the presence snapshot go to `users`, one chunk at a
  // time (so 10^7 users are never all in memory twice).
  using UsersSink = std::function<void(std::vector<UserRecord>& chunk)>;
  std::variant<LoadedState, StoreError> load(const UsersSink& users);
  // Existing state is opened read-only; after load() succeeded, this reopens it for writing
  // and, for a directory of an older format, records the current format version (the old
  // snapshot stays readable until the first new one replaces it). A new directory is
  // writable from the start.
  std::optional<StoreError> begin_writing();
  // nullopt on success; otherwise what failed (the previous state is still intact).
  std::optional<std::string> write(const WriteSet& set);
  // Writes a presence snapshot of `chunks` chunks, asking `chunk` for each in order (each is
  // written and dropped before the next is asked for), and its manifest; all or nothing.
  // Returns the manifest written; monostate if `chunk` gave up (returned nullopt); or what
  // failed. In the last two cases the previous snapshot is intact; if what failed was the
  // commit's own fsync, the new one may still be what the next open finds, whole.
  using ChunkSource = std::function<std::optional<Chunk>(std::uint32_t index)>;
  std::variant<PresenceManifest, std::monostate, std::string> write_presence(
      std::int64_t taken_ms, std::uint32_t chunks, const ChunkSource& chunk);
  // Bytes of the database's files on disk (table files and logs).
  std::uint64_t disk_bytes() const;
  const std::string& path() const { return db_path_; }

 private:
  Store(std::string data_dir, std::string db_path, std::shared_ptr<IngestionGuard> files,
        std::unique_ptr<rocksdb::Env> env, int lock_fd, std::unique_ptr<rocksdb::DB> db,
        std::uint32_t format);
  std::optional<std::string> ensure_open();
  rocksdb::Status newest_generation_key(const rocksdb::ReadOptions& ro, std::string& key) const;
  std::string describe_failure(const rocksdb::Status& s, std::string_view what,
                               std::string_view full) const;
  std::string failed(const rocksdb::Status& s, std::string_view what);  // closes the db
  void drop_older_snapshots();
  std::string snapshot_temp_path() const;
  void remove_snapshot_temp_file();
  std::optional<StoreError> write_pid();
  static std::optional<StoreError> create_database(const std::string& data_dir,
                                                   const std::string& new_path,
                                                   const std::string& db_path, rocksdb::Env* env);

  std::string data_dir_;
  std::string db_path_;
  // StoreOptions::env's file system (or the real disk's) with the guard of the commit point
  // (store.cpp); every file of the database goes through env_. Declared before db_, which
  // must go first.
  std::shared_ptr<IngestionGuard> files_;
  std::unique_ptr<rocksdb::Env> env_;
  int lock_fd_ = -1;
  std::unique_ptr<rocksdb::DB> db_;  // null after a failed write, until the next one reopens it
  std::uint32_t format_;
  std::uint64_t generation_ = 0;  // the newest snapshot's (format 2); set by load()
  bool drop_v1_ = false;          // a format-1 snapshot is still there: drop it with the next
  bool read_only_ = false;
};

}  // namespace heartbeatd::persist
