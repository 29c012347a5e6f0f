"""The events iterator against a real heartbeatd: transitions, close, reconnect and resume."""

from __future__ import annotations

import threading
import time
import unittest
from typing import List

from heartbeatd import (ApiError, Client, Dropped, MemberEvent, NetworkError, StreamState,
                        UserEvent)

from support import FULL_TOKEN, Collector, Daemon, eventually, metric


class EventsTest(unittest.TestCase):
    daemon: Daemon

    @classmethod
    def setUpClass(cls) -> None:
        # A short timeout, so that a user's offline event comes soon after its heartbeat.
        cls.daemon = Daemon({"presence": {"timeout": "1s"}})
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.daemon.cleanup()

    def client(self, tcp: bool = False) -> Client:
        c = (Client(url=self.daemon.url, token=FULL_TOKEN) if tcp
             else Client(socket=self.daemon.socket_path))
        self.addCleanup(c.close)
        return c

    def collect(self, stream) -> Collector:
        col = Collector(stream)
        self.addCleanup(col.close)
        return col

    def test_a_user_goes_online_then_offline(self) -> None:
        big = 2**64 - 7  # beyond 2^53: exact all the way
        for tcp, user in ((False, 42), (True, big)):
            with self.subTest(tcp=tcp):
                hb = self.client(tcp)
                events = self.collect(hb.events(users=[str(user)], members=[]))
                first = events.next()
                self.assertEqual(first, UserEvent(user, False, None, first.time_ms, True))
                hb.heartbeat(user)
                online = events.next()
                self.assertIsInstance(online, UserEvent)
                self.assertEqual((online.user, online.online, online.initial), (user, True, False))
                # presence.timeout (1s) after the heartbeat, the daemon says offline.
                offline = events.next(deadline=10)
                self.assertEqual((offline.user, offline.online, offline.initial), (user, False, False))
                self.assertEqual(offline.last_seen_ms, online.last_seen_ms)

    def test_member_events_and_the_initial_state(self) -> None:
        hb = self.client()
        hb.heartbeat(77)
        with hb.events(users=[77, 78]) as stream:
            got = [next(stream) for _ in range(3)]
        self.assertIsInstance(got[0], MemberEvent)
        self.assertEqual((got[0].name, got[0].state, got[0].initial), ("py-test", "alive", True))
        # Users in id order; 77 may have gone offline already (timeout 1s).
        self.assertEqual([(e.user, e.initial) for e in got[1:]], [(77, True), (78, True)])
        self.assertFalse(got[2].online)
        self.assertTrue(stream.closed)
        self.assertRaises(StopIteration, next, stream)

    def test_close_from_another_thread_ends_a_blocked_iteration(self) -> None:
        hb = self.client(tcp=True)
        states: List[str] = []
        stream = hb.events(users=[5], members=[], on_state=lambda s: states.append(s.state))
        events = Collector(stream)
        events.next()  # the initial state: now it blocks on the socket
        started = time.monotonic()
        stream.close()
        self.assertTrue(events.done.wait(5), "next() still blocked 5 s after close()")
        self.assertLess(time.monotonic() - started, 5)
        self.assertIsNone(events.error)
        self.assertEqual(states[:2], ["connecting", "connected"])
        self.assertEqual(states[-1], "closed")

    def test_a_silent_stream_is_replaced_without_repeating_anything(self) -> None:
        hb = self.client()
        states: List[StreamState] = []
        # The daemon says nothing for events.keepalive (15 s): with read_timeout 0.3 s the
        # stream is deemed dead and replaced, again and again.
        stream = hb.events(users=[60], members=[], read_timeout=0.3, backoff_initial=0.01,
                           backoff_max=0.05, on_state=states.append)
        events = self.collect(stream)
        self.assertEqual(events.next().user, 60)
        eventually(lambda: stream.connections >= 3, 10, "two reconnections")
        lost = [s for s in states if s.state == "disconnected"]
        self.assertIn("timed out", str(lost[0].error))
        hb.heartbeat(60)
        online = events.next()
        self.assertEqual((online.user, online.online, online.initial), (60, True, False))

    def test_errors_that_retrying_cannot_fix_are_raised(self) -> None:
        with self.assertRaises(ApiError) as e:
            next(Client(url=self.daemon.url).events(users=[1]))  # no token
        self.assertEqual(e.exception.status, 401)
        with self.assertRaises(ApiError) as e:
            next(self.client().events(members=["not a name!"]))
        self.assertEqual(e.exception.status, 400)
        gone = Client(socket=self.daemon.file("nothing.sock"))
        with self.assertRaises(NetworkError):
            next(gone.events(users=[1]))
        # wait_for_daemon: retried with growing, jittered pauses, told to on_state.
        states: List[StreamState] = []

        def on_state(s: StreamState) -> None:
            states.append(s)
            if len([x for x in states if x.state == "disconnected"]) == 4:
                stream.close()

        stream = gone.events(users=[1], wait_for_daemon=True, on_state=on_state,
                             backoff_initial=0.01, backoff_max=0.04)
        self.assertEqual(list(stream), [])
        pauses = [s.retry_in for s in states if s.state == "disconnected"]
        self.assertEqual(len(pauses), 4)
        for n, pause in enumerate(pauses):
            ceiling = min(0.04, 0.01 * 2**n)
            self.assertTrue(ceiling / 2 <= pause <= ceiling, (n, pause))
        self.assertIsInstance(states[1].error, NetworkError)


