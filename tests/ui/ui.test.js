// The status page (/ui) in a real browser against a real three-node cluster on loopback:
// Debian's Chromium, headless, driven by puppeteer-core (which never downloads a browser).
//
//   node --test ui.test.js          (tests/ui/run_tests BINARY [ARTIFACT_DIR] sets the env)
//   HEARTBEATD_BINARY   the daemon (required)
//   UI_ARTIFACT_DIR     where screenshots and, on failure, daemon logs go (default: cwd)
//   CHROMIUM            the browser (default /usr/lib/chromium/chromium, then /usr/bin/chromium)
//
// Checks: the page asks for a token (401), says when one lacks read (403), then goes live;
// a SIGKILLed node's tile turns dead within the detection bound + 1 s; a followed user's dot
// turns online on a heartbeat and offline after presence.timeout, ids above 2^53 included;
// the page shows "disconnected" while its daemon is down and recovers when it is back; it
// makes no request beyond its own origin; no console error and no uncaught exception.
// Every wait is for a condition with a deadline; the whole run is bounded, and its daemons
// and browser are killed on every way out.
"use strict";

const { test, after } = require("node:test");
const assert = require("node:assert/strict");
const childProcess = require("node:child_process");
const crypto = require("node:crypto");
const dgram = require("node:dgram");
const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const puppeteer = require("puppeteer-core");

const BINARY = process.env.HEARTBEATD_BINARY;
const ARTIFACTS = path.resolve(process.env.UI_ARTIFACT_DIR || process.cwd());
const TOTAL_BUDGET_MS = 120000;

// Membership timings (docs/PROTOCOL.md, "Detection time"): with suspicion_max_timeout equal
// to suspicion_timeout, a crash is convicted within interval x miss_threshold +
// probe_timeout + suspicion_timeout however few monitors confirm (three nodes have few).
const MEMBERSHIP = { interval: 200, miss_threshold: 4, probe_timeout: 200, suspicion_timeout: 800 };
const DETECTION_BOUND_MS = MEMBERSHIP.interval * MEMBERSHIP.miss_threshold +
  MEMBERSHIP.probe_timeout + MEMBERSHIP.suspicion_timeout;
const PRESENCE_TIMEOUT_MS = 2000;
const BIG_ID = "18446744073709551615"; // 2^64 - 1: a JavaScript number would round it

const READ_TOKEN = "page-read-" + crypto.randomBytes(16).toString("hex");
const WRITE_TOKEN = "gateway-write-" + crypto.randomBytes(16).toString("hex");

// ---- Processes: every one we start is killed on every way out ------------------------------
const children = new Set();
let browser = null;

function killEverything() {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch (e) {
      // already gone
    }
  }
  children.clear();
  const proc = browser && browser.process();
  if (proc) {
    try {
      proc.kill("SIGKILL");
    } catch (e) {
      // already gone
    }
  }
}
process.on("exit", killEverything);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    killEverything();
    process.exit(128 + os.constants.signals[sig]);
  });
}
// The whole run is bounded even if something below forgets its own deadline.
const watchdog = setTimeout(() => {
  console.error(`ui test: over its ${TOTAL_BUDGET_MS / 1000} s budget; killing everything`);
  killEverything();
  process.exit(1);
}, TOTAL_BUDGET_MS + 15000);
watchdog.unref();

// setpriv --pdeathsig: a daemon dies with this process even if it is SIGKILLed (a ctest
// timeout), when util-linux's setpriv is there.
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => fs.existsSync(p));

