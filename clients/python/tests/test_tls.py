"""HTTPS (api.tls) with a throwaway CA made by the openssl CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import unittest

from heartbeatd import Client, NetworkError

from support import FULL_TOKEN, Collector, Daemon


def make_ca_and_server_cert(directory: str) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True,
                       timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    # keyUsage on the CA: Python 3.13 verifies strictly (VERIFY_X509_STRICT) and wants it.
    run("req", "-x509", *ec, "-days", "2", "-subj", "/CN=heartbeatd-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", "ca.key", "-out", "ca.pem")
    run("req", *ec, "-subj", "/CN=py-test", "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(directory, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", "1001", "-days", "2", "-extfile", "san.ext", "-out", "server.pem")
    os.chmod(os.path.join(directory, "server.key"), 0o600)
    # A client certificate from the same CA, for mutual TLS.
    run("req", *ec, "-subj", "/CN=gateway", "-keyout", "client.key", "-out", "client.csr")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", "1002", "-days", "2", "-out", "client.pem")


@unittest.skipIf(shutil.which("openssl") is None, "the openssl CLI is not installed: TLS not tested")
class TlsTest(unittest.TestCase):
    daemon: Daemon

    @classmethod
    def setUpClass(cls) -> None:
        cls.daemon = Daemon()
        make_ca_and_server_cert(cls.daemon.dir)
        cls.daemon.extra = {"api": {"tls": {"cert_file": cls.daemon.file("server.pem"),
                                            "key_file": cls.daemon.file("server.key")}}}
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.daemon.cleanup()

    def url(self) -> str:
        return f"https://127.0.0.1:{self.daemon.port}"

    def test_calls_and_events_over_https_on_one_connection(self) -> None:
        with Client(url=self.url(), cafile=self.daemon.file("ca.pem"), token=FULL_TOKEN) as hb:
            for i in range(10):
                hb.heartbeat(900 + i)
            self.assertEqual(hb.heartbeat_many(range(900, 910)), 10)
            self.assertTrue(all(s.online for s in hb.status_many(range(900, 910))))
            self.assertEqual(hb.connections_opened, 1)
            events = Collector(hb.events(users=[2**64 - 1], members=[]))
            self.addCleanup(events.close)
            first = events.next()
            self.assertEqual((first.user, first.online, first.initial), (2**64 - 1, False, True))
            hb.heartbeat(2**64 - 1)
            online = events.next()
            self.assertEqual((online.user, online.online, online.initial), (2**64 - 1, True, False))
            events.close()  # the stream's own connection, over TLS too: close() ends it

    def test_the_certificate_is_verified(self) -> None:
        with Client(url=self.url(), token=FULL_TOKEN) as hb:  # the system's CAs: not ours
            with self.assertRaises(NetworkError) as e:
                hb.health()
        self.assertIn("certificate verify failed", str(e.exception))
        # Plain HTTP to the TLS port fails clearly too.
        with Client(url=f"http://127.0.0.1:{self.daemon.port}", token=FULL_TOKEN,
                    timeout=5) as hb:
            with self.assertRaises(NetworkError):
                hb.health()


@unittest.skipIf(shutil.which("openssl") is None, "the openssl CLI is not installed: TLS not tested")
class MutualTlsTest(unittest.TestCase):
    def test_a_client_certificate_is_presented(self) -> None:
        daemon = Daemon()
        self.addCleanup(daemon.cleanup)
        make_ca_and_server_cert(daemon.dir)
        daemon.extra = {"api": {"tls": {"cert_file": daemon.file("server.pem"),
                                        "key_file": daemon.file("server.key"),
                                        "client_ca_file": daemon.file("ca.pem")}}}
        daemon.start()
        url = f"https://127.0.0.1:{daemon.port}"
        with Client(url=url, cafile=daemon.file("ca.pem"), certfile=daemon.file("client.pem"),
                    keyfile=daemon.file("client.key"), token=FULL_TOKEN) as hb:
            self.assertEqual(hb.heartbeat_many([1, 2]), 2)
            self.assertTrue(hb.is_online(2))
        with Client(url=url, cafile=daemon.file("ca.pem"), token=FULL_TOKEN) as hb:
            with self.assertRaises(NetworkError):  # no certificate: the handshake fails
                hb.health()


if __name__ == "__main__":
    unittest.main()
