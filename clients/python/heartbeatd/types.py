"""Typed results of the heartbeatd API (docs/API.md).

Every result is a frozen dataclass built from the daemon's JSON answer. User ids are Python
ints: exact for the whole unsigned 64-bit range, whether the daemon wrote them as JSON
numbers or (as this client asks, ``ids=string``) as decimal strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

MAX_USER_ID = 2**64 - 1

UserId = Union[int, str]


def user_id(value: Any, where: str = "user id") -> int:
    """The user id `value` (an int, or a canonical decimal string) as an int; ValueError
    naming `where` when it is not an unsigned 64-bit integer in canonical form."""
    if isinstance(value, bool):  # bool is an int subclass: True is not user 1
        raise ValueError(f"bad {where} {value!r}: expected an integer 0 to {MAX_USER_ID}")
    if isinstance(value, int):
        if 0 <= value <= MAX_USER_ID:
            return value
        raise ValueError(f"bad {where} {value}: expected 0 to {MAX_USER_ID}")
    if isinstance(value, str):
        text = value
        if (text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))
                and int(text) <= MAX_USER_ID):
            return int(text)
        raise ValueError(f"bad {where} {value!r}: expected a decimal integer 0 to {MAX_USER_ID}, "
                         "no sign, no leading zero")
    raise ValueError(f"bad {where} {value!r}: expected an int or a decimal string, "
                     f"not {type(value).__name__}")


def _wire_id(value: Any) -> int:
    """An id as the daemon wrote it (number or string) as an int."""
    return user_id(value, "user id from the daemon")


@dataclass(frozen=True)
class UserStatus:
    """One user's presence (GET /v1/users/{id}, POST /v1/users/status)."""
    user: int
    online: bool
    last_seen_ms: Optional[int]  # wall-clock Unix ms; None once forgotten or never seen

    @classmethod
    def from_json(cls, o: Dict[str, Any]) -> "UserStatus":
        return cls(_wire_id(o["user"]), bool(o["online"]), o.get("last_seen_ms"))


@dataclass(frozen=True)
class Member:
    """A cluster member as this node sees it (GET /v1/members)."""
    name: str
    address: str
    state: str  # alive, suspect, dead, left
    incarnation: int
    last_seen_ms: Optional[int]
    is_self: bool  # the JSON field "self": the answering node
    # node.tags as the member last announced them; {} for none, and from daemons before tags
    tags: Dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def alive(self) -> bool:
        return self.state == "alive"

    @classmethod
    def from_json(cls, o: Dict[str, Any]) -> "Member":
        return cls(o["name"], o["address"], o["state"], int(o["incarnation"]),
                   o.get("last_seen_ms"), bool(o.get("self", False)), _tags(o.get("tags")))


