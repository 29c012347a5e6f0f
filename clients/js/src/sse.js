// A Server-Sent Events parser (the WHATWG event-stream format) fed with decoded text chunks
// of any size: lines may end in \n, \r\n or \r and may be split across chunks.

export class SseParser {
  constructor() {
    this.buffer = "";
    this.event = "";
    this.data = [];
    this.pendingCr = false;
  }

  /** Feeds a chunk; returns the events it completed, as {event, data}. */
  push(chunk) {
    const out = [];
    let text = this.buffer + chunk;
    if (this.pendingCr && text.startsWith("\n")) text = text.slice(1);
    this.pendingCr = false;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(text.slice(start, i), out);
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCr = true;
        }
      }
      start = i + 1;
    }
    this.buffer = text.slice(start);
    return out;
  }

  line(line, out) {
    if (line === "") {
      if (this.data.length > 0) out.push({ event: this.event || "message", data: this.data.join("\n") });
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;  // a comment: ": keepalive"
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    // id and retry are not used by heartbeatd
  }
}
