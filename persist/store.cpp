#include "persist/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include <fmt/format.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/write_batch.h>

#include "base/log.h"

namespace heartbeatd::persist {
namespace {

namespace fs = std::filesystem;

StoreError unusable(const std::string& m) {
  return {StoreErrorKind::unusable, m};
}

bool is_no_space(const rocksdb::Status& s) {
  return s.IsNoSpace() || s.ToString().find("No space left") != std::string::npos;
}

std::string errno_text(int e) {
  return std::strerror(e);
}

// State that cannot be read: one message shape for every way of finding it, and what to do.
StoreError corrupted(std::string_view where, std::string_view cause) {
  return {StoreErrorKind::corrupted,
          fmt::format("{}: {}; heartbeatd does not start over data it cannot read: restore a "
                      "backup, or move the directory away to start empty",
                      where, cause)};
}

// What a failed RocksDB call means for the operator.
StoreError classify(const std::string& path, const rocksdb::Status& s, const std::string& doing) {
  const std::string text = s.ToString();
  if (s.IsCorruption()) {
    return corrupted(path, fmt::format("{}: the stored state is damaged ({})", doing, text));
  }
  if (is_no_space(s))
    return unusable(fmt::format("{}: {}: the disk is full ({})", path, doing, text));
  if (s.IsNotSupported() || s.IsInvalidArgument()) {
    return {StoreErrorKind::incompatible, fmt::format("{}: {}: {}", path, doing, text)};
  }
  return unusable(fmt::format("{}: {}: {}", path, doing, text));
}

// RocksDB's own diagnostics go to heartbeatd's log (warnings and worse), not to LOG files
// in the data directory: a refused start must leave the directory exactly as it was.
class ForwardingLogger final : public rocksdb::Logger {
 public:
  ForwardingLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char buf[1024];
    std::vsnprintf(buf, sizeof buf, format, ap);
    // One line per event, as every line of heartbeatd's log.
    std::string line(buf);
    std::replace(line.begin(), line.end(), '\n', ' ');
    while (!line.empty() && line.back() == ' ') line.pop_back();
    // Snapshot files made by SstFileWriter carry no unique id for RocksDB to check against
    // its MANIFEST; it says so at every start. Expected, so not a warning here.
    if (line.find("without unique ID to verify") != std::string::npos) {
      log::debug("rocksdb: {}", line);
      return;
    }
    log::warning("rocksdb: {}", line);
  }
};

}  // namespace

// The file system every database file goes through: StoreOptions::env's, with one rule added
// for the commit point of a snapshot (Store::write_presence).
//
// The commit is RocksDB's file ingestion: it links the snapshot file into db/ under a new
// table file number, then appends the MANIFEST record that adds that file, and fsyncs it.
// When anything fails, RocksDB 7.8 deletes the table file it linked in, also when what
// failed is that fsync: the record was written whole and may well be durable (it is in the
// page cache, so every open reads it unless the machine loses power first), and it then
// names a file that is gone, so that every later open refuses the directory as damaged.
// RocksDB's own rule for a failed MANIFEST write is to delete no file until a new MANIFEST is
// written (it disables file deletions), but the ingestion's clean-up bypasses it. This class
// applies the rule to that clean-up: while an ingestion runs, the file it linked in from the
// snapshot file is not deleted. Whichever way the record went, the directory then opens
// whole: with the record, the file it names is there (the new snapshot); without it, the file
// is one no version names, which RocksDB removes at the next read-write open (and the store
// reopens the database after every failed write).
//
// Why not another way: DB::Resume() (writing a fresh MANIFEST from what RocksDB holds in
// memory) is refused after this error, which RocksDB 7.8 rates fatal; putting the file back
// after IngestExternalFile() returns works only if the process lives until then; an
// ingestion by copy (move_files = false) deletes its copy the same way.
//
// Thread safety: RocksDB calls the file system from its own threads too; every member may be
// called from any thread.
class IngestionGuard final : public rocksdb::FileSystemWrapper {
 public:
  explicit IngestionGuard(const std::shared_ptr<rocksdb::FileSystem>& fs)
      : rocksdb::FileSystemWrapper(fs) {}
  const char* Name() const override { return "HeartbeatdIngestionGuard"; }

  // Until end_ingestion(), the file linked in from `source` is kept.
  void begin_ingestion(const std::string& source) {
    std::lock_guard lock(mu_);
    source_ = source;
    linked_.clear();
  }
  void end_ingestion() {
    std::lock_guard lock(mu_);
    source_.clear();
    linked_.clear();
  }

