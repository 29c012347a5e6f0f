"""The command line: python -m heartbeatd [--socket PATH | --http URL] COMMAND ...

Exit codes as heartbeatctl's: 0 online/success, 1 offline or the daemon refused the request,
2 usage error, 3 daemon unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import List, Optional

from .client import Client, read_token_file
from .errors import ApiError, HeartbeatdError, NetworkError
from .events import StreamState
from .types import Dropped, event_to_json, user_id

PROG = "heartbeatd"


def _user_arg(text: str) -> int:
    try:
        return user_id(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad user id '{text}': expected 0 to 18446744073709551615") from None


def _parser() -> argparse.ArgumentParser:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    parser = argparse.ArgumentParser(
        prog="python -m heartbeatd" if name in ("", "__main__.py", "-c") else name,
        description="Ask a heartbeatd node about users and members (docs/API.md).")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", help="the daemon's Unix socket (default as heartbeatctl's)")
    where.add_argument("--http", "--url", dest="url", metavar="URL",
                       help="use TCP: HOST:PORT or http://HOST:PORT, https://HOST:PORT for HTTPS")
    parser.add_argument("--ca-file", help="HTTPS: the CA to verify the daemon with (PEM)")
    parser.add_argument("--cert", help="HTTPS: client certificate (PEM), with --key")
    parser.add_argument("--key", help="HTTPS: the client certificate's private key (PEM)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--token-file", metavar="FILE",
                        help="API token on FILE's first line (default: $HEARTBEATD_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("heartbeat", help="report users online (a batch for several)") \
        .add_argument("users", type=_user_arg, nargs="+")
    commands.add_parser("online", help="exit 0 if the user is online, 1 if not") \
        .add_argument("user", type=_user_arg)
    commands.add_parser("status", help="one line per user: ID online|offline") \
        .add_argument("users", type=_user_arg, nargs="+")
    commands.add_parser("logout", help="mark a user offline now").add_argument("user", type=_user_arg)
    commands.add_parser("counts", help="users online and tracked")
    commands.add_parser("history", help="the online count over the last hour")
    members = commands.add_parser(
        "members", help="the cluster as this node sees it: NAME ADDRESS STATE [TAGS as JSON]")
    members.add_argument("--state", help="only members in this state (several: alive,suspect)")
    members.add_argument("--name", help="only names matching this pattern (* and ?)")
    members.add_argument("--tag", action="append", default=None,
                         help="only members with this tag, KEY:VALUE or KEY (repeatable: all must match)")
    commands.add_parser("member", help="one member; exit 0 if alive").add_argument("name")
    commands.add_parser("health", help="the daemon's health, as JSON")
    commands.add_parser("keys", help="the cluster keyring (scope admin)")
    watch = commands.add_parser(
        "watch", help="print events as JSON lines; reconnects and resumes until interrupted")
    watch.add_argument("--users", type=lambda t: [_user_arg(u) for u in t.split(",") if u],
                       default=[], help="ids to follow, comma-separated")
    watch.add_argument("--members", type=lambda t: [m for m in t.split(",") if m], default=None,
                       help="member names to follow (default all; '' none)")
    watch.add_argument("--once", action="store_true",
                       help="end when the stream ends (exit 3) instead of reconnecting")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _watch(hb: Client, args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _interrupt)

    def on_state(s: StreamState) -> None:
        if s.state == "disconnected":
            again = f"; reconnecting in {s.retry_in:.1f} s" if s.retry_in is not None else ""
            print(f"{PROG}: event stream lost ({s.error}){again}", file=sys.stderr, flush=True)
        elif s.state == "connected" and stream.connections > 1:
            print(f"{PROG}: event stream resumed", file=sys.stderr, flush=True)

    stream = hb.events(users=args.users, members=args.members, reconnect=not args.once,
                       on_state=on_state)
    with stream:
        for e in stream:
            print(json.dumps(event_to_json(e)), flush=True)
            if isinstance(e, Dropped) and args.once:
                return 1
    print("heartbeatd closed the event stream", file=sys.stderr)
    return 3


def _run(hb: Client, args: argparse.Namespace) -> int:
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
        answers = hb.status_many(args.users)
        for u in answers:
            print(f"{u.user} {'online' if u.online else 'offline'}")
        return 0 if all(u.online for u in answers) else 1
    if args.command == "logout":
        hb.logout(args.user)
        print(f"{args.user} offline")
        return 0
    if args.command == "counts":
        c = hb.counts()
        print(f"online {c.online}\ntracked {c.tracked}")
        return 0
    if args.command == "history":
        h = hb.history()
        for p in h.points:
            print(f"{p.time_ms} {p.online} {p.tracked}")
        return 0
    if args.command == "members":
        try:
            members = hb.iter_members(state=args.state, name=args.name, tag=args.tag)
        except ValueError as e:
            print(f"{PROG}: --{e}", file=sys.stderr)
            return 2
        for m in members:
            tags = " " + json.dumps(m.tags, separators=(",", ":")) if m.tags else ""
            print(f"{m.name} {m.address} {m.state}{tags}")
        return 0
    if args.command == "member":
        m = hb.member(args.name)
        print(f"{m.name} {m.address} {m.state}")
        return 0 if m.alive else 1
    if args.command == "health":
        h = hb.health()
        print(json.dumps(h.raw))
        return 0 if h.status == "ok" else 1
    if args.command == "keys":
        k = hb.keys()
        for key in k.keys:
            print(f"{key.fingerprint} {'primary' if key.primary else '-'} {key.members}")
        print(f"plaintext {k.plaintext_members}\nunknown {k.unknown_members}")
        return 0
    return _watch(hb, args)


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    token = None
    if args.token_file:
        try:
            token = read_token_file(args.token_file)
        except (OSError, ValueError) as e:
            print(f"{PROG}: --token-file {e}", file=sys.stderr)
            return 2
    try:
        hb = Client(socket=args.socket, url=args.url, timeout=args.timeout, token=token,
                    cafile=args.ca_file, certfile=args.cert, keyfile=args.key)
    except (OSError, ValueError) as e:  # a bad URL, an unreadable CA or certificate file
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    try:
        with hb:
            return _run(hb, args)
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
    except NetworkError as e:
        print(str(e), file=sys.stderr)
        return 3
    except HeartbeatdError as e:  # ProtocolError: something else answered
        print(f"heartbeatd: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