def _tags(value: Any) -> Dict[str, str]:
    """A member's "tags" object; {} when absent (daemons before tags) or null."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise ValueError(f"tags: expected an object of strings, not {value!r:.100}")
    return dict(value)


@dataclass(frozen=True)
class MemberPage:
    """One answer of GET /v1/members with filters, a limit or an ETag (Client.members_page).

    `next_cursor`: pass it as `cursor` (with the same filters) for the next page; None on the
    last page, and always None without a limit. `etag`: the answer's ETag, to pass back as
    `if_none_match`. `not_modified`: the daemon answered 304 to that ETag: the members are
    those of the answer that carried it, so `members` is empty and `next_cursor` None; keep
    what you have."""
    members: Tuple[Member, ...]
    next_cursor: Optional[str]
    etag: Optional[str]
    not_modified: bool = False


@dataclass(frozen=True)
class Counts:
    """GET /v1/users: users online, and tracked (online or not yet forgotten)."""
    online: int
    tracked: int


@dataclass(frozen=True)
class HistoryPoint:
    time_ms: int
    online: int
    tracked: int


@dataclass(frozen=True)
class History:
    """GET /v1/users/history: the online count over time, oldest point first."""
    interval_ms: int
    points: Tuple[HistoryPoint, ...]

    @classmethod
    def from_json(cls, o: Dict[str, Any]) -> "History":
        return cls(int(o["interval_ms"]),
                   tuple(HistoryPoint(int(p["time_ms"]), int(p["online"]), int(p["tracked"]))
                         for p in o["points"]))


@dataclass(frozen=True)
class Key:
    fingerprint: str
    primary: bool
    members: int


@dataclass(frozen=True)
class Keyring:
    """GET /v1/keys: the cluster keyring and which key live members seal with."""
    keys: Tuple[Key, ...]
    plaintext_members: int
    unknown_members: int
    seal_outgoing: bool
    require_sealed: bool

    @classmethod
    def from_json(cls, o: Dict[str, Any]) -> "Keyring":
        return cls(tuple(Key(k["fingerprint"], bool(k["primary"]), int(k["members"]))
                         for k in o["keys"]),
                   int(o["plaintext_members"]), int(o["unknown_members"]),
                   bool(o["seal_outgoing"]), bool(o["require_sealed"]))


@dataclass(frozen=True)
class Health:
    """GET /v1/health. `raw` is the whole answer, for fields this version does not name."""
    status: str  # ok or degraded
    node: str
    version: str
    uptime_ms: int
    warnings: Tuple[str, ...]
    persistence: Dict[str, Any] = field(compare=False)
    presence: Dict[str, Any] = field(compare=False)
    raw: Dict[str, Any] = field(compare=False, repr=False)

    @property
    def max_batch(self) -> Optional[int]:
        """presence.max_batch: ids per batch request; None if the daemon does not say."""
        value = (self.presence or {}).get("max_batch")
        return int(value) if isinstance(value, int) and value > 0 else None

    @classmethod
    def from_json(cls, o: Dict[str, Any]) -> "Health":
        return cls(o.get("status", ""), o.get("node", ""), o.get("version", ""),
                   int(o.get("uptime_ms", 0)), tuple(o.get("warnings") or ()),
                   o.get("persistence") or {}, o.get("presence") or {}, o)


# --- events (GET /v1/events) -------------------------------------------------------------

@dataclass(frozen=True)
class MemberEvent:
    """A member's state change, or (initial=True) its state when the stream (re)started."""
    name: str
    address: str
    state: str
    previous: Optional[str]  # None for a member seen for the first time
    incarnation: int
    time_ms: int
    initial: bool
    # the member's tags at this event; a change of tags alone has state == previous
    tags: Dict[str, str] = field(default_factory=dict, hash=False)
    kind = "member"

    @classmethod
    def from_json(cls, o: Dict[str, Any]) -> "MemberEvent":
        return cls(o["name"], o["address"], o["state"], o.get("previous"),
                   int(o["incarnation"]), int(o["time_ms"]), bool(o.get("initial", False)),
                   _tags(o.get("tags")))


@dataclass(frozen=True)
class UserEvent:
    """A followed user went online or offline, or (initial=True) its state when the stream
    (re)started."""
    user: int
    online: bool
    last_seen_ms: Optional[int]
    time_ms: int
    initial: bool
    kind = "user"

    @classmethod
    def from_json(cls, o: Dict[str, Any]) -> "UserEvent":
        return cls(_wire_id(o["user"]), bool(o["online"]), o.get("last_seen_ms"),
                   int(o["time_ms"]), bool(o.get("initial", False)))


@dataclass(frozen=True)
class Dropped:
    """The daemon cut this stream off as a slow consumer; the iterator reconnects and the
    initial state that follows tells what changed meanwhile."""
    reason: str
    kind = "dropped"


Event = Union[MemberEvent, UserEvent, Dropped]


def event_to_json(event: Event) -> Dict[str, Any]:
    """The event as a JSON-ready dict with an "event" key (the CLI's `watch` output)."""
    out: Dict[str, Any] = {"event": event.kind}
    out.update(event.__dict__)
    return out


__all__: List[str] = [
    "UserId", "MAX_USER_ID", "user_id", "UserStatus", "Member", "MemberPage", "Counts",
    "HistoryPoint", "History", "Key", "Keyring", "Health", "MemberEvent", "UserEvent", "Dropped", "Event",
    "event_to_json",
]
