// The routes of docs/API.md over a transport (node:http in Node, fetch in browsers).
//
// A transport has:
//   request(method, path, {body, headers, timeoutMs}) -> Promise<{status, header(name), text}>
//   stream(path, {headers, signal, timeoutMs}) -> Promise<{status, header(name), chunks, close()}>
//     where chunks is an async iterable of decoded text, ending when the connection does
//   close()

import { ApiError, apiErrorFrom } from "./errors.js";
import { userId, userIds, memberName, parseJson } from "./ids.js";
import { SseParser } from "./sse.js";

export const DEFAULT_MAX_BATCH = 10000;
const TOKEN = /^[A-Za-z0-9._~+/-]+=*$/;

export class BaseClient {
  constructor(options, transport) {
    const o = options || {};
    if (o.token != null) {
      if (typeof o.token !== "string" || !TOKEN.test(o.token)) {
        // never quote the token itself
        throw new TypeError("token must be a string of A-Z a-z 0-9 - . _ ~ + / (and = at the end)");
      }
    }
    if (o.timeoutMs != null && !(Number.isFinite(o.timeoutMs) && o.timeoutMs > 0)) {
      throw new TypeError(`timeoutMs must be a positive number of milliseconds, got ${o.timeoutMs}`);
    }
    if (o.maxBatch != null && !(Number.isInteger(o.maxBatch) && o.maxBatch > 0)) {
      throw new TypeError(`maxBatch must be a positive integer, got ${o.maxBatch}`);
    }
    this.token = o.token ?? null;
    this.timeoutMs = o.timeoutMs ?? 10000;
    this.transport = transport;
    this._maxBatch = o.maxBatch ?? null;
    this._maxBatchPromise = null;
    this.closes = 0;  // close() ends the event iterators started before it
  }

  headers(extra) {
    const h = { accept: "application/json", ...extra };
    if (this.token) h.authorization = `Bearer ${this.token}`;
    return h;
  }

  /** One request; the parsed JSON body (null for 204), or an ApiError. */
  async call(method, path, body) {
    const headers = this.headers(body === undefined ? {} : { "content-type": "application/json" });
    const res = await this.transport.request(method, path, {
      body: body === undefined ? undefined : body,
      headers,
      timeoutMs: this.timeoutMs,
    });
    if (res.status < 200 || res.status > 299) throw apiErrorFrom(res.status, res.header, res.text);
    if (res.status === 204 || res.text === "") return null;
    return parseJson(res.text);
  }

  /** GET /v1/health. */
  async health() {
    return this.call("GET", "/v1/health");
  }

  /** GET /v1/members: every member this node knows, sorted by name. */
  async members() {
    return (await this.call("GET", "/v1/members")).members;
  }

  /** GET /v1/members/{name}. */
  async member(name) {
    return this.call("GET", `/v1/members/${encodeURIComponent(memberName(name))}`);
  }

  /** GET /v1/keys (scope admin). */
  async keys() {
    return this.call("GET", "/v1/keys");
  }

  /** POST /v1/users/{id}/heartbeat. */
  async heartbeat(id) {
    await this.call("POST", `/v1/users/${userId(id)}/heartbeat`);
  }

  /** DELETE /v1/users/{id}: offline now (logout). */
  async logout(id) {
    await this.call("DELETE", `/v1/users/${userId(id)}`);
  }

  /** GET /v1/users/{id}. */
  async status(id) {
    return this.call("GET", `/v1/users/${userId(id)}?ids=string`);
  }

  /** GET /v1/users: {online, tracked}. */
  async counts() {
    return this.call("GET", "/v1/users");
  }

  /** GET /v1/users/history: the online count over the last hour (by default). */
  async history() {
    return this.call("GET", "/v1/users/history");
  }

  /**
   * The largest batch the daemon takes (presence.max_batch, from /v1/health), read once;
   * the maxBatch option, if given, instead; 10000 if the daemon does not say.
   */
  maxBatch() {
    if (this._maxBatch != null) return Promise.resolve(this._maxBatch);
    if (!this._maxBatchPromise) {
      this._maxBatchPromise = this.health().then(
        (h) => {
          const n = h && h.presence && h.presence.max_batch;
          this._maxBatch = Number.isInteger(n) && n > 0 ? n : DEFAULT_MAX_BATCH;
          return this._maxBatch;
        },
        (err) => {
          this._maxBatchPromise = null;  // ask again next time
          throw err;
        });
    }
    return this._maxBatchPromise;
  }

  async *chunks(ids) {
    const all = userIds(ids);
    if (all.length === 0) return;
    const size = await this.maxBatch();
    for (let i = 0; i < all.length; i += size) yield all.slice(i, i + size);
  }

  static body(ids) {
    // ids are canonical digits, so they need no escaping
    return `{"users":[${ids.map((id) => `"${id}"`).join(",")}]}`;
  }

  /**
   * POST /v1/users/heartbeat, in as many requests of at most maxBatch() ids as needed (one
   * after the other). Returns {accepted} summed over them. Every id is checked before
   * anything is sent; if a request fails, the batches before it were applied.
   */
  async heartbeatMany(ids) {
    let accepted = 0;
    for await (const part of this.chunks(ids)) {
      accepted += (await this.call("POST", "/v1/users/heartbeat", BaseClient.body(part))).accepted;
    }
    return { accepted };
  }

  /** POST /v1/users/status, split like heartbeatMany; statuses in request order. */
  async statusMany(ids) {
    const out = [];
    for await (const part of this.chunks(ids)) {
      const r = await this.call("POST", "/v1/users/status?ids=string", BaseClient.body(part));
      for (const s of r.users) out.push(s);
    }
    return out;
  }

