#include "daemon/journal.h"

#include <sys/uio.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

#include <vector>

namespace heartbeatd {

bool journal_available() {
  return access("/run/systemd/journal/socket", F_OK) == 0;
}

bool send_to_journal(std::span<const std::string> fields) {
  std::vector<iovec> iov;
  iov.reserve(fields.size());
  for (const auto& f : fields) {
    // sd_journal_sendv only reads them.
    iov.push_back({const_cast<char*>(f.data()), f.size()});
  }
  return sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) >= 0;
}

}  // namespace heartbeatd