  rocksdb::IOStatus LinkFile(const std::string& from, const std::string& to,
                             const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    auto s = FileSystemWrapper::LinkFile(from, to, o, dbg);
    std::lock_guard lock(mu_);
    if (s.ok() && !source_.empty() && from == source_) linked_ = to;
    return s;
  }
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override {
    {
      std::lock_guard lock(mu_);
      if (!linked_.empty() && f == linked_) {
        // RocksDB logs this as a warning and goes on: the ingestion fails with its own error.
        return rocksdb::IOStatus::IOError(
            "kept by heartbeatd: " + f,
            "a failed commit may have recorded it in the MANIFEST; if not, the next "
            "read-write open removes it");
      }
    }
    return FileSystemWrapper::DeleteFile(f, o, dbg);
  }

 private:
  std::mutex mu_;
  std::string source_;  // guarded by mu_; the snapshot file while an ingestion runs
  std::string linked_;  // guarded by mu_; its link in db/, kept until the ingestion ends
};

namespace {

rocksdb::Options db_options(rocksdb::Env* env) {
  rocksdb::Options o;
  o.env = env;
  o.create_if_missing = true;
  o.paranoid_checks = true;
  o.info_log = std::make_shared<ForwardingLogger>();
  o.max_manifest_file_size = 4 << 20;
  o.max_open_files = 64;
  // Only the membership records and range deletions go through the memtable (snapshots are
  // ingested as files), so it stays small; its size is also the free space RocksDB wants
  // before it writes again after a full disk.
  o.write_buffer_size = 4 << 20;
  o.max_write_buffer_number = 2;
  // Varint-packed chunks barely compress; the CPU is better spent serving the API.
  o.compression = rocksdb::kNoCompression;
  // No preallocation of log files (write_buffer_size x 1.1): it would take space from a
  // small or nearly full disk for a log that holds a few small records.
  o.allow_fallocate = false;
  return o;
}

// Whether `dir` holds any entry (an error counts as "yes": never start over what we cannot see).
bool has_entries(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  return ec || it != fs::directory_iterator();
}

}  // namespace

