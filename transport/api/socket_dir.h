// The directory of the API's Unix socket, made safe before the socket goes in it.
//
// Whoever may write to that directory can unlink the daemon's socket and bind their own at
// the same path; local services would then send their heartbeats and queries to them. The
// same holds one level up: whoever may write to a directory above can rename the whole
// subtree away and put their own in its place. So, before listening:
//   - A missing directory is created with mode 0750 (missing ones above it too). Group r-x
//     because the socket is 0660 so that members of the daemon's group can connect, and
//     connect() needs search permission on the directory; no group write, so they cannot
//     replace the socket. The same mode as the packaged unit's RuntimeDirectoryMode.
//   - The socket's directory must be a real directory (lstat: a symbolic link planted there
//     is refused), owned by the daemon's user and writable by nobody else. The exception is
//     a sticky directory owned by root or the daemon's user, such as /tmp: others may create
//     files there but can neither remove nor rename ours, and a socket path they took first
//     makes listen_unix() refuse to start rather than share it.
//   - Every directory above must be owned by root or the daemon's user and, unless sticky,
//     not writable by group or others (the rule OpenSSH's StrictModes applies to ~/.ssh).
//
// Thread safety: a plain function of the file system; call it before serving.
#pragma once

#include <optional>
#include <string>

namespace heartbeatd::transport {

inline constexpr unsigned kSocketDirMode = 0750;

// nullopt when the directory of `socket_path` exists (created if need be) and is safe;
// otherwise why not, naming the directory and the fix.
std::optional<std::string> prepare_socket_dir(const std::string& socket_path);

}  // namespace heartbeatd::transport
