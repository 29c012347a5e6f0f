"""The heartbeatd client: one kept-alive HTTP/1.1 connection over a Unix socket, TCP or TLS."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import socket as _socket
import ssl
import threading
from typing import (TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, Union)
from urllib.parse import quote, urlsplit

from .errors import ApiError, NetworkError, ProtocolError
from .types import (Counts, Health, History, Keyring, Member, MemberPage, UserId, UserStatus,
                    user_id)

if TYPE_CHECKING:
    from .events import EventStream

DEFAULT_MAX_BATCH = 10000  # presence.max_batch's default, for daemons whose health omits it

# Failures that mean "the daemon closed this kept-alive connection before we used it":
# sending the request again on a new connection is safe (every call here is idempotent).
_STALE = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine,
          ssl.SSLEOFError, ssl.SSLZeroReturnError)


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix stream socket: only connect() differs."""

    def __init__(self, path: str, timeout: Optional[float]):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def read_token_file(path: str) -> str:
    """The token on the first line of `path`. ValueError if others may read or write the
    file, or its first line is not a token; the messages never quote the token."""
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode & 0o7777
        if mode & 0o006:
            raise ValueError(f"{path}: readable or writable by others (mode {mode:04o}); it holds "
                             f"an API token: chmod o-rwx {path}")
        line = f.read(4096).split(b"\n", 1)[0].rstrip(b"\r \t")
    if not line:
        raise ValueError(f"{path}: the first line is empty")
    try:
        token = line.decode("ascii")
    except UnicodeDecodeError:
        token = ""
    if not token or any(c in token for c in " \t\r\n") or not token.isprintable():
        raise ValueError(f"{path}: the first line is not a token")
    return token


def default_socket() -> str:
    """The socket heartbeatctl uses without --socket (heartbeatctl --help)."""
    if os.environ.get("HEARTBEATD_SOCKET"):
        return os.environ["HEARTBEATD_SOCKET"]
    if os.path.exists("/run/heartbeatd/heartbeatd.sock"):
        return "/run/heartbeatd/heartbeatd.sock"
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "heartbeatd.sock")
    return f"/tmp/heartbeatd-{os.getuid()}/heartbeatd.sock"


MEMBER_STATES = ("alive", "suspect", "dead", "left")
MAX_MEMBER_PAGE = 10000  # the daemon's largest `limit`
_NAME_PATTERN = re.compile(r"[A-Za-z0-9._*?-]{1,256}")
_TAG_KEY = re.compile(r"[A-Za-z0-9._-]{1,64}")

# A tag filter: "key:value" or "key", several of them, or a mapping key -> value (None: the
# key with any value).
TagFilter = Union[str, Iterable[str], Mapping[str, Optional[str]]]


