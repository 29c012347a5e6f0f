#include "tests/support/fault_env.h"

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>

namespace heartbeatd::test {

using rocksdb::FileOptions;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

namespace {

std::string base_name(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool aimed_at(const std::string& file, const std::string& path) {
  return file.empty() || base_name(path).find(file) != std::string::npos;
}

}  // namespace

class FaultFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  FaultFileSystem() : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "HeartbeatdFaultFileSystem"; }

  void fill_disk_after(std::uint64_t bytes, const std::string& file) {
    std::lock_guard lock(mu_);
    space_ = Countdown{bytes, file};
  }
  void fail_syncs_after(std::uint64_t syncs, const std::string& file) {
    std::lock_guard lock(mu_);
    syncs_ = Countdown{syncs, file};
  }
  void tear_write(std::uint64_t nth, const std::string& file) {
    std::lock_guard lock(mu_);
    tear_ = Countdown{nth, file};
  }
  void heal() {
    std::lock_guard lock(mu_);
    space_.reset();
    syncs_.reset();
    tear_.reset();
    crashed_ = false;
    faults_ = 0;
  }
  std::uint64_t faults() const {
    std::lock_guard lock(mu_);
    return faults_;
  }
  bool crashed() const {
    std::lock_guard lock(mu_);
    return crashed_;
  }
  std::vector<FaultEnv::Op> ops() const {
    std::lock_guard lock(mu_);
    return ops_;
  }
  void forget_ops() {
    std::lock_guard lock(mu_);
    ops_.clear();
  }

  // How many of the `n` bytes of an append to `path` reach the file, and why not all.
  std::pair<std::size_t, IOStatus> append(const std::string& path, std::size_t n) {
    std::lock_guard lock(mu_);
    if (crashed_) return {0, gone("appending to file", path)};
    if (tear_ && aimed_at(tear_->file, path) && tear_->left-- == 0) {
      tear_.reset();
      crashed_ = true;
      ++faults_;
      record(FaultEnv::Op::Kind::append, path, n / 2);
      return {n / 2, IOStatus::IOError("While appending to file: " + path,
                                       "Input/output error (a write torn by a crash: FaultEnv)")};
    }
    if (space_ && aimed_at(space_->file, path)) {
      if (n > space_->left) {
        const auto fits = static_cast<std::size_t>(space_->left);
        space_->left = 0;
        ++faults_;
        if (fits > 0) record(FaultEnv::Op::Kind::append, path, fits);
        auto s = IOStatus::NoSpace("While appending to file: " + path, std::strerror(ENOSPC));
        s.SetRetryable(true);  // as RocksDB's own file system marks ENOSPC
        return {fits, s};
      }
      space_->left -= n;
    }
    record(FaultEnv::Op::Kind::append, path, n);
    return {n, IOStatus::OK()};
  }

  // OK: the sync may go ahead.
  IOStatus sync(const std::string& path) {
    std::lock_guard lock(mu_);
    if (crashed_) return gone("fsync", path);
    if (syncs_ && aimed_at(syncs_->file, path)) {
      if (syncs_->left == 0) {
        ++faults_;
        return IOStatus::IOError("While fsync: " + path, std::strerror(EIO));
      }
      --syncs_->left;
    }
    record(FaultEnv::Op::Kind::sync, path, 0);
    return IOStatus::OK();
  }

  // OK: a change to the directory tree (a new file, a rename, ...) may go ahead.
  IOStatus change(const char* what, const std::string& path) const {
    std::lock_guard lock(mu_);
    return crashed_ ? gone(what, path) : IOStatus::OK();
  }

