"""Members against a real two-node cluster: tags, filters, pages, ETag/304, bad input."""

from __future__ import annotations

import json
import unittest
from urllib.parse import parse_qsl

from heartbeatd import ApiError, Client, Member, MemberEvent, MemberPage
from heartbeatd.client import member_query

from support import Collector, Daemon, eventually, run_cli

# A tag value with every character that means something in a query string.
ODD_VALUE = "x y:&#%+z"
A_TAGS = {"role": "db", "zone": "b"}
B_TAGS = {"role": "web", "note": ODD_VALUE}


class MembersTest(unittest.TestCase):
    a: Daemon
    b: Daemon

    @classmethod
    def setUpClass(cls) -> None:
        cls.a = Daemon({"node": {"name": "py-a", "tags": {"role": "db", "zone": "b"}}})
        cls.a.start()
        cls.b = Daemon({"node": {"name": "py-b",
                                 "tags": {"role": "web", "note": '"x y:&#%+z"'}}})
        try:
            cls.b.extra["cluster"] = {"seeds": f'["127.0.0.1:{cls.a.cluster_port}"]'}
            cls.b.start()
            with Client(socket=cls.a.socket_path) as hb:
                # Both alive, and b's tags have reached a.
                eventually(lambda: [(m.name, m.state, m.tags) for m in hb.members()] ==
                           [("py-a", "alive", A_TAGS), ("py-b", "alive", B_TAGS)],
                           deadline=15, what="a two-node cluster with tags")
        except BaseException:
            cls.b.cleanup()
            cls.a.cleanup()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls.b.cleanup()
        cls.a.cleanup()

    def client(self) -> Client:
        c = Client(socket=self.a.socket_path)
        self.addCleanup(c.close)
        return c

    def names(self, members) -> list:
        return [m.name for m in members]

    def test_members_carry_tags(self) -> None:
        hb = self.client()
        self.assertEqual(hb.member("py-a").tags, A_TAGS)
        self.assertEqual(hb.member("py-b").tags, B_TAGS)
        self.assertTrue(hb.member("py-a").is_self)

    def test_member_events_carry_tags(self) -> None:
        events = Collector(self.client().events(members=["py-b"]))
        try:
            first = events.until(lambda e: isinstance(e, MemberEvent))[-1]
        finally:
            events.close()
        self.assertEqual((first.name, first.initial, first.tags), ("py-b", True, B_TAGS))

    def test_daemons_before_tags_still_parse(self) -> None:
        old = {"name": "n", "address": "127.0.0.1:1", "state": "alive", "incarnation": 0,
               "last_seen_ms": None, "self": False}
        self.assertEqual(Member.from_json(old).tags, {})
        self.assertEqual(MemberEvent.from_json(dict(old, time_ms=1, previous=None)).tags, {})
        hash(Member.from_json(dict(old, tags={"a": "b"})))  # still hashable
        with self.assertRaises(ValueError):
            Member.from_json(dict(old, tags={"a": 1}))

    def test_state_filter(self) -> None:
        hb = self.client()
        self.assertEqual(self.names(hb.members(state="alive")), ["py-a", "py-b"])
        self.assertEqual(hb.members(state="dead"), [])
        self.assertEqual(self.names(hb.members(state=["dead", "alive"])), ["py-a", "py-b"])
        self.assertEqual(self.names(hb.members(state="suspect,alive")), ["py-a", "py-b"])
        self.assertEqual(hb.members(state=("dead", "left", "suspect")), [])

    def test_name_filter(self) -> None:
        hb = self.client()
        self.assertEqual(self.names(hb.members(name="py-?")), ["py-a", "py-b"])
        self.assertEqual(self.names(hb.members(name="*b")), ["py-b"])
        self.assertEqual(hb.members(name="db-*"), [])

    def test_tag_filter(self) -> None:
        hb = self.client()
        self.assertEqual(self.names(hb.members(tag="role:db")), ["py-a"])
        self.assertEqual(self.names(hb.members(tag="role")), ["py-a", "py-b"])
        self.assertEqual(self.names(hb.members(tag=["role:db", "zone:b"])), ["py-a"])
        self.assertEqual(hb.members(tag=["role:db", "zone:a"]), [])
        self.assertEqual(self.names(hb.members(tag={"zone": None})), ["py-a"])
        # Percent-encoding: a space, ':', '&', '#', '%' and '+' all reach the daemon intact.
        self.assertEqual(self.names(hb.members(tag="note:" + ODD_VALUE)), ["py-b"])
        self.assertEqual(self.names(hb.members(tag={"note": ODD_VALUE})), ["py-b"])
        self.assertEqual(hb.members(tag="note:x y"), [])
        self.assertEqual(self.names(hb.members(state="alive", name="py-*", tag="role:web")),
                         ["py-b"])

    def test_the_cli_filters_and_prints_tags(self) -> None:
        r = run_cli(["--socket", self.a.socket_path, "members", "--tag", "note:" + ODD_VALUE])
        self.assertEqual(r.returncode, 0, r.stderr)
        name, _, state, tags = r.stdout.rstrip("\n").split(" ", 3)
        self.assertEqual((name, state, json.loads(tags)), ("py-b", "alive", B_TAGS))

    def test_query_encoding(self) -> None:
        query = member_query(["alive", "dead"], "py-?", {"note": ODD_VALUE, "role": None}, 5,
                             "cHktYQ")
        self.assertNotIn(" ", query)
        self.assertEqual(query.count("&"), 6)
        self.assertEqual(parse_qsl(query), [("state", "alive"), ("state", "dead"),
                                            ("name", "py-?"), ("tag", "note:" + ODD_VALUE),
                                            ("tag", "role"), ("limit", "5"),
                                            ("cursor", "cHktYQ")])
        self.assertEqual(member_query(), "")

    def test_pages(self) -> None:
        hb = self.client()
        first = hb.members_page(limit=1)
        self.assertEqual(self.names(first.members), ["py-a"])
        self.assertIsInstance(first.next_cursor, str)
        self.assertFalse(first.not_modified)
        second = hb.members_page(limit=1, cursor=first.next_cursor)
        self.assertEqual(self.names(second.members), ["py-b"])
        self.assertIsNone(second.next_cursor)  # the last full page already says so
        whole = hb.members_page(limit=2)
        self.assertEqual((self.names(whole.members), whole.next_cursor), (["py-a", "py-b"], None))
        self.assertIsNone(hb.members_page().next_cursor)  # no limit: no next_cursor
        # Filters hold across pages.
        one = hb.members_page(tag="role", name="py-*", limit=1)
        two = hb.members_page(tag="role", name="py-*", limit=1, cursor=one.next_cursor)
        self.assertEqual(self.names(one.members + two.members), ["py-a", "py-b"])

    def test_iter_members_walks_every_page(self) -> None:
        hb = self.client()
        pages = []
        real = hb.members_page

        def counting(*args, **kw) -> MemberPage:
            page = real(*args, **kw)
            pages.append(kw.get("cursor"))
            return page

        hb.members_page = counting  # type: ignore[method-assign]
        self.assertEqual(self.names(hb.iter_members(page_size=1)), ["py-a", "py-b"])
        self.assertEqual(len(pages), 2)
        self.assertIsNone(pages[0])
        self.assertEqual(self.names(hb.iter_members(state="alive", tag="role:web")), ["py-b"])
        self.assertEqual(list(hb.iter_members(state="left", page_size=1)), [])

    def test_etag_and_not_modified(self) -> None:
        hb = self.client()
        # state=dead is a quiet answer (no last_seen_ms moving): its tag stays put.
        page = hb.members_page(state="dead")
        self.assertTrue(page.etag and page.etag.startswith('"'), page.etag)
        again = hb.members_page(state="dead", if_none_match=page.etag)
        self.assertEqual(again, MemberPage((), None, page.etag, True))
        stale = hb.members_page(state="dead", if_none_match='"0123456789abcdef"')
        self.assertFalse(stale.not_modified)
        self.assertEqual(stale.etag, page.etag)
        # Another query is another answer with another tag.
        other = hb.members_page(state="dead", limit=1, if_none_match=page.etag)
        self.assertFalse(other.not_modified)
        self.assertNotEqual(other.etag, page.etag)
        # The kept-alive connection survives a body-less 304.
        self.assertEqual(self.names(hb.members(name="py-a")), ["py-a"])

    def test_bad_filters_are_refused_before_sending(self) -> None:
        hb = Client(socket="/nonexistent/heartbeatd.sock")  # never reached
        bad = [dict(state="zombie"), dict(state="alive,"), dict(state=[]),
               dict(name="a b"), dict(name=""), dict(name="x" * 257),
               dict(tag="bad key:x"), dict(tag=":x"), dict(tag="k:\u00e9"),
               dict(tag="k:" + "v" * 129), dict(tag=[1])]
        for kw in bad:
            with self.subTest(kw=kw), self.assertRaisesRegex(ValueError, "^" + list(kw)[0] + ":"):
                hb.members(**kw)
        for kw in [dict(limit=0), dict(limit=10001), dict(limit=True), dict(limit="5"),
                   dict(cursor="")]:
            with self.subTest(kw=kw), self.assertRaisesRegex(ValueError, "^" + list(kw)[0] + ":"):
                hb.members_page(**kw)
        with self.assertRaisesRegex(ValueError, "^limit:"):
            hb.iter_members(page_size=0)  # at the call, not at the first next()

    def test_the_daemons_400_is_an_api_error(self) -> None:
        hb = self.client()
        with self.assertRaises(ApiError) as caught:
            hb.members_page(limit=1, cursor="not a cursor!")
        e = caught.exception
        self.assertEqual((e.status, e.error), (400, "bad_request"))
        self.assertTrue(e.message.startswith("cursor:"), e.message)


if __name__ == "__main__":
    unittest.main()
