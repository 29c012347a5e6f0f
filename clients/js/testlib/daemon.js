// A real heartbeatd for the tests: the binary from $HEARTBEATD_BIN, a temporary directory
// with its config, data dir, Unix socket and (optionally) tokens file and TLS files, a
// loopback TCP port. Ready when /v1/health answers on the socket; killed on every exit
// path of the test process.

import { spawn, execFileSync } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const live = new Set();
const atExit = new Set();
function killAll() {
  for (const d of live) {
    try {
      d.child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const f of atExit) {
    try {
      f();
    } catch {
      // best effort
    }
  }
}

/** Runs `f` (synchronous) when the test process exits, however it exits; returns a remover. */
export function onExit(f) {
  atExit.add(f);
  return () => atExit.delete(f);
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    killAll();
    process.exit(128 + os.constants.signals[sig]);
  });
}

export const TOKENS = {
  reader: "reader-token-0123456789abcdef",
  writer: "writer-token-0123456789abcdef",
  gateway: "gateway-token-0123456789abcdef",
  admin: "admin-token-0123456789abcdef",
};

export function binary() {
  const bin = process.env.HEARTBEATD_BIN;
  if (!bin) throw new Error("HEARTBEATD_BIN must name the heartbeatd binary (clients/js/run_tests BIN sets it)");
  if (!fs.existsSync(bin)) throw new Error(`HEARTBEATD_BIN ${bin}: no such file`);
  return bin;
}