def member_query(state: Union[str, Iterable[str], None] = None, name: Optional[str] = None,
                 tag: Optional[TagFilter] = None, limit: Optional[int] = None,
                 cursor: Optional[str] = None) -> str:
    """The query string (without "?") of GET /v1/members for these filters, every value
    percent-encoded. ValueError naming the parameter for input the daemon would refuse with
    a 400 (the cursor is opaque: the daemon checks it)."""
    params: List[Tuple[str, str]] = []
    if state is not None:
        states = [state] if isinstance(state, str) else list(state)
        if not states:
            raise ValueError("state: empty (expected alive, suspect, dead or left)")
        for s in states:
            for one in str(s).split(","):
                if one not in MEMBER_STATES:
                    raise ValueError(f"state: unknown state {one!r} "
                                     "(expected alive, suspect, dead or left)")
            params.append(("state", str(s)))
    if name is not None:
        if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
            raise ValueError(f"name: bad pattern {name!r} (expected 1 to 256 letters, digits, "
                             "'.', '-', '_' and the wildcards '*' and '?')")
        params.append(("name", name))
    if tag is not None:
        if isinstance(tag, str):
            tags = [tag]
        elif isinstance(tag, Mapping):
            tags = [k if v is None else f"{k}:{v}" for k, v in tag.items()]
        else:
            tags = list(tag)
        for t in tags:
            if not isinstance(t, str):
                raise ValueError(f"tag: expected \"key:value\" or \"key\", not {t!r}")
            key, colon, value = t.partition(":")
            if not _TAG_KEY.fullmatch(key):
                raise ValueError(f"tag: bad key {key!r} (expected key:value or key, the key 1 to "
                                 "64 letters, digits, '.', '-' or '_')")
            if colon and (len(value) > 128 or not all(" " <= c <= "~" for c in value)):
                raise ValueError(f"tag: bad value for {key} (at most 128 printable ASCII "
                                 "characters)")
            params.append(("tag", t))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_MEMBER_PAGE:
            raise ValueError(f"limit: expected an integer from 1 to {MAX_MEMBER_PAGE}, "
                             f"not {limit!r}")
        params.append(("limit", str(limit)))
    if cursor is not None:
        if not isinstance(cursor, str) or not cursor:
            raise ValueError(f"cursor: expected the next_cursor of a previous page, not {cursor!r}")
        params.append(("cursor", cursor))
    # safe="": ':', '&', '#', '%', '+' (a space to the daemon) and ' ' all travel encoded.
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params)


def decode_status_bits(status: int, headers: Any, data: bytes, count: int,
                       what: str = "POST /v1/users/status?format=bits") -> List[bool]:
    """The answer of POST /v1/users/status?format=bits for `count` ids, one bool each in
    request order (bit i % 8 of byte i // 8, least significant first). ProtocolError unless
    the answer is exactly that: status 200, Content-Type application/octet-stream,
    X-Heartbeatd-Count equal to `count`, ceil(count/8) bytes and the unused high bits of
    the last byte 0. A wrong answer is refused whole, never read as offline."""
    if status != 200:
        raise ProtocolError(f"{what}: status {status}, expected 200")
    ctype = (headers.get("Content-Type") or "") if headers is not None else ""
    if ctype.split(";", 1)[0].strip().lower() != "application/octet-stream":
        raise ProtocolError(f"{what}: Content-Type {ctype!r}, expected application/octet-stream "
                            "(a daemon without format=bits?)")
    counts = (headers.get_all("X-Heartbeatd-Count") or []) if headers is not None else []
    counted = ", ".join(counts) if counts else None
    if (len(counts) != 1 or not counts[0].isascii() or not counts[0].isdigit()
            or int(counts[0]) != count):
        raise ProtocolError(f"{what}: X-Heartbeatd-Count {counted!r}, expected {count} "
                            "(the number of ids sent)")
    if len(data) != (count + 7) // 8:
        raise ProtocolError(f"{what}: {len(data)} bytes for {count} ids, expected "
                            f"{(count + 7) // 8}")
    if count % 8 and data[-1] >> (count % 8):
        raise ProtocolError(f"{what}: padding bits set in the last byte ({data[-1]:#04x} for "
                            f"{count % 8} ids)")
    return [bool(data[i >> 3] >> (i & 7) & 1) for i in range(count)]


def _ids(values: Iterable[UserId]) -> List[int]:
    out = []
    for i, v in enumerate(values):
        out.append(user_id(v, f"user id at position {i}"))
    return out


