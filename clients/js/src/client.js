// The routes of docs/API.md over a transport (node:http in Node, fetch in browsers).
//
// A transport has:
//   request(method, path, {body, headers, timeoutMs}) -> Promise<{status, header(name), text, bytes}>
//     where bytes is the body as a Uint8Array and text the same bytes decoded as UTF-8
//   stream(path, {headers, signal, timeoutMs}) -> Promise<{status, header(name), chunks, close()}>
//     where chunks is an async iterable of decoded text, ending when the connection does
//   close()

import { ApiError, ProtocolError, apiErrorFrom } from "./errors.js";
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

  /**
   * GET /v1/members: every member this node knows that matches the filter (none: all),
   * sorted by name, in one answer. filter: {state, name, tag} as memberQuery takes them.
   */
  async members(filter) {
    const f = filter || {};
    if (f.limit != null || f.cursor != null || f.ifNoneMatch != null) {
      throw new TypeError("members() takes state, name and tag; for limit, cursor and ifNoneMatch use membersPage()");
    }
    const query = memberQuery(f);
    return (await this.call("GET", `/v1/members${query ? "?" + query : ""}`)).members.map(withTags);
  }

  /**
   * GET /v1/members with {state, name, tag, limit, cursor, ifNoneMatch}:
   * {members, nextCursor, etag, notModified}. nextCursor: pass it as `cursor` (same filters)
   * for the next page; null on the last page and without a limit. ifNoneMatch: an etag you
   * hold; if the answer is still the same the daemon sends a body-less 304 and this resolves
   * to {members: [], nextCursor: null, etag, notModified: true}.
   */
  async membersPage(options) {
    const o = options || {};
    const query = memberQuery(o);
    if (o.ifNoneMatch != null && (typeof o.ifNoneMatch !== "string" || o.ifNoneMatch === "")) {
      throw new TypeError(`ifNoneMatch: expected the etag of an earlier page, got ${describe(o.ifNoneMatch)}`);
    }
    const path = `/v1/members${query ? "?" + query : ""}`;
    const res = await this.transport.request("GET", path, {
      headers: this.headers(o.ifNoneMatch ? { "if-none-match": o.ifNoneMatch } : {}),
      timeoutMs: this.timeoutMs,
    });
    const etag = res.header("etag") || null;
    if (res.status === 304) return { members: [], nextCursor: null, etag: etag ?? o.ifNoneMatch, notModified: true };
    if (res.status < 200 || res.status > 299) throw apiErrorFrom(res.status, res.header, res.text);
    const body = parseJson(res.text);
    return { members: body.members.map(withTags), nextCursor: body.next_cursor ?? null, etag, notModified: false };
  }

  /**
   * Every matching member, in name order, fetched pageSize (default 1000) at a time: an
   * async iterable (for await) that follows the cursors itself. Bad input throws here, at
   * the call, not at the first iteration.
   */
  iterMembers(filter, { pageSize = 1000 } = {}) {
    const f = { state: filter?.state, name: filter?.name, tag: filter?.tag };
    if (f.state != null && typeof f.state !== "string") f.state = [...f.state];
    if (f.tag != null && typeof f.tag !== "string" && typeof f.tag[Symbol.iterator] === "function") f.tag = [...f.tag];
    memberQuery({ ...f, limit: pageSize });
    const client = this;
    return (async function* walk() {
      let cursor;
      for (;;) {
        const page = await client.membersPage({ ...f, limit: pageSize, cursor });
        yield* page.members;
        if (page.nextCursor == null) return;
        cursor = page.nextCursor;
      }
    })();
  }

  /** GET /v1/members/{name}. */
  async member(name) {
    return withTags(await this.call("GET", `/v1/members/${encodeURIComponent(memberName(name))}`));
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
   * POST /v1/users/status?format=bits, split like heartbeatMany: true for each user online,
   * in request order (duplicates included). An unknown user is false, as one gone offline;
   * statusMany tells them apart. A ProtocolError if an answer is not exactly the bits asked
   * for (docs/API.md, "One bit per user").
   */
  async online(ids) {
    const out = [];
    for await (const part of this.chunks(ids)) {
      const path = "/v1/users/status?format=bits";
      const res = await this.transport.request("POST", path, {
        body: BaseClient.body(part),
        headers: this.headers({ "content-type": "application/json", accept: "application/octet-stream" }),
        timeoutMs: this.timeoutMs,
      });
      if (res.status < 200 || res.status > 299) throw apiErrorFrom(res.status, res.header, res.text);
      for (const bit of decodeStatusBits(res, part.length, `POST ${path}`)) out.push(bit);
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

/**
 * The answer {status, header(name), bytes} of POST /v1/users/status?format=bits for `count`
 * ids: one boolean each, in request order (bit i % 8 of byte i / 8, least significant
 * first). A ProtocolError unless it is exactly that: status 200, Content-Type
 * application/octet-stream, X-Heartbeatd-Count equal to count, ceil(count / 8) bytes and the
 * unused high bits of the last byte 0. A wrong answer is refused whole, never read as offline.
 */
export function decodeStatusBits(res, count, what = "POST /v1/users/status?format=bits") {
  if (res.status !== 200) throw new ProtocolError(`${what}: status ${res.status}, expected 200`);
  const type = res.header("content-type");
  if ((type ?? "").split(";")[0].trim().toLowerCase() !== "application/octet-stream") {
    throw new ProtocolError(`${what}: Content-Type ${JSON.stringify(type)}, expected ` +
      `application/octet-stream (a daemon without format=bits?)`);
  }
  const counted = res.header("x-heartbeatd-count");
  if (counted == null || !/^[0-9]+$/.test(counted) || Number(counted) !== count) {
    throw new ProtocolError(`${what}: X-Heartbeatd-Count ${JSON.stringify(counted)}, expected ${count} (the number of ids sent)`);
  }
  const bytes = res.bytes;
  if (!(bytes instanceof Uint8Array)) {
    throw new ProtocolError(`${what}: the transport gave no bytes (a custom transport must return bytes: Uint8Array)`);
  }
  const want = Math.ceil(count / 8);
  if (bytes.length !== want) {
    throw new ProtocolError(`${what}: ${bytes.length} bytes for ${count} ids, expected ${want}`);
  }
  if (count % 8 !== 0 && bytes[want - 1] >> (count % 8) !== 0) {
    throw new ProtocolError(`${what}: padding bits set in the last byte ` +
      `(0x${bytes[want - 1].toString(16).padStart(2, "0")} for ${count % 8} ids)`);
  }
  const out = new Array(count);
  for (let i = 0; i < count; i++) out[i] = ((bytes[i >> 3] >> (i & 7)) & 1) === 1;
  return out;
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
export const MEMBER_STATES = ["alive", "suspect", "dead", "left"];
export const MAX_MEMBER_PAGE = 10000;  // the daemon's largest limit
const NAME_PATTERN = /^[A-Za-z0-9._*?-]{1,256}$/;
const TAG_KEY = /^[A-Za-z0-9._-]{1,64}$/;
const TAG_VALUE = /^[\x20-\x7e]{0,128}$/;

function describe(v) {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/** A member (or member event) from a daemon before tags has none: {} like an untagged one. */
function withTags(m) {
  if (m && (m.tags == null || typeof m.tags !== "object")) m.tags = {};
  return m;
}

/**
 * The query string (no "?") of GET /v1/members for {state, name, tag, limit, cursor}, each
 * value percent-encoded. state: "alive", "alive,suspect" or an array (any of them). name: a
 * pattern with * and ?. tag: "role:db", "role" (any value), an array of those, or an object
 * {role: "db", zone: null} (null: any value); every one must match. limit: 1 to 10000.
 * cursor: a page's nextCursor. Throws a TypeError that starts with the parameter's name for
 * input the daemon would refuse (the cursor is opaque: the daemon checks it).
 */
export function memberQuery({ state, name, tag, limit, cursor } = {}) {
  const params = [];
  if (state != null) {
    const states = typeof state === "string" ? [state] : [...state];
    if (states.length === 0) throw new TypeError("state: empty (expected alive, suspect, dead or left)");
    for (const s of states) {
      for (const one of String(s).split(",")) {
        if (!MEMBER_STATES.includes(one)) {
          throw new TypeError(`state: unknown state ${describe(one)} (expected alive, suspect, dead or left)`);
        }
      }
      params.push(["state", String(s)]);
    }
  }
  if (name != null) {
    if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
      throw new TypeError(`name: bad pattern ${describe(name)} (expected 1 to 256 letters, digits, '.', '-', '_' and the wildcards '*' and '?')`);
    }
    params.push(["name", name]);
  }
  if (tag != null) {
    let tags;
    if (typeof tag === "string") tags = [tag];
    else if (typeof tag[Symbol.iterator] === "function") tags = [...tag];
    else if (typeof tag === "object") tags = Object.entries(tag).map(([k, v]) => (v == null ? k : `${k}:${v}`));
    else tags = [tag];
    for (const t of tags) {
      if (typeof t !== "string") throw new TypeError(`tag: expected "key:value" or "key", got ${describe(t)}`);
      const colon = t.indexOf(":");
      const key = colon < 0 ? t : t.slice(0, colon);
      if (!TAG_KEY.test(key)) {
        throw new TypeError(`tag: bad key ${describe(key)} (expected key:value or key, the key 1 to 64 letters, digits, '.', '-' or '_')`);
      }
      if (colon >= 0 && !TAG_VALUE.test(t.slice(colon + 1))) {
        throw new TypeError(`tag: bad value for ${key} (at most 128 printable ASCII characters)`);
      }
      params.push(["tag", t]);
    }
  }
  if (limit != null) {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_MEMBER_PAGE) {
      throw new TypeError(`limit: expected an integer from 1 to ${MAX_MEMBER_PAGE}, got ${describe(limit)}`);
    }
    params.push(["limit", String(limit)]);
  }
  if (cursor != null) {
    if (typeof cursor !== "string" || cursor === "") {
      throw new TypeError(`cursor: expected the nextCursor of an earlier page, got ${describe(cursor)}`);
    }
    params.push(["cursor", cursor]);
  }
  // encodeURIComponent leaves only A-Z a-z 0-9 - _ . ! ~ * ' ( ) as they are: ':', '&', '#',
  // '%', '+' (a space to the daemon) and ' ' all travel encoded.
  return params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
}

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
                if (ev.type === "member") withTags(ev);
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