std::variant<std::unique_ptr<Store>, StoreError> Store::open(const std::string& data_dir,
                                                             const StoreOptions& options) {
  const bool create_parents = options.create_parents;
  // Every database file goes through StoreOptions::env's file system, and the guard.
  rocksdb::Env* const base_env = options.env ? options.env : rocksdb::Env::Default();
  auto files = std::make_shared<IngestionGuard>(base_env->GetFileSystem());
  std::unique_ptr<rocksdb::Env> env_owner = rocksdb::NewCompositeEnv(files);
  rocksdb::Env* const env = env_owner.get();
  const fs::path dir(data_dir);
  struct stat st {};
  if (::stat(data_dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return unusable(fmt::format("{}: exists and is not a directory", data_dir));
    }
  } else if (errno != ENOENT) {
    return unusable(fmt::format("{}: cannot look at it: {}", data_dir, errno_text(errno)));
  } else {
    fs::path parent = dir.parent_path();
    if (parent.empty()) parent = ".";
    std::error_code ec;
    if (!fs::exists(parent, ec)) {
      if (!create_parents) {
        return unusable(fmt::format(
            "{}: its parent directory {} does not exist (create it, or correct node.data_dir)",
            data_dir, parent.string()));
      }
      fs::create_directories(parent, ec);
      if (ec) {
        return unusable(fmt::format("{}: cannot create its parent {}: {}", data_dir,
                                    parent.string(), ec.message()));
      }
    }
    if (::mkdir(data_dir.c_str(), 0750) != 0 && errno != EEXIST) {
      return unusable(
          fmt::format("{}: cannot create the directory: {}", data_dir, errno_text(errno)));
    }
  }
  if (::access(data_dir.c_str(), W_OK | X_OK) != 0) {
    return unusable(fmt::format("{}: not writable: {}", data_dir, errno_text(errno)));
  }

  // One heartbeatd per directory: an advisory lock held for the life of the process. The
  // file records the holder's pid so the second one can say who has it.
  const std::string lock_path = (dir / "heartbeatd.lock").string();
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return unusable(fmt::format("{}: cannot create the lock file {}: {}", data_dir, lock_path,
                                errno_text(errno)));
  }
  auto close_fd = [fd] { ::close(fd); };
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char buf[32] = {};
    const auto n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    close_fd();
    if (e == EWOULDBLOCK) {
      return StoreError{StoreErrorKind::locked,
                        fmt::format("{}: in use by another heartbeatd ({}; lock file {})", data_dir,
                                    holder.empty() ? "pid unknown" : "pid " + holder, lock_path)};
    }
    return unusable(fmt::format("{}: cannot lock {}: {}", data_dir, lock_path, errno_text(e)));
  }
  const fs::path db_dir = dir / "db";
  const fs::path new_dir = dir / "db.new";
  const std::string db_path = db_dir.string();
  std::error_code ec;
  bool existed = fs::exists(db_dir, ec);
  if (ec) {
    close_fd();
    return unusable(fmt::format("{}: cannot look at it: {}", db_path, ec.message()));
  }
  if (existed) {
    const bool has_current = fs::exists(db_dir / "CURRENT", ec);
    if (ec) {
      close_fd();
      return unusable(fmt::format("{}: cannot look at it: {}", db_path, ec.message()));
    }
    if (!has_current && has_entries(db_dir)) {
      close_fd();
      return corrupted(db_path,
                       "holds files but no CURRENT file, so it is not a complete database");
    }
    if (!has_current) {  // an empty directory: nothing to keep
      fs::remove(db_dir, ec);
      existed = false;
    }
  }

  if (!existed) {
    // A new database is made in db.new and renamed to db once its format record is on disk,
    // so a crash while creating it leaves no half-made db/ to refuse at the next start. A
    // db.new left by such a crash never held state, and is removed.
    if (auto err = create_database(data_dir, new_dir.string(), db_path, env)) {
      close_fd();
      return *err;
    }
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(db_options(env), db_path, &raw);
    if (!s.ok()) {
      close_fd();
      return classify(db_path, s, "cannot open the database");
    }
    auto store =
        std::unique_ptr<Store>(new Store(data_dir, db_path, std::move(files), std::move(env_owner),
                                         fd, std::unique_ptr<rocksdb::DB>(raw), kFormatVersion));
    if (auto err = store->write_pid()) return *err;
    return store;
  }

  // Existing state is opened read-only until it has been read back whole (begin_writing()):
  // a read-write open rewrites RocksDB's metadata files, which must not happen to a
  // directory whose data then turns out unreadable.
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::OpenForReadOnly(db_options(env), db_path, &raw);
  if (!s.ok()) {
    close_fd();
    return classify(db_path, s, "cannot open the database");
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  auto refuse = [&](StoreError e) {
    db.reset();
    close_fd();
    return e;
  };

  std::string value;
  s = db->Get(rocksdb::ReadOptions(), std::string(kKeyFormat), &value);
  std::uint32_t format = 0;  // none recorded: an empty database (begin_writing() records it)
  if (s.IsNotFound()) {
    bool has_data = false;
    {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
      it->SeekToFirst();
      has_data = it->Valid() || !it->status().ok();
    }
    if (has_data) {
      return refuse(corrupted(db_path, fmt::format("holds data but no format record ({}): not "
                                                   "written by heartbeatd, or damaged",
                                                   kKeyFormat)));
    }
  } else if (!s.ok()) {
    return refuse(classify(db_path, s, "cannot read the format record"));
  } else {
    auto decoded = decode_format(value);
    if (auto* e = std::get_if<FormatError>(&decoded)) {
      return refuse(corrupted(db_path, fmt::format("{}: {}", kKeyFormat, e->message)));
    }
    format = std::get<std::uint32_t>(decoded);
    if (format > kFormatVersion || format < kOldestReadableFormat) {
      return refuse(
          {StoreErrorKind::incompatible,
           fmt::format("{}: written in format {} by {} heartbeatd; this build reads formats {} to "
                       "{}. Run a heartbeatd that reads it, or move the directory away to start "
                       "empty",
                       db_path, format, format > kFormatVersion ? "a newer" : "an older",
                       kOldestReadableFormat, kFormatVersion)});
    }
  }
  auto store = std::unique_ptr<Store>(new Store(data_dir, db_path, std::move(files),
                                                std::move(env_owner), fd, std::move(db), format));
  store->read_only_ = true;
  return store;
}

