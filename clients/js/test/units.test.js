// Parts that need no daemon: id checking, the exact-id JSON reading, the SSE parser, the
// reconnection delays, the batcher's timing against a stand-in client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { userId, HeartbeatBatcher, backoffDelay, Client } from "../src/node.js";
import { Client as FetchClient } from "../src/browser.js";
import { parseJson } from "../src/ids.js";
import { SseParser } from "../src/sse.js";
import { eventually } from "../testlib/daemon.js";

test("user ids: strings, BigInt and safe numbers become canonical strings", () => {
  assert.equal(userId("0"), "0");
  assert.equal(userId("18446744073709551615"), "18446744073709551615");
  assert.equal(userId(18446744073709551615n), "18446744073709551615");
  assert.equal(userId(42), "42");
  assert.equal(userId(Number.MAX_SAFE_INTEGER), "9007199254740991");
});

test("user ids: every bad id is refused with a message that says why", () => {
  assert.throws(() => userId(2 ** 53), { name: "RangeError", message: /MAX_SAFE_INTEGER.*strings or BigInt/ });
  assert.throws(() => userId("18446744073709551616"), { name: "RangeError", message: /2\^64 - 1/ });
  assert.throws(() => userId("184467440737095516150"), RangeError);
  assert.throws(() => userId(-1n), RangeError);
  assert.throws(() => userId(2n ** 64n), RangeError);
  assert.throws(() => userId("042"), { name: "TypeError", message: /leading zero/ });
  assert.throws(() => userId("-1"), TypeError);
  assert.throws(() => userId("1e3"), TypeError);
  assert.throws(() => userId(""), TypeError);
  assert.throws(() => userId(1.5), TypeError);
  assert.throws(() => userId(-3), TypeError);
  assert.throws(() => userId(null), TypeError);
  assert.throws(() => userId({}), TypeError);
});

test("JSON from the daemon keeps ids above 2^53 exact, whether written as numbers or strings", () => {
  assert.deepEqual(parseJson('{"user":18446744073709551615,"online":true}'), { user: "18446744073709551615", online: true });
  assert.deepEqual(parseJson('{"users":[{"user":"9007199254740993"},{"user": 7}]}'),
    { users: [{ user: "9007199254740993" }, { user: "7" }] });
  // a message that quotes a "user" key is text, not a key
  assert.deepEqual(parseJson('{"message":"got \\"user\\":5","user":1}'), { message: 'got "user":5', user: "1" });
});

test("SSE: events split anywhere, CRLF and CR line ends, comments, multi-line data", () => {
  const text = ': keepalive\r\nevent: user\r\ndata: {"user":1}\r\n\r\nevent: member\rdata: a\rdata: b\r\revent: x\n\n' +
    'data: {"z":1}\n\n';
  const expected = [
    { event: "user", data: '{"user":1}' },
    { event: "member", data: "a\nb" },
    { event: "message", data: '{"z":1}' },
  ];
  for (let size = 1; size <= text.length; size++) {
    const p = new SseParser();
    const got = [];
    for (let i = 0; i < text.length; i += size) got.push(...p.push(text.slice(i, i + size)));
    assert.deepEqual(got, expected, `chunks of ${size}`);
  }
});

test("reconnection delays grow exponentially, stay within the cap and are jittered", () => {
  assert.equal(backoffDelay(0, 100, 1000, () => 1), 100);
  assert.equal(backoffDelay(0, 100, 1000, () => 0), 50);
  assert.equal(backoffDelay(3, 100, 1000, () => 1), 800);
  assert.equal(backoffDelay(10, 100, 1000, () => 1), 1000);
  assert.equal(backoffDelay(1000, 100, 1000, () => 0.5), 750);
});

test("clients refuse bad options with a clear error", () => {
  assert.throws(() => new Client({ url: "ftp://x" }), /only http: and https:/);
  assert.throws(() => new Client({}), /url must be/);
  assert.throws(() => new Client({ url: "http://127.0.0.1:1", socketPath: "/tmp/x.sock" }), /not both/);
  assert.throws(() => new Client({ url: "http://127.0.0.1:1/?a=1" }), /no query/);
  assert.throws(() => new Client({ url: "http://127.0.0.1:1", timeoutMs: 0 }), /timeoutMs/);
  assert.throws(() => new Client({ url: "http://127.0.0.1:1", maxBatch: 1.5 }), /maxBatch/);
  assert.throws(() => new Client({ url: "http://127.0.0.1:1", token: "bad token\n" }), /token must be/);
  assert.throws(() => new Client({ url: "http://127.0.0.1:1", ca: "x" }), /https/);
  assert.throws(() => new FetchClient({ socketPath: "/tmp/x.sock" }), /Unix socket/);
  assert.throws(() => new FetchClient({ url: "https://x", ca: "x" }), /trust store/);
});

function fakeClient() {
  const calls = [];
  return {
    calls,
    async heartbeatMany(ids) {
      calls.push(ids);
      return { accepted: ids.length };
    },
  };
}

test("HeartbeatBatcher: one request per interval, duplicates once, bad ids refused at add()", async () => {
  const client = fakeClient();
  const flushed = [];
  const b = new HeartbeatBatcher(client, { flushIntervalMs: 50, onFlush: (f) => flushed.push(f) });
  for (const id of ["1", 2, 3n, "1", "18446744073709551615"]) b.add(id);
  assert.throws(() => b.add(2 ** 60), RangeError);
  assert.equal(b.pending, 4);
  assert.equal(client.calls.length, 0);
  await eventually(() => client.calls.length === 1, { what: "the timed flush" });
  assert.deepEqual(client.calls[0], ["1", "2", "3", "18446744073709551615"]);
  assert.deepEqual(flushed, [{ ids: 4, accepted: 4 }]);
  b.add(5);
  assert.deepEqual(await b.close(), { accepted: 1 });
  assert.deepEqual(client.calls[1], ["5"]);
  assert.throws(() => b.add(6), /closed/);
});

test("HeartbeatBatcher: a full batch goes out at once; failures reach onError", async () => {
  const client = fakeClient();
  const b = new HeartbeatBatcher(client, { flushIntervalMs: 60000, maxSize: 3 });
  b.add(1); b.add(2);
  assert.equal(client.calls.length, 0);
  b.add(3);
  await eventually(() => client.calls.length === 1, { what: "the flush at maxSize" });
  assert.deepEqual(client.calls[0], ["1", "2", "3"]);
  assert.equal(b.pending, 0);

  const errors = [];
  const failing = { heartbeatMany: async () => { throw new Error("down"); } };
  const f = new HeartbeatBatcher(failing, { flushIntervalMs: 10, onError: (e, ids) => errors.push([e.message, ids]) });
  f.add(9);
  await eventually(() => errors.length === 1, { what: "onError" });
  assert.deepEqual(errors[0], ["down", ["9"]]);
  await assert.rejects(() => { f.add(10); return f.flush(); }, /down/);
});