  /**
   * GET /v1/events as an async iterator of events, reconnecting with backoff and resuming
   * (see index.d.ts, EventsOptions).
   */
  events(options = {}) {
    return eventStream(this, options);
  }

  /**
   * Closes this client's connections (Node) and ends its event iterators (both clients).
   * Requests made afterwards open new connections.
   */
  close() {
    this.closes++;
    this.transport.close();
  }
}

function eventsPath(options) {
  const q = ["ids=string"];
  if (options.users != null) {
    const ids = userIds(options.users, "users");
    q.push(`users=${ids.join(",")}`);
  }
  if (options.members != null) {
    if (typeof options.members === "string" || typeof options.members[Symbol.iterator] !== "function") {
      throw new TypeError("members must be an array of member names ([] for none)");
    }
    q.push(`members=${[...options.members].map(memberName).join(",")}`);
  }
  return `/v1/events?${q.join("&")}`;
}

function abortableSleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal && signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      if (signal) signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal) signal.addEventListener("abort", done, { once: true });
  });
}

/** The next reconnection delay: exponential from initialMs, capped at maxMs, jittered to 50-100 %. */
export function backoffDelay(attempt, initialMs, maxMs, random = Math.random) {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.max(1, Math.round(ceiling * (0.5 + 0.5 * random())));
}

// What must differ for an initial event after a reconnect to be news: a user's online
// flag (a newer last-seen while staying online is no transition), a member's state,
// incarnation or address.
function identity(ev) {
  if (ev.type === "member") return [`m:${ev.name}`, `${ev.state}|${ev.incarnation}|${ev.address}`];
  return [`u:${ev.user}`, ev.online ? "1" : "0"];
}

function permanent(err) {
  // A request the daemon will refuse again: bad parameters, token, scope, route.
  return err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 408 &&
    err.status !== 429;
}

async function* eventStream(client, options) {
  const path = eventsPath(options);
  const signal = options.signal;
  const initialMs = options.backoff?.initialMs ?? 250;
  const maxMs = options.backoff?.maxMs ?? 15000;
  const resume = options.resume !== false;
  const idleTimeoutMs = options.idleTimeoutMs ?? 60000;
  if (!(Number.isFinite(idleTimeoutMs) && idleTimeoutMs >= 0)) {
    throw new TypeError(`idleTimeoutMs must be a number of milliseconds >= 0, got ${idleTimeoutMs}`);
  }
  const onState = typeof options.onStateChange === "function" ? options.onStateChange : () => {};
  const seen = new Map();
  const closes = client.closes;
  const ended = () => (signal && signal.aborted) || client.closes !== closes;
  let connections = 0;
  let attempt = 0;
  let stream = null;
  let state = "disconnected";
  const setState = (next, extra) => {
    state = next;
    try {
      onState({ state: next, ...extra });
    } catch {
      // an observer's bug must not end the stream
    }
  };

  try {
    while (!ended()) {
      let failure = null;
      try {
        stream = await client.transport.stream(path, {
          headers: client.headers({ accept: "text/event-stream" }),
          signal,
          timeoutMs: client.timeoutMs,
        });
        if (stream.status !== 200) {
          const text = await stream.text();
          throw apiErrorFrom(stream.status, stream.header, text);
        }
        connections++;
        attempt = 0;
        setState("connected", { reconnected: connections > 1 });
        const parser = new SseParser();
        // Silence longer than idleTimeoutMs (the daemon sends ": keepalive" every
        // events.keepalive) means the connection is gone without a word: a vanished host.
        let idle = false;
        let watchdog = null;
        const current = stream;
        const arm = () => {
          if (idleTimeoutMs === 0) return;
          clearTimeout(watchdog);
          watchdog = setTimeout(() => {
            idle = true;
            current.close();
          }, idleTimeoutMs);
        };
        arm();
        try {
          for await (const chunk of stream.chunks) {
            arm();
            for (const raw of parser.push(chunk)) {
              if (raw.event !== "member" && raw.event !== "user" && raw.event !== "dropped") continue;
              let ev;
              try {
                ev = { type: raw.event, ...parseJson(raw.data) };
              } catch {
                continue;  // not JSON: not an event of ours
              }
              if (ev.type === "dropped") {
                failure = new Error(`the daemon dropped this stream: ${ev.reason}`);
              } else {
                const [key, value] = identity(ev);
                if (resume && connections > 1 && ev.initial === true && seen.get(key) === value) continue;
                seen.set(key, value);
              }
              yield ev;
            }
          }
        } catch (err) {
          if (!idle) throw err;
        } finally {
          clearTimeout(watchdog);
        }
        if (idle) failure = new Error(`nothing received on the event stream for ${idleTimeoutMs} ms (idleTimeoutMs)`);
      } catch (err) {
        if (ended()) break;
        if (permanent(err)) throw err;
        failure = err;
      } finally {
        if (stream) stream.close();
        stream = null;
      }
      if (ended()) break;
      let delay = backoffDelay(attempt++, initialMs, maxMs);
      if (failure instanceof ApiError && failure.retryAfter != null) {
        delay = Math.max(delay, failure.retryAfter * 1000);
      }
      setState("disconnected", { error: failure ?? new Error("the event stream ended"), retryInMs: delay });
      await abortableSleep(delay, signal);
    }
  } finally {
    if (stream) stream.close();
    if (state === "connected") setState("disconnected", { error: null, retryInMs: null });
  }
}