std::optional<StoreError> Store::create_database(const std::string& data_dir,
                                                 const std::string& new_path,
                                                 const std::string& db_path, rocksdb::Env* env) {
  std::error_code ec;
  fs::remove_all(new_path, ec);
  if (ec) return unusable(fmt::format("{}: cannot remove it: {}", new_path, ec.message()));
  if (::mkdir(new_path.c_str(), 0750) != 0) {
    return unusable(
        fmt::format("{}: cannot create the directory: {}", new_path, errno_text(errno)));
  }
  {
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(db_options(env), new_path, &raw);
    if (!s.ok()) return classify(new_path, s, "cannot create the database");
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Put(wo, std::string(kKeyFormat), encode_format(kFormatVersion));
    if (!s.ok()) return classify(new_path, s, "cannot write the format record");
    s = db->Close();
    if (!s.ok()) return classify(new_path, s, "cannot close the new database");
  }
  if (::rename(new_path.c_str(), db_path.c_str()) != 0) {
    return unusable(
        fmt::format("{}: cannot rename it to {}: {}", new_path, db_path, errno_text(errno)));
  }
  // The rename must be on disk before anything is written into db/.
  const int dfd = ::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fsync(dfd) != 0) {
    const int e = errno;
    if (dfd >= 0) ::close(dfd);
    return unusable(fmt::format("{}: cannot sync the directory: {}", data_dir, errno_text(e)));
  }
  ::close(dfd);
  return std::nullopt;
}

// The lock file names the process that writes the directory, for the message a second one
// gets. Written only by a process that got as far as writing (a refused start leaves the file
// as it was).
std::optional<StoreError> Store::write_pid() {
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 ||
      ::pwrite(lock_fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return unusable(fmt::format("{}: cannot write the lock file {}/heartbeatd.lock: {}", data_dir_,
                                data_dir_, errno_text(errno)));
  }
  return std::nullopt;
}

std::optional<StoreError> Store::begin_writing() {
  // A snapshot file left by a crash in the middle of writing it: never part of the state.
  remove_snapshot_temp_file();
  if (read_only_) {
    db_->Close().PermitUncheckedError();
    db_.reset();
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(db_options(env_.get()), db_path_, &raw);
    if (!s.ok()) return classify(db_path_, s, "cannot open the database for writing");
    db_.reset(raw);
    read_only_ = false;
  }
  if (auto err = write_pid()) return err;
  if (format_ < kFormatVersion) {
    // From now on this build may write what older builds cannot read: say so first. The old
    // format's snapshot stays until the first new one replaces it.
    rocksdb::WriteOptions wo;
    wo.sync = true;
    auto s = db_->Put(wo, std::string(kKeyFormat), encode_format(kFormatVersion));
    if (!s.ok()) return classify(db_path_, s, "cannot record the new format version");
    format_ = kFormatVersion;
  }
  return std::nullopt;
}

Store::Store(std::string data_dir, std::string db_path, std::shared_ptr<IngestionGuard> files,
             std::unique_ptr<rocksdb::Env> env, int lock_fd, std::unique_ptr<rocksdb::DB> db,
             std::uint32_t format)
    : data_dir_(std::move(data_dir)),
      db_path_(std::move(db_path)),
      files_(std::move(files)),
      env_(std::move(env)),
      lock_fd_(lock_fd),
      db_(std::move(db)),
      format_(format) {}

