// online(): POST /v1/users/status?format=bits against a real daemon (order, sizes around a
// byte, batches split at max_batch, ids above 2^53), and every malformed answer against a
// tiny fake server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { Client, ApiError, ProtocolError } from "../src/node.js";
import { Client as FetchClient } from "../src/browser.js";
import { Daemon } from "../testlib/daemon.js";

let daemon;
before(async () => {
  // 12: a batch boundary inside a byte, so the client must not join the answers' bytes.
  daemon = new Daemon({ config: { presence: { max_batch: 12 } } });
  await daemon.start();
});
after(async () => {
  await daemon?.dispose();
});

function paths(client) {
  const seen = [];
  const request = client.transport.request.bind(client.transport);
  client.transport.request = (method, path, options) => {
    seen.push(`${method} ${path}`);
    return request(method, path, options);
  };
  return seen;
}

test("online, offline and unknown users, in request order, duplicates included", async () => {
  const c = new Client({ socketPath: daemon.socketPath });
  try {
    await c.heartbeatMany(["1001", "1002", "1003"]);
    await c.logout("1002");  // known, offline
    assert.deepEqual(await c.online(["1003", 1002, 9999n, "1001", "1001"]), [true, false, false, true, true]);
    assert.deepEqual(await c.online([]), []);
  } finally {
    c.close();
  }
});

test("1, 7, 8, 9 and 12 ids: one request each, read bit by bit", async () => {
  const c = new Client({ socketPath: daemon.socketPath });
  try {
    const on = ["2000", "2003", "2007", "2008"];
    await c.heartbeatMany(on);
    const seen = paths(c);
    for (const n of [1, 7, 8, 9, 12]) {
      const ids = Array.from({ length: n }, (_, i) => String(2000 + i));
      seen.length = 0;
      assert.deepEqual(await c.online(ids), ids.map((id) => on.includes(id)), `n = ${n}`);
      assert.deepEqual(seen, ["POST /v1/users/status?format=bits"], `n = ${n}`);
    }
  } finally {
    c.close();
  }
});

test("a batch over max_batch is split; the answers agree with statusMany", async () => {
  const c = new Client({ url: daemon.url });
  try {
    const on = Array.from({ length: 10 }, (_, i) => String(3000 + 3 * i));
    await c.heartbeatMany(on);
    const asked = [...Array.from({ length: 30 }, (_, i) => String(3000 + i)), "18446744073709551615", ...on.reverse()];
    const seen = paths(c);
    const got = await c.online(asked);  // 41 ids at 12: 12 + 12 + 12 + 5
    assert.equal(seen.filter((s) => s === "POST /v1/users/status?format=bits").length, 4);
    assert.deepEqual(got, asked.map((id) => on.includes(id)));
    assert.deepEqual(got, (await c.statusMany(asked)).map((s) => s.online));
  } finally {
    c.close();
  }
});

test("ids above 2^53 stay exact", async () => {
  const c = new Client({ socketPath: daemon.socketPath });
  try {
    await c.heartbeat("18446744073709551615");
    await c.heartbeat("9007199254740993");  // 2^53 + 1: as a number it would be 2^53
    assert.deepEqual(await c.online(["18446744073709551615", 18446744073709551614n, "9007199254740993", "9007199254740992"]),
      [true, false, true, false]);
    await assert.rejects(c.online([1, 2 ** 60]), RangeError);
  } finally {
    c.close();
  }
});

test("the fetch transport reads the bytes too", async () => {
  const c = new FetchClient({ url: daemon.url });
  try {
    const on = ["4000", "4007", "4009"];
    await c.heartbeatMany(on);
    // the first byte is 0x81: not valid UTF-8 alone, so it must not go through a text decoder
    const ids = Array.from({ length: 10 }, (_, i) => String(4000 + i));
    assert.deepEqual(await c.online(ids), ids.map((id) => on.includes(id)));
  } finally {
    c.close();
  }
});

