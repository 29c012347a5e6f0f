// The event stream against a real daemon: a user online then offline, and a stream that
// reconnects across daemon restarts and resumes without repeating what it already said.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Client, ApiError } from "../src/node.js";
import { Client as FetchClient } from "../src/browser.js";
import http from "node:http";
import { Daemon, EventReader, eventually } from "../testlib/daemon.js";

const daemons = [];
after(async () => {
  for (const d of daemons) await d.dispose();
});

async function daemonWith(config) {
  const d = new Daemon({ config });
  daemons.push(d);
  return d.start();
}

test("a watched user goes online at a heartbeat and offline after presence.timeout", async () => {
  const d = await daemonWith({ presence: { timeout: "2s" }, events: { max_watched_users: 3 } });
  const c = new Client({ url: d.url });
  const writer = new Client({ socketPath: d.socketPath });
  const controller = new AbortController();
  const states = [];
  const user = "18446744073709551615";
  const reader = new EventReader(c.events({
    users: [user], signal: controller.signal, onStateChange: (s) => states.push(s.state),
  }));
  try {
    const member = await reader.next((e) => e.type === "member", { what: "the member's initial event" });
    assert.deepEqual([member.name, member.state, member.initial], ["js-test", "alive", true]);
    const initial = await reader.next((e) => e.type === "user", { what: "the user's initial event" });
    assert.deepEqual([initial.user, initial.online, initial.initial], [user, false, true]);
    assert.deepEqual(states, ["connected"]);

    await writer.heartbeat(user);
    const online = await reader.next((e) => e.type === "user", { what: "online" });
    assert.deepEqual([online.user, online.online, online.initial], [user, true, false]);
    const offline = await reader.next((e) => e.type === "user", { what: "offline after the timeout", deadlineMs: 2000 + 5000 });
    assert.deepEqual([offline.user, offline.online, offline.initial], [user, false, false]);
    assert.equal(offline.last_seen_ms, online.last_seen_ms);
  } finally {
    controller.abort();
    await reader.pump;
    c.close();
    writer.close();
  }
  assert.equal(reader.error, null);
  assert.deepEqual(states, ["connected", "disconnected"]);

  // A request the daemon will refuse again ends the iterator with the error, no retrying.
  const refused = new EventReader(c.events({ users: [1, 2, 3, 4] }));
  await refused.pump;
  assert.ok(refused.error instanceof ApiError && refused.error.status === 400, String(refused.error));
  const bad = new EventReader(c.events({ members: ["no spaces"] }));
  await bad.pump;
  assert.ok(bad.error instanceof TypeError);
  c.close();
});

test("the stream reconnects across restarts and resumes: unchanged state is not repeated, changes are", async () => {
  // presence.timeout stays 30 s (users online before a restart are still online after);
  // no periodic snapshot, so a kill -9 forgets the heartbeats since the last graceful stop.
  const d = await daemonWith({ persist: { presence_interval: "1h" } });
  const c = new Client({ url: d.url });
  const controller = new AbortController();
  const states = [];
  const [A, B, C] = ["18446744073709551601", "18446744073709551602", "18446744073709551603"];
  const reader = new EventReader(c.events({
    users: [C, A, B], members: [], signal: controller.signal,
    backoff: { initialMs: 50, maxMs: 400 },
    onStateChange: (s) => states.push(s),
  }));
  const nextUser = (what, deadlineMs) => reader.next((e) => e.type === "user", { what, deadlineMs });
  const connections = () => states.filter((s) => s.state === "connected").length;
  const restart = async (signal) => {
    const before = connections();
    await d.stop(signal);
    await eventually(() => states.at(-1).state === "disconnected", { what: "the client seeing the daemon gone" });
    await d.start();
    await eventually(() => connections() === before + 1, { what: "the client reconnected" });
    assert.equal(states.filter((s) => s.state === "connected").at(-1).reconnected, true);
  };
  let writer;
  try {
    for (const id of [A, B, C]) {
      const e = await nextUser(`${id} initial`);
      assert.deepEqual([e.user, e.online, e.initial], [id, false, true]);
    }
    writer = new Client({ socketPath: d.socketPath });
    await writer.heartbeatMany([A, C]);
    for (const id of [A, C]) {
      const e = await nextUser(`${id} online`);
      assert.deepEqual([e.user, e.online, e.initial], [id, true, false]);
    }

    // Graceful stop: A and C come back online, B offline, as the client last saw them, so
    // the next event is the live one for B's heartbeat.
    writer.close();
    await restart("SIGTERM");
    writer = new Client({ socketPath: d.socketPath });
    await writer.heartbeat(B);
    let e = await nextUser("B online after the restart");
    assert.deepEqual([e.user, e.online, e.initial], [B, true, false]);

    // kill -9: B's heartbeat was never snapshotted, so B comes back offline; that change is
    // passed on (flagged initial); A and C, unchanged, are not.
    writer.close();
    await restart("SIGKILL");
    e = await nextUser("B offline after the kill");
    assert.deepEqual([e.user, e.online, e.initial], [B, false, true]);
    writer = new Client({ socketPath: d.socketPath });
    await writer.logout(C);
    e = await nextUser("C offline at logout");
    assert.deepEqual([e.user, e.online, e.initial], [C, false, false]);
    assert.equal(reader.queue.length, 0, JSON.stringify(reader.queue));
  } finally {
    controller.abort();
    await reader.pump;
    writer?.close();
    c.close();
  }
  assert.equal(reader.error, null);
});