// ---- Helpers -------------------------------------------------------------------------------
function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket("udp4");
    s.on("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// One HTTP request to a daemon; resolves {status, body} or rejects on a transport error.
function request(port, method, target, { token, body, timeoutMs = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const req = http.request({ host: "127.0.0.1", port, method, path: target, headers,
                               timeout: timeoutMs }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, body: data }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

// Waits for `check` (async, truthy when done) until the deadline; a condition, not a sleep.
async function eventually(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`${what}: not within ${timeoutMs} ms` + (last ? ` (last error: ${last.message})` : ""));
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

class Daemon {
  constructor(dir, name, tokensFile) {
    this.dir = path.join(dir, name);
    fs.mkdirSync(this.dir, { recursive: true });
    this.name = name;
    this.tokensFile = tokensFile;
    this.logPath = path.join(this.dir, "heartbeatd.log");
    this.proc = null;
    this.seeds = [];
  }

  config() {
    const m = MEMBERSHIP;
    return [
      "node:",
      `  name: ${this.name}`,
      `  data_dir: ${path.join(this.dir, "data")}`,
      "api:",
      `  http: 127.0.0.1:${this.port}`,
      `  unix_socket: ${path.join(this.dir, "api.sock")}`,
      `  tokens_file: ${this.tokensFile}`,
      "  threads: 2",
      "cluster:",
      `  bind: 127.0.0.1:${this.udpPort}`,
      `  seeds: [${this.seeds.join(", ")}]`,
      "membership:",
      `  interval: ${m.interval}ms`,
      `  miss_threshold: ${m.miss_threshold}`,
      `  probe_timeout: ${m.probe_timeout}ms`,
      `  suspicion_timeout: ${m.suspicion_timeout}ms`,
      `  suspicion_max_timeout: ${m.suspicion_timeout}ms`,
      "presence:",
      `  timeout: ${PRESENCE_TIMEOUT_MS}ms`,
      "  history:",
      "    interval: 500ms # points for the chart within the test's few seconds",
      "log:",
      "  level: info",
      "",
    ].join("\n");
  }

  // Starts (or restarts, on the same ports: the page's origin is this node's address) and
  // waits until the API answers.
  async start({ keepPorts = false } = {}) {
    for (let tries = 0; ; tries++) {
      if (!keepPorts || !this.port) {
        this.port = await freeTcpPort();
        this.udpPort = this.udpPort || (await freeUdpPort());
      }
      const configPath = path.join(this.dir, "heartbeatd.yaml");
      fs.writeFileSync(configPath, this.config());
      const log = fs.openSync(this.logPath, "a");
      const argv = [BINARY, "--config", configPath];
      const [cmd, ...args] = SETPRIV ? [SETPRIV, "--pdeathsig", "KILL", "--", ...argv] : argv;
      const proc = childProcess.spawn(cmd, args, { stdio: ["ignore", log, log] });
      fs.closeSync(log);
      children.add(proc);
      let exited = false;
      proc.on("exit", () => {
        exited = true;
        children.delete(proc);
      });
      this.proc = proc;
      try {
        await eventually(`${this.name} answers on ${this.port}`, async () => {
          if (exited) throw new Error("exited:\n" + this.log());
          const r = await request(this.port, "GET", "/v1/health", { token: READ_TOKEN });
          return r.status === 200;
        }, 15000);
        return;
      } catch (e) {
        this.kill("SIGKILL");
        // Another process took a port between our probe and the bind: choose again.
        if (tries < 4 && !keepPorts && /Address already in use/.test(this.log())) continue;
        throw e;
      }
    }
  }

  kill(signal) {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill(signal);
    }
  }

  async stopped(timeoutMs = 10000) {
    const p = this.proc;
    if (!p) return;
    await eventually(`${this.name} exits`, () => p.exitCode !== null || p.signalCode !== null, timeoutMs);
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, "utf8");
    } catch (e) {
      return "";
    }
  }
}

function chromiumPath() {
  const candidates = [process.env.CHROMIUM, "/usr/lib/chromium/chromium", "/usr/bin/chromium"];
  const found = candidates.find((p) => p && fs.existsSync(p));
  if (!found) {
    throw new Error("no Chromium: install Debian's chromium (scripts/setup does) or set CHROMIUM");
  }
  return found;
}

// ---- The test ------------------------------------------------------------------------------
let tmp = null;
let nodes = [];
let failed = true;

