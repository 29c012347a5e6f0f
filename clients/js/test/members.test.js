// Members against a real two-node cluster: tags, filters, pages, ETag/304, bad input.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client, ApiError, memberQuery } from "../src/node.js";
import { Client as FetchClient } from "../src/browser.js";
import { Daemon, EventReader, eventually } from "../testlib/daemon.js";

// A tag value with every character that means something in a query string.
const ODD = "x y:&#%+z";
const A_TAGS = { role: "db", zone: "b" };
const B_TAGS = { note: ODD, role: "web" };

let a;
let b;
let c;
before(async () => {
  a = new Daemon({ config: { node: { name: "js-a", tags: A_TAGS } } });
  await a.start();
  b = new Daemon({ config: { node: { name: "js-b", tags: B_TAGS }, cluster: { seeds: [`127.0.0.1:${a.clusterPort}`] } } });
  await b.start();
  c = new Client({ socketPath: a.socketPath });
  await eventually(async () => {
    const ms = await c.members();
    return JSON.stringify(ms.map((m) => [m.name, m.state, m.tags])) ===
      JSON.stringify([["js-a", "alive", A_TAGS], ["js-b", "alive", B_TAGS]]);
  }, { deadlineMs: 15000, what: "a two-node cluster with tags" });
});
after(async () => {
  c?.close();
  await b?.dispose();
  await a?.dispose();
});

const names = (ms) => ms.map((m) => m.name);

test("members and member events carry tags", async () => {
  assert.deepEqual((await c.member("js-a")).tags, A_TAGS);
  assert.deepEqual((await c.member("js-b")).tags, B_TAGS);
  const controller = new AbortController();
  const reader = new EventReader(c.events({ members: ["js-b"], signal: controller.signal }));
  try {
    const ev = await reader.next((e) => e.type === "member", { what: "js-b's initial event" });
    assert.deepEqual([ev.name, ev.initial, ev.tags], ["js-b", true, B_TAGS]);
  } finally {
    controller.abort();
  }
});

test("state, name and tag filters", async () => {
  assert.deepEqual(names(await c.members({ state: "alive" })), ["js-a", "js-b"]);
  assert.deepEqual(await c.members({ state: "dead" }), []);
  assert.deepEqual(names(await c.members({ state: ["dead", "alive"] })), ["js-a", "js-b"]);
  assert.deepEqual(names(await c.members({ state: "suspect,alive" })), ["js-a", "js-b"]);
  assert.deepEqual(names(await c.members({ name: "js-?" })), ["js-a", "js-b"]);
  assert.deepEqual(names(await c.members({ name: "*b" })), ["js-b"]);
  assert.deepEqual(names(await c.members({ tag: "role:db" })), ["js-a"]);
  assert.deepEqual(names(await c.members({ tag: "role" })), ["js-a", "js-b"]);
  assert.deepEqual(names(await c.members({ tag: ["role:db", "zone:b"] })), ["js-a"]);
  assert.deepEqual(await c.members({ tag: ["role:db", "zone:a"] }), []);
  assert.deepEqual(names(await c.members({ tag: { zone: null } })), ["js-a"]);
  // Percent-encoding: a space, ':', '&', '#', '%' and '+' all reach the daemon intact.
  assert.deepEqual(names(await c.members({ tag: `note:${ODD}` })), ["js-b"]);
  assert.deepEqual(names(await c.members({ tag: { note: ODD } })), ["js-b"]);
  assert.deepEqual(await c.members({ tag: "note:x y" }), []);
  assert.deepEqual(names(await c.members({ state: "alive", name: "js-*", tag: "role:web" })), ["js-b"]);
  // The same over fetch (the browser transport) and TCP.
  const f = new FetchClient({ url: a.url });
  assert.deepEqual(names(await f.members({ tag: { note: ODD } })), ["js-b"]);
});

test("the query string: every value percent-encoded, parameters repeated", () => {
  const q = memberQuery({ state: ["alive", "dead"], name: "js-?", tag: { note: ODD, role: null }, limit: 5, cursor: "anMtYQ" });
  assert.ok(!q.includes(" ") && !q.includes("#") && !q.includes("+"), q);
  assert.deepEqual([...new URLSearchParams(q)], [
    ["state", "alive"], ["state", "dead"], ["name", "js-?"], ["tag", `note:${ODD}`], ["tag", "role"],
    ["limit", "5"], ["cursor", "anMtYQ"],
  ]);
  assert.equal(memberQuery(), "");
});