/** Polls `check` (sync or async) until it returns a truthy value, or throws naming `what`. */
export async function eventually(check, { deadlineMs = 10000, intervalMs = 25, what = "condition" } = {}) {
  const end = Date.now() + deadlineMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= end) {
      throw new Error(`${what} not reached within ${deadlineMs} ms${last ? ` (last error: ${last.message})` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket("udp4");
    s.once("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function yaml(obj, indent = "") {
  let out = "";
  for (const [k, v] of Object.entries(obj)) {
    if (v && typeof v === "object" && !Array.isArray(v)) out += `${indent}${k}:\n${yaml(v, indent + "  ")}`;
    else out += `${indent}${k}: ${JSON.stringify(v)}\n`;
  }
  return out;
}

function merge(a, b) {
  const out = { ...a };
  for (const [k, v] of Object.entries(b || {})) {
    out[k] = v && typeof v === "object" && !Array.isArray(v) && out[k] && typeof out[k] === "object"
      ? merge(out[k], v) : v;
  }
  return out;
}

/** A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI); null without openssl. */
export function makeTls(dir) {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
  } catch {
    return null;
  }
  const f = (n) => path.join(dir, n);
  const run = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=heartbeatd-js-test-ca", "-keyout", f("ca.key"), "-out", f("ca.pem"));
  run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-subj", "/CN=127.0.0.1", "-keyout", f("server.key"), "-out", f("server.csr"));
  fs.writeFileSync(f("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  run("x509", "-req", "-in", f("server.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-set_serial", "1001",
    "-days", "2", "-extfile", f("san.ext"), "-out", f("server.pem"));
  fs.chmodSync(f("server.key"), 0o600);
  // a client certificate from the same CA, for mutual TLS
  run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-subj", "/CN=gateway", "-keyout", f("client.key"), "-out", f("client.csr"));
  run("x509", "-req", "-in", f("client.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-set_serial", "1002",
    "-days", "2", "-out", f("client.pem"));
  return { ca: f("ca.pem"), cert: f("server.pem"), key: f("server.key"), clientCert: f("client.pem"), clientKey: f("client.key") };
}

export class Daemon {
  /**
   * @param options {config: extra YAML keys as a nested object, tokens: true to write the
   *   tokens file of TOKENS, tls: true for HTTPS on the TCP listener, "mutual" to ask for client certificates too}
   */
  constructor(options = {}) {
    this.options = options;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "hbjs-"));
    this.forgetDir = onExit(() => fs.rmSync(this.dir, { recursive: true, force: true }));
    this.socketPath = path.join(this.dir, "api.sock");
    this.configPath = path.join(this.dir, "heartbeatd.yaml");
    this.logPath = path.join(this.dir, "daemon.log");
    this.child = null;
    this.port = null;
    this.clusterPort = null;
    this.tls = null;
  }

  get url() {
    return `${this.tls ? "https" : "http"}://127.0.0.1:${this.port}`;
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, "utf8");
    } catch {
      return "";
    }
  }

  writeConfig() {
    let config = {
      node: { name: "js-test", data_dir: path.join(this.dir, "data") },
      api: { http: `127.0.0.1:${this.port}`, unix_socket: this.socketPath, threads: 2 },
      cluster: { bind: `127.0.0.1:${this.clusterPort}` },
      log: { level: "info" },
    };
    if (this.options.tokens) {
      const file = path.join(this.dir, "tokens");
      fs.writeFileSync(file,
        `reader read ${TOKENS.reader}\nwriter write ${TOKENS.writer}\n` +
        `gateway read,write ${TOKENS.gateway}\nadmin read,write,admin,metrics ${TOKENS.admin}\n`,
        { mode: 0o600 });
      fs.chmodSync(file, 0o600);
      config.api.tokens_file = file;
    }
    if (this.options.tls) {
      this.tls = this.tls || makeTls(this.dir);
      if (!this.tls) throw new Error("openssl is needed for the TLS test");
      config.api.tls = { cert_file: this.tls.cert, key_file: this.tls.key };
      if (this.options.tls === "mutual") config.api.tls.client_ca_file = this.tls.ca;
    }
    config = merge(config, this.options.config);
    fs.writeFileSync(this.configPath, yaml(config));
  }

  /** Health over the Unix socket, without the client under test. */
  probe() {
    return new Promise((resolve) => {
      const req = http.get({ socketPath: this.socketPath, path: "/v1/health", agent: false, timeout: 1000 }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode === 200));
      });
      req.on("error", () => resolve(false));
      req.on("timeout", () => req.destroy());
    });
  }

  /** Starts it (same ports and data dir on a restart); resolves once it answers. */
  async start({ deadlineMs = 15000 } = {}) {
    const restart = this.port != null;
    for (let attempt = 0; attempt < 5; attempt++) {
      if (!restart) {
        this.port = await freeTcpPort();
        this.clusterPort = await freeUdpPort();
      }
      this.writeConfig();
      const out = fs.openSync(this.logPath, "a");
      const child = spawn(binary(), ["--config", this.configPath], { stdio: ["ignore", out, out] });
      fs.closeSync(out);
      this.child = child;
      this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
      let exit = null;
      this.exited.then((e) => { exit = e; live.delete(this); });
      live.add(this);
      const ready = await eventually(async () => exit || (await this.probe()), {
        deadlineMs, what: "heartbeatd ready",
      }).catch((err) => {
        child.kill("SIGKILL");
        throw new Error(`${err.message}; log:\n${this.log()}`);
      });
      if (ready === true) return this;
      const log = this.log();
      if (!restart && /in use/i.test(log) && attempt < 4) continue;
      throw new Error(`heartbeatd exited with ${JSON.stringify(ready)}; log:\n${log}`);
    }
    throw new Error("no free port for heartbeatd");
  }

  /** SIGTERM (graceful: final snapshot), or the given signal; waits for the exit. */
  async stop(signal = "SIGTERM", { deadlineMs = 10000 } = {}) {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    let timer;
    const result = await Promise.race([
      this.exited,
      new Promise((resolve) => { timer = setTimeout(() => resolve(null), deadlineMs); }),
    ]);
    clearTimeout(timer);
    if (result === null) {
      this.child.kill("SIGKILL");
      await this.exited;
      throw new Error(`heartbeatd did not exit within ${deadlineMs} ms of ${signal}; log:\n${this.log()}`);
    }
  }

  async dispose() {
    try {
      await this.stop("SIGKILL");
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
      this.forgetDir();
    }
  }
}

/** Reads an events iterator in the background so a test can wait for the event it expects. */
export class EventReader {
  constructor(iterable) {
    this.queue = [];
    this.waiters = [];
    this.error = null;
    this.done = false;
    this.pump = (async () => {
      try {
        for await (const ev of iterable) {
          this.queue.push(ev);
          this.wake();
        }
      } catch (err) {
        this.error = err;
      }
      this.done = true;
      this.wake();
    })();
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The next event (in order; earlier ones are consumed) for which `match` holds. */
  async next(match, { deadlineMs = 10000, what = "event" } = {}) {
    const end = Date.now() + deadlineMs;
    const skipped = [];
    for (;;) {
      while (this.queue.length) {
        const ev = this.queue.shift();
        if (match(ev)) return ev;
        skipped.push(ev);
      }
      if (this.error) throw this.error;
      if (this.done) throw new Error(`the event stream ended before ${what}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`${what} not seen within ${deadlineMs} ms; skipped ${JSON.stringify(skipped)}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}