// A loopback server answering every request with `answer` = {status, headers, body}.
async function fakeDaemon() {
  const fake = { answer: { status: 200, headers: {}, body: Buffer.alloc(0) }, bodies: [] };
  fake.server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => {
      fake.bodies.push(JSON.parse(body));
      res.writeHead(fake.answer.status, fake.answer.headers);
      res.end(fake.answer.body);
    });
  });
  await new Promise((resolve) => fake.server.listen(0, "127.0.0.1", resolve));
  fake.url = `http://127.0.0.1:${fake.server.address().port}`;
  fake.close = () => new Promise((resolve) => { fake.server.closeAllConnections?.(); fake.server.close(resolve); });
  return fake;
}

function bits(bytes, count, type = "application/octet-stream") {
  const headers = { "content-type": type };
  if (count != null) headers["x-heartbeatd-count"] = String(count);
  return { status: 200, headers, body: Buffer.from(bytes) };
}

test("well-formed answers are read least significant bit first", async () => {
  const fake = await fakeDaemon();
  const c = new Client({ url: fake.url, maxBatch: 100 });
  try {
    fake.answer = bits([0x05], 3);
    assert.deepEqual(await c.online(["42", "7", "18446744073709551615"]), [true, false, true]);
    assert.deepEqual(fake.bodies.at(-1), { users: ["42", "7", "18446744073709551615"] });
    fake.answer = bits([0x81, 0x01], 9, "Application/Octet-Stream; x=y");
    assert.deepEqual(await c.online(Array.from({ length: 9 }, (_, i) => i)),
      [true, false, false, false, false, false, false, true, true]);
    fake.answer = bits([0xff], 8);
    assert.deepEqual(await c.online(Array.from({ length: 8 }, (_, i) => i)), Array(8).fill(true));
  } finally {
    c.close();
    await fake.close();
  }
});

test("malformed answers are ProtocolErrors, never booleans", async () => {
  const fake = await fakeDaemon();
  const clients = [new Client({ url: fake.url, maxBatch: 100 }), new FetchClient({ url: fake.url, maxBatch: 100 })];
  const cases = {
    "json, an older daemon": { status: 200, headers: { "content-type": "application/json", "x-heartbeatd-count": "3" },
      body: Buffer.from('{"users":[]}') },
    "no content type": { status: 200, headers: { "x-heartbeatd-count": "3" }, body: Buffer.from([5]) },
    "no count": bits([0x05], null),
    "count too small": bits([0x05], 2),
    "count too large": bits([0x05], 4),
    "count not decimal": bits([0x05], "+3"),
    "count empty": bits([0x05], ""),
    "body empty": bits([], 3),
    "body too long": bits([0x05, 0x00], 3),
    "padding bit set": bits([0x0d], 3),
    "top padding bit set": bits([0x85], 3),
    "status 204": { status: 204, headers: {}, body: Buffer.alloc(0) },
    "status 202": { ...bits([0x05], 3), status: 202 },
  };
  try {
    for (const c of clients) {
      for (const [name, answer] of Object.entries(cases)) {
        fake.answer = answer;
        await assert.rejects(c.online(["42", "7", "43"]),
          (e) => e instanceof ProtocolError && e.message.includes("format=bits"), name);
      }
      for (const body of [[0xff], [0xff, 0x01, 0x00], [0xff, 0x02]]) {
        fake.answer = bits(body, 9);
        await assert.rejects(c.online(Array.from({ length: 9 }, (_, i) => i)), ProtocolError, `9 ids in ${body}`);
      }
    }
  } finally {
    for (const c of clients) c.close();
    await fake.close();
  }
});

test("error statuses are ApiErrors", async () => {
  const fake = await fakeDaemon();
  const c = new Client({ url: fake.url, maxBatch: 100 });
  try {
    fake.answer = { status: 503, headers: { "content-type": "application/json", "retry-after": "1" },
      body: Buffer.from('{"error":"presence_unavailable","message":"redis down"}') };
    await assert.rejects(c.online(["1"]),
      (e) => e instanceof ApiError && e.status === 503 && e.code === "presence_unavailable" && e.retryAfter === 1);
  } finally {
    c.close();
    await fake.close();
  }
});