test("pages: limit, nextCursor, and iterMembers walking them", async () => {
  const first = await c.membersPage({ limit: 1 });
  assert.deepEqual(names(first.members), ["js-a"]);
  assert.equal(typeof first.nextCursor, "string");
  assert.equal(first.notModified, false);
  const second = await c.membersPage({ limit: 1, cursor: first.nextCursor });
  assert.deepEqual([names(second.members), second.nextCursor], [["js-b"], null]);
  const whole = await c.membersPage({ limit: 2 });
  assert.deepEqual([names(whole.members), whole.nextCursor], [["js-a", "js-b"], null]);
  assert.equal((await c.membersPage()).nextCursor, null);
  const one = await c.membersPage({ tag: "role", name: "js-*", limit: 1 });
  const two = await c.membersPage({ tag: "role", name: "js-*", limit: 1, cursor: one.nextCursor });
  assert.deepEqual(names([...one.members, ...two.members]), ["js-a", "js-b"]);

  const cursors = [];
  const real = c.membersPage.bind(c);
  const counting = new Client({ socketPath: a.socketPath });
  counting.membersPage = async (o) => {
    cursors.push(o.cursor);
    return real(o);
  };
  try {
    const walked = [];
    for await (const m of counting.iterMembers({}, { pageSize: 1 })) walked.push(m);
    assert.deepEqual(names(walked), ["js-a", "js-b"]);
    assert.equal(cursors.length, 2);
    assert.equal(cursors[0], undefined);
    const web = [];
    for await (const m of counting.iterMembers({ state: "alive", tag: "role:web" })) web.push(m);
    assert.deepEqual(names(web), ["js-b"]);
    assert.deepEqual(web[0].tags, B_TAGS);
  } finally {
    counting.close();
  }
});

test("ETag and ifNoneMatch: a 304 is notModified, with no members", async () => {
  // state=dead is a quiet answer (no last_seen_ms moving): its tag stays put.
  const page = await c.membersPage({ state: "dead" });
  assert.match(page.etag, /^"[0-9a-f]+"$/);
  const again = await c.membersPage({ state: "dead", ifNoneMatch: page.etag });
  assert.deepEqual(again, { members: [], nextCursor: null, etag: page.etag, notModified: true });
  const stale = await c.membersPage({ state: "dead", ifNoneMatch: '"0123456789abcdef"' });
  assert.deepEqual([stale.notModified, stale.etag], [false, page.etag]);
  const other = await c.membersPage({ state: "dead", limit: 1, ifNoneMatch: page.etag });
  assert.equal(other.notModified, false);
  assert.notEqual(other.etag, page.etag);
  // The kept-alive connection survives a body-less 304; fetch sees the same.
  assert.deepEqual(names(await c.members({ name: "js-a" })), ["js-a"]);
  const f = new FetchClient({ url: a.url });
  assert.equal((await f.membersPage({ state: "dead", ifNoneMatch: page.etag })).notModified, true);
});

test("bad filters are refused before sending, naming the parameter", async () => {
  const nowhere = new Client({ socketPath: "/nonexistent/heartbeatd.sock" });
  const bad = [{ state: "zombie" }, { state: "alive," }, { state: [] }, { name: "a b" }, { name: "" },
    { name: "x".repeat(257) }, { tag: "bad key:x" }, { tag: ":x" }, { tag: "k:\u00e9" },
    { tag: `k:${"v".repeat(129)}` }, { tag: [1] }];
  for (const filter of bad) {
    const key = Object.keys(filter)[0];
    await assert.rejects(nowhere.members(filter), { name: "TypeError", message: new RegExp(`^${key}:`) }, JSON.stringify(filter));
  }
  for (const o of [{ limit: 0 }, { limit: 10001 }, { limit: 1.5 }, { limit: "5" }, { cursor: "" }]) {
    const key = Object.keys(o)[0];
    await assert.rejects(nowhere.membersPage(o), { name: "TypeError", message: new RegExp(`^${key}:`) }, JSON.stringify(o));
  }
  await assert.rejects(nowhere.members({ limit: 5 }), /membersPage/);
  assert.throws(() => nowhere.iterMembers({}, { pageSize: 0 }), { name: "TypeError", message: /^limit:/ });
  nowhere.close();
});

test("the daemon's 400 is an ApiError naming the parameter", async () => {
  await assert.rejects(c.membersPage({ limit: 1, cursor: "not a cursor!" }),
    (e) => e instanceof ApiError && e.status === 400 && e.code === "bad_request" && /^cursor:/.test(e.detail));
});
