// The fetch client in a real browser: Debian's Chromium, headless, loads a page that
// imports src/browser.js (through an import map, no bundler) from an origin that also
// forwards /v1/ to a real daemon, as a reverse proxy would; the page posts what it saw
// to /report. Skipped when Chromium is not installed.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Daemon, TOKENS, onExit } from "../testlib/daemon.js";

const CHROMIUM = ["/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser"]
  .find((p) => fs.existsSync(p));
const SRC = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "src");

const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

const PAGE = (token) => `<!doctype html>
<meta charset="utf-8"><title>@heartbeatd/client in a browser</title>
<script type="importmap">{"imports": {"@heartbeatd/client": "/client/browser.js"}}</script>
<script type="module">
import { Client, ApiError } from "@heartbeatd/client";
const out = {};
const BIG = "18446744073709551615";
try {
  const c = new Client({ url: location.origin, token: ${JSON.stringify(token)} });
  out.node = (await c.health()).node;
  const states = [];
  const it = c.events({ users: [BIG], members: [], onStateChange: (s) => states.push(s.state) });
  const first = (await it.next()).value;
  await c.heartbeat(BIG);
  const second = (await it.next()).value;
  await it.return();
  out.events = [first, second].map((e) => [e.type, e.user, e.online, e.initial]);
  out.states = states;
  out.status = (await c.statusMany([BIG, 5n])).map((s) => [s.user, s.online]);
  out.accepted = (await c.heartbeatMany(["9007199254740993", "9007199254740995"])).accepted;
  out.online = await c.online([BIG, 5n, "9007199254740993", "9007199254740992"]);
  try {
    await new Client({ url: location.origin }).health();
  } catch (e) {
    out.unauthenticated = [e instanceof ApiError, e.status, e.code];
  }
  try {
    await c.heartbeat(2 ** 60);
  } catch (e) {
    out.unsafe = e.name;
  }
} catch (e) {
  out.error = String(e && e.stack || e);
}
await fetch("/report", { method: "POST", body: JSON.stringify(out) });
</script>`;

test("the fetch client works in headless Chromium: requests, ids, bits, errors, the event stream", { skip: !CHROMIUM && "no Chromium" }, async () => {
  const d = new Daemon({ tokens: true });
  cleanup.push(() => d.dispose());
  await d.start();

  let resolveReport;
  const report = new Promise((resolve) => { resolveReport = resolve; });
  const server = http.createServer((req, res) => {
    if (req.url === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      return res.end(PAGE(TOKENS.gateway));
    }
    if (req.url.startsWith("/client/") && /^[a-z-]+\.js$/.test(req.url.slice(8))) {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
      return res.end(fs.readFileSync(path.join(SRC, req.url.slice(8))));
    }
    if (req.url === "/report" && req.method === "POST") {
      let body = "";
      req.on("data", (c) => { body += c; });
      req.on("end", () => {
        res.end();
        resolveReport(JSON.parse(body));
      });
      return;
    }
    if (req.url.startsWith("/v1/")) {
      // the reverse proxy: same origin for the page, the daemon behind it
      const up = http.request({ host: "127.0.0.1", port: d.port, path: req.url, method: req.method, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode, answer.headers);
          answer.pipe(res);
        });
      up.on("error", () => res.destroy());
      res.on("close", () => up.destroy());
      return req.pipe(up);
    }
    res.writeHead(404).end();
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanup.push(() => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }));

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "hbjs-chromium-"));
  const removeProfile = () => fs.rmSync(profile, { recursive: true, force: true });
  cleanup.push(removeProfile);
  // Its own process group, so that the browser and its helpers go together.
  const browser = spawn(CHROMIUM, [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
    "--disable-extensions", "--disable-background-networking", "--disable-component-update",
    `--user-data-dir=${profile}`, `http://127.0.0.1:${server.address().port}/`,
  ], { detached: true, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  browser.stderr.on("data", (c) => { stderr = (stderr + c).slice(-4000); });
  const exited = new Promise((resolve) => browser.once("exit", resolve));
  const killGroup = () => {
    try {
      process.kill(-browser.pid, "SIGKILL");
    } catch {
      // gone
    }
  };
  onExit(killGroup);
  onExit(removeProfile);  // after the browser is gone
  cleanup.push(async () => {
    killGroup();
    await exited;
  });

  let timer;
  const got = await Promise.race([
    report,
    exited.then((code) => ({ error: `chromium exited with ${code} before reporting: ${stderr}` })),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve({ error: `no report within 45 s; chromium said: ${stderr}` }), 45000);
    }),
  ]);
  clearTimeout(timer);
  assert.equal(got.error, undefined, got.error);
  assert.equal(got.node, "js-test");
  const BIG = "18446744073709551615";
  assert.deepEqual(got.events, [["user", BIG, false, true], ["user", BIG, true, false]]);
  assert.deepEqual(got.states, ["connected", "disconnected"]);
  assert.deepEqual(got.status, [[BIG, true], ["5", false]]);
  assert.equal(got.accepted, 2);
  assert.deepEqual(got.online, [true, false, true, false]);  // format=bits read as bytes through fetch
  assert.deepEqual(got.unauthenticated, [true, 401, "unauthenticated"]);
  assert.equal(got.unsafe, "RangeError");
});
