// Suspicion timing (Lifeguard, Dadgar et al. 2018): a suspicion raised by one member runs for
// the long `max` timeout, giving a live suspect time to refute; every further member that
// independently suspects the same incarnation shortens it, down to `min` once all the
// confirmations we can expect have arrived. One lossy link or one slow monitor therefore
// cannot convict quickly, while a real crash (seen by all of a member's monitors at once)
// is convicted after `min`.
//
// Pure function; thread-safe.
#pragma once

#include <cstdint>

#include "membership/clock.h"

namespace heartbeatd::membership {

// How long a suspicion lasts, from its start, given `confirmations` independent accusers
// beyond the first and `expected` confirmations possible (the suspect's other monitors).
// max - (max - min) * log(confirmations + 1) / log(expected + 1), never below min; min when
// nothing more can be expected.
Duration suspicion_timeout(std::uint32_t confirmations, std::uint32_t expected, Duration min,
                           Duration max);

}  // namespace heartbeatd::membership
