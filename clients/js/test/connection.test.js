// Connections: a kept-alive connection the server closed is replaced transparently (once),
// a daemon restart does not surface to the caller, and HTTPS with a throwaway CA.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Client, ApiError } from "../src/node.js";
import { Daemon, EventReader, TOKENS } from "../testlib/daemon.js";

const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

// A minimal HTTP/1.1 server whose n-th connection behaves as behaviours[n]: a list of
// actions, one per request on that connection: "answer" or "drop" (close without a byte).
async function scriptedServer(behaviours) {
  const log = [];
  let n = 0;
  const server = net.createServer((socket) => {
    const actions = behaviours[n] || ["answer"];
    const conn = n++;
    let buffered = "";
    let request = 0;
    socket.on("data", (data) => {
      buffered += data.toString("latin1");
      let end;
      while ((end = buffered.indexOf("\r\n\r\n")) >= 0) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const action = actions[request++] || "answer";
        log.push(`${conn}:${head.split(" ")[1]}:${action}`);
        if (action === "drop") {
          socket.destroy();
          return;
        }
        const body = '{"online":1,"tracked":2}';
        socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      }
    });
    socket.on("error", () => {});
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanup.push(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${server.address().port}`, log };
}

test("a kept-alive connection closed by the server is retried once on a new one", async () => {
  const s = await scriptedServer([["answer", "drop"], ["answer"], ["drop"]]);
  const c = new Client({ url: s.url });
  try {
    assert.deepEqual(await c.counts(), { online: 1, tracked: 2 });
    // the second request meets the dropped connection: sent again on a second one
    assert.deepEqual(await c.counts(), { online: 1, tracked: 2 });
    assert.deepEqual(s.log, ["0:/v1/users:answer", "0:/v1/users:drop", "1:/v1/users:answer"]);
    assert.equal(c.connectionsOpened, 2);
  } finally {
    c.close();
  }
  // A fresh connection that fails is an error, not retried.
  const fresh = new Client({ url: s.url });
  try {
    await assert.rejects(fresh.counts(), (e) => e.code === "ECONNRESET");
    assert.equal(s.log.at(-1), "2:/v1/users:drop");
    assert.equal(s.log.length, 4);
  } finally {
    fresh.close();
  }
});

test("a request after a daemon restart succeeds on the same client", async () => {
  const d = new Daemon({ config: { persist: { presence_interval: "1h" } } });
  cleanup.push(() => d.dispose());
  await d.start();
  for (const options of [{ url: d.url }, { socketPath: d.socketPath }]) {
    const c = new Client(options);
    try {
      await c.heartbeat(5);
      await d.stop("SIGKILL");
      await d.start();
      await c.heartbeat(6);
      assert.equal((await c.status(6)).online, true);
    } finally {
      c.close();
    }
  }
});

test("a daemon that is not there: a network error with its code, and a timeout", async () => {
  const d = new Daemon();
  cleanup.push(() => d.dispose());
  await d.start();
  const url = d.url;
  await d.stop();
  const c = new Client({ url });
  await assert.rejects(c.health(), (e) => e.code === "ECONNREFUSED");
  c.close();

  // A server that accepts and never answers: the request gives up after timeoutMs.
  const silent = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.resume();  // reads (and so sees the client leave), never answers
  });
  await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
  cleanup.push(() => new Promise((resolve) => { silent.close(resolve); }));
  const t = new Client({ url: `http://127.0.0.1:${silent.address().port}`, timeoutMs: 200 });
  const started = Date.now();
  await assert.rejects(t.health(), (e) => e.name === "TimeoutError" && /200 ms/.test(e.message));
  assert.ok(Date.now() - started < 5000);
  t.close();
});

test("HTTPS with a throwaway CA: verified, kept alive, events; refused without the CA", async (t) => {
  const d = new Daemon({ tls: true, tokens: true });
  cleanup.push(() => d.dispose());
  try {
    await d.start();
  } catch (err) {
    if (/openssl is needed/.test(err.message)) return t.skip("no openssl CLI");
    throw err;
  }
  const fs = await import("node:fs");
  const ca = fs.readFileSync(d.tls.ca);
  assert.match(d.url, /^https:/);
  const c = new Client({ url: d.url, ca, token: TOKENS.gateway });
  const controller = new AbortController();
  const reader = new EventReader(c.events({ users: ["18446744073709551615"], members: [], signal: controller.signal }));
  try {
    assert.equal((await c.health()).node, "js-test");
    await reader.next((e) => e.type === "user" && e.initial, { what: "initial event over TLS" });
    await c.heartbeat("18446744073709551615");
    const e = await reader.next((ev) => ev.type === "user", { what: "online over TLS" });
    assert.deepEqual([e.user, e.online], ["18446744073709551615", true]);
    for (let i = 0; i < 10; i++) await c.status(i);
    assert.equal(c.connectionsOpened, 2, "one for the requests, one for the stream");
    const reader403 = new Client({ url: d.url, ca, token: TOKENS.reader });
    await assert.rejects(reader403.heartbeat(1), (err) => err instanceof ApiError && err.status === 403);
    reader403.close();
  } finally {
    controller.abort();
    await reader.pump;
    c.close();
  }
  const untrusted = new Client({ url: d.url, token: TOKENS.gateway });
  await assert.rejects(untrusted.health(), (e) => /self[- ]signed|unable to verify|UNABLE_TO_GET_ISSUER|SELF_SIGNED/i.test(`${e.code} ${e.message}`));
  untrusted.close();
});

test("mutual TLS: the client's certificate and key are presented; without them the handshake fails", async (t) => {
  const d = new Daemon({ tls: "mutual" });
  cleanup.push(() => d.dispose());
  try {
    await d.start();
  } catch (err) {
    if (/openssl is needed/.test(err.message)) return t.skip("no openssl CLI");
    throw err;
  }
  const fs = await import("node:fs");
  const read = (f) => fs.readFileSync(f);
  const c = new Client({ url: d.url, ca: read(d.tls.ca), cert: read(d.tls.clientCert), key: read(d.tls.clientKey) });
  try {
    await c.heartbeat(1);
    assert.equal((await c.status(1)).online, true);
  } finally {
    c.close();
  }
  const anonymous = new Client({ url: d.url, ca: read(d.tls.ca) });
  await assert.rejects(anonymous.health(), (e) => !(e instanceof ApiError) && typeof e.code === "string");
  anonymous.close();
});
