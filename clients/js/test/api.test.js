// Every route against a real heartbeatd with a tokens file: over TCP with tokens and over
// the Unix socket without, errors as ApiError, one kept-alive connection, exact big ids.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client, ApiError } from "../src/node.js";
import { Client as FetchClient } from "../src/browser.js";
import { Daemon, TOKENS, EventReader } from "../testlib/daemon.js";

let daemon;
before(async () => {
  daemon = new Daemon({ tokens: true });
  await daemon.start();
});
after(async () => {
  await daemon?.dispose();
});

const BIG = "18446744073709551615";

test("TCP with a read,write token: health, members, member, counts, history", async () => {
  const c = new Client({ url: daemon.url, token: TOKENS.gateway });
  try {
    const h = await c.health();
    assert.equal(h.status, "ok");
    assert.equal(h.node, "js-test");
    const members = await c.members();
    assert.equal(members.length, 1);
    assert.equal(members[0].name, "js-test");
    assert.equal(members[0].self, true);
    assert.equal((await c.member("js-test")).state, "alive");
    await assert.rejects(c.member("nobody"), (e) => e instanceof ApiError && e.status === 404 && e.code === "unknown_member");
    await assert.rejects(() => c.member("no/such"), TypeError);
    const counts = await c.counts();
    assert.equal(typeof counts.online, "number");
    assert.equal(typeof counts.tracked, "number");
    const history = await c.history();
    assert.ok(Number.isInteger(history.interval_ms) && history.interval_ms > 0);
    assert.ok(history.points.length >= 1, "the first point is taken at start");
    for (const p of history.points) assert.deepEqual(Object.keys(p).sort(), ["online", "time_ms", "tracked"]);
  } finally {
    c.close();
  }
});

test("heartbeat, status and logout; ids above 2^53 round-trip exactly", async () => {
  const c = new Client({ url: daemon.url, token: TOKENS.gateway });
  try {
    for (const id of [BIG, 18446744073709551614n, "9007199254740993"]) {
      await c.heartbeat(id);
      const s = await c.status(id);
      assert.equal(s.user, String(id));
      assert.equal(s.online, true);
      assert.equal(typeof s.last_seen_ms, "number");
    }
    const many = await c.statusMany([BIG, "9007199254740993", 5, 18446744073709551614n]);
    assert.deepEqual(many.map((s) => [s.user, s.online]),
      [[BIG, true], ["9007199254740993", true], ["5", false], ["18446744073709551614", true]]);
    assert.deepEqual(await c.heartbeatMany([BIG, "1"]), { accepted: 2 });
    await c.logout(BIG);
    assert.equal((await c.status(BIG)).online, false);
    assert.equal((await c.status(BIG)).user, BIG);
    await assert.rejects(() => c.heartbeat(2 ** 60), { name: "RangeError", message: /MAX_SAFE_INTEGER/ });
  } finally {
    c.close();
  }
});

test("401 without or with an unknown token, 403 without the scope", async () => {
  const none = new Client({ url: daemon.url });
  const wrong = new Client({ url: daemon.url, token: "not-a-known-token-at-all" });
  const reader = new Client({ url: daemon.url, token: TOKENS.reader });
  const writer = new Client({ url: daemon.url, token: TOKENS.writer });
  try {
    for (const c of [none, wrong]) {
      await assert.rejects(c.health(), (e) => e instanceof ApiError && e.status === 401 && e.code === "unauthenticated");
    }
    await assert.rejects(reader.heartbeat(1), (e) => e.status === 403 && e.code === "forbidden" && e.message.includes("403 forbidden"));
    await assert.rejects(reader.keys(), (e) => e.status === 403);
    await assert.rejects(writer.status(1), (e) => e.status === 403);
    await writer.heartbeat(1);
    assert.equal((await reader.status(1)).online, true);
    const admin = new Client({ url: daemon.url, token: TOKENS.admin });
    const keys = await admin.keys();
    assert.deepEqual(keys.keys, []);
    admin.close();
  } finally {
    for (const c of [none, wrong, reader, writer]) c.close();
  }
});

test("the Unix socket needs no token", async () => {
  const c = new Client({ socketPath: daemon.socketPath });
  try {
    assert.equal((await c.health()).node, "js-test");
    await c.heartbeat(77);
    assert.equal((await c.status(77)).online, true);
    assert.ok((await c.keys()).keys);
  } finally {
    c.close();
  }
});

test("one kept-alive connection serves many requests (TCP and Unix socket)", async () => {
  for (const options of [{ url: daemon.url, token: TOKENS.gateway }, { socketPath: daemon.socketPath }]) {
    const c = new Client(options);
    try {
      for (let i = 0; i < 20; i++) {
        await c.heartbeat(1000 + i);
        await c.status(1000 + i);
      }
      await c.statusMany([1, 2, 3]);
      assert.equal(c.connectionsOpened, 1, JSON.stringify(Object.keys(options)));
    } finally {
      c.close();
    }
  }
});

test("the fetch client (browsers) against the same daemon, events included", async () => {
  const c = new FetchClient({ url: daemon.url, token: TOKENS.gateway });
  assert.equal((await c.health()).node, "js-test");
  await c.heartbeat(BIG);
  assert.deepEqual((await c.statusMany([BIG])).map((s) => s.user), [BIG]);
  await assert.rejects(new FetchClient({ url: daemon.url }).health(), (e) => e.status === 401);

  const controller = new AbortController();
  const id = "18446744073709551000";
  const reader = new EventReader(c.events({ users: [id], members: [], signal: controller.signal }));
  try {
    const first = await reader.next((e) => e.type === "user", { what: "initial user event" });
    assert.deepEqual([first.user, first.online, first.initial], [id, false, true]);
    await c.heartbeat(id);
    const online = await reader.next((e) => e.type === "user", { what: "online event" });
    assert.deepEqual([online.user, online.online, online.initial], [id, true, false]);
  } finally {
    controller.abort();
    await reader.pump;
  }
});

test("a bad id in a batch is refused before anything is sent", async () => {
  const c = new Client({ url: daemon.url, token: TOKENS.gateway });
  try {
    await assert.rejects(() => c.heartbeatMany(["1", "x"]), { message: /ids\[1\]/ });
    await assert.rejects(() => c.statusMany([1, -1]), { message: /ids\[1\]/ });
    assert.equal(c.connectionsOpened, 0);
    assert.deepEqual(await c.heartbeatMany([]), { accepted: 0 });
    assert.deepEqual(await c.statusMany([]), []);
  } finally {
    c.close();
  }
});
