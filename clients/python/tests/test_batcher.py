"""HeartbeatBatcher: the gateway pattern against a real heartbeatd."""

from __future__ import annotations

import threading
import time
import unittest
from typing import List, Tuple

from heartbeatd import Client, HeartbeatBatcher, NetworkError

from support import Daemon, eventually, metric

BATCH_ROUTE = 'route="/v1/users/heartbeat",method="POST",code="200"'


class BatcherTest(unittest.TestCase):
    daemon: Daemon

    @classmethod
    def setUpClass(cls) -> None:
        cls.daemon = Daemon({"presence": {"max_batch": 5}}, tokens=False)
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.daemon.cleanup()

    def setUp(self) -> None:
        self.hb = Client(socket=self.daemon.socket_path)
        self.addCleanup(self.hb.close)

    def batches(self) -> float:
        return metric(self.hb.metrics(), "heartbeatd_api_requests_total", BATCH_ROUTE)

    def test_heartbeats_from_many_threads_go_out_together(self) -> None:
        before = self.batches()
        with HeartbeatBatcher(self.hb, interval=0.3) as batcher:
            def gateway(first: int) -> None:
                for u in range(first, first + 4):
                    batcher.add(u)
                    batcher.add(str(u))  # twice in one batch: sent once

            threads = [threading.Thread(target=gateway, args=(1000 + 10 * t,)) for t in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            eventually(lambda: batcher.accepted == 12, 10, "12 heartbeats sent")
            self.assertEqual(batcher.failures, 0)
            self.assertEqual(batcher.pending, 0)
        users = [1000 + 10 * t + i for t in range(3) for i in range(4)]
        self.assertTrue(all(s.online for s in self.hb.status_many(users)))
        # 12 distinct ids in (usually) one batch of the batcher, split at max_batch 5: 3
        # requests; at most 2 batches if the threads straddled the interval.
        self.assertIn(self.batches() - before, (3.0, 4.0))
        self.assertIn(batcher.requests, (1, 2))

    def test_a_full_batch_goes_out_before_the_interval(self) -> None:
        with HeartbeatBatcher(self.hb, interval=60, max_size=3) as batcher:
            started = time.monotonic()
            batcher.add_many([2001, 2002, 2003])
            eventually(lambda: batcher.accepted == 3, 10, "the full batch sent")
            self.assertLess(time.monotonic() - started, 30)
            batcher.add(2004)
            self.assertEqual(batcher.pending, 1)  # waits for the interval, or close()
        self.assertEqual(batcher.accepted, 4)  # close() sent the rest
        self.assertTrue(self.hb.is_online(2004))
        with self.assertRaises(RuntimeError):
            batcher.add(1)

    def test_flush_sends_now(self) -> None:
        with HeartbeatBatcher(self.hb, interval=60) as batcher:
            batcher.add_many([3001, "3001", 3002])
            self.assertEqual(batcher.flush(), 2)
            self.assertEqual(batcher.flush(), 0)
            with self.assertRaises(ValueError):
                batcher.add("-1")

    def test_a_failed_batch_goes_to_on_error(self) -> None:
        failed: List[Tuple[BaseException, List[int]]] = []
        gone = Client(socket=self.daemon.file("nothing.sock"))
        with HeartbeatBatcher(gone, interval=0.05, on_error=lambda e, u: failed.append((e, u))) as b:
            b.add_many([1, 2])
            eventually(lambda: failed, 10, "on_error called")
        self.assertIsInstance(failed[0][0], NetworkError)
        self.assertEqual(failed[0][1], [1, 2])
        self.assertEqual((b.failures, b.accepted), (1, 0))


if __name__ == "__main__":
    unittest.main()
