"""The gateway pattern: collect heartbeats for a moment, send them as one batch."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional

from .errors import HeartbeatdError
from .types import UserId, user_id

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger("heartbeatd")


class HeartbeatBatcher:
    """Collects user heartbeats and sends them with one POST /v1/users/heartbeat.

    A gateway holding many users' connections calls ``add(user)`` whenever a user shows
    activity; a background thread sends what was collected `interval` seconds after the
    first heartbeat of a batch, or at once when `max_size` distinct users are waiting. A
    user added twice in one batch is sent once. A batch larger than the daemon's
    presence.max_batch is split by Client.heartbeat_many.

    A batch that fails (daemon unreachable, 503) is not retried: the next heartbeat of
    those users, moments later, reports them again. `on_error(error, users)` is called on
    the batcher's thread (default: a warning on the "heartbeatd" logger). Counters:
    `accepted` (heartbeats the daemon accepted), `requests` (batches sent), `failures`.

    ``flush()`` sends what is waiting now, on the calling thread; ``close()`` (or leaving a
    ``with`` block) sends the rest and stops the thread. add() is safe from any thread.
    """

    def __init__(self, client: "Client", interval: float = 0.25, max_size: int = 1000,
                 on_error: Optional[Callable[[BaseException, List[int]], None]] = None):
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, not {interval!r}")
        if not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_size must be a positive int, not {max_size!r}")
        self._client = client
        self.interval = interval
        self.max_size = max_size
        self._on_error = on_error
        self._pending: Dict[int, None] = {}  # insertion-ordered set
        self._first_at: Optional[float] = None
        self._cond = threading.Condition()
        self._stopping = False
        self.accepted = 0
        self.requests = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="heartbeatd-batcher", daemon=True)
        self._thread.start()

    def __enter__(self) -> "HeartbeatBatcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, user: UserId) -> None:
        """Queues a heartbeat of `user` (int or decimal str; ValueError if not a user id)."""
        self.add_many((user,))

    def add_many(self, users: Iterable[UserId]) -> None:
        ids = [user_id(u) for u in users]
        with self._cond:
            if self._stopping:
                raise RuntimeError("HeartbeatBatcher is closed")
            was_empty = not self._pending
            for u in ids:
                self._pending[u] = None
            if self._pending and was_empty:
                self._first_at = time.monotonic()
                self._cond.notify()
            elif len(self._pending) >= self.max_size:
                self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def flush(self) -> int:
        """Sends the waiting heartbeats now; returns how many the daemon accepted. Raises
        what the client raises."""
        batch = self._take()
        return self._send(batch, raise_errors=True) if batch else 0

    def close(self) -> None:
        """Stops the thread and sends what is still waiting (errors go to on_error)."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        batch = self._take()
        if batch:
            self._send(batch, raise_errors=False)

    def _take(self) -> List[int]:
        with self._cond:
            batch = list(self._pending)
            self._pending.clear()
            self._first_at = None
            return batch

    def _send(self, batch: List[int], raise_errors: bool) -> int:
        try:
            accepted = self._client.heartbeat_many(batch)
        except (HeartbeatdError, OSError) as e:
            with self._cond:
                self.failures += 1
            if raise_errors:
                raise
            if self._on_error is not None:
                self._on_error(e, batch)
            else:
                log.warning("heartbeatd: a batch of %d heartbeats failed: %s", len(batch), e)
            return 0
        with self._cond:
            self.requests += 1
            self.accepted += accepted
        return accepted

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if not self._pending:
                        self._cond.wait()
                        continue
                    if len(self._pending) >= self.max_size:
                        break
                    assert self._first_at is not None
                    left = self._first_at + self.interval - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._stopping:
                    return
            batch = self._take()
            if batch:
                self._send(batch, raise_errors=False)
