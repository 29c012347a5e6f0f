"""Client.online(): POST /v1/users/status?format=bits against a real heartbeatd, and every
malformed answer against a tiny fake server."""

from __future__ import annotations

import http.server
import json
import threading
import unittest
from typing import Dict, List, Optional, Tuple

from heartbeatd import ApiError, Client, ProtocolError

from support import Daemon, metric

BITS_ROUTE = 'route="/v1/users/status",method="POST",code="200"'


class OnlineTest(unittest.TestCase):
    daemon: Daemon

    @classmethod
    def setUpClass(cls) -> None:
        # 12: a batch boundary that falls inside a byte, so the client must not join bytes.
        cls.daemon = Daemon({"presence": {"max_batch": 12}})
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.daemon.cleanup()

    def client(self) -> Client:
        c = Client(socket=self.daemon.socket_path)
        self.addCleanup(c.close)
        return c

    def test_online_offline_and_unknown_in_request_order(self) -> None:
        hb = self.client()
        hb.heartbeat_many([1001, 1002, 1003])
        hb.logout(1002)  # offline, though known
        self.assertEqual(hb.online([1003, 1002, 9999, 1001, 1001]), [True, False, False, True, True])
        self.assertEqual(hb.online([]), [])

    def test_sizes_around_a_byte(self) -> None:
        hb = self.client()
        hb.heartbeat_many([2000, 2003, 2007, 2008])
        for n in (1, 7, 8, 9, 12):
            with self.subTest(n=n):
                ids = list(range(2000, 2000 + n))
                self.assertEqual(hb.online(ids), [u in (2000, 2003, 2007, 2008) for u in ids])
        self.assertEqual(hb.online([2001]), [False])

    def test_agrees_with_status_many_across_batches(self) -> None:
        hb = self.client()
        self.assertEqual(hb.max_batch, 12)
        online = [3000 + i for i in range(0, 30, 3)]
        hb.heartbeat_many(online)
        asked = list(range(3000, 3030)) + [2**64 - 1] + online[::-1]  # 41 ids: 12+12+12+5
        before = metric(hb.metrics(), "heartbeatd_api_requests_total", BITS_ROUTE)
        got = hb.online(asked)
        after = metric(hb.metrics(), "heartbeatd_api_requests_total", BITS_ROUTE)
        self.assertEqual(after - before, 4)
        self.assertEqual(got, [u in online for u in asked])
        self.assertEqual(got, [s.online for s in hb.status_many(asked)])

    def test_a_max_batch_too_large_is_corrected_by_the_daemon(self) -> None:
        hb = Client(socket=self.daemon.socket_path, max_batch=20)  # the daemon takes 12: a 413
        self.addCleanup(hb.close)
        hb.heartbeat_many([3500, 3519])
        self.assertEqual(hb.online(range(3500, 3520)), [u in (3500, 3519) for u in range(3500, 3520)])
        self.assertEqual(hb.max_batch, 12)

    def test_ids_above_2_to_the_53(self) -> None:
        hb = self.client()
        big = 2**64 - 1
        hb.heartbeat(str(big))
        self.assertEqual(hb.online([big, str(big - 1), 2**53 + 1]), [True, False, False])

    def test_bad_ids_are_refused_before_sending(self) -> None:
        hb = self.client()
        with self.assertRaises(ValueError) as e:
            hb.online([1, "01"])
        self.assertIn("position 1", str(e.exception))
        self.assertEqual(hb.connections_opened, 0)


class FakeDaemon:
    """A loopback HTTP server answering POST /v1/users/status with a canned (status, headers,
    body), and recording the request bodies it got."""

    def __init__(self) -> None:
        self.answer: Tuple[int, Dict[str, str], bytes] = (200, {}, b"")
        self.bodies: List[dict] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                length = int(self.headers.get("Content-Length", "0"))
                fake.bodies.append(json.loads(self.rfile.read(length)))
                status, headers, body = fake.answer
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def bits(body: bytes, count: Optional[object], ctype: str = "application/octet-stream"
         ) -> Tuple[int, Dict[str, str], bytes]:
    headers = {"Content-Type": ctype}
    if count is not None:
        headers["X-Heartbeatd-Count"] = str(count)
    return 200, headers, body


class MalformedAnswerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.fake = FakeDaemon()
        self.addCleanup(self.fake.close)
        self.hb = Client(url=self.fake.url, max_batch=100)
        self.addCleanup(self.hb.close)

    def test_a_well_formed_answer_is_read_lsb_first(self) -> None:
        self.fake.answer = bits(b"\x05", 3)
        self.assertEqual(self.hb.online([42, 7, 43]), [True, False, True])
        self.assertEqual(self.fake.bodies[-1], {"users": [42, 7, 43]})
        self.fake.answer = bits(b"\x81\x01", 9, "Application/Octet-Stream; x=y")
        self.assertEqual(self.hb.online(range(9)), [True] + [False] * 6 + [True, True])
        self.fake.answer = bits(b"\xff", 8)
        self.assertEqual(self.hb.online(range(8)), [True] * 8)

    def test_malformed_answers_are_protocol_errors(self) -> None:
        cases = {
            "json, an older daemon": (200, {"Content-Type": "application/json",
                                            "X-Heartbeatd-Count": "3"},
                                      b'{"users":[]}'),
            "no content type": (200, {"X-Heartbeatd-Count": "3"}, b"\x05"),
            "no count": bits(b"\x05", None),
            "count too small": bits(b"\x05", 2),
            "count too large": bits(b"\x05", 4),
            "count not decimal": bits(b"\x05", "+3"),
            "count empty": bits(b"\x05", ""),
            "body empty": bits(b"", 3),
            "body too long": bits(b"\x05\x00", 3),
            "padding bit set": bits(b"\x0d", 3),
            "top padding bit set": bits(b"\x85", 3),
            "status 204": (204, {}, b""),
        }
        for name, answer in cases.items():
            with self.subTest(name):
                self.fake.answer = answer
                with self.assertRaises(ProtocolError) as e:
                    self.hb.online([42, 7, 43])
                self.assertIn("format=bits", str(e.exception))

    def test_two_count_headers_are_refused(self) -> None:
        self.fake.answer = (200, {"Content-Type": "application/octet-stream",
                                  "X-Heartbeatd-Count": "3", "x-heartbeatd-count": "3"}, b"\x05")
        with self.assertRaises(ProtocolError):
            self.hb.online([42, 7, 43])

    def test_nine_ids_need_two_bytes(self) -> None:
        for body in (b"\xff", b"\xff\x01\x00", b"\xff\x02"):
            with self.subTest(body=body):
                self.fake.answer = bits(body, 9)
                with self.assertRaises(ProtocolError):
                    self.hb.online(range(9))

    def test_error_statuses_are_api_errors(self) -> None:
        self.fake.answer = (503, {"Content-Type": "application/json", "Retry-After": "1"},
                            b'{"error":"presence_unavailable","message":"redis down"}')
        with self.assertRaises(ApiError) as e:
            self.hb.online([1])
        self.assertEqual((e.exception.status, e.exception.error, e.exception.retry_after),
                         (503, "presence_unavailable", 1.0))


if __name__ == "__main__":
    unittest.main()
