"""heartbeatd: a client for the heartbeatd HTTP API (docs/API.md), standard library only.

    from heartbeatd import Client
    hb = Client(socket="/run/heartbeatd/heartbeatd.sock")    # or Client(url="http://127.0.0.1:7700")
    hb.heartbeat(42)                           # user 42 is online
    hb.heartbeat_many([1, 2, 3])               # -> 3, split at the daemon's max_batch
    hb.status(42)                              # UserStatus(user=42, online=True, last_seen_ms=...)
    hb.online([42, 7])                         # -> [True, False], one bit per user on the wire
    with hb.events(users=[42], members=[]) as stream:
        for event in stream:                   # UserEvent / MemberEvent / Dropped; reconnects
            print(event)

See README.md next to this package, and `python -m heartbeatd --help`.
"""

from .batcher import HeartbeatBatcher
from .client import DEFAULT_MAX_BATCH, Client, default_socket, read_token_file
from .errors import ApiError, HeartbeatdError, NetworkError, ProtocolError
from .events import EventStream, StreamState
from .types import (MAX_USER_ID, Counts, Dropped, Event, Health, History, HistoryPoint, Key,
                    Keyring, Member, MemberEvent, MemberPage, UserEvent, UserStatus,
                    event_to_json, user_id)

__version__ = "0.1.0"

__all__ = [
    "Client", "HeartbeatBatcher", "EventStream", "StreamState", "ApiError", "HeartbeatdError",
    "NetworkError", "ProtocolError", "UserStatus", "Member", "MemberPage", "Counts", "History",
    "HistoryPoint", "Health", "Key", "Keyring", "MemberEvent", "UserEvent", "Dropped", "Event",
    "event_to_json", "user_id", "MAX_USER_ID", "DEFAULT_MAX_BATCH", "default_socket",
    "read_token_file",
]