after(async () => {
  if (browser) {
    let timer;
    const bounded = new Promise((r) => (timer = setTimeout(r, 5000)));
    await Promise.race([browser.close().catch(() => {}), bounded]);
    clearTimeout(timer);
  }
  killEverything();
  if (tmp) {
    if (failed) {
      // The daemons' logs beside the screenshots, for whoever reads the failure.
      for (const n of nodes) {
        try {
          fs.copyFileSync(n.logPath, path.join(ARTIFACTS, `ui-${n.name}.log`));
        } catch (e) {
          // no log
        }
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test("the status page follows a live cluster in Chromium", { timeout: TOTAL_BUDGET_MS }, async () => {
  assert.ok(BINARY, "HEARTBEATD_BINARY must name the heartbeatd to test (tests/ui/run_tests does)");
  assert.ok(fs.existsSync(BINARY), `no daemon at ${BINARY}`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "heartbeatd-ui-"));
  const tokensFile = path.join(tmp, "tokens");
  fs.writeFileSync(tokensFile, `page read ${READ_TOKEN}\ngateway write ${WRITE_TOKEN}\n`, { mode: 0o600 });

  // Three nodes; node-1 is the seed and serves the page.
  nodes = ["node-1", "node-2", "node-3"].map((n) => new Daemon(tmp, n, tokensFile));
  const [n1, n2, n3] = nodes;
  await n1.start();
  n2.seeds = n3.seeds = [`127.0.0.1:${n1.udpPort}`];
  await Promise.all([n2.start(), n3.start()]);
  await eventually("node-1 sees three alive members", async () => {
    const r = await request(n1.port, "GET", "/v1/members", { token: READ_TOKEN });
    const ms = JSON.parse(r.body).members;
    return ms.length === 3 && ms.every((m) => m.state === "alive");
  }, 10000);

  const origin = `http://127.0.0.1:${n1.port}`;
  browser = await puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    pipe: true, // the browser exits when this process goes, however it goes
    userDataDir: path.join(tmp, "chromium"),
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--no-default-browser-check"],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });

  // Console errors and exceptions fail the test, except the network errors Chromium logs
  // for requests that fail on purpose: 401s and 403s before the read token is entered, refused
  // connections while node-1 is down for the restart below.
  const problems = [];
  let expectUnauthorized = true;
  let expectDaemonDown = false;
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const text = msg.text();
    const url = (msg.location() && msg.location().url) || "";
    const sameOrigin = url.startsWith(origin + "/");
    if (sameOrigin && expectUnauthorized && /status of 40[13]/.test(text)) return;
    if (sameOrigin && expectDaemonDown && /net::ERR_|Failed to fetch/.test(text)) return;
    problems.push(`console error: ${text} (${url})`);
  });
  page.on("pageerror", (err) => problems.push(`uncaught: ${err.message}`));
  page.on("request", (req) => {
    if (!req.url().startsWith(origin + "/")) problems.push(`request beyond the daemon: ${req.url()}`);
  });

  const began = Date.now();
  const step = (what) => console.error(`[${((Date.now() - began) / 1000).toFixed(1)} s] ${what}`);
  const shot = async (name) => {
    await page.screenshot({ path: path.join(ARTIFACTS, `ui-${name}.png`), fullPage: true });
  };
  const waitFor = (what, fn, timeoutMs, ...args) =>
    page.waitForFunction(fn, { timeout: timeoutMs, polling: "mutation" }, ...args).catch(async (e) => {
      await shot("failed").catch(() => {});
      throw new Error(`${what}: ${e.message}`);
    });
  const tileState = (name) => page.evaluate((n) => {
    const t = document.querySelector(`#members [data-name="${n}"]`);
    return t ? t.dataset.state : null;
  }, name);

  // Served by the daemon itself, with its security headers.
  const res = await page.goto(origin + "/ui", { waitUntil: "load" });
  assert.equal(res.status(), 200);
  assert.match(res.headers()["content-security-policy"], /^default-src 'self'/);

  // No token yet: the page says what is needed.
  step("a 401 message");
  await waitFor("a 401 message", () => {
    const m = document.getElementById("auth-message");
    return !m.hidden && /401/.test(m.textContent);
  }, 10000);
  // A token without the read scope: the page says that, not "unreachable".
  await page.type("#token", WRITE_TOKEN);
  await page.keyboard.press("Enter"); // keyboard only: the form submits
  step("a 403 message");
  await waitFor("a 403 message", () => {
    const m = document.getElementById("auth-message");
    return !m.hidden && /403/.test(m.textContent) && /read/.test(m.textContent);
  }, 10000);
  await page.$eval("#token", (t) => { t.value = ""; });
  await page.type("#token", READ_TOKEN);
  await page.keyboard.press("Enter");
  step("live with the read token");
  await waitFor("live with the read token", () =>
    document.getElementById("connection").dataset.state === "live" &&
    document.getElementById("auth-message").hidden, 10000);
  expectUnauthorized = false;
  assert.equal(await page.evaluate(() => sessionStorage.getItem("heartbeatd.token")), READ_TOKEN);

  // Three alive tiles, this node marked, the counts.
  step("three alive tiles");
  await waitFor("three alive tiles", () => {
    const tiles = [...document.querySelectorAll("#members .tile")];
    return tiles.length === 3 && tiles.every((t) => t.dataset.state === "alive");
  }, 10000);
  const self = await page.$eval('#members [data-name="node-1"]', (t) => t.textContent);
  assert.match(self, /this node/);
  assert.match(self, /alive/, "the state is written out, not only coloured");
  assert.equal(await page.$eval("#count-alive", (e) => e.textContent), "3");

  // Follow users, one of them beyond 2^53.
  await page.type("#user-ids", `42\n${BIG_ID}, 7`);
  await page.click("#users-form button[type=submit]");
  step("three followed users, offline");
  await waitFor("three followed users, offline", () => {
    const rows = [...document.querySelectorAll("#users .user")];
    return rows.length === 3 && rows.every((r) => r.dataset.state === "offline");
  }, 10000);
  const ids = await page.$$eval("#users .user", (rows) => rows.map((r) => r.dataset.user));
  assert.deepEqual(ids, ["42", BIG_ID, "7"]);

  const userState = (id) => `document.querySelector('#users [data-user="${id}"]')?.dataset.state`;
  const heartbeat = async (ids) => {
    const r = await request(n1.port, "POST", "/v1/users/heartbeat", { token: WRITE_TOKEN, body: { users: ids } });
    assert.equal(r.status, 200, r.body);
  };

  // A heartbeat turns the dot online; presence.timeout later it is offline again.
  const beat = Date.now(); // before the daemon takes the heartbeat: offline comes >= 2 s after
  await heartbeat(["42", BIG_ID]);
  step("42 and 2^64-1 online");
  await waitFor("42 and 2^64-1 online", (a, b) =>
    document.querySelector(`#users [data-user="${a}"]`)?.dataset.state === "online" &&
    document.querySelector(`#users [data-user="${b}"]`)?.dataset.state === "online", 3000, "42", BIG_ID);
  assert.equal(await page.evaluate(userState("7")), "offline", "an id not heartbeated stays offline");
  const label = await page.$eval('#users [data-user="42"] .user-state', (e) => e.textContent);
  assert.equal(label, "online", "online is written out, not only coloured");
  step("42 offline after presence.timeout");
  await waitFor("42 offline after presence.timeout", (a) =>
    document.querySelector(`#users [data-user="${a}"]`)?.dataset.state === "offline",
    PRESENCE_TIMEOUT_MS + 2000, "42");
  assert.ok(Date.now() - beat >= PRESENCE_TIMEOUT_MS, "offline only after the timeout");

  // SIGKILL node-3: its tile turns dead within the detection bound + 1 s.
  n3.kill("SIGKILL");
  const killed = Date.now();
  await waitFor(`node-3 dead within ${DETECTION_BOUND_MS} + 1000 ms`, () =>
    document.querySelector('#members [data-name="node-3"]')?.dataset.state === "dead",
    DETECTION_BOUND_MS + 1000);
  const detected = Date.now() - killed;
  assert.ok(detected <= DETECTION_BOUND_MS + 1000, `dead after ${detected} ms`);
  assert.match(await page.$eval('#members [data-name="node-3"]', (t) => t.textContent), /dead/);
  step("node-3's last-seen age");
  await waitFor("node-3's last-seen age", () =>
    /last seen \d+ s ago/.test(document.querySelector('#members [data-name="node-3"] .seen').textContent),
    3000);

  // Filter by state with the counts' buttons (keyboard: they are buttons).
  await page.focus('.count[data-filter="dead"]');
  await page.keyboard.press("Enter");
  step("only the dead tile");
  await waitFor("only the dead tile", () => {
    const tiles = [...document.querySelectorAll("#members .tile")];
    return tiles.length === 1 && tiles[0].dataset.name === "node-3";
  }, 2000);
  assert.equal(await page.$eval('.count[data-filter="dead"]', (b) => b.getAttribute("aria-pressed")), "true");
  await page.click('.count[data-filter="all"]');
  step("all tiles again");
  await waitFor("all tiles again", () => document.querySelectorAll("#members .tile").length === 3, 2000);

  // A picture of it all: a dead node, users online and offline, the chart.
  await heartbeat(["42", BIG_ID]);
  step("42 online again");
  await waitFor("42 online again", (a) =>
    document.querySelector(`#users [data-user="${a}"]`)?.dataset.state === "online", 3000, "42");
  step("the counts follow the users' change");
  await waitFor("the counts follow the users' change", () =>
    document.getElementById("users-online").textContent === "2", 3000);
  await shot("cluster");
  await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "dark" }]);
  await shot("cluster-dark");
  await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "light" }]);

  // Restart node-1 (the page's daemon): "disconnected" while it is down, then live again,
  // with the members read again and the users followed again.
  expectDaemonDown = true;
  n1.kill("SIGTERM");
  await n1.stopped();
  step("the disconnected banner");
  await waitFor("the disconnected banner", () => {
    const b = document.getElementById("banner");
    return !b.hidden && /Disconnected/.test(b.textContent) &&
      document.getElementById("connection").dataset.state === "disconnected";
  }, 5000);
  await shot("disconnected");
  await n1.start({ keepPorts: true });
  step("live again after the restart");
  await waitFor("live again after the restart", () =>
    document.getElementById("connection").dataset.state === "live" &&
    document.getElementById("banner").hidden, 15000);
  expectDaemonDown = false;
  step("node-1 and node-2 alive after the restart");
  await waitFor("node-1 and node-2 alive after the restart", () =>
    ["node-1", "node-2"].every((n) =>
      document.querySelector(`#members [data-name="${n}"]`)?.dataset.state === "alive"), 10000);
  await heartbeat(["7"]);
  step("7 online through the new stream");
  await waitFor("7 online through the new stream", (a) =>
    document.querySelector(`#users [data-user="${a}"]`)?.dataset.state === "online", 3000, "7");
  await shot("recovered");
  assert.equal(await tileState("node-1"), "alive");

  // Thousands of ids: the stream follows the first 1,000; the rest are read in batches of
  // max_batch (POST /v1/users/status) when the page connects and on "Refresh the rest";
  // the list is paged.
  const many = Array.from({ length: 1500 }, (_, i) => String(100000 + i));
  await page.$eval("#user-ids", (t, text) => { t.value = text; }, many.join("\n"));
  await page.click("#users-form button[type=submit]");
  step("1,500 users, 1,000 live");
  await waitFor("1,500 users, 1,000 live", () =>
    /first 1,000 live; the other 500/.test(document.getElementById("users-note").textContent) &&
    document.querySelectorAll("#users .user").length === 200 &&
    /Page 1 of 8/.test(document.querySelector("#users-pager .page-info").textContent), 10000);
  await heartbeat([many[0]]);
  step("the first id online through the stream");
  await waitFor("the first id online through the stream", (a) =>
    document.querySelector(`#users [data-user="${a}"]`)?.dataset.state === "online", 3000, many[0]);
  // The filter: offline only, whether the first id has timed out again by then or not.
  await page.select("#user-filter", "offline");
  step("only offline users shown");
  await waitFor("only offline users shown", () => {
    const rows = [...document.querySelectorAll("#users .user")];
    return rows.length === 200 && rows.every((r) => r.dataset.state === "offline") &&
      /\((1,499|1,500) users\)/.test(document.querySelector("#users-pager .page-info").textContent);
  }, 3000);
  await page.select("#user-filter", "all");
  // An id beyond the stream's changes on the page only when read again. Online or offline
  // by the time it is read (presence.timeout is short), it has been seen now.
  const late = many[1400];
  const lateRow = (id) => {
    const r = document.querySelector(`#users [data-user="${id}"]`);
    return r ? r.textContent : "";
  };
  for (let p = 1; p < 8; p++) await page.click('#users-pager [data-page="next"]'); // to page 8
  step("the page holding the 1,401st id, read at connect");
  await waitFor("the page holding the 1,401st id, read at connect", (id) =>
    /as of/.test(document.querySelector(`#users [data-user="${id}"]`)?.textContent || ""), 5000, late);
  assert.match(await page.evaluate(lateRow, late), /never seen/);
  assert.match(await page.evaluate(lateRow, late), /as of/, "it says when it was read");
  await heartbeat([late]);
  await page.click("#users-refresh");
  step("the 1,401st read again after the heartbeat");
  await waitFor("the 1,401st read again after the heartbeat", (id) => {
    const r = document.querySelector(`#users [data-user="${id}"]`);
    return r && !/never seen/.test(r.textContent) && /as of/.test(r.textContent);
  }, 5000, late);

  step("done");
  assert.deepEqual(problems, [], "no console errors, uncaught exceptions or foreign requests");
  failed = false;
});
