"""A real heartbeatd for the tests: started from $HEARTBEATD_BIN with a temporary config,
waited for with a deadline, stopped on teardown."""

from __future__ import annotations

import faulthandler
import http.client
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Any, Callable, Dict, List, Optional

# The whole suite is bounded: a hang prints every thread's stack and exits.
faulthandler.dump_traceback_later(int(os.environ.get("HEARTBEATD_TEST_TIMEOUT", "170")), exit=True)

FULL_TOKEN = "full-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"


def binary() -> str:
    path = os.environ.get("HEARTBEATD_BIN", "")
    if not path or not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"HEARTBEATD_BIN ({path!r}) is not an executable heartbeatd: "
                                "run clients/python/run_tests PATH/TO/heartbeatd")
    return path


def eventually(condition: Callable[[], Any], deadline: float = 10.0, what: str = "condition") -> Any:
    """condition()'s first truthy value, polled until `deadline` seconds; AssertionError after."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not true within {deadline} s")
        time.sleep(0.02)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_yaml(config: Dict[str, Any], indent: int = 0) -> str:
    out = ""
    for key, value in config.items():
        if isinstance(value, dict):
            out += " " * indent + f"{key}:\n" + render_yaml(value, indent + 2)
        else:
            text = value if not isinstance(value, bool) else ("true" if value else "false")
            out += " " * indent + f"{key}: {text}\n"
    return out


def merge(base: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Daemon:
    """One heartbeatd on loopback: a Unix socket, api.http on a free port, a tokens file
    (FULL_TOKEN: every scope; READ_TOKEN: read) unless tokens=False. restart() keeps the
    ports, socket and data_dir."""

    def __init__(self, config: Optional[Dict[str, Any]] = None, tokens: bool = True):
        self.dir = tempfile.mkdtemp(prefix="hb-py-")
        self.socket_path = os.path.join(self.dir, "api.sock")
        self.extra = config or {}
        self.tokens = tokens
        self.port = 0
        self.cluster_port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(self.dir, "heartbeatd.log")
        if tokens:
            path = os.path.join(self.dir, "tokens")
            with open(path, "w") as f:
                f.write(f"full read,write,admin,metrics {FULL_TOKEN}\nreader read {READ_TOKEN}\n")
            os.chmod(path, 0o600)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def file(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _write_config(self) -> str:
        config = {
            "node": {"name": "py-test", "data_dir": self.file("data")},
            "api": {"unix_socket": self.socket_path, "http": f"127.0.0.1:{self.port}",
                    "threads": 2},
            "cluster": {"bind": f'"127.0.0.1:{self.cluster_port}"'},
            "log": {"level": "info"},
        }
        if self.tokens:
            config["api"]["tokens_file"] = self.file("tokens")
        config = merge(config, self.extra)
        path = self.file("heartbeatd.yaml")
        with open(path, "w") as f:
            f.write(render_yaml(config))
        return path

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def _ready(self) -> bool:
        conn = http.client.HTTPConnection("localhost", timeout=1)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(1)
            s.connect(self.socket_path)
            conn.sock = s
            conn.request("GET", "/v1/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()
            s.close()

    def start(self, deadline: float = 15.0, new_ports: bool = True) -> "Daemon":
        for attempt in range(5):
            if new_ports or not self.port:
                self.port, self.cluster_port = free_port(), free_port(socket.SOCK_DGRAM)
            config = self._write_config()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([binary(), "--config", config], stdout=log,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            end = time.monotonic() + deadline
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    break
                if self._ready():
                    return self
                time.sleep(0.02)
            if self.proc.poll() is None:
                self.stop()
                raise AssertionError(f"heartbeatd not ready within {deadline} s:\n{self.log()}")
            if self.proc.returncode != 1:  # 1: an address in use; anything else is a failure
                raise AssertionError(f"heartbeatd exited {self.proc.returncode}:\n{self.log()}")
            if not new_ports:  # the old ports may linger a moment: try again with a deadline
                time.sleep(0.2)
        raise AssertionError(f"heartbeatd could not start:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start(new_ports=False)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Collector:
    """Iterates an event stream on a thread, so a test can wait for events with deadlines."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.events: "queue.Queue[Any]" = queue.Queue()
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for e in self.stream:
                self.events.put(e)
        except BaseException as e:  # noqa: B902 - reported to the test
            self.error = e
        finally:
            self.done.set()

    def next(self, deadline: float = 10.0) -> Any:
        try:
            return self.events.get(timeout=deadline)
        except queue.Empty:
            raise AssertionError(f"no event within {deadline} s (stream error: {self.error!r})") from None

    def until(self, match: Callable[[Any], bool], deadline: float = 10.0) -> List[Any]:
        """Events up to and including the first that matches."""
        seen: List[Any] = []
        end = time.monotonic() + deadline
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {deadline} s; saw {seen}")
            e = self.next(left)
            seen.append(e)
            if match(e):
                return seen

    def close(self) -> None:
        self.stream.close()
        self.thread.join(5)
        assert not self.thread.is_alive(), "the stream did not end within 5 s of close()"


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of sample `name{labels}` in a Prometheus text, 0 if absent."""
    prefix = name + ("{" + labels + "}" if labels else "") + " "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):].split()[0])
    return 0.0


def python_env() -> Dict[str, str]:
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("HEARTBEATD_TOKEN", None)
    return env


def run_cli(args: List[str], env: Optional[Dict[str, str]] = None,
            timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "heartbeatd", *args], env=env or python_env(),
                          capture_output=True, text=True, timeout=timeout)
