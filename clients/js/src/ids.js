// User ids are unsigned 64-bit integers (docs/API.md, "User presence"). A JavaScript number
// holds integers exactly only up to 2^53 - 1, and snowflake-style ids are larger, so this
// client handles ids as canonical decimal strings: given as a string or a BigInt (or a
// number that is a safe integer), sent as JSON strings, read back as strings.

export const MAX_USER_ID = 18446744073709551615n;
const MAX_USER_ID_TEXT = "18446744073709551615";
const CANONICAL = /^(0|[1-9][0-9]*)$/;

function describe(value) {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "..." : value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number") return String(value);
  if (value === null) return "null";
  return typeof value;
}

/**
 * The canonical decimal string of a user id, or a TypeError/RangeError naming what is
 * wrong with it. Accepts a string ("42"), a BigInt (42n) or a safe non-negative integer (42).
 */
export function userId(value) {
  if (typeof value === "string") {
    if (!CANONICAL.test(value)) {
      throw new TypeError(
        `user id ${describe(value)} is not a canonical decimal integer (digits only, no sign, no leading zero)`);
    }
    if (value.length > MAX_USER_ID_TEXT.length ||
        (value.length === MAX_USER_ID_TEXT.length && value > MAX_USER_ID_TEXT)) {
      throw new RangeError(`user id ${describe(value)} is above 18446744073709551615 (2^64 - 1)`);
    }
    return value;
  }
  if (typeof value === "bigint") {
    if (value < 0n || value > MAX_USER_ID) {
      throw new RangeError(`user id ${describe(value)} is outside 0..18446744073709551615 (unsigned 64-bit)`);
    }
    return value.toString();
  }
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0) {
      throw new TypeError(`user id ${describe(value)} is not a non-negative integer`);
    }
    if (value > Number.MAX_SAFE_INTEGER) {
      throw new RangeError(
        `user id ${describe(value)} is above Number.MAX_SAFE_INTEGER (2^53 - 1): a JavaScript number ` +
        `cannot hold it exactly, so it may already be another id; pass ids as strings or BigInt`);
    }
    return String(value);
  }
  throw new TypeError(`user id must be a string, a BigInt or a safe integer, got ${describe(value)}`);
}

/** userId() of every element, with the position of the first bad one in the message. */
export function userIds(values, what = "ids") {
  if (values == null || typeof values[Symbol.iterator] !== "function" || typeof values === "string") {
    throw new TypeError(`${what} must be an array (or iterable) of user ids`);
  }
  const out = [];
  let i = 0;
  for (const v of values) {
    try {
      out.push(userId(v));
    } catch (err) {
      err.message = `${what}[${i}]: ${err.message}`;
      throw err;
    }
    i++;
  }
  return out;
}

const MEMBER_NAME = /^[A-Za-z0-9._-]{1,128}$/;

export function memberName(value) {
  if (typeof value !== "string" || !MEMBER_NAME.test(value)) {
    throw new TypeError(
      `member name ${describe(value)} is not 1 to 128 letters, digits, '.', '-' or '_'`);
  }
  return value;
}

/**
 * JSON.parse that keeps every "user" id exact: a daemon that writes ids as JSON numbers
 * (one older than ?ids=string) has them turned into strings before parsing, so no id above
 * 2^53 is ever rounded. Keys cannot occur unescaped inside JSON strings, so the rewrite
 * touches only real "user" members.
 */
export function parseJson(text) {
  return JSON.parse(text.replace(/("user"\s*:\s*)([0-9]+)/g, '$1"$2"'));
}