Store::~Store() {
  if (db_) {
    db_->Close().PermitUncheckedError();
    db_.reset();
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::variant<LoadedState, StoreError> Store::load(const UsersSink& users) {
  LoadedState st;
  st.format = format_;
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  std::string value;
  // Reads one key; nullopt: absent. Fills `err` on a failed read.
  std::optional<StoreError> err;
  auto get = [&](const std::string& key) -> bool {
    auto s = db_->Get(ro, key, &value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) {
      err = classify(db_path_, s, "cannot read " + key);
      return false;
    }
    return true;
  };
  auto damaged = [&](std::string_view key, const FormatError& e) {
    return corrupted(db_path_, fmt::format("{}: {}", key, e.message));
  };

  if (get(std::string(kKeySelf))) {
    auto d = decode_self(value);
    if (auto* e = std::get_if<FormatError>(&d)) return damaged(kKeySelf, *e);
    st.self = std::get<SelfRecord>(std::move(d));
  }
  if (err) return *err;
  if (get(std::string(kKeyMembers))) {
    auto d = decode_members(value);
    if (auto* e = std::get_if<FormatError>(&d)) return damaged(kKeyMembers, *e);
    st.members = std::get<std::vector<MemberRecord>>(std::move(d));
  }
  if (err) return *err;
  if (get(std::string(kKeyMemberTags))) {
    if (auto e = decode_member_tags(value, st.members)) return damaged(kKeyMemberTags, *e);
  }
  if (err) return *err;
  // The snapshot: the newest generation (format 2), else the single snapshot of format 1.
  std::string manifest_name;
  std::function<std::string(std::uint32_t)> chunk_name;
  {
    std::string key;
    if (auto s = newest_generation_key(ro, key); !s.ok()) {
      return classify(db_path_, s, "cannot read the snapshots");
    }
    if (!key.empty()) {
      const auto g = generation_of(key);
      if (!g || key != manifest_key(*g)) {
        return damaged(key, FormatError{"the newest snapshot generation has no manifest"});
      }
      generation_ = *g;
      manifest_name = key;
      chunk_name = [g = *g](std::uint32_t i) { return chunk_key(g, i); };
    }
  }
  // A format-1 snapshot is read when there is no generation yet, and dropped once there is.
  drop_v1_ = get(std::string(kKeyPresenceV1));
  if (err) return *err;
  if (manifest_name.empty()) {
    manifest_name = std::string(kKeyPresenceV1);
    chunk_name = chunk_key_v1;
  }
  if (get(manifest_name)) {
    auto d = decode_manifest(value);
    if (auto* e = std::get_if<FormatError>(&d)) return damaged(manifest_name, *e);
    st.presence = std::get<PresenceManifest>(d);
  }
  if (err) return *err;
  if (st.presence) {
    std::vector<UserRecord> chunk;
    for (std::uint32_t i = 0; i < st.presence->chunks; ++i) {
      const auto key = chunk_name(i);
      if (!get(key)) {
        if (err) return *err;
        return damaged(key,
                       FormatError{fmt::format("missing, though the snapshot of {} names {} chunks",
                                               st.presence->taken_ms, st.presence->chunks)});
      }
      chunk.clear();
      if (auto e = decode_users(value, chunk)) return damaged(key, *e);
      users(chunk);
    }
  }
  return st;
}

// The last key of the newest snapshot generation (its manifest, if it is whole); empty if
// there is no generation.
rocksdb::Status Store::newest_generation_key(const rocksdb::ReadOptions& ro,
                                             std::string& key) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  it->SeekForPrev(std::string(kGenerationsPrefix) + "\xff");
  key.clear();
  if (it->Valid() && it->key().starts_with(kGenerationsPrefix)) key = it->key().ToString();
  return it->status();
}

std::optional<std::string> Store::ensure_open() {
  if (read_only_) return db_path_ + ": not open for writing yet (begin_writing())";
  if (db_) return std::nullopt;
  // A write failed before (say, on a full disk), and the database was closed then: open it
  // again, which recovers it the way a restart would, from what is on disk.
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(db_options(env_.get()), db_path_, &raw);
  if (!s.ok()) {
    return describe_failure(s, "cannot reopen after the previous failed write",
                            "the disk is still full");
  }
  db_.reset(raw);
  // The snapshot whose commit failed may be in after all (a failed fsync of the MANIFEST
  // leaves that open): the next one must be a generation above it, or two would share a key
  // range and a generation would no longer be dropped whole.
  std::string key;
  s = newest_generation_key(rocksdb::ReadOptions(), key);
  if (!s.ok()) return failed(s, "cannot read the snapshots after reopening");
  if (const auto g = generation_of(key)) generation_ = std::max(generation_, *g);
  return std::nullopt;
}

std::string Store::describe_failure(const rocksdb::Status& s, std::string_view what,
                                    std::string_view full) const {
  std::string text = fmt::format("{}: {}: {}", db_path_, what, s.ToString());
  if (is_no_space(s)) text += fmt::format(" ({}; the previous snapshot is kept)", full);
  return text;
}

std::string Store::failed(const rocksdb::Status& s, std::string_view what) {
  // RocksDB refuses further writes after a failed one until it recovers; its own recovery
  // paths are less proven than opening the database afresh (one of them hit an assertion
  // in Debian's build after a full disk), so close it now and reopen it at the next write.
  db_->Close().PermitUncheckedError();
  db_.reset();
  return describe_failure(s, what, "the disk is full");
}

std::optional<std::string> Store::write(const WriteSet& set) {
  if (auto err = ensure_open()) return err;
  rocksdb::WriteBatch batch;
  if (set.self) batch.Put(std::string(kKeySelf), encode_self(*set.self));
  if (set.members) {
    batch.Put(std::string(kKeyMembers), encode_members(*set.members));
    batch.Put(std::string(kKeyMemberTags), encode_member_tags(*set.members));
  }
  if (batch.Count() == 0) return std::nullopt;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto s = db_->Write(wo, &batch); !s.ok()) return failed(s, "cannot write membership");
  return std::nullopt;
}

