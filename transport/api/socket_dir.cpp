#include "transport/api/socket_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

namespace heartbeatd::transport {
namespace {

namespace fs = std::filesystem;

bool trusted_owner(uid_t owner) {
  return owner == 0 || owner == geteuid();
}

bool others_may_write(mode_t mode) {
  return (mode & (S_IWGRP | S_IWOTH)) != 0;
}

// The socket's own directory: ours alone, or a sticky shared one.
std::optional<std::string> check_own(const std::string& dir) {
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0) {
    return fmt::format("cannot inspect directory {}: {}", dir, std::strerror(errno));
  }
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    const auto target = fs::read_symlink(dir, ec);
    return fmt::format("directory {} is a symbolic link (to {}), which someone may have planted "
                       "to take the socket: remove it (heartbeatd then creates the directory, "
                       "mode 0750) or set api.unix_socket to a path in a real directory",
                       dir, ec ? "?" : target.string());
  }
  if (!S_ISDIR(st.st_mode)) {
    return fmt::format("{} is not a directory: remove it or set api.unix_socket elsewhere", dir);
  }
  const bool sticky = (st.st_mode & S_ISVTX) != 0;
  if (sticky && trusted_owner(st.st_uid)) return std::nullopt;  // /tmp and the like
  if (st.st_uid != geteuid()) {
    return fmt::format("directory {} is owned by uid {}, not by heartbeatd's user (uid {}): "
                       "that user could replace the socket; remove it (heartbeatd then creates "
                       "it, mode 0750) or chown {} {}",
                       dir, st.st_uid, geteuid(), geteuid(), dir);
  }
  if (others_may_write(st.st_mode)) {
    return fmt::format("directory {} has mode {:04o}: group or others may write to it and "
                       "replace the socket: chmod 0750 {} (or 0700)",
                       dir, st.st_mode & 07777, dir);
  }
  return std::nullopt;
}

// The directories above: none may be renamed away by anyone but root or the daemon's user.
std::optional<std::string> check_above(const std::string& dir) {
  char resolved[PATH_MAX];
  if (!realpath(dir.c_str(), resolved)) {
    return fmt::format("cannot resolve directory {}: {}", dir, std::strerror(errno));
  }
  for (fs::path p = resolved;; p = p.parent_path()) {
    struct stat st {};
    if (stat(p.c_str(), &st) != 0) {
      return fmt::format("cannot inspect directory {}: {}", p.string(), std::strerror(errno));
    }
    const bool sticky = (st.st_mode & S_ISVTX) != 0;
    if (!trusted_owner(st.st_uid) || (others_may_write(st.st_mode) && !sticky)) {
      return fmt::format("{} lies under {} (owner uid {}, mode {:04o}), which someone other than "
                         "root or heartbeatd's user (uid {}) may change, and so replace the "
                         "socket: set api.unix_socket to a path whose directories only they "
                         "can write",
                         dir, p.string(), st.st_uid, st.st_mode & 07777, geteuid());
    }
    if (p == p.parent_path()) return std::nullopt;
  }
}

}  // namespace

std::optional<std::string> prepare_socket_dir(const std::string& socket_path) {
  std::error_code ec;
  const fs::path dir = fs::absolute(fs::path(socket_path), ec).parent_path();
  if (ec) return fmt::format("cannot resolve {}: {}", socket_path, ec.message());

  // Find the nearest existing directory; the ones below it are created.
  std::vector<fs::path> missing;
  fs::path base = dir;
  while (true) {
    struct stat st {};
    if (lstat(base.c_str(), &st) == 0) break;
    if (errno != ENOENT || base == base.parent_path()) {
      return fmt::format("cannot inspect directory {}: {}", base.string(), std::strerror(errno));
    }
    missing.push_back(base);
    base = base.parent_path();
  }
  if (missing.empty()) {
    if (auto why = check_own(dir.string())) return why;
    return check_above(dir.parent_path().string());
  }
  if (auto why = check_above(base.string())) return why;  // create nothing in unsafe places
  std::vector<fs::path> created;
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (mkdir(it->c_str(), kSocketDirMode) == 0) {
      created.push_back(*it);
    } else if (errno != EEXIST) {  // EEXIST: made meanwhile; the checks below judge whose
      return fmt::format("cannot create directory {}: {}", it->string(), std::strerror(errno));
    }
  }
  if (auto why = check_own(dir.string())) return why;
  if (auto why = check_above(dir.parent_path().string())) return why;
  // The umask may have taken the search bit the group needs on every level. These are ours
  // and nobody else may rename them (checked above), so each chmod reaches its directory.
  for (const auto& d : created) {
    if (chmod(d.c_str(), kSocketDirMode) != 0) {
      return fmt::format("cannot chmod {:04o} {}: {}", kSocketDirMode, d.string(),
                         std::strerror(errno));
    }
  }
  return std::nullopt;
}

}  // namespace heartbeatd::transport