class ResumeTest(unittest.TestCase):
    """A stream across a daemon restart: it reconnects, and of the new initial state
    yields only what changed."""

    def setUp(self) -> None:
        self.daemon = Daemon({"presence": {"timeout": "1m"}})
        self.addCleanup(self.daemon.cleanup)
        self.daemon.start()

    def test_reconnects_and_resumes_across_a_restart(self) -> None:
        hb = Client(socket=self.daemon.socket_path)
        self.addCleanup(hb.close)
        a, b, c = 10, 11, 2**63 + 1
        hb.heartbeat(a)
        gate = threading.Event()  # holds the reconnect until the test changed b meanwhile
        states: List[StreamState] = []

        def on_state(s: StreamState) -> None:
            states.append(s)
            if s.state == "connecting" and stream.connections >= 1:
                gate.wait(30)

        stream = hb.events(users=[a, b, c], members=[], on_state=on_state,
                           backoff_initial=0.05, backoff_max=0.5)
        events = Collector(stream)
        self.addCleanup(events.close)
        initial = [events.next() for _ in range(3)]
        self.assertEqual([(e.user, e.online, e.initial) for e in initial],
                         [(a, True, True), (b, False, True), (c, False, True)])
        hb.heartbeat(c)
        self.assertEqual((events.next().user, True), (c, True))

        self.daemon.restart()  # graceful: the state survives in data_dir
        eventually(lambda: any(s.state == "disconnected" for s in states), 10, "stream lost")
        hb.heartbeat(b)  # a change while the stream was away
        gate.set()
        resumed = events.next()
        # a and c are as they were (suppressed); b changed: yielded, flagged initial.
        self.assertEqual((resumed.user, resumed.online, resumed.initial), (b, True, True))
        eventually(lambda: stream.connections == 2, 10, "reconnected")
        self.assertEqual(stream.state, "connected")
        hb.logout(a)  # and the stream goes on, live
        after = events.next()
        self.assertEqual((after.user, after.online, after.initial), (a, False, False))
        self.assertTrue(events.events.empty(), list(events.events.queue))
        lost = [s for s in states if s.state == "disconnected"]
        self.assertIsNotNone(lost[0].error)


class DroppedTest(unittest.TestCase):
    def test_a_dropped_reader_resumes_and_ends_up_with_the_true_state(self) -> None:
        """A consumer that stops reading is dropped by the daemon (events.max_queue_bytes);
        the iterator yields Dropped, reconnects, and the resumed initial state fills in
        what the lost backlog held: folding every event gives the daemon's state."""
        daemon = Daemon({"presence": {"timeout": "1s"}}, tokens=False)
        self.addCleanup(daemon.cleanup)
        daemon.start()
        hb = Client(socket=daemon.socket_path)
        self.addCleanup(hb.close)
        users = list(range(1, 2001))
        stream = hb.events(users=users, members=[], backoff_initial=0.01, backoff_max=0.1)
        self.addCleanup(stream.close)
        seen = {}
        for _ in users:  # the initial state: all offline, read promptly
            e = next(stream)
            seen[e.user] = (e.online, e.last_seen_ms)

        def dropped() -> float:
            return metric(hb.metrics(), "heartbeatd_event_subscribers_dropped_total")

        # Without reading, make the users go online and (presence.timeout later) offline
        # until the daemon gives up on this subscriber.
        end = time.monotonic() + 60
        while not dropped():
            self.assertLess(time.monotonic(), end, "never dropped")
            hb.heartbeat_many(users)
            eventually(lambda: hb.counts().online == 0 or dropped(), 10, "users expired")
        # A change after the drop, which only a new stream can tell: a new last-seen time.
        eventually(lambda: hb.counts().online == 0, 10, "users expired")
        hb.heartbeat_many(users)
        eventually(lambda: hb.counts().online == 0, 10, "users expired again")
        got_dropped = False
        truth = {s.user: (s.online, s.last_seen_ms) for s in hb.status_many(users)}
        end = time.monotonic() + 30
        while seen != truth or not got_dropped:
            self.assertLess(time.monotonic(), end, "the stream never caught up")
            e = next(stream)
            if isinstance(e, Dropped):
                got_dropped = True
                continue
            seen[e.user] = (e.online, e.last_seen_ms)
        self.assertGreaterEqual(stream.connections, 2)

    def test_dropped_is_typed(self) -> None:
        from heartbeatd.events import EventStream
        self.assertEqual(EventStream._build("dropped", '{"reason":"slow consumer"}'),
                         Dropped("slow consumer"))
        self.assertIsNone(EventStream._build("future-kind", "{}"))


if __name__ == "__main__":
    unittest.main()
