// FaultEnv: a rocksdb::Env over the real disk that fails on command, so that what the Store
// promises on a full disk, a failed fsync and a write torn by a crash is tested in-process,
// on every machine (tests/persist_fault_test.cpp), and not only with real processes in a
// small tmpfs (tests/persist_daemon_test.cpp). Test code only: the daemon never sees it.
//
// Everything forwards to rocksdb::FileSystem::Default() until a fault is armed. A fault
// applies to the files whose name (the last path component) contains `file`; "" means every
// file. So a test can aim at the write-ahead log (".log"), the MANIFEST ("MANIFEST"), or the
// snapshot file (persist::kSnapshotTempFile).
//   fill_disk_after  appends fail with ENOSPC once `bytes` more bytes were written; the append
//                    that crosses the limit stores what fits first, as write(2) does on a
//                    full disk. Until heal().
//   fail_syncs_after file and directory syncs fail with EIO once `syncs` more succeeded (the
//                    data may or may not be on the disk then, as after a failed writeback).
//                    Until heal().
//   tear_write       the `nth` append from now (0: the next) stores only the first half of
//                    its bytes and fails; from then on nothing reaches the disk (no append,
//                    sync, new file, rename, link or delete), as if the process had died
//                    there. The files stay as that crash left them until heal().
//   heal             the disk works again: space was freed, or the next process starts.
// Nothing it does depends on timing: a fault fires at a counted append or sync. Syncs are
// counted (and failed on command) but not passed on to the disk: these tests cut no power,
// and a real fsync costs milliseconds on a shared machine, dozens of times per case.
//
// Thread safety: RocksDB calls the file system from its own threads; every member may be
// called from any thread. It must outlive every Store and database opened with env().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace heartbeatd::test {

class FaultFileSystem;

class FaultEnv {
 public:
  FaultEnv();
  ~FaultEnv();
  FaultEnv(const FaultEnv&) = delete;
  FaultEnv& operator=(const FaultEnv&) = delete;

  // For StoreOptions::env (or rocksdb::Options::env).
  rocksdb::Env* env() const { return env_.get(); }

  void fill_disk_after(std::uint64_t bytes, const std::string& file = "");
  void fail_syncs_after(std::uint64_t syncs, const std::string& file = "");
  void tear_write(std::uint64_t nth, const std::string& file = "");
  void heal();

  // Faults that fired since the last heal() (an append or a sync that failed).
  std::uint64_t faults() const;
  // Whether a torn write has "crashed" the disk (until heal()).
  bool crashed() const;

  // What reached the disk since the last forget_ops(): every append (file name and bytes
  // kept) and every sync, in order, so a test can aim a fault at each step of an operation.
  struct Op {
    enum class Kind { append, sync } kind;
    std::string file;
    std::uint64_t bytes = 0;  // appends only
  };
  std::vector<Op> ops() const;
  void forget_ops();

 private:
  std::shared_ptr<FaultFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
};

}  // namespace heartbeatd::test
