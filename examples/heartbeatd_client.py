#!/usr/bin/env python3
"""A heartbeatd client in plain Python 3 (standard library only).

Talks to the local daemon over its Unix socket (default) or TCP, with the routes of
docs/API.md:

    from heartbeatd_client import Client
    hb = Client(socket_path="/run/heartbeatd/heartbeatd.sock")   # or Client(http="127.0.0.1:7700")
    # HTTPS (api.tls): Client(http="https://db-3:7700", cafile="ca.pem"[, certfile=, keyfile=])
    hb.heartbeat(42)                  # user 42 is online
    hb.heartbeat_many([1, 2, 3])      # a gateway's batch -> 3 accepted
    hb.is_online(42)                  # True
    hb.status([42, 7])                # [{"user": 42, "online": True, "last_seen_ms": ...}, ...]
    hb.members()                      # [{"name": "db-1", "state": "alive", ...}, ...]
    for e in hb.events(users=[42], members=["db-1"]):   # GET /v1/events, as changes happen
        print(e)                      # {"event": "user", "user": 42, "online": False, ...}

As a command:

    python3 examples/heartbeatd_client.py --socket PATH status 1 2 3
    python3 examples/heartbeatd_client.py watch --users 42 --members db-1   # JSON lines
    python3 examples/heartbeatd_client.py --http 10.0.0.5:7700 --token-file ~/.hb-token status 1

API token (docs/API.md, "Tokens and scopes"): Client(token=...), else $HEARTBEATD_TOKEN; on
the command line --token-file FILE wins over $HEARTBEATD_TOKEN. A token file others may read
is refused. The token is never printed.

Exit codes as heartbeatctl's: 0 online/success, 1 offline or the daemon refused the request,
2 usage error, 3 daemon unreachable.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import ssl
import sys


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix stream socket: only connect() differs."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ApiError(Exception):
    """The daemon answered with an error status (docs/API.md, "Errors")."""

    def __init__(self, status, error, message):
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error


def read_token_file(path):
    """The token on the first line of `path`; ValueError if others may read or write the
    file or its first line is not a token (messages never quote the token)."""
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


def default_socket():
    """The socket heartbeatctl uses without --socket (heartbeatctl --help)."""
    if os.environ.get("HEARTBEATD_SOCKET"):
        return os.environ["HEARTBEATD_SOCKET"]
    if os.path.exists("/run/heartbeatd/heartbeatd.sock"):
        return "/run/heartbeatd/heartbeatd.sock"
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "heartbeatd.sock")
    return f"/tmp/heartbeatd-{os.getuid()}/heartbeatd.sock"


class Client:
    def __init__(self, socket_path=None, http=None, timeout=5.0, token=None, cafile=None,
                 certfile=None, keyfile=None):
        """socket_path: the daemon's Unix socket; or http: "host:port" ("[::1]:7700"), or
        "https://host:port" for a daemon with api.tls: its certificate is verified against
        cafile (default: the system's CAs); certfile and keyfile are a client certificate
        (mutual TLS, api.tls.client_ca_file).
        token: the API token sent as "Authorization: Bearer" (default: $HEARTBEATD_TOKEN)."""
        self.socket_path = None if http else (socket_path or default_socket())
        self.tls = None
        if http and http.startswith("https://"):
            self.tls = ssl.create_default_context(cafile=cafile)
            self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
            if certfile:
                self.tls.load_cert_chain(certfile, keyfile)
        self.http = http.split("://", 1)[-1] if http else http
        self.timeout = timeout
        self.token = token or os.environ.get("HEARTBEATD_TOKEN") or None

    def _headers(self, headers):
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        return headers

    def _connection(self):
        if self.socket_path:
            return UnixHTTPConnection(self.socket_path, self.timeout)
        host, _, port = self.http.rpartition(":")
        if self.tls:
            return http.client.HTTPSConnection(host.strip("[]"), int(port), timeout=self.timeout,
                                               context=self.tls)
        return http.client.HTTPConnection(host.strip("[]"), int(port), timeout=self.timeout)

    @staticmethod
    def _raise_for(response, data):
        try:
            err = json.loads(data)
            raise ApiError(response.status, err["error"], err["message"])
        except (ValueError, KeyError, TypeError):
            raise ApiError(response.status, response.reason, data.decode(errors="replace"))

    def _call(self, method, path, body=None):
        """One request; the decoded JSON answer (None for 204). Raises ApiError or OSError."""
        conn = self._connection()
        try:
            headers = self._headers({"Content-Type": "application/json"} if body is not None else {})
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status >= 400:
            self._raise_for(response, data)
        return json.loads(data) if data else None

    def events(self, users=(), members=None):
        """Yields GET /v1/events as dicts with an "event" key ("member", "user", "dropped"):
        first the current state ("initial": True), then changes as they happen. users: ids to
        follow; members: names to follow (None: all, []: none). Ends when the daemon closes
        the stream (it stopped, or dropped this slow reader after a "dropped" event)."""
        query = []
        if users:
            query.append("users=" + ",".join(str(int(u)) for u in users))
        if members is not None:
            query.append("members=" + ",".join(members))
        conn = self._connection()
        try:
            conn.connect()
            sock = conn.sock  # the response takes it over (Connection: close)
            conn.request("GET", "/v1/events" + ("?" + "&".join(query) if query else ""),
                         headers=self._headers({"Accept": "text/event-stream"}))
            response = conn.getresponse()
            if response.status != 200:
                self._raise_for(response, response.read())
            sock.settimeout(None)  # a quiet stream is fine: the daemon sends keepalives
            event, data = None, []
            while True:
                line = response.readline()
                if not line:
                    return
                line = line.decode().rstrip("\r\n")
                if not line:  # a blank line ends an event
                    if data:
                        yield {"event": event or "message", **json.loads("\n".join(data))}
                    event, data = None, []
                elif not line.startswith(":"):  # ":" starts a comment (keepalive)
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
        finally:
            conn.close()

    def heartbeat(self, user):
        self._call("POST", f"/v1/users/{int(user)}/heartbeat")

    def heartbeat_many(self, users):
        """Returns how many heartbeats the daemon accepted."""
        return self._call("POST", "/v1/users/heartbeat", {"users": [int(u) for u in users]})["accepted"]

    def is_online(self, user):
        return self._call("GET", f"/v1/users/{int(user)}")["online"]

    def status(self, users):
        """[{"user": id, "online": bool, "last_seen_ms": int or None}, ...] in request order."""
        return self._call("POST", "/v1/users/status", {"users": [int(u) for u in users]})["users"]

    def members(self):
        return self._call("GET", "/v1/members")["members"]


def user_id(text):
    """argparse type: an unsigned 64-bit id in decimal, as the daemon accepts."""
    if not text.isdigit() or not text.isascii() or int(text) >= 2**64:
        raise argparse.ArgumentTypeError(f"bad user id '{text}': expected 0 to 18446744073709551615")
    return int(text)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    parser = argparse.ArgumentParser(description="Ask the local heartbeatd about users and members.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", help="the daemon's Unix socket (default as heartbeatctl's)")
    where.add_argument("--http", metavar="HOST:PORT",
                       help="use TCP, such as 127.0.0.1:7700; https://HOST:PORT for HTTPS")
    parser.add_argument("--ca-file", help="HTTPS: the CA to verify the daemon with (PEM)")
    parser.add_argument("--cert", help="HTTPS: client certificate (PEM), with --key")
    parser.add_argument("--key", help="HTTPS: the client certificate's private key (PEM)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--token-file", metavar="FILE",
                        help="API token on FILE's first line (default: $HEARTBEATD_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("heartbeat", help="report users online").add_argument("users", type=user_id, nargs="+")
    commands.add_parser("online", help="exit 0 if the user is online").add_argument("user", type=user_id)
    commands.add_parser("status", help="one line per user").add_argument("users", type=user_id, nargs="+")
    commands.add_parser("members", help="the cluster as this node sees it")
    watch = commands.add_parser("watch", help="print events as JSON lines until the stream ends")
    watch.add_argument("--users", type=lambda t: [user_id(u) for u in t.split(",") if u], default=[])
    watch.add_argument("--members", type=lambda t: [m for m in t.split(",") if m], default=None)
    args = parser.parse_args(argv)

    token = None
    if args.token_file:
        try:
            token = read_token_file(args.token_file)
        except (OSError, ValueError) as e:
            print(f"heartbeatd_client: --token-file {e}", file=sys.stderr)
            return 2
    hb = Client(socket_path=args.socket, http=args.http, timeout=args.timeout, token=token,
                cafile=args.ca_file, certfile=args.cert, keyfile=args.key)
    try:
        if args.command == "heartbeat":
            if len(args.users) == 1:
                hb.heartbeat(args.users[0])
                print(f"heartbeat {args.users[0]}")
            else:
                print(f"accepted {hb.heartbeat_many(args.users)}")
            return 0
        if args.command == "online":
            online = hb.is_online(args.user)
            print(f"{args.user} {'online' if online else 'offline'}")
            return 0 if online else 1
        if args.command == "status":
            answers = hb.status(args.users)
            for u in answers:
                print(f"{u['user']} {'online' if u['online'] else 'offline'}")
            return 0 if all(u["online"] for u in answers) else 1
        if args.command == "watch":
            signal.signal(signal.SIGTERM, _interrupt)
            for e in hb.events(users=args.users, members=args.members):
                print(json.dumps(e), flush=True)
                if e["event"] == "dropped":
                    return 1
            print("heartbeatd closed the event stream", file=sys.stderr)
            return 3
        for m in hb.members():
            print(f"{m['name']} {m['address']} {m['state']}")
        return 0
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM ends a watch
        return 0
    except ApiError as e:
        if e.status == 401:
            print(f"heartbeatd wants a valid API token: {e}. Give one with --token-file FILE or "
                  "HEARTBEATD_TOKEN", file=sys.stderr)
            return 1
        if e.status == 403:
            print(f"heartbeatd: this token (or, on the socket, this user) may not do that: {e}",
                  file=sys.stderr)
            return 1
        print(f"heartbeatd: {e}", file=sys.stderr)
        return 3 if e.status >= 500 else 1
    except (OSError, http.client.HTTPException, ValueError) as e:
        target = (args.http if "://" in args.http else f"http://{args.http}") if args.http else hb.socket_path
        print(f"cannot reach heartbeatd at {target}: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
