// Node entry point: requests go over node:http / node:https with a keep-alive Agent.
import { BaseClient } from "./client.js";
import { NodeTransport } from "./node-transport.js";

export { ApiError, ProtocolError, TimeoutError } from "./errors.js";
export { userId, MAX_USER_ID } from "./ids.js";
export { HeartbeatBatcher } from "./batcher.js";
export { backoffDelay, memberQuery, MEMBER_STATES, MAX_MEMBER_PAGE } from "./client.js";

export class Client extends BaseClient {
  constructor(options = {}) {
    super(options, new NodeTransport(options));
  }

  /** Connections opened so far: stays at 1 while one connection serves every request. */
  get connectionsOpened() {
    return this.transport.connectionsOpened;
  }
}
