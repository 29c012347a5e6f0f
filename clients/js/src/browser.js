// Browser entry point (and any runtime with fetch): requests and the event stream go over fetch.
import { BaseClient } from "./client.js";
import { FetchTransport } from "./fetch-transport.js";

export { ApiError, ProtocolError, TimeoutError } from "./errors.js";
export { userId, MAX_USER_ID } from "./ids.js";
export { HeartbeatBatcher } from "./batcher.js";
export { backoffDelay, memberQuery, MEMBER_STATES, MAX_MEMBER_PAGE } from "./client.js";

export class Client extends BaseClient {
  constructor(options = {}) {
    super(options, new FetchTransport(options));
  }

  get connectionsOpened() {
    return null;
  }
}