  IOStatus NewWritableFile(const std::string& f, const FileOptions& o,
                           std::unique_ptr<rocksdb::FSWritableFile>* r,
                           IODebugContext* dbg) override;
  IOStatus ReopenWritableFile(const std::string& f, const FileOptions& o,
                              std::unique_ptr<rocksdb::FSWritableFile>* r,
                              IODebugContext* dbg) override;
  IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const FileOptions& o,
                             std::unique_ptr<rocksdb::FSWritableFile>* r,
                             IODebugContext* dbg) override;
  IOStatus NewRandomRWFile(const std::string& f, const FileOptions& o,
                           std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                           IODebugContext* dbg) override {
    if (auto s = change("opening for writing", f); !s.ok()) return s;
    return FileSystemWrapper::NewRandomRWFile(f, o, r, dbg);
  }
  IOStatus NewDirectory(const std::string& d, const IOOptions& o,
                        std::unique_ptr<rocksdb::FSDirectory>* r, IODebugContext* dbg) override;
  IOStatus DeleteFile(const std::string& f, const IOOptions& o, IODebugContext* dbg) override {
    if (auto s = change("deleting", f); !s.ok()) return s;
    return FileSystemWrapper::DeleteFile(f, o, dbg);
  }
  IOStatus Truncate(const std::string& f, size_t size, const IOOptions& o,
                    IODebugContext* dbg) override {
    if (auto s = change("truncating", f); !s.ok()) return s;
    return FileSystemWrapper::Truncate(f, size, o, dbg);
  }
  IOStatus CreateDir(const std::string& d, const IOOptions& o, IODebugContext* dbg) override {
    if (auto s = change("creating directory", d); !s.ok()) return s;
    return FileSystemWrapper::CreateDir(d, o, dbg);
  }
  IOStatus CreateDirIfMissing(const std::string& d, const IOOptions& o,
                              IODebugContext* dbg) override {
    if (auto s = change("creating directory", d); !s.ok()) return s;
    return FileSystemWrapper::CreateDirIfMissing(d, o, dbg);
  }
  IOStatus DeleteDir(const std::string& d, const IOOptions& o, IODebugContext* dbg) override {
    if (auto s = change("deleting directory", d); !s.ok()) return s;
    return FileSystemWrapper::DeleteDir(d, o, dbg);
  }
  IOStatus RenameFile(const std::string& from, const std::string& to, const IOOptions& o,
                      IODebugContext* dbg) override {
    if (auto s = change("renaming", from); !s.ok()) return s;
    return FileSystemWrapper::RenameFile(from, to, o, dbg);
  }
  IOStatus LinkFile(const std::string& from, const std::string& to, const IOOptions& o,
                    IODebugContext* dbg) override {
    if (auto s = change("linking", from); !s.ok()) return s;
    return FileSystemWrapper::LinkFile(from, to, o, dbg);
  }

 private:
  // Counts down appends, bytes or syncs to the files it is aimed at.
  struct Countdown {
    std::uint64_t left;
    std::string file;
  };

  static IOStatus gone(const char* what, const std::string& path) {
    return IOStatus::IOError(std::string("While ") + what + ": " + path,
                             "the disk is gone after a torn write (FaultEnv)");
  }
  void record(FaultEnv::Op::Kind kind, const std::string& path, std::uint64_t bytes) {
    ops_.push_back({kind, base_name(path), bytes});
  }

  mutable std::mutex mu_;
  std::optional<Countdown> space_;  // guarded by mu_; bytes
  std::optional<Countdown> syncs_;  // guarded by mu_
  std::optional<Countdown> tear_;   // guarded by mu_; appends
  bool crashed_ = false;            // guarded by mu_
  std::uint64_t faults_ = 0;        // guarded by mu_
  std::vector<FaultEnv::Op> ops_;   // guarded by mu_
};

namespace {

// A file being written: every append and sync asks the file system first.
class FaultWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file, std::string path,
                    FaultFileSystem& fs)
      : FSWritableFileOwnerWrapper(std::move(file)), path_(std::move(path)), fs_(fs) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* dbg) override {
    return write(data,
                 [&](const Slice& d) { return FSWritableFileOwnerWrapper::Append(d, o, dbg); });
  }
  IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& info,
                  IODebugContext* dbg) override {
    return write(data, [&](const Slice& d) {
      // The checksum handed over covers the whole of `data`: a part goes without it.
      return d.size() == data.size() ? FSWritableFileOwnerWrapper::Append(d, o, info, dbg)
                                     : FSWritableFileOwnerWrapper::Append(d, o, dbg);
    });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            IODebugContext* dbg) override {
    return write(data, [&](const Slice& d) {
      return FSWritableFileOwnerWrapper::PositionedAppend(d, offset, o, dbg);
    });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    return write(data, [&](const Slice& d) {
      return d.size() == data.size()
                 ? FSWritableFileOwnerWrapper::PositionedAppend(d, offset, o, info, dbg)
                 : FSWritableFileOwnerWrapper::PositionedAppend(d, offset, o, dbg);
    });
  }
  IOStatus Truncate(uint64_t size, const IOOptions& o, IODebugContext* dbg) override {
    if (auto s = fs_.change("truncating", path_); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Truncate(size, o, dbg);
  }
  // Counted, and failed on command, but not passed on (see the header).
  IOStatus Sync(const IOOptions&, IODebugContext*) override { return fs_.sync(path_); }
  IOStatus Fsync(const IOOptions&, IODebugContext*) override { return fs_.sync(path_); }

 private:
  template <typename Write>
  IOStatus write(const Slice& data, const Write& to_file) {
    auto [keep, status] = fs_.append(path_, data.size());
    if (keep > 0) {
      auto s = to_file(Slice(data.data(), keep));
      if (!s.ok()) return s;
    }
    return status;
  }

  std::string path_;
  FaultFileSystem& fs_;
};

