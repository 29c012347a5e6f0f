"""python -m heartbeatd against a real daemon (tests/heartbeatctl_test.cpp runs it too)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import unittest

from support import FULL_TOKEN, Daemon, eventually, python_env, run_cli


class CliTest(unittest.TestCase):
    daemon: Daemon

    @classmethod
    def setUpClass(cls) -> None:
        cls.daemon = Daemon({"presence": {"max_batch": 3}})
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.daemon.cleanup()

    def test_commands_and_exit_codes(self) -> None:
        sock = ["--socket", self.daemon.socket_path]
        r = run_cli(sock + ["heartbeat", "1", "2", "3", "4", "18446744073709551615"])
        self.assertEqual((r.returncode, r.stdout), (0, "accepted 5\n"), r.stderr)  # 3 + 2
        r = run_cli(sock + ["status", "18446744073709551615", "9"])
        self.assertEqual((r.returncode, r.stdout), (1, "18446744073709551615 online\n9 offline\n"))
        r = run_cli(sock + ["online", "1"])
        self.assertEqual((r.returncode, r.stdout), (0, "1 online\n"))
        r = run_cli(sock + ["logout", "1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(run_cli(sock + ["online", "1"]).returncode, 1)
        r = run_cli(sock + ["member", "py-test"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(" alive", r.stdout)
        r = run_cli(sock + ["counts"])
        self.assertTrue(r.stdout.startswith("online "), r.stdout)
        r = run_cli(sock + ["health"])
        self.assertEqual(json.loads(r.stdout)["node"], "py-test")
        r = run_cli(sock + ["status", "abc"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("abc", r.stderr)
        r = run_cli(sock + ["members", "--state", "alive,suspect", "--name", "py-*"])
        self.assertEqual((r.returncode, r.stdout.split()[::2]), (0, ["py-test", "alive"]), r.stderr)
        r = run_cli(sock + ["members", "--tag", "role", "--tag", "zone:a b"])
        self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)  # this node has no tags
        r = run_cli(sock + ["members", "--state", "zombie"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--state: unknown state 'zombie'", r.stderr)
        r = run_cli(["--socket", self.daemon.file("none.sock"), "members"])
        self.assertEqual(r.returncode, 3)
        self.assertIn("cannot reach heartbeatd", r.stderr)

    def test_tokens(self) -> None:
        tcp = ["--http", f"127.0.0.1:{self.daemon.port}"]
        r = run_cli(tcp + ["heartbeat", "6"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("heartbeatd wants a valid API token: 401 unauthenticated", r.stderr)
        env = python_env()
        env["HEARTBEATD_TOKEN"] = FULL_TOKEN
        r = run_cli(tcp + ["heartbeat", "6"], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        path = self.daemon.file("cli-token")
        with open(path, "w") as f:
            f.write(FULL_TOKEN + "\n")
        os.chmod(path, 0o644)
        r = run_cli(tcp + ["--token-file", path, "online", "6"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("readable or writable by others", r.stderr)
        self.assertNotIn(FULL_TOKEN, r.stderr + r.stdout)

    def test_watch_prints_json_lines_and_resumes_after_a_restart(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "heartbeatd", "--socket", self.daemon.socket_path, "watch",
             "--users", "555", "--members", ""],
            env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()

        def event() -> dict:
            try:
                return json.loads(lines.get(timeout=10))
            except queue.Empty:
                raise AssertionError("no event line within 10 s") from None

        try:
            first = event()
            self.assertEqual((first["event"], first["user"], first["online"], first["initial"]),
                             ("user", 555, False, True))
            run_cli(["--socket", self.daemon.socket_path, "heartbeat", "555"])
            second = event()
            self.assertEqual((second["online"], second["initial"]), (True, False))
            self.daemon.restart()
            # The stream comes back: 555 is still online (suppressed), its logout is news.
            eventually(lambda: run_cli(["--socket", self.daemon.socket_path, "logout", "555"])
                       .returncode == 0, 10, "logout after the restart")
            third = event()
            self.assertEqual((third["user"], third["online"]), (555, False))
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn("event stream lost", err)


if __name__ == "__main__":
    unittest.main()
