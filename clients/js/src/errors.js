/** The daemon answered with an error status (docs/API.md, "Errors"). */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(`${status} ${code}: ${message}`);
    this.name = "ApiError";
    /** HTTP status, e.g. 403. */
    this.status = status;
    /** The body's `error`, e.g. "forbidden". */
    this.code = code;
    /** The body's `message`, as the daemon wrote it. */
    this.detail = message;
    /** Seconds from Retry-After (429, 503), or null. */
    this.retryAfter = retryAfter;
  }
}

/**
 * The daemon's answer was not what the API describes (a format=bits answer of the wrong
 * type, length or count): a version mismatch or something else at that address.
 */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** No answer within timeoutMs. */
export class TimeoutError extends Error {
  constructor(ms, what) {
    super(`no answer from heartbeatd within ${ms} ms (${what})`);
    this.name = "TimeoutError";
    this.code = "ETIMEDOUT";
  }
}

export function apiErrorFrom(status, header, text) {
  let code = `http_${status}`;
  let message = text.length > 200 ? text.slice(0, 200) + "..." : text;
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "string") code = body.error;
    if (body && typeof body.message === "string") message = body.message;
  } catch {
    // not JSON: keep the text
  }
  const ra = header("retry-after");
  const retryAfter = ra != null && /^[0-9]+$/.test(ra) ? Number(ra) : null;
  return new ApiError(status, code, message, retryAfter);
}
