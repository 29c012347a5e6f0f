// The gateway pattern: a gateway holding many users' connections collects their heartbeats
// for a short while and sends them as one POST /v1/users/heartbeat, instead of a request
// per user per beat.

import { userId } from "./ids.js";

export class HeartbeatBatcher {
  /**
   * @param client a Client
   * @param options {flushIntervalMs = 250, maxSize = 10000, onError, onFlush}
   */
  constructor(client, options = {}) {
    const { flushIntervalMs = 250, maxSize = 10000, onError = null, onFlush = null } = options;
    if (!client || typeof client.heartbeatMany !== "function") {
      throw new TypeError("HeartbeatBatcher needs a Client");
    }
    if (!(Number.isFinite(flushIntervalMs) && flushIntervalMs > 0)) {
      throw new TypeError(`flushIntervalMs must be a positive number, got ${flushIntervalMs}`);
    }
    if (!(Number.isInteger(maxSize) && maxSize > 0)) {
      throw new TypeError(`maxSize must be a positive integer, got ${maxSize}`);
    }
    this.client = client;
    this.flushIntervalMs = flushIntervalMs;
    this.maxSize = maxSize;
    this.onError = onError;
    this.onFlush = onFlush;
    this.ids = new Set();
    this.timer = null;
    this.chain = Promise.resolve();
    this.closed = false;
  }

  /** Ids waiting for the next flush (a user added twice in one interval counts once). */
  get pending() {
    return this.ids.size;
  }

  /**
   * Queues a heartbeat for `id` (checked now: a bad id throws here, not at the flush). The
   * batch goes out flushIntervalMs after its first id, or at once when it reaches maxSize.
   */
  add(id) {
    if (this.closed) throw new Error("HeartbeatBatcher is closed");
    this.ids.add(userId(id));
    if (this.ids.size >= this.maxSize) {
      this.flush().catch(() => {});  // reported through onError
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush().catch(() => {});
      }, this.flushIntervalMs);
      if (typeof this.timer.unref === "function") this.timer.unref();
    }
  }

  /**
   * Sends what is queued now; resolves to {accepted} once it is sent (flushes run one after
   * the other). A failed flush rejects, and is passed to onError; its ids are not re-queued
   * (the next beat of those users comes soon anyway).
   */
  flush() {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = [...this.ids];
    this.ids.clear();
    const run = this.chain.then(async () => {
      if (batch.length === 0) return { accepted: 0 };
      try {
        const result = await this.client.heartbeatMany(batch);
        if (this.onFlush) this.onFlush({ ids: batch.length, accepted: result.accepted });
        return result;
      } catch (err) {
        if (this.onError) this.onError(err, batch);
        throw err;
      }
    });
    this.chain = run.catch(() => {});
    return run;
  }

  /** Flushes what is left and refuses further add()s. */
  close() {
    this.closed = true;
    return this.flush();
  }
}
