"""GET /v1/events as an iterator that reconnects and resumes."""

from __future__ import annotations

import http.client
import json
import random
import socket as _socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import quote

from .errors import ApiError, NetworkError, ProtocolError
from .types import Dropped, Event, MemberEvent, UserEvent, UserId, user_id

if TYPE_CHECKING:
    from .client import Client

# ApiError statuses worth trying again: the daemon is busy or its store is unavailable.
_RETRYABLE_STATUS = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class StreamState:
    """Told to `on_state` at every change of the stream's connection.

    state: "connecting" (an attempt starts), "connected" (the daemon accepted the stream),
    "disconnected" (the stream ended or an attempt failed: `error` says why, `retry_in` is
    the pause in seconds before the next attempt), "closed" (close() was called, or the
    stream ended without reconnecting). `attempt`: consecutive attempts since the stream
    last stayed up."""
    state: str
    error: Optional[BaseException] = None
    retry_in: Optional[float] = None
    attempt: int = 0


class _Ended(Exception):
    """The open stream failed (reset, timeout); reconnecting may help."""


class EventStream:
    """Iterates over GET /v1/events: MemberEvent, UserEvent and Dropped, as they happen.

    The daemon first sends the current state of everything followed (``initial=True``),
    then changes. When the stream ends (the daemon restarted, dropped this slow reader, the
    connection failed or stayed silent beyond `read_timeout`), the iterator reconnects after
    a pause that grows exponentially from `backoff_initial` to `backoff_max` seconds, with
    jitter (a random part, so that many clients do not return at once), and resumes: of
    the new stream's initial events it yields only those that differ from the last state
    it yielded for that member (state, address, incarnation) or user (online,
    last_seen_ms), still flagged ``initial=True`` so the consumer knows the change happened
    while it was disconnected. The consumer thus sees one continuous stream.

    users: ids to follow (int or decimal str); members: names to follow (None: all
    members, []: none). reconnect: False ends the iteration when the first stream ends.
    wait_for_daemon: True retries the first connection too (by default a first failure
    raises NetworkError at the first next(), so a wrong address is noticed at once).
    on_state: called with a StreamState at each connection change, on the iterating thread.
    read_timeout: seconds without any byte before the stream is deemed dead (the daemon
    sends a keepalive comment every events.keepalive, 15 s by default); None waits forever.

    close() ends the iteration, from any thread (a blocked next() returns at once with
    StopIteration); ``with client.events(...) as stream:`` closes on exit. Errors that
    retrying cannot fix (401, 403, 400: a bad id or member name) raise ApiError.
    """

    def __init__(self, client: "Client", users: Iterable[UserId] = (),
                 members: Optional[Sequence[str]] = None, *, reconnect: bool = True,
                 wait_for_daemon: bool = False,
                 on_state: Optional[Callable[[StreamState], None]] = None,
                 backoff_initial: float = 0.1, backoff_max: float = 10.0,
                 read_timeout: Optional[float] = 60.0, rng: Optional[random.Random] = None):
        if isinstance(members, str):
            raise ValueError("members must be a list of names, not a string")
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        self._client = client
        self._users = sorted({user_id(u, f"user id at position {i}") for i, u in enumerate(users)})
        self._members = None if members is None else [str(m) for m in members]
        self._reconnect = reconnect
        self._wait_for_daemon = wait_for_daemon
        self._on_state = on_state
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._read_timeout = read_timeout
        self._rng = rng or random.Random()
        self._ids_string = True
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._conn: Optional[http.client.HTTPConnection] = None
        self._sock: Any = None
        self._response: Optional[http.client.HTTPResponse] = None
        self._reading = False
        self._connected_at = 0.0
        self._attempt = 0
        self.connections = 0  # streams the daemon accepted so far
        self.state = "idle"
        self._last: Dict[Tuple[str, Any], Tuple[Any, ...]] = {}

    # --- public -------------------------------------------------------------------------

    def __iter__(self) -> "EventStream":
        return self

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Ends the iteration and closes the connection; safe from any thread, idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._lock:
            if self._sock is not None:
                try:  # wakes a next() blocked reading; the base class's, not SSLSocket's
                    _socket.socket.shutdown(self._sock, _socket.SHUT_RDWR)
                except OSError:
                    pass
            if not self._reading:
                self._close_connection()
        self._set_state(StreamState("closed"))

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __next__(self) -> Event:
        while True:
            if self._closed.is_set():
                with self._lock:
                    self._close_connection()
                raise StopIteration
            if self._response is None:
                self._connect()
                continue
            error: Optional[BaseException] = None
            try:
                event = self._read_event()
            except _Ended as e:
                event, error = None, e.__cause__
            if event is None:
                with self._lock:
                    self._close_connection()
                if self._closed.is_set():
                    raise StopIteration
                if not self._reconnect:
                    self.close()
                    raise StopIteration
                if time.monotonic() - self._connected_at >= self._backoff_max:
                    self._attempt = 0  # it stayed up: come back quickly
                self._set_state(StreamState("disconnected", error or EOFError("stream ended"),
                                            None, self._attempt))
                self._pause()
                continue
            if self._keep(event):
                return event

    # --- internals ----------------------------------------------------------------------

    def _set_state(self, state: StreamState) -> None:
        self.state = state.state
        if self._on_state is not None:
            self._on_state(state)

    def _path(self) -> str:
        query = []
        if self._users:
            query.append("users=" + ",".join(str(u) for u in self._users))
        if self._members is not None:
            query.append("members=" + ",".join(quote(m, safe="") for m in self._members))
        if self._ids_string:
            query.append("ids=string")
        return "/v1/events" + ("?" + "&".join(query) if query else "")

    def _delay(self) -> float:
        ceiling = min(self._backoff_max, self._backoff_initial * (2 ** min(self._attempt, 32)))
        return ceiling / 2 + self._rng.random() * ceiling / 2

    def _pause(self, at_least: float = 0.0) -> None:
        delay = max(self._delay(), at_least)
        self._attempt += 1
        self._closed.wait(delay)

    def _close_connection(self) -> None:
        # The response holds the socket's file (Connection: close hands it over): close all.
        for part in (self._response, self._conn, self._sock):
            if part is not None:
                try:
                    part.close()
                except (OSError, ValueError):
                    pass
        self._conn, self._sock, self._response = None, None, None

    def _connect(self) -> None:
        """Opens the stream, retrying with backoff; returns when open or closed."""
        while not self._closed.is_set():
            self._set_state(StreamState("connecting", attempt=self._attempt))
            try:
                self._open()
            except (ApiError, NetworkError) as e:
                retryable = isinstance(e, NetworkError) or e.status in _RETRYABLE_STATUS
                first = self.connections == 0 and not self._wait_for_daemon
                if not retryable or first or not self._reconnect and self.connections > 0:
                    self.close()
                    raise
                at_least = getattr(e, "retry_after", None) or 0.0
                delay = max(self._delay(), at_least)
                self._set_state(StreamState("disconnected", e, delay, self._attempt))
                self._attempt += 1
                self._closed.wait(delay)
                continue
            if self._response is None:  # closed meanwhile
                return
            self.connections += 1
            self._connected_at = time.monotonic()
            self._set_state(StreamState("connected", attempt=self._attempt))
            return

    def _open(self) -> None:
        client = self._client
        conn = client._new_connection(client.timeout)
        try:
            conn.connect()
            with self._lock:
                if self._closed.is_set():
                    conn.close()
                    return
                self._conn, self._sock = conn, conn.sock
            conn.request("GET", self._path(),
                         headers=client._headers({"Accept": "text/event-stream"}))
            response = conn.getresponse()
            data = b"" if response.status == 200 else response.read()
        except (OSError, http.client.HTTPException) as e:
            with self._lock:
                self._close_connection()
                conn.close()
            if self._closed.is_set():
                return
            raise NetworkError(client.target, e) from e
        if response.status != 200:
            with self._lock:
                self._close_connection()
            error = client._api_error(response.status, response.headers, data)
            if error.status == 400 and self._ids_string and '"ids"' in error.message:
                self._ids_string = False  # a daemon from before ids=string: ids as numbers
                return self._open()
            raise error
        with self._lock:
            if self._closed.is_set():
                self._close_connection()
                return
            self._sock.settimeout(self._read_timeout)
            self._response = response

    def _readline(self) -> bytes:
        assert self._response is not None
        self._reading = True
        try:
            return self._response.readline(1 << 20)
        except (OSError, http.client.HTTPException, ValueError, AttributeError) as e:
            # AttributeError/ValueError: the connection was closed under the read by close()
            raise _Ended() from e
        finally:
            self._reading = False

    def _read_event(self) -> Optional[Event]:
        """The next event, None when the stream ended; raises _Ended when it failed."""
        kind: str = "message"
        data: List[str] = []
        while True:
            raw = self._readline()
            if not raw or self._closed.is_set():
                return None
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:  # a blank line ends an event
                if data:
                    event = self._build(kind, "\n".join(data))
                    if event is not None:
                        return event
                kind, data = "message", []
            elif not line.startswith(":"):  # ":" starts a comment (keepalive)
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    kind = value
                elif name == "data":
                    data.append(value)

    @staticmethod
    def _build(kind: str, text: str) -> Optional[Event]:
        try:
            o = json.loads(text)
            if kind == "member":
                return MemberEvent.from_json(o)
            if kind == "user":
                return UserEvent.from_json(o)
            if kind == "dropped":
                return Dropped(str(o.get("reason", "")))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ProtocolError(f"GET /v1/events: a malformed {kind} event: {text[:200]!r} ({e})") from e
        return None  # an event kind this version does not know

    def _keep(self, event: Event) -> bool:
        """Remembers the event's state; False for an initial event of a reconnected stream
        that repeats the last state yielded."""
        if isinstance(event, MemberEvent):
            key: Tuple[str, Any] = ("member", event.name)
            value: Tuple[Any, ...] = (event.state, event.address, event.incarnation)
        elif isinstance(event, UserEvent):
            key, value = ("user", event.user), (event.online, event.last_seen_ms)
        else:
            return True
        if event.initial and self.connections > 1 and self._last.get(key) == value:
            return False
        self._last[key] = value
        return True


__all__ = ["EventStream", "StreamState"]
