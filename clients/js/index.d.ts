// Type declarations of @heartbeatd/client (hand-written; the package is plain JavaScript).
// Field names are the daemon's, as in docs/API.md.

/**
 * A user id: an unsigned 64-bit integer. Give it as a decimal string ("18446744073709551615")
 * or a BigInt; a number only if it is a safe integer (<= 2^53 - 1), since a larger one has
 * already lost precision. Ids in results are always canonical decimal strings.
 */
export type UserIdInput = string | bigint | number;

/** The largest user id, 2^64 - 1. */
export declare const MAX_USER_ID: bigint;

/**
 * The canonical decimal string of a user id. Throws a TypeError (not an integer, not
 * canonical: sign, leading zero, exponent) or a RangeError (above 2^64 - 1, or a number
 * above Number.MAX_SAFE_INTEGER).
 */
export declare function userId(id: UserIdInput): string;

/** Exponential reconnection delay from initialMs, capped at maxMs, jittered to 50-100 %. */
export declare function backoffDelay(attempt: number, initialMs: number, maxMs: number, random?: () => number): number;

export interface ClientOptions {
  /** http://host:port or https://host:port (optionally with a path prefix). Not with socketPath. */
  url?: string;
  /** Node only: the daemon's Unix socket (api.unix_socket); no token needed there. */
  socketPath?: string;
  /** Bearer token (api.tokens_file); sent as Authorization: Bearer TOKEN. */
  token?: string;
  /** Node only, https: CA certificate(s) to verify the daemon with (PEM). */
  ca?: string | Uint8Array | Array<string | Uint8Array>;
  /** Node only, https, mutual TLS: client certificate (PEM). */
  cert?: string | Uint8Array | Array<string | Uint8Array>;
  /** Node only, https, mutual TLS: client private key (PEM). */
  key?: string | Uint8Array | Array<string | Uint8Array>;
  /** Node only, https: the TLS server name, when it differs from the url's host. */
  servername?: string;
  /** Per request (for the event stream: until its headers). Default 10000. */
  timeoutMs?: number;
  /** Ids per batch request; default: presence.max_batch from GET /v1/health (10000 if absent). */
  maxBatch?: number;
  /** Node only: request connections kept at most (default 32; the daemon allows 64 per
   * client). Each event stream has a connection of its own besides. */
  maxSockets?: number;
  /** Fetch client only: the fetch to use (default globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
}

/** The daemon answered with an error status (docs/API.md, "Errors"). */
export declare class ApiError extends Error {
  name: "ApiError";
  /** HTTP status, e.g. 401. */
  status: number;
  /** The body's `error`: "bad_request", "unauthenticated", "forbidden", "not_found",
   * "unknown_member", "batch_too_large", "rate_limited", "overloaded", "too_many_users",
   * "presence_unavailable", ... (or "http_<status>" for a body that is not the daemon's). */
  code: string;
  /** The body's `message`. `message` is "<status> <code>: <detail>". */
  detail: string;
  /** Seconds from Retry-After (429, 503), else null. */
  retryAfter: number | null;
}

/** The daemon's answer was not what the API describes: for online(), a body that is not
 * application/octet-stream, not ceil(n/8) bytes, an X-Heartbeatd-Count other than the
 * number of ids sent, or padding bits set. Never turned into a guess. */
export declare class ProtocolError extends Error {
  name: "ProtocolError";
}

/** No answer within timeoutMs. `code` is "ETIMEDOUT". */
export declare class TimeoutError extends Error {
  name: "TimeoutError";
  code: "ETIMEDOUT";
}

export interface Persistence {
  data_dir: string;
  last_snapshot_ms: number | null;
  last_snapshot_users: number;
  last_snapshot_bytes: number;
  last_snapshot_duration_ms: number;
  disk_bytes: number;
  failures: number;
  last_error: string | null;
}

export interface PresenceStore {
  backend: "memory" | "redis" | "dynamodb";
  status: "ok" | "degraded" | "unavailable";
  problem: string | null;
  nodes: string[];
  /** presence.max_batch (daemons before it was added do not say). */
  max_batch?: number;
}

export interface Health {
  status: "ok" | "degraded";
  node: string;
  version: string;
  uptime_ms: number;
  warnings: string[];
  persistence: Persistence;
  presence: PresenceStore;
}

export type MemberState = "alive" | "suspect" | "dead" | "left";

export interface Member {
  name: string;
  address: string;
  state: MemberState;
  incarnation: number;
  last_seen_ms: number | null;
  self: boolean;
  /** node.tags as the member last announced them: {role: "db"}; {} for none (and from
   * daemons before tags). */
  tags: Record<string, string>;
}

/** Filters of GET /v1/members; a member is listed when it matches every one given. */
export interface MemberFilter {
  /** "alive", "alive,suspect" or ["alive", "suspect"]: any of these states. */
  state?: MemberState | string | Iterable<MemberState>;
  /** The whole name matches this pattern: * any run of characters, ? exactly one. */
  name?: string;
  /** "role:db" (exactly this value), "role" (any value), several of those, or
   * {role: "db", zone: null} (null: any value). Every tag given must match. */
  tag?: string | Iterable<string> | Record<string, string | null>;
}

export interface MemberPageOptions extends MemberFilter {
  /** At most this many members, 1 to 10000. Without it, every match in one answer. */
  limit?: number;
  /** The nextCursor of the previous page, with the same filters. */
  cursor?: string;
  /** An etag you hold: a 304 (nothing changed) resolves to notModified: true, no body. */
  ifNoneMatch?: string;
}

export interface MemberPage {
  /** Empty when notModified. */
  members: Member[];
  /** Pass as `cursor` for the next page; null on the last page and without a limit. */
  nextCursor: string | null;
  /** The answer's ETag, to pass back as ifNoneMatch. */
  etag: string | null;
  /** The daemon answered 304 to ifNoneMatch: keep the members you have. */
  notModified: boolean;
}

/** The query string (no "?") of GET /v1/members, every value percent-encoded; a TypeError
 * starting with the parameter's name for input the daemon would refuse. */
export declare function memberQuery(options?: MemberPageOptions & { ifNoneMatch?: never }): string;
export declare const MEMBER_STATES: readonly MemberState[];
export declare const MAX_MEMBER_PAGE: number;

export interface Keys {
  keys: Array<{ fingerprint: string; primary: boolean; members: number }>;
  plaintext_members: number;
  unknown_members: number;
  seal_outgoing: boolean;
  require_sealed: boolean;
}

export interface UserStatus {
  /** Always a decimal string. */
  user: string;
  online: boolean;
  /** Wall-clock Unix ms of the last heartbeat; null if never seen or forgotten. */
  last_seen_ms: number | null;
}

export interface Counts {
  online: number;
  tracked: number;
}

export interface HistoryPoint {
  time_ms: number;
  online: number;
  tracked: number;
}

export interface History {
  interval_ms: number;
  /** Oldest first. */
  points: HistoryPoint[];
}

export interface MemberEvent {
  type: "member";
  name: string;
  address: string;
  state: MemberState;
  /** null for a member seen for the first time (a join). */
  previous: MemberState | null;
  incarnation: number;
  time_ms: number;
  /** Part of the state sent when a stream (re)starts. After a reconnect only those that
   * differ from what this iterator last yielded are passed on. */
  initial: boolean;
  /** The member's tags; an event with state === previous reports a change of tags. */
  tags: Record<string, string>;
}

export interface UserEvent {
  type: "user";
  /** Always a decimal string. */
  user: string;
  online: boolean;
  last_seen_ms: number | null;
  time_ms: number;
  initial: boolean;
}

export interface DroppedEvent {
  type: "dropped";
  /** Why the daemon cut this subscriber off (it fell behind); the iterator reconnects.
   * (Event types a newer daemon may add are skipped, not yielded.) */
  reason: string;
}

export type HeartbeatdEvent = MemberEvent | UserEvent | DroppedEvent;

export type ConnectionState =
  | { state: "connected"; reconnected: boolean }
  /** error: why (null when the iterator ended); retryInMs: when the next attempt is (null: none). */
  | { state: "disconnected"; error: Error | null; retryInMs: number | null };

export interface EventsOptions {
  /** Users to follow (their online/offline transitions). Absent or empty: none. */
  users?: Iterable<UserIdInput>;
  /** Members to follow. Absent: every member; []: none. */
  members?: Iterable<string>;
  /** Ends the iterator (it then returns, without an error). */
  signal?: AbortSignal;
  /** Called on every connection and every loss of one. */
  onStateChange?: (state: ConnectionState) => void;
  /** Reconnection delays: exponential from initialMs (250) to maxMs (15000), jittered;
   * never shorter than a 503's Retry-After. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Give a stream up (and reconnect) after this long without a byte, keepalive comments
   * included: the daemon's host may have vanished without closing the connection. The
   * daemon sends ": keepalive" every events.keepalive (15 s by default), so keep this a few
   * times larger. Default 60000; 0 waits forever. */
  idleTimeoutMs?: number;
  /** After a reconnect, drop initial events that do not differ from the last state seen
   * (default true). A user differs when `online` does; a member when its state,
   * incarnation or address does. */
  resume?: boolean;
}

export declare class Client {
  constructor(options: ClientOptions);
  /** GET /v1/health. */
  health(): Promise<Health>;
  /** GET /v1/members: every member this node knows that matches the filter (none: all),
   * sorted by name, in one answer. TypeError for a filter the daemon would refuse. */
  members(filter?: MemberFilter): Promise<Member[]>;
  /** GET /v1/members one page at a time, and/or conditionally (ifNoneMatch). */
  membersPage(options?: MemberPageOptions): Promise<MemberPage>;
  /** Every matching member in name order, pageSize (default 1000) per request; follows
   * the cursors itself. Bad input throws at the call. */
  iterMembers(filter?: MemberFilter, options?: { pageSize?: number }): AsyncIterableIterator<Member>;
  /** GET /v1/members/{name}; ApiError 404 "unknown_member" if this node does not know it. */
  member(name: string): Promise<Member>;
  /** GET /v1/keys (scope admin). */
  keys(): Promise<Keys>;
  /** POST /v1/users/{id}/heartbeat (scope write). */
  heartbeat(id: UserIdInput): Promise<void>;
  /** POST /v1/users/heartbeat in requests of at most maxBatch() ids, one after the other.
   * Every id is checked before anything is sent. An empty list sends nothing. */
  heartbeatMany(ids: Iterable<UserIdInput>): Promise<{ accepted: number }>;
  /** GET /v1/users/{id} (scope read). */
  status(id: UserIdInput): Promise<UserStatus>;
  /** POST /v1/users/status, split like heartbeatMany; one status per id, in request order. */
  statusMany(ids: Iterable<UserIdInput>): Promise<UserStatus[]>;
  /** POST /v1/users/status?format=bits, split like heartbeatMany: one bit per id on the
   * wire, true for each user online, in request order. An unknown user is false (as one
   * gone offline); statusMany tells them apart. ProtocolError for a malformed answer. */
  online(ids: Iterable<UserIdInput>): Promise<boolean[]>;
  /** DELETE /v1/users/{id}: offline now (scope write). */
  logout(id: UserIdInput): Promise<void>;
  /** GET /v1/users: exact online and tracked counts. */
  counts(): Promise<Counts>;
  /** GET /v1/users/history: the online count over the last hour (by default). */
  history(): Promise<History>;
  /** presence.max_batch from /v1/health, read once (or the maxBatch option). */
  maxBatch(): Promise<number>;
  /**
   * GET /v1/events as an async iterator: reconnects with backoff when the stream ends or
   * fails, and resumes (see EventsOptions.resume). Throws (ends) on an error the daemon
   * would repeat: 400, 401, 403, 404.
   */
  events(options?: EventsOptions): AsyncGenerator<HeartbeatdEvent, void, undefined>;
  /** Node: connections opened so far (1 while one kept-alive connection serves all);
   * fetch client: null. */
  readonly connectionsOpened: number | null;
  /** Closes this client's connections (Node) and ends the event iterators it started;
   * requests made afterwards open new connections. */
  close(): void;
}

export interface HeartbeatBatcherOptions {
  /** How long the first heartbeat of a batch waits for others. Default 250. */
  flushIntervalMs?: number;
  /** A batch this large goes out at once. Default 10000. */
  maxSize?: number;
  /** A failed flush (its ids are not re-queued). */
  onError?: (error: Error, ids: string[]) => void;
  /** A flush that went out: distinct ids sent, and accepted. */
  onFlush?: (flush: { ids: number; accepted: number }) => void;
}

/** The gateway pattern: collect heartbeats for a short while, send them as one batch. */
export declare class HeartbeatBatcher {
  constructor(client: Pick<Client, "heartbeatMany">, options?: HeartbeatBatcherOptions);
  /** Distinct ids waiting for the next flush. */
  readonly pending: number;
  /** Queues a heartbeat; a bad id throws here. */
  add(id: UserIdInput): void;
  /** Sends what is queued now. */
  flush(): Promise<{ accepted: number }>;
  /** Flushes what is left and refuses further add()s. */
  close(): Promise<{ accepted: number }>;
}