class Client:
    """A client of one heartbeatd node.

    Where: ``socket=PATH`` (the daemon's Unix socket), or ``url="http://host:port"`` or
    ``"https://host:port"`` (a bare ``"host:port"`` means http). With neither, the socket
    heartbeatctl would use ($HEARTBEATD_SOCKET, /run/heartbeatd/heartbeatd.sock,
    $XDG_RUNTIME_DIR/heartbeatd.sock, /tmp/heartbeatd-UID/heartbeatd.sock).

    HTTPS: the daemon's certificate is verified against `cafile` (default: the system's
    CAs) and must name the host of the URL; `certfile`/`keyfile` are a client certificate
    for mutual TLS (api.tls.client_ca_file).

    Token (docs/API.md, "Tokens and scopes"): `token`, else the first line of `token_file`
    (refused if others may read it), else $HEARTBEATD_TOKEN; sent as "Authorization:
    Bearer". The Unix socket needs none.

    `timeout`: seconds for connecting and for each answer. `max_batch`: ids per batch
    request; by default read once from /v1/health (presence.max_batch), 10000 if the
    daemon does not say.

    Connections: the client keeps one HTTP/1.1 connection open and reuses it for every
    call; a call that finds it closed by the daemon (api.idle_timeout) reconnects and sends
    again once. Every call is idempotent (a heartbeat sent twice has the effect of one sent
    a moment later), so that is safe. ``close()`` (or ``with Client(...) as hb:``) closes it.

    Threads: a Client may be shared between threads; its calls are serialised on its one
    connection by a lock. For requests in parallel use one Client per thread. Each
    ``events()`` stream has its own connection.

    Ids: give them as int or decimal str (0 to 2**64-1); results carry them as int, which
    is exact in Python for the whole range. The client asks the daemon to write ids as
    strings (``ids=string``) and sends them as JSON numbers, which Python encodes exactly.
    """

    def __init__(self, socket: Optional[str] = None, url: Optional[str] = None, *,
                 token: Optional[str] = None, token_file: Optional[str] = None,
                 cafile: Optional[str] = None, certfile: Optional[str] = None,
                 keyfile: Optional[str] = None, timeout: Optional[float] = 5.0,
                 max_batch: Optional[int] = None):
        if socket and url:
            raise ValueError("give socket or url, not both")
        if token and token_file:
            raise ValueError("give token or token_file, not both")
        if max_batch is not None and (not isinstance(max_batch, int) or max_batch < 1):
            raise ValueError(f"max_batch must be a positive int, not {max_batch!r}")
        self.timeout = timeout
        self.socket_path: Optional[str] = None
        self.host: Optional[str] = None
        self.port: Optional[int] = None
        self._tls: Optional[ssl.SSLContext] = None
        if url:
            https = self._parse_url(url)
            if not https and (cafile or certfile or keyfile):
                raise ValueError("cafile, certfile and keyfile need an https:// url")
            if https:
                self._tls = ssl.create_default_context(cafile=cafile)
                self._tls.minimum_version = ssl.TLSVersion.TLSv1_2
                if certfile:
                    self._tls.load_cert_chain(certfile, keyfile)
                elif keyfile:
                    raise ValueError("keyfile needs certfile")
            scheme = "https" if self._tls else "http"
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.target = f"{scheme}://{host}:{self.port}"
        else:
            if cafile or certfile or keyfile:
                raise ValueError("cafile, certfile and keyfile need an https:// url")
            self.socket_path = socket or default_socket()
            self.target = self.socket_path
        if token_file:
            token = read_token_file(token_file)
        self.token = token or os.environ.get("HEARTBEATD_TOKEN") or None
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._conn: Optional[http.client.HTTPConnection] = None
        self.connections_opened = 0  # connections this client opened for calls (not events)

    def _parse_url(self, url: str) -> bool:
        """Sets host and port from `url`; True for https."""
        text = url if "://" in url else "http://" + url
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"bad url {url!r}: expected http:// or https://")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError(f"bad url {url!r}: expected scheme://host:port and nothing else")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"bad url {url!r}: the port is not a number 1 to 65535") from None
        if not parts.hostname:
            raise ValueError(f"bad url {url!r}: no host")
        if port == 0:
            raise ValueError(f"bad url {url!r}: the port is not a number 1 to 65535")
        self.host = parts.hostname
        self.port = port or (443 if parts.scheme == "https" else 80)
        return parts.scheme == "https"

    # --- connections ---------------------------------------------------------------------

    def _new_connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self.socket_path:
            return _UnixHTTPConnection(self.socket_path, timeout)
        if self._tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self._tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        return headers

    def close(self) -> None:
        """Closes the kept-alive connection (a later call opens a new one)."""
        with self._lock:
            self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @staticmethod
    def _closed_by_peer(sock: Any) -> bool:
        """An idle kept-alive socket that is readable has been closed (or reset) by the
        daemon: nothing else may arrive between requests."""
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def request(self, method: str, path: str, body: Any = None,
                headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any, bytes]:
        """One request on the kept-alive connection: (status, headers, body bytes), whatever
        the status. `body`, if not None, is sent as JSON; `headers` are added. Raises
        NetworkError."""
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        extra = dict(headers or {})
        if payload is not None:
            extra["Content-Type"] = "application/json"
        headers = self._headers(extra)
        with self._lock:
            for attempt in (0, 1):
                conn = self._conn
                if conn is not None and conn.sock is not None and self._closed_by_peer(conn.sock):
                    self._drop()
                    conn = None
                reused = conn is not None and conn.sock is not None
                try:
                    if conn is None:
                        conn = self._conn = self._new_connection(self.timeout)
                    if conn.sock is None:
                        conn.connect()
                        self.connections_opened += 1
                    conn.request(method, path, body=payload, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except _STALE as e:
                    self._drop()
                    if reused and attempt == 0:
                        continue  # the daemon closed the idle connection as we sent: once more
                    raise NetworkError(self.target, e) from e
                except (OSError, http.client.HTTPException) as e:
                    self._drop()
                    raise NetworkError(self.target, e) from e
                if response.will_close:
                    self._drop()
                return response.status, response.headers, data
        raise AssertionError("unreachable")

    @staticmethod
    def _api_error(status: int, headers: Any, data: bytes) -> ApiError:
        retry_after = None
        if headers is not None and headers.get("Retry-After"):
            try:
                retry_after = float(headers.get("Retry-After"))
            except ValueError:
                pass
        try:
            err = json.loads(data)
            return ApiError(status, str(err["error"]), str(err["message"]), retry_after)
        except (ValueError, KeyError, TypeError):
            text = data.decode(errors="replace").strip() or http.client.responses.get(status, "")
            return ApiError(status, "http_" + str(status), text, retry_after)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer (None for an empty one). Raises ApiError, NetworkError,
        ProtocolError."""
        status, headers, data = self.request(method, path, body)
        if status >= 400:
            raise self._api_error(status, headers, data)
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError as e:
            raise ProtocolError(f"{method} {path}: the answer is not JSON ({e})") from e

    def _typed(self, method: str, path: str, build: Any, body: Any = None) -> Any:
        answer = self._call(method, path, body)
        try:
            return build(answer)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ProtocolError(f"{method} {path}: unexpected answer {answer!r:.200} ({e!r})") from e

    # --- routes ------------------------------------------------------------------------------

    def health(self) -> Health:
        """GET /v1/health."""
        health = self._typed("GET", "/v1/health", Health.from_json)
        if self._max_batch is None and health.max_batch:
            self._max_batch = health.max_batch
        return health

    def members(self, state: Union[str, Iterable[str], None] = None, name: Optional[str] = None,
                tag: Optional[TagFilter] = None) -> List[Member]:
        """GET /v1/members: every member this node knows that matches the filters (none:
        all), sorted by name, in one answer. `state`: "alive", or several ("alive,suspect" or
        ["alive", "suspect"]): any of them. `name`: a pattern with * and ?. `tag`:
        "role:db", "role" (any value), a list of those, or {"role": "db", "zone": None}:
        every one must match. ValueError for a filter the daemon would refuse."""
        query = member_query(state, name, tag)
        return self._typed("GET", "/v1/members" + ("?" + query if query else ""),
                           lambda o: [Member.from_json(m) for m in o["members"]])

    def members_page(self, state: Union[str, Iterable[str], None] = None,
                     name: Optional[str] = None, tag: Optional[TagFilter] = None,
                     limit: Optional[int] = None, cursor: Optional[str] = None,
                     if_none_match: Optional[str] = None) -> MemberPage:
        """GET /v1/members with filters (as members()), a page size `limit` (1 to 10000) and
        the `cursor` of the previous page: a MemberPage with `next_cursor` (None on the last
        page) and the answer's `etag`. With `if_none_match` (an etag you hold) a 304 comes
        back as MemberPage(not_modified=True): nothing changed, no body was sent."""
        query = member_query(state, name, tag, limit, cursor)
        path = "/v1/members" + ("?" + query if query else "")
        headers = {"If-None-Match": if_none_match} if if_none_match else None
        status, answer_headers, data = self.request("GET", path, headers=headers)
        etag = answer_headers.get("ETag") if answer_headers is not None else None
        if status == 304:
            return MemberPage((), None, etag or if_none_match, True)
        if status >= 400:
            raise self._api_error(status, answer_headers, data)
        try:
            o = json.loads(data)
            return MemberPage(tuple(Member.from_json(m) for m in o["members"]),
                              o.get("next_cursor"), etag, False)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ProtocolError(f"GET {path}: unexpected answer {data!r:.200} ({e!r})") from e

    def iter_members(self, state: Union[str, Iterable[str], None] = None,
                     name: Optional[str] = None, tag: Optional[TagFilter] = None,
                     page_size: int = 1000) -> Iterator[Member]:
        """Every matching member, in name order, asked for `page_size` at a time: the
        cursors are followed for you. A member present for the whole walk is yielded exactly
        once (docs/API.md, "Filters and paging")."""
        # One-shot iterables become lists: every page sends the same filters.
        if state is not None and not isinstance(state, str):
            state = list(state)
        if tag is not None and not isinstance(tag, (str, Mapping)):
            tag = list(tag)
        member_query(state, name, tag, page_size)  # bad input fails here, not at next()

        def walk() -> Iterator[Member]:
            cursor: Optional[str] = None
            while True:
                page = self.members_page(state, name, tag, limit=page_size, cursor=cursor)
                yield from page.members
                if page.next_cursor is None:
                    return
                cursor = page.next_cursor

        return walk()

    def member(self, name: str) -> Member:
        """GET /v1/members/{name}; ApiError 404 unknown_member if this node does not know it."""
        return self._typed("GET", "/v1/members/" + quote(name, safe=""), Member.from_json)

    def keys(self) -> Keyring:
        """GET /v1/keys (scope admin)."""
        return self._typed("GET", "/v1/keys", Keyring.from_json)

    def metrics(self) -> str:
        """GET /metrics (scope metrics): the Prometheus text."""
        status, headers, data = self.request("GET", "/metrics")
        if status >= 400:
            raise self._api_error(status, headers, data)
        return data.decode()

    def heartbeat(self, user: UserId) -> None:
        """POST /v1/users/{id}/heartbeat: the user is online."""
        self._call("POST", f"/v1/users/{user_id(user)}/heartbeat")

    def logout(self, user: UserId) -> None:
        """DELETE /v1/users/{id}: the user is offline now (keeps its last-seen time)."""
        self._call("DELETE", f"/v1/users/{user_id(user)}")

    def status(self, user: UserId) -> UserStatus:
        """GET /v1/users/{id}."""
        return self._typed("GET", f"/v1/users/{user_id(user)}?ids=string", UserStatus.from_json)

    def is_online(self, user: UserId) -> bool:
        return self.status(user).online

    def counts(self) -> Counts:
        """GET /v1/users: users online and tracked."""
        return self._typed("GET", "/v1/users", lambda o: Counts(int(o["online"]), int(o["tracked"])))

    def history(self) -> History:
        """GET /v1/users/history: the online count at each presence.history.interval."""
        return self._typed("GET", "/v1/users/history", History.from_json)

    @property
    def max_batch(self) -> int:
        """Ids per batch request: the constructor's, else /v1/health's presence.max_batch
        (asked once), else 10000."""
        if self._max_batch is None:
            self.health()
            if self._max_batch is None:
                self._max_batch = DEFAULT_MAX_BATCH
        return self._max_batch

    def _batched(self, path: str, ids: List[int], handle: Any, send: Any = None) -> None:
        """Sends `ids` in requests of at most max_batch ids, in order, calling handle(answer)
        for each. `send(path, chunk)` makes one request and returns its answer (default: the
        decoded JSON). A 413 batch_too_large (the daemon's limit lowered since it was read)
        makes it read the limit again once and go on with smaller requests."""
        if send is None:
            send = lambda p, chunk: self._call("POST", p, {"users": chunk})  # noqa: E731
        start, refreshed = 0, False
        while start < len(ids):
            size = self.max_batch
            chunk = ids[start:start + size]
            try:
                answer = send(path, chunk)
            except ApiError as e:
                if e.status != 413 or refreshed:
                    raise
                refreshed = True
                previous, self._max_batch = self._max_batch, None
                if self.max_batch >= previous:
                    raise
                continue
            handle(answer)
            start += len(chunk)

    def heartbeat_many(self, users: Iterable[UserId]) -> int:
        """POST /v1/users/heartbeat, split into requests of at most max_batch ids. Returns
        how many heartbeats the daemon accepted in all. If a request fails after others
        succeeded, the exception says so in its message only; sending the whole batch again
        is safe."""
        ids = _ids(users)
        total = [0]

        def add(answer: Any) -> None:
            try:
                total[0] += int(answer["accepted"])
            except (KeyError, TypeError, ValueError) as e:
                raise ProtocolError(f"POST /v1/users/heartbeat: unexpected answer {answer!r:.200}") from e

        self._batched("/v1/users/heartbeat", ids, add)
        return total[0]

    def status_many(self, users: Iterable[UserId]) -> List[UserStatus]:
        """POST /v1/users/status, split into requests of at most max_batch ids; the
        statuses in request order (duplicates included)."""
        ids = _ids(users)
        out: List[UserStatus] = []

        def add(answer: Any) -> None:
            try:
                out.extend(UserStatus.from_json(u) for u in answer["users"])
            except (KeyError, TypeError, ValueError) as e:
                raise ProtocolError(f"POST /v1/users/status: unexpected answer {answer!r:.200}") from e

        self._batched("/v1/users/status?ids=string", ids, add)
        return out

    def online(self, users: Iterable[UserId]) -> List[bool]:
        """POST /v1/users/status?format=bits, split into requests of at most max_batch ids:
        True for each user online, in request order (duplicates included). An unknown user
        is False, as one gone offline: use status_many() to tell them apart or for
        last_seen_ms. About 55 times fewer answer bytes than status_many(). ProtocolError if
        an answer is not exactly the bits asked for (docs/API.md, "One bit per user")."""
        ids = _ids(users)
        out: List[bool] = []
        self._batched("/v1/users/status?format=bits", ids, out.extend, self._status_bits)
        return out

    def _status_bits(self, path: str, chunk: List[int]) -> List[bool]:
        status, headers, data = self.request("POST", path, {"users": chunk})
        if status >= 400:
            raise self._api_error(status, headers, data)
        return decode_status_bits(status, headers, data, len(chunk), "POST " + path)

    def events(self, users: Iterable[UserId] = (), members: Optional[Sequence[str]] = None,
               **options: Any) -> "EventStream":
        """GET /v1/events as an iterator of MemberEvent, UserEvent and Dropped that reconnects
        and resumes; see EventStream for `options`."""
        from .events import EventStream
        return EventStream(self, users, members, **options)

