/**
 * `@missive/client`: the TypeScript SDK of the missive messaging API, for
 * browsers and Node.js, with no runtime dependency.
 *
 * ```ts
 * import { MissiveClient } from "@missive/client";
 * const client = new MissiveClient({ baseUrl: "http://localhost:8080", token });
 * const live = client.connect();
 * live.on("message", (message) => console.log(message.sender, message.content));
 * await live.send({ to: "+1234567890", content: "hi" });
 * ```
 *
 * @module
 */

export { MissiveClient, newClientMessageId, type ClientOptions, type FetchLike } from "./client.js";
export { Emitter, type EventMap, type Listener } from "./emitter.js";
export { ApiError } from "./errors.js";
export {
  LiveConnection,
  type ConnectionState,
  type LiveEvents,
  type LiveOptions,
  type ReadyInfo,
  type StateDetail,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./live.js";
export type * from "./types.js";
