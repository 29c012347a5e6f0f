// node:http / node:https with a keep-alive Agent: one connection serves request after
// request (over TCP, TLS or a Unix socket), and a request that meets a kept-alive
// connection the daemon has just closed (ECONNRESET or EPIPE before any byte of an answer)
// is sent once more on a fresh one.

import http from "node:http";
import https from "node:https";
import { TimeoutError } from "./errors.js";

function abortError(signal) {
  const reason = signal && signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error("the operation was aborted");
  err.name = "AbortError";
  err.code = "ABORT_ERR";
  return err;
}

export class NodeTransport {
  constructor(options) {
    const o = options || {};
    const agentOptions = { keepAlive: true, maxSockets: o.maxSockets ?? 32, scheduling: "lifo" };
    if (o.socketPath != null) {
      if (typeof o.socketPath !== "string" || o.socketPath === "") {
        throw new TypeError("socketPath must be the path of the daemon's Unix socket");
      }
      if (o.url != null) throw new TypeError("give url or socketPath, not both");
      this.module = http;
      this.target = { socketPath: o.socketPath, host: "localhost" };
      this.prefix = "";
    } else {
      let url;
      try {
        url = new URL(o.url ?? "");
      } catch {
        throw new TypeError(`url must be an absolute http:// or https:// URL, got ${JSON.stringify(o.url)}; ` +
          `or give socketPath for the Unix socket`);
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new TypeError(`url ${JSON.stringify(o.url)}: only http: and https: are supported`);
      }
      if (url.search || url.hash || url.username) {
        throw new TypeError(`url ${JSON.stringify(o.url)}: no query, fragment or credentials (use token)`);
      }
      const tls = url.protocol === "https:";
      this.module = tls ? https : http;
      const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
      this.target = { host, port: url.port ? Number(url.port) : tls ? 443 : 80 };
      this.prefix = url.pathname.replace(/\/+$/, "");
      if (tls) {
        for (const k of ["ca", "cert", "key", "servername"]) if (o[k] != null) agentOptions[k] = o[k];
      }
    }
    if (this.module === http && (o.ca != null || o.cert != null || o.key != null)) {
      throw new TypeError("ca, cert and key are for an https:// url");
    }
    this.agent = this.counted(new this.module.Agent(agentOptions));
    // Event streams get connections of their own, outside the pool, so that requests never
    // wait behind long-lived streams.
    this.streamAgent = this.counted(new this.module.Agent({ ...agentOptions, keepAlive: false, maxSockets: Infinity }));
  }

  // Counts the connections opened, so that reuse can be seen (Client#connectionsOpened).
  counted(agent) {
    this.connectionsOpened = this.connectionsOpened ?? 0;
    const create = agent.createConnection.bind(agent);
    agent.createConnection = (...args) => {
      this.connectionsOpened++;
      return create(...args);
    };
    return agent;
  }

  request(method, path, options) {
    return this.once(method, path, options, false).catch((err) => {
      if (err.staleConnection) return this.once(method, path, options, false);
      throw err;
    });
  }

  stream(path, options) {
    // always a new connection (streamAgent): nothing stale to retry
    return this.once("GET", path, options, true);
  }

  once(method, path, { body, headers, timeoutMs, signal }, streaming) {
    return new Promise((resolve, reject) => {
      if (signal && signal.aborted) return reject(abortError(signal));
      const h = { ...headers };
      if (body !== undefined) h["content-length"] = Buffer.byteLength(body);
      const agent = streaming ? this.streamAgent : this.agent;
      const req = this.module.request({ ...this.target, agent, method, path: this.prefix + path, headers: h });
      let answered = false;
      let settled = false;
      const finish = (fn, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn(value);
      };
      const onAbort = () => req.destroy(abortError(signal));
      if (signal) signal.addEventListener("abort", onAbort, { once: true });
      const detach = () => signal && signal.removeEventListener("abort", onAbort);
      const timer = setTimeout(
        () => req.destroy(new TimeoutError(timeoutMs, `${method} ${path}`)), timeoutMs);

      req.on("error", (err) => {
        detach();
        if (!answered && req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE")) {
          err.staleConnection = true;
        }
        finish(reject, err);
      });
      req.on("response", (res) => {
        answered = true;
        // A stream is text; an answer is kept as bytes too (format=bits), decoded at the end.
        if (streaming) res.setEncoding("utf8");
        const header = (name) => {
          const v = res.headers[name.toLowerCase()];
          return Array.isArray(v) ? v.join(", ") : v ?? null;
        };
        const readAll = () => new Promise((ok, fail) => {
          const parts = [];
          res.on("data", (c) => { parts.push(c); });
          res.on("end", () => ok(streaming ? parts.join("") : Buffer.concat(parts)));
          res.on("error", fail);
          res.on("close", () => {
            if (!res.complete) fail(new Error(`connection closed before the answer to ${method} ${path} was complete`));
          });
        });
        if (streaming) {
          clearTimeout(timer);  // a stream lasts; only its start is timed
          finish(resolve, {
            status: res.statusCode,
            header,
            chunks: (async function* () {
              try {
                for await (const chunk of res) yield chunk;
              } catch (err) {
                if (!(signal && signal.aborted)) throw err;
              } finally {
                detach();
              }
            })(),
            text: readAll,
            close: () => {
              detach();
              req.destroy();
            },
          });
          return;
        }
        readAll().then(
          (buf) => {
            detach();
            const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
            finish(resolve, { status: res.statusCode, header, text: buf.toString("utf8"), bytes });
          },
          (err) => {
            detach();
            finish(reject, err);
          });
      });
      req.end(body);
    });
  }

  close() {
    this.agent.destroy();
    this.streamAgent.destroy();
  }
}