std::variant<PresenceManifest, std::monostate, std::string> Store::write_presence(
    std::int64_t taken_ms, std::uint32_t chunks, const ChunkSource& chunk) {
  if (auto err = ensure_open()) return *err;
  // The snapshot is a new generation written as one table file, chunks then manifest (keys
  // in order), and added to the database in one step: RocksDB records the file in its
  // MANIFEST or not at all, so a crash leaves either this whole snapshot or the whole
  // previous one. One chunk is in memory at a time, and the data is written once: no log,
  // no memtable, and (each generation having a key range of its own) no compaction.
  const std::uint64_t g = generation_ + 1;
  const std::string tmp = snapshot_temp_path();
  remove_snapshot_temp_file();
  PresenceManifest m{taken_ms, 0, 0, chunks};
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), db_options(env_.get()));
  auto s = writer.Open(tmp);
  for (std::uint32_t i = 0; i < chunks && s.ok(); ++i) {
    const auto c = chunk(i);
    if (!c) {
      remove_snapshot_temp_file();  // the writer abandons the file when it goes
      return std::monostate{};
    }
    m.users += c->users;
    m.bytes += c->value.size();
    s = writer.Put(chunk_key(g, i), c->value);
  }
  if (s.ok()) s = writer.Put(manifest_key(g), encode_manifest(m));
  if (s.ok()) s = writer.Finish();
  if (!s.ok()) {
    remove_snapshot_temp_file();  // the database itself is untouched
    return describe_failure(s, "cannot write the snapshot file " + tmp, "the disk is full");
  }
  rocksdb::IngestExternalFileOptions io;
  io.move_files = true;  // a hard link into the database, not a copy
  // If the commit fails, the file RocksDB linked in stays (IngestionGuard, above): a failed
  // fsync of the MANIFEST leaves it unknown whether the record that names the file is on
  // the disk, and the file must be there if it is. The next open finds out: the new snapshot
  // whole, or the previous one whole and the file unused (and removed).
  files_->begin_ingestion(tmp);
  s = db_->IngestExternalFile({tmp}, io);
  files_->end_ingestion();
  remove_snapshot_temp_file();
  if (!s.ok()) return failed(s, "cannot add the snapshot to the database");
  generation_ = g;
  drop_older_snapshots();
  return m;
}

std::string Store::snapshot_temp_path() const {
  return data_dir_ + "/" + std::string(kSnapshotTempFile);
}

// Through the Env, as the file was written: a crash that a test simulates there leaves the
// file as a real crash would. Absent is fine.
void Store::remove_snapshot_temp_file() {
  env_->DeleteFile(snapshot_temp_path()).PermitUncheckedError();
}

// Older generations (and a format-1 snapshot) are garbage once a newer one is in: their
// table files are dropped whole, and a range deletion covers whatever shares a file.
// Failing here loses nothing (load() reads the newest generation only), so it is logged.
void Store::drop_older_snapshots() {
  const std::string begin(kGenerationsPrefix);
  const std::string end = generation_prefix(generation_);
  const rocksdb::Slice b(begin), e(end);
  auto s = rocksdb::DeleteFilesInRange(db_.get(), db_->DefaultColumnFamily(), &b, &e, false);
  rocksdb::WriteBatch batch;
  batch.DeleteRange(begin, end);
  if (drop_v1_) {
    batch.Delete(std::string(kKeyPresenceV1));
    batch.DeleteRange(std::string(kChunkPrefixV1), std::string(kChunkPrefixV1) + "\xff");
  }
  if (s.ok()) s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) {
    log::warning("persist: {}", failed(s, "cannot drop older snapshots"));
    return;
  }
  drop_v1_ = false;
}

std::uint64_t Store::disk_bytes() const {
  std::uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(db_path_, ec)) {
    std::error_code fec;
    if (e.is_regular_file(fec)) total += e.file_size(fec);
  }
  return total;
}

}  // namespace heartbeatd::persist