// A directory: its fsync (which makes new, renamed and deleted entries durable) can fail too.
class FaultDirectory final : public rocksdb::FSDirectoryWrapper {
 public:
  FaultDirectory(std::unique_ptr<rocksdb::FSDirectory> dir, std::string path, FaultFileSystem& fs)
      : FSDirectoryWrapper(std::move(dir)), path_(std::move(path)), fs_(fs) {}

  IOStatus Fsync(const IOOptions&, IODebugContext*) override { return fs_.sync(path_); }
  IOStatus FsyncWithDirOptions(const IOOptions&, IODebugContext*,
                               const rocksdb::DirFsyncOptions&) override {
    return fs_.sync(path_);
  }

 private:
  std::string path_;
  FaultFileSystem& fs_;
};

}  // namespace

IOStatus FaultFileSystem::NewWritableFile(const std::string& f, const FileOptions& o,
                                          std::unique_ptr<rocksdb::FSWritableFile>* r,
                                          IODebugContext* dbg) {
  if (auto s = change("creating", f); !s.ok()) return s;
  std::unique_ptr<rocksdb::FSWritableFile> file;
  auto s = FileSystemWrapper::NewWritableFile(f, o, &file, dbg);
  if (s.ok()) *r = std::make_unique<FaultWritableFile>(std::move(file), f, *this);
  return s;
}

IOStatus FaultFileSystem::ReopenWritableFile(const std::string& f, const FileOptions& o,
                                             std::unique_ptr<rocksdb::FSWritableFile>* r,
                                             IODebugContext* dbg) {
  if (auto s = change("reopening", f); !s.ok()) return s;
  std::unique_ptr<rocksdb::FSWritableFile> file;
  auto s = FileSystemWrapper::ReopenWritableFile(f, o, &file, dbg);
  if (s.ok()) *r = std::make_unique<FaultWritableFile>(std::move(file), f, *this);
  return s;
}

IOStatus FaultFileSystem::ReuseWritableFile(const std::string& f, const std::string& old,
                                            const FileOptions& o,
                                            std::unique_ptr<rocksdb::FSWritableFile>* r,
                                            IODebugContext* dbg) {
  if (auto s = change("reusing", old); !s.ok()) return s;
  std::unique_ptr<rocksdb::FSWritableFile> file;
  auto s = FileSystemWrapper::ReuseWritableFile(f, old, o, &file, dbg);
  if (s.ok()) *r = std::make_unique<FaultWritableFile>(std::move(file), f, *this);
  return s;
}

IOStatus FaultFileSystem::NewDirectory(const std::string& d, const IOOptions& o,
                                       std::unique_ptr<rocksdb::FSDirectory>* r,
                                       IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> dir;
  auto s = FileSystemWrapper::NewDirectory(d, o, &dir, dbg);
  if (s.ok()) *r = std::make_unique<FaultDirectory>(std::move(dir), d, *this);
  return s;
}

FaultEnv::FaultEnv()
    : fs_(std::make_shared<FaultFileSystem>()), env_(rocksdb::NewCompositeEnv(fs_)) {}

FaultEnv::~FaultEnv() = default;

void FaultEnv::fill_disk_after(std::uint64_t bytes, const std::string& file) {
  fs_->fill_disk_after(bytes, file);
}
void FaultEnv::fail_syncs_after(std::uint64_t syncs, const std::string& file) {
  fs_->fail_syncs_after(syncs, file);
}
void FaultEnv::tear_write(std::uint64_t nth, const std::string& file) {
  fs_->tear_write(nth, file);
}
void FaultEnv::heal() {
  fs_->heal();
}
std::uint64_t FaultEnv::faults() const {
  return fs_->faults();
}
bool FaultEnv::crashed() const {
  return fs_->crashed();
}
std::vector<FaultEnv::Op> FaultEnv::ops() const {
  return fs_->ops();
}
void FaultEnv::forget_ops() {
  fs_->forget_ops();
}

}  // namespace heartbeatd::test
