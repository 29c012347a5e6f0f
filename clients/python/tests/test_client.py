"""Client against a real heartbeatd: both transports, tokens, keep-alive, batches, ids."""

from __future__ import annotations

import os
import unittest
from unittest import mock

import heartbeatd
from heartbeatd import ApiError, Client, NetworkError

from support import FULL_TOKEN, READ_TOKEN, Daemon, eventually, metric

BATCH_ROUTE = 'route="/v1/users/heartbeat",method="POST",code="200"'
STATUS_ROUTE = 'route="/v1/users/status",method="POST",code="200"'


class ClientTest(unittest.TestCase):
    daemon: Daemon

    @classmethod
    def setUpClass(cls) -> None:
        cls.daemon = Daemon({"presence": {"max_batch": 5}, "api": {"idle_timeout": "2s"}})
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.daemon.cleanup()

    def tcp(self, **kw) -> Client:
        kw.setdefault("token", FULL_TOKEN)
        c = Client(url=self.daemon.url, **kw)
        self.addCleanup(c.close)
        return c

    def unix(self, **kw) -> Client:
        c = Client(socket=self.daemon.socket_path, **kw)
        self.addCleanup(c.close)
        return c

    def test_every_route_over_both_transports(self) -> None:
        base = 100
        for hb in (self.unix(), self.tcp()):
            with self.subTest(target=hb.target):
                base += 10
                self.assertIsNone(hb.heartbeat(base))
                self.assertEqual(hb.heartbeat_many([base + 1, str(base + 2)]), 2)
                st = hb.status(base)
                self.assertIsInstance(st, heartbeatd.UserStatus)
                self.assertEqual(st.user, base)
                self.assertTrue(st.online)
                self.assertIsInstance(st.last_seen_ms, int)
                self.assertTrue(hb.is_online(str(base + 1)))
                self.assertEqual([(s.user, s.online) for s in hb.status_many([base + 2, 999999, base])],
                                 [(base + 2, True), (999999, False), (base, True)])
                self.assertIsNone(hb.status(999999).last_seen_ms)
                hb.logout(base)
                st = hb.status(base)
                self.assertFalse(st.online)
                self.assertIsNotNone(st.last_seen_ms)  # logout keeps the last-seen time

                counts = hb.counts()
                self.assertIsInstance(counts, heartbeatd.Counts)
                self.assertGreaterEqual(counts.tracked, counts.online)
                self.assertGreaterEqual(counts.online, 2)

                members = hb.members()
                self.assertEqual([(m.name, m.state, m.is_self) for m in members],
                                 [("py-test", "alive", True)])
                # The same member; its last_seen_ms (for itself: the protocol's last run)
                # moves on between the two calls.
                one = hb.member("py-test")
                self.assertEqual((one.name, one.address, one.state, one.incarnation, one.is_self),
                                 (members[0].name, members[0].address, members[0].state,
                                  members[0].incarnation, members[0].is_self))
                self.assertGreaterEqual(one.last_seen_ms, members[0].last_seen_ms)
                with self.assertRaises(ApiError) as e:
                    hb.member("nobody")
                self.assertEqual((e.exception.status, e.exception.error), (404, "unknown_member"))

                health = hb.health()
                self.assertEqual((health.status, health.node), ("ok", "py-test"))
                keys = hb.keys()
                self.assertEqual(keys.keys, ())
                self.assertEqual(keys.plaintext_members, 1)

    def test_history(self) -> None:
        hb = self.unix()
        history = hb.history()
        self.assertIsInstance(history, heartbeatd.History)
        self.assertGreater(history.interval_ms, 0)
        self.assertGreaterEqual(len(history.points), 1)  # the first point is taken at start
        p = history.points[0]
        self.assertIsInstance(p, heartbeatd.HistoryPoint)
        self.assertGreaterEqual(p.tracked, p.online)
        self.assertEqual([q.time_ms for q in history.points], sorted(q.time_ms for q in history.points))

    def test_tokens(self) -> None:
        with self.assertRaises(ApiError) as e:
            self.tcp(token=None).health()
        self.assertEqual((e.exception.status, e.exception.error), (401, "unauthenticated"))
        with self.assertRaises(ApiError) as e:
            self.tcp(token="wrong-token-0123456789abcdef").health()
        self.assertEqual(e.exception.status, 401)
        reader = self.tcp(token=READ_TOKEN)
        self.assertFalse(reader.status(7).online)
        with self.assertRaises(ApiError) as e:
            reader.heartbeat(7)
        self.assertEqual((e.exception.status, e.exception.error), (403, "forbidden"))
        self.assertNotIn(READ_TOKEN, str(e.exception))

        # token_file: the first line; refused when others may read it.
        path = self.daemon.file("client-token")
        with open(path, "w") as f:
            f.write(FULL_TOKEN + "\n")
        os.chmod(path, 0o600)
        self.tcp(token=None, token_file=path).heartbeat(8)
        os.chmod(path, 0o644)
        with self.assertRaises(ValueError) as v:
            Client(url=self.daemon.url, token_file=path)
        self.assertIn("readable or writable by others", str(v.exception))
        self.assertNotIn(FULL_TOKEN, str(v.exception))

        # $HEARTBEATD_TOKEN when none is given.
        with mock.patch.dict(os.environ, {"HEARTBEATD_TOKEN": READ_TOKEN}):
            self.assertEqual(self.tcp(token=None).status(8).user, 8)

    def test_one_connection_is_kept_alive(self) -> None:
        for hb in (self.tcp(), self.unix()):
            with self.subTest(target=hb.target):
                hb.health()
                local = hb._conn.sock.getsockname()
                for i in range(20):
                    hb.heartbeat(300 + i)
                    hb.status(300 + i)
                self.assertEqual(hb.connections_opened, 1)
                self.assertEqual(hb._conn.sock.getsockname(), local)
        # The daemon agrees: this client's is the only API connection open.
        hb = self.tcp()
        eventually(lambda: metric(hb.metrics(), "heartbeatd_api_connections") == 1, 10,
                   "heartbeatd_api_connections == 1 (other test clients closed)")
        self.assertEqual(hb.connections_opened, 1)

    def test_reconnects_when_the_daemon_closed_the_idle_connection(self) -> None:
        hb = self.tcp()
        hb.heartbeat(400)
        sock = hb._conn.sock
        eventually(lambda: Client._closed_by_peer(sock), 10, "api.idle_timeout (2s) closed it")
        self.assertTrue(hb.status(400).online)  # noticed before sending
        self.assertEqual(hb.connections_opened, 2)

        # The race: the daemon closes it just as a request goes out. Sent again, once.
        hb.heartbeat(401)
        sock = hb._conn.sock
        eventually(lambda: Client._closed_by_peer(sock), 10, "api.idle_timeout (2s) closed it")
        with mock.patch.object(Client, "_closed_by_peer", staticmethod(lambda s: False)):
            self.assertEqual(hb.heartbeat_many([401, 402]), 2)
        self.assertEqual(hb.connections_opened, 3)

    def test_batches_split_at_max_batch(self) -> None:
        hb = self.unix()
        if hb.health().max_batch is None:
            self.skipTest("this heartbeatd's /v1/health has no presence.max_batch")
        self.assertEqual(hb.max_batch, 5)
        before = hb.metrics()
        ids = list(range(500, 512))  # 12 ids: 5 + 5 + 2
        self.assertEqual(hb.heartbeat_many(ids), 12)
        asked = ids + [999998] + ids[::-1]  # 25 ids, an unknown one and duplicates: 5 requests
        answers = hb.status_many(asked)
        after = hb.metrics()
        self.assertEqual(metric(after, "heartbeatd_api_requests_total", BATCH_ROUTE)
                         - metric(before, "heartbeatd_api_requests_total", BATCH_ROUTE), 3)
        self.assertEqual(metric(after, "heartbeatd_api_requests_total", STATUS_ROUTE)
                         - metric(before, "heartbeatd_api_requests_total", STATUS_ROUTE), 5)
        self.assertEqual([a.user for a in answers], asked)
        self.assertEqual([a.online for a in answers], [u != 999998 for u in asked])
        self.assertEqual(hb.heartbeat_many([]), 0)
        self.assertEqual(hb.status_many([]), [])

    def test_a_max_batch_too_large_is_corrected_by_the_daemon(self) -> None:
        hb = self.unix(max_batch=8)  # the daemon takes 5: the first request gets 413
        if hb.health().max_batch is None:
            self.skipTest("this heartbeatd's /v1/health has no presence.max_batch")
        self.assertEqual(hb.max_batch, 8)
        self.assertEqual(hb.heartbeat_many(range(600, 612)), 12)
        self.assertEqual(hb.max_batch, 5)

    def test_ids_above_2_to_the_53_round_trip_exactly(self) -> None:
        big = [2**64 - 1, 2**53 + 1, 2**63 + 12345]
        for hb in (self.unix(), self.tcp()):
            with self.subTest(target=hb.target):
                self.assertEqual(hb.heartbeat_many([big[0], str(big[1])]), 2)
                hb.heartbeat(str(big[2]))
                answers = hb.status_many([str(big[2]), big[1], big[0], 2**53])
                self.assertEqual([a.user for a in answers], [big[2], big[1], big[0], 2**53])
                self.assertEqual([a.online for a in answers], [True, True, True, False])
                self.assertEqual(hb.status(big[0]).user, big[0])
                # The wire: the daemon was asked for strings, and gives them.
                status, _, body = hb.request("GET", f"/v1/users/{big[0]}?ids=string")
                self.assertEqual(status, 200)
                self.assertIn(f'"user":"{big[0]}"'.encode(), body)

    def test_bad_ids_are_refused_before_sending(self) -> None:
        hb = self.unix()
        for bad in (-1, 2**64, "01", "1.0", " 1", "", "x", True, 1.0, None):
            with self.subTest(bad=bad):
                with self.assertRaises(ValueError):
                    hb.heartbeat(bad)
                with self.assertRaises(ValueError) as e:
                    hb.heartbeat_many([1, bad])
                self.assertIn("position 1", str(e.exception))
        self.assertEqual(hb.connections_opened, 0)

    def test_network_errors_are_wrapped(self) -> None:
        gone = Client(socket=self.daemon.file("nothing.sock"))
        with self.assertRaises(NetworkError) as e:
            gone.health()
        self.assertIn("cannot reach heartbeatd at " + self.daemon.file("nothing.sock"), str(e.exception))
        self.assertIsInstance(e.exception.__cause__, OSError)
        self.assertIsInstance(e.exception, heartbeatd.HeartbeatdError)

    def test_arguments_are_checked(self) -> None:
        for kw in ({"socket": "/x", "url": "http://a:1"}, {"url": "ftp://a:1"},
                   {"url": "http://a:1/path"}, {"url": "http://a:99999"},
                   {"url": "http://a:1", "cafile": "ca.pem"}, {"token": "a", "token_file": "b"},
                   {"max_batch": 0}):
            with self.subTest(kw=kw):
                with self.assertRaises(ValueError):
                    Client(**kw)
        self.assertEqual(Client(url="127.0.0.1:7700").target, "http://127.0.0.1:7700")
        self.assertEqual(Client(url="http://[::1]:7700").target, "http://[::1]:7700")

    def test_api_error_fields(self) -> None:
        e = Client._api_error(429, {"Retry-After": "3"},
                              b'{"error":"rate_limited","message":"slow down"}')
        self.assertEqual((e.status, e.error, e.message, e.retry_after),
                         (429, "rate_limited", "slow down", 3.0))
        e = Client._api_error(502, {}, b"<html>bad gateway</html>")
        self.assertEqual((e.status, e.error, e.retry_after), (502, "http_502", None))


if __name__ == "__main__":
    unittest.main()
