// Batches split at presence.max_batch (read from /v1/health), in request order, and the
// gateway batcher against a real daemon.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client, ApiError, HeartbeatBatcher } from "../src/node.js";
import { Daemon, eventually } from "../testlib/daemon.js";

let daemon;
before(async () => {
  daemon = new Daemon({ config: { presence: { max_batch: 5 } } });
  await daemon.start();
});
after(async () => {
  await daemon?.dispose();
});

// Counts the requests a client sends, by path.
function spy(client) {
  const seen = [];
  const request = client.transport.request.bind(client.transport);
  client.transport.request = (method, path, options) => {
    seen.push(`${method} ${path.split("?")[0]}`);
    return request(method, path, options);
  };
  return seen;
}

test("max_batch comes from /v1/health, once", async () => {
  const c = new Client({ url: daemon.url });
  try {
    const seen = spy(c);
    assert.equal(await c.maxBatch(), 5);
    assert.equal(await c.maxBatch(), 5);
    assert.deepEqual(seen, ["GET /v1/health"]);
  } finally {
    c.close();
  }
});

test("heartbeatMany and statusMany split at max_batch; statuses come in request order", async () => {
  const c = new Client({ socketPath: daemon.socketPath });
  try {
    const seen = spy(c);
    const ids = [];
    for (let i = 0; i < 12; i++) ids.push((18446744073709551615n - BigInt(i * 7)).toString());
    assert.deepEqual(await c.heartbeatMany(ids), { accepted: 12 });
    assert.deepEqual(seen, ["GET /v1/health", ...Array(3).fill("POST /v1/users/heartbeat")]);

    const asked = [];
    for (let i = 0; i < 12; i++) asked.push(i % 2 ? ids[i] : String(500 + i));  // online and unknown, interleaved
    asked.push(ids[0], ids[0]);  // duplicates are answered twice
    const statuses = await c.statusMany(asked.map((id, i) => (i % 3 === 0 ? BigInt(id) : id)));
    assert.deepEqual(statuses.map((s) => s.user), asked);
    assert.deepEqual(statuses.map((s) => s.online), asked.map((_, i) => i >= 12 || i % 2 === 1));
    assert.equal(seen.filter((s) => s === "POST /v1/users/status").length, 3);
    assert.equal(c.connectionsOpened, 1);
  } finally {
    c.close();
  }
});

test("without splitting, the daemon refuses a batch over max_batch with 413 batch_too_large", async () => {
  const c = new Client({ url: daemon.url, maxBatch: 100 });
  try {
    await assert.rejects(c.heartbeatMany([1, 2, 3, 4, 5, 6]),
      (e) => e instanceof ApiError && e.status === 413 && e.code === "batch_too_large");
  } finally {
    c.close();
  }
});

test("HeartbeatBatcher sends what was added within the interval as batches", async () => {
  const c = new Client({ url: daemon.url });
  const flushes = [];
  const b = new HeartbeatBatcher(c, { flushIntervalMs: 100, onFlush: (f) => flushes.push(f) });
  try {
    const seen = spy(c);
    const ids = ["9007199254740993", "9007199254740995", "700", "701", "702", "703", "704"];
    for (const id of ids) b.add(id);
    b.add("700");
    await eventually(() => flushes.length === 1, { what: "the batcher's flush" });
    assert.deepEqual(flushes, [{ ids: 7, accepted: 7 }]);
    // 7 ids at max_batch 5: two requests
    assert.deepEqual(seen.filter((s) => s.startsWith("POST")), ["POST /v1/users/heartbeat", "POST /v1/users/heartbeat"]);
    assert.ok((await c.statusMany(ids)).every((s) => s.online));
  } finally {
    await b.close();
    c.close();
  }
});