// heartbeatd_event_subscribers from /metrics, over the Unix socket.
function subscribers(d) {
  return new Promise((resolve, reject) => {
    http.get({ socketPath: d.socketPath, path: "/metrics", agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => { text += c; });
      res.on("end", () => resolve(Number(/^heartbeatd_event_subscribers (\S+)$/m.exec(text)[1])));
    }).on("error", reject);
  });
}

test("leaving the loop (break) or aborting closes the stream on the daemon's side", async () => {
  const d = await daemonWith({});
  const c = new Client({ socketPath: d.socketPath });
  try {
    const states = [];
    for await (const e of c.events({ members: [], users: ["1"], onStateChange: (s) => states.push(s.state) })) {
      assert.equal(e.type, "user");
      assert.equal(await subscribers(d), 1);
      break;
    }
    await eventually(async () => (await subscribers(d)) === 0, { what: "the stream closed after break" });
    assert.deepEqual(states, ["connected", "disconnected"]);

    const controller = new AbortController();
    const reader = new EventReader(c.events({ users: ["1"], members: [], signal: controller.signal }));
    await reader.next((e) => e.type === "user");
    assert.equal(await subscribers(d), 1);
    controller.abort();
    await reader.pump;
    assert.equal(reader.error, null);
    await eventually(async () => (await subscribers(d)) === 0, { what: "the stream closed after abort" });
  } finally {
    c.close();
  }
});

test("close() ends the client's event iterators; the client works afterwards", async () => {
  const d = await daemonWith({});
  for (const Kind of [Client, FetchClient]) {
    const c = new Kind({ url: d.url });
    const reader = new EventReader(c.events({ users: ["1"], members: [] }));
    await reader.next((e) => e.type === "user");
    c.close();
    await reader.pump;
    assert.equal(reader.error, null);
    await eventually(async () => (await subscribers(d)) === 0, { what: `the stream closed after close() (${Kind === Client ? "node" : "fetch"})` });
    assert.equal((await c.status(1)).user, "1");
    c.close();
  }
});

// A stand-in for the daemon's /v1/events: the n-th connection gets script[n] (SSE text),
// then stays open (silent) or, when the script ends in "\u0000", is closed.
async function sseServer(script) {
  let n = 0;
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const body = script[n++] ?? "";
    res.writeHead(200, { "content-type": "text/event-stream" });
    sockets.add(res);
    if (body.endsWith("\u0000")) res.end(body.slice(0, -1));
    else res.write(body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    connections: () => n,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(resolve);
    }),
  };
}

test("a silent stream is given up after idleTimeoutMs; dropped reconnects; unknown events are skipped (both clients)", async () => {
  const user = (online, initial) =>
    `event: user\ndata: {"user":"1","online":${online},"last_seen_ms":null,"time_ms":1,"initial":${initial}}\n\n`;
  for (const Kind of [Client, FetchClient]) {
    const s = await sseServer([
      user(false, true) + "event: future\ndata: {}\n\n",                                // then silence
      user(false, true) + 'event: dropped\ndata: {"reason":"slow consumer"}\n\n\u0000',  // then closed
      ": keepalive\n\n" + user(true, true),
    ]);
    const c = new Kind({ url: s.url });
    const states = [];
    const controller = new AbortController();
    const reader = new EventReader(c.events({
      users: ["1"], signal: controller.signal, idleTimeoutMs: 300, backoff: { initialMs: 10, maxMs: 20 },
      onStateChange: (st) => states.push(st),
    }));
    try {
      const any = () => true;
      assert.deepEqual(await reader.next(any), { type: "user", user: "1", online: false, last_seen_ms: null, time_ms: 1, initial: true });
      const dropped = await reader.next(any, { what: "dropped, after an idle reconnect" });
      assert.deepEqual(dropped, { type: "dropped", reason: "slow consumer" });
      const online = await reader.next(any, { what: "the changed initial state" });
      assert.deepEqual([online.online, online.initial], [true, true]);
      assert.equal(s.connections(), 3);
      assert.deepEqual(states.map((st) => st.state), ["connected", "disconnected", "connected", "disconnected", "connected"]);
      assert.match(states[1].error.message, /nothing received .* 300 ms/);
      assert.match(states[3].error.message, /dropped this stream: slow consumer/);
      assert.equal(states[2].reconnected, true);
    } finally {
      controller.abort();
      await reader.pump;
      c.close();
      await s.close();
  }
  assert.equal(reader.error, null);
  }
});
