// The journal sink of base/log.h: under systemd's journal, log lines are sent with
// sd_journal_sendv so that their fields (MEMBER=, STATE=, USER=, ...) become journal fields
// (`journalctl -u heartbeatd MEMBER=db-3`, `journalctl -o json`). What is sent is
// log::journal_fields(), a pure function tested on its own; this file only hands it over.
//
// Thread safety: send_to_journal may be called from any thread (one datagram per call).
#pragma once

#include <span>
#include <string>

namespace heartbeatd {

// Is journald's socket there? sd_journal_sendv reports success when it is missing (it
// drops the line "silently if the journal is not available"), so the sink is installed only
// when it is, and lines otherwise keep going to stderr with their "<N>" prefix.
bool journal_available();

// sd_journal_sendv; false if the journal did not take the line (the caller writes it to
// stderr instead).
bool send_to_journal(std::span<const std::string> fields);

}  // namespace heartbeatd
