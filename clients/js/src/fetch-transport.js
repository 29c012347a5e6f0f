// fetch, for browsers (and any runtime with fetch and ReadableStream). The browser keeps
// connections alive and retries on its own; the event stream is read from the response
// body, so the Authorization header can be sent (EventSource cannot send headers).

import { TimeoutError } from "./errors.js";

export class FetchTransport {
  constructor(options) {
    const o = options || {};
    if (o.socketPath != null) {
      throw new TypeError("socketPath is for Node: a browser cannot reach a Unix socket; give url");
    }
    if (o.ca != null || o.cert != null || o.key != null) {
      throw new TypeError("ca, cert and key are for Node: a browser verifies TLS with its own trust store");
    }
    let url;
    try {
      url = new URL(o.url ?? "", typeof location !== "undefined" ? location.href : undefined);
    } catch {
      throw new TypeError(`url must be an http:// or https:// URL, got ${JSON.stringify(o.url)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`url ${JSON.stringify(o.url)}: only http: and https: are supported`);
    }
    this.base = url.origin + url.pathname.replace(/\/+$/, "");
    this.fetch = o.fetch ?? globalThis.fetch.bind(globalThis);
    this.streams = new Set();  // close() ends open event streams
  }

  async send(method, path, { body, headers, timeoutMs, signal }, streaming) {
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    if (signal) {
      if (signal.aborted) controller.abort(signal.reason);
      else signal.addEventListener("abort", onAbort, { once: true });
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const detach = () => signal && signal.removeEventListener("abort", onAbort);
    let res;
    try {
      res = await this.fetch(this.base + path, { method, headers, body, signal: controller.signal, cache: "no-store" });
    } catch (err) {
      clearTimeout(timer);
      detach();
      if (timedOut) throw new TimeoutError(timeoutMs, `${method} ${path}`);
      throw err;
    }
    const header = (name) => res.headers.get(name);
    if (!streaming) {
      try {
        const bytes = new Uint8Array(await res.arrayBuffer());
        return { status: res.status, header, text: new TextDecoder().decode(bytes), bytes };
      } catch (err) {
        if (timedOut) throw new TimeoutError(timeoutMs, `${method} ${path}`);
        throw err;
      } finally {
        clearTimeout(timer);
        detach();
      }
    }
    clearTimeout(timer);  // a stream lasts; only its start is timed
    const close = () => {
      this.streams.delete(close);
      detach();
      controller.abort();
    };
    this.streams.add(close);
    return {
      status: res.status,
      header,
      text: () => res.text(),
      chunks: (async function* () {
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            yield decoder.decode(value, { stream: true });
          }
        } catch (err) {
          if (!(signal && signal.aborted)) throw err;
        } finally {
          close();
        }
      })(),
      close,
    };
  }

  request(method, path, options) {
    return this.send(method, path, options, false);
  }

  stream(path, options) {
    return this.send("GET", path, options, true);
  }

  close() {
    for (const close of [...this.streams]) close();
  }
}
