/**
 * The live side of the SDK: {@link LiveConnection}, the WebSocket `GET /ws`
 * with reconnect, resume, deduplication and acknowledged sends.
 *
 * @module
 */
import { type MissiveClient } from "./client.js";
import { Emitter } from "./emitter.js";
import { ApiError } from "./errors.js";
import type { Message, ReceiptFrame, ReceiptStatus, SendRequest, TypingFrame, User } from "./types.js";
/** The part of the standard `WebSocket` the SDK uses (browsers, Node 22+, Node 20 with `--experimental-websocket`, or the `ws` package). */
export interface WebSocketLike {
    /** 1 when open. */
    readonly readyState: number;
    /** Sends a text frame. */
    send(data: string): void;
    /** Starts the closing handshake. */
    close(code?: number, reason?: string): void;
    /** Subscribes to `open`, `message` (`event.data` is the text), `close` (`event.code`, `event.reason`) and `error`. */
    addEventListener(type: string, listener: (event: never) => void): void;
}
/** A `WebSocket` constructor. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;
/** Options of {@link LiveConnection} ({@link MissiveClient.connect}). */
export interface LiveOptions {
    /** Resume after this cursor (one saved from {@link LiveConnection.cursor}); by default start from now. */
    since?: string | null;
    /** The WebSocket constructor (default: `globalThis.WebSocket`; pass one in Node 20 without `--experimental-websocket`). */
    WebSocket?: WebSocketConstructor;
    /** First reconnect delay in ms (default 500); it doubles on every failed attempt, with jitter. */
    initialDelay?: number;
    /** Cap of the reconnect delay in ms (default 15000). */
    maxDelay?: number;
    /** Interval of the keep-alive `ping` in ms (default 25000; 0 disables it). No frame for two intervals drops and reconnects the socket. */
    pingInterval?: number;
    /** A socket send not acknowledged within this many ms is rejected with code `timeout` (default 30000; 0 waits forever). */
    sendTimeout?: number;
    /** A connection attempt that has not received `ready` within this many ms is abandoned and retried (default 10000). */
    connectTimeout?: number;
    /** How many recent message ids are remembered for deduplication (default 10000). */
    dedupeWindow?: number;
}
/** Where the connection stands. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";
/** Details of a {@link ConnectionState} change. */
export interface StateDetail {
    /** Connection attempts since the last `ready` (0 once open). */
    attempt: number;
    /** While `reconnecting`: the ms until the next attempt. */
    delay: number | null;
    /** The close code of the socket that just ended, when there was one. */
    closeCode: number | null;
}
/** What `ready` tells. */
export interface ReadyInfo {
    /** The connection's user. */
    user: User;
    /** The cursor the connection continues from. */
    cursor: string;
    /**
     * `true` when this connection resumed after a cursor (missed events are
     * replayed next); `false` on a fresh start: load the current state over
     * REST (chats, messages) — live events follow from this point.
     */
    resumed: boolean;
}
/** The events of a {@link LiveConnection} and their listener arguments. */
export interface LiveEvents {
    /** Every (re)connection, once the server said `ready`. */
    ready: [info: ReadyInfo];
    /** A new message in one of the user's chats (the user's own included), once per message `id`. */
    message: [message: Message, cursor: string];
    /** A participant's delivered/read watermark moved (idempotent; may repeat around a resume). */
    receipt: [receipt: ReceiptFrame];
    /** A participant started or stopped typing. */
    typing: [typing: TypingFrame];
    /** The resume cursor was older than the server keeps: re-list chats and messages; the connection continues from `cursor`. */
    resync: [cursor: string];
    /** An `error` frame that answers no pending send (e.g. a bad receipt). The connection stays open. */
    error: [error: ApiError];
    /** The connection state changed. */
    state: [state: ConnectionState, detail: StateDetail];
    /** The server refused the token (revoked or expired): the connection is closed; log the user out. */
    unauthorized: [error: ApiError];
}
/**
 * The live connection of one user: `GET /ws?token=…&since=<cursor>`.
 *
 * - Reconnects by itself with exponential backoff and jitter (capped at
 *   `maxDelay`), resuming after the cursor of the last event it processed:
 *   the server replays every missed message and receipt, also across
 *   restarts and nodes. A message seen twice around the resume point is
 *   emitted once (deduplicated by `id`).
 * - {@link send} resolves with the stored message when the server
 *   acknowledges it; if the connection drops first, it is sent again with the
 *   same `clientMessageId` after the reconnect, so it is stored once.
 * - Every listener runs synchronously before the cursor moves past its
 *   event: what a listener saw is what a resume will not send again.
 */
export declare class LiveConnection extends Emitter<LiveEvents> {
    #private;
    /** Opens the connection (on the next microtask, so that listeners added right away see everything). */
    constructor(client: MissiveClient, options?: LiveOptions);
    /** The cursor of the last durable event processed (save it to resume later), `null` before the first `ready`. */
    get cursor(): string | null;
    /** The connection's user, once `ready` was received. */
    get user(): User | null;
    /** Where the connection stands. */
    get state(): ConnectionState;
    /** Socket sends waiting for their `ack`. */
    get pendingSends(): number;
    /**
     * Sends a message over the socket; resolves with the stored message on
     * `ack`, rejects with an {@link ApiError} on an `error` frame (e.g.
     * `chat_not_found`, `invalid_content`, `rate_limited`), on `timeout`, or
     * when the connection is closed (`closed`). While disconnected the send
     * waits and goes out after the reconnect, with the same `clientMessageId`.
     */
    send(request: SendRequest): Promise<Message>;
    /** Marks every message of the others up to `messageId` delivered or read; `false` when not connected (nothing sent). */
    receipt(chatId: string, messageId: string, status: ReceiptStatus): boolean;
    /** Tells the other participants whether the user is typing; `false` when not connected (nothing sent). */
    typing(chatId: string, isTyping: boolean): boolean;
    /** Closes for good: no reconnect; pending sends are rejected with `closed`. */
    close(): void;
}
