/**
 * The live side of the SDK: {@link LiveConnection}, the WebSocket `GET /ws`
 * with reconnect, resume, deduplication and acknowledged sends.
 *
 * @module
 */

import { newClientMessageId, type MissiveClient } from "./client.js";
import { Emitter } from "./emitter.js";
import { ApiError } from "./errors.js";
import type { ClientFrame, Message, ReceiptFrame, ReceiptStatus, SendRequest, ServerFrame, TypingFrame, User } from "./types.js";

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

/** A socket send waiting for its `ack`. */
interface PendingSend {
  frame: ClientFrame & { type: "send" };
  resolve: (message: Message) => void;
  reject: (error: ApiError) => void;
  timer: ReturnType<typeof setTimeout> | null;
}

const OPEN = 1;
const POLICY_VIOLATION = 1008;

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
export class LiveConnection extends Emitter<LiveEvents> {
  readonly #client: MissiveClient;
  readonly #WebSocket: WebSocketConstructor;
  readonly #initialDelay: number;
  readonly #maxDelay: number;
  readonly #pingInterval: number;
  readonly #sendTimeout: number;
  readonly #connectTimeout: number;
  readonly #dedupeWindow: number;

  #socket: WebSocketLike | null = null;
  #ready = false;
  #closed = false;
  #state: ConnectionState = "connecting";
  #cursor: string | null;
  #user: User | null = null;
  #attempt = 0;
  #backoff: number;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #pingTimer: ReturnType<typeof setInterval> | null = null;
  #connectTimer: ReturnType<typeof setTimeout> | null = null;
  #lastHeard = 0;
  #nextRef = 0;
  readonly #pending = new Map<string, PendingSend>();
  readonly #seen = new Set<string>();

  /** Opens the connection (on the next microtask, so that listeners added right away see everything). */
  constructor(client: MissiveClient, options: LiveOptions = {}) {
    super();
    const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (typeof WebSocketImpl !== "function") {
      throw new TypeError("LiveConnection: no WebSocket available; pass options.WebSocket (Node 20: run with --experimental-websocket)");
    }
    this.#client = client;
    this.#WebSocket = WebSocketImpl;
    this.#cursor = options.since ?? null;
    this.#initialDelay = options.initialDelay ?? 500;
    this.#maxDelay = options.maxDelay ?? 15_000;
    this.#pingInterval = options.pingInterval ?? 25_000;
    this.#sendTimeout = options.sendTimeout ?? 30_000;
    this.#connectTimeout = options.connectTimeout ?? 10_000;
    this.#dedupeWindow = options.dedupeWindow ?? 10_000;
    this.#backoff = this.#initialDelay;
    queueMicrotask(() => this.#open());
  }

  /** The cursor of the last durable event processed (save it to resume later), `null` before the first `ready`. */
  get cursor(): string | null {
    return this.#cursor;
  }

  /** The connection's user, once `ready` was received. */
  get user(): User | null {
    return this.#user;
  }

  /** Where the connection stands. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** Socket sends waiting for their `ack`. */
  get pendingSends(): number {
    return this.#pending.size;
  }

  /**
   * Sends a message over the socket; resolves with the stored message on
   * `ack`, rejects with an {@link ApiError} on an `error` frame (e.g.
   * `chat_not_found`, `invalid_content`, `rate_limited`), on `timeout`, or
   * when the connection is closed (`closed`). While disconnected the send
   * waits and goes out after the reconnect, with the same `clientMessageId`.
   */
  send(request: SendRequest): Promise<Message> {
    if (this.#closed) return Promise.reject(new ApiError(0, "closed", "the connection is closed"));
    const ref = `s${++this.#nextRef}`;
    const clientMessageId = request.clientMessageId ?? newClientMessageId();
    const frame: ClientFrame & { type: "send" } =
      request.chatId !== undefined
        ? { type: "send", ref, chatId: request.chatId, content: request.content, clientMessageId }
        : { type: "send", ref, to: request.to, content: request.content, clientMessageId };
    return new Promise<Message>((resolve, reject) => {
      const pending: PendingSend = { frame, resolve, reject, timer: null };
      if (this.#sendTimeout > 0) {
        pending.timer = setTimeout(() => {
          this.#pending.delete(ref);
          reject(new ApiError(0, "timeout", `no answer to the send within ${this.#sendTimeout} ms`));
        }, this.#sendTimeout);
      }
      this.#pending.set(ref, pending);
      if (this.#ready) this.#write(frame);
    });
  }

  /** Marks every message of the others up to `messageId` delivered or read; `false` when not connected (nothing sent). */
  receipt(chatId: string, messageId: string, status: ReceiptStatus): boolean {
    return this.#ready && this.#write({ type: "receipt", chatId, messageId, status });
  }

  /** Tells the other participants whether the user is typing; `false` when not connected (nothing sent). */
  typing(chatId: string, isTyping: boolean): boolean {
    return this.#ready && this.#write({ type: "typing", chatId, isTyping });
  }

  /** Closes for good: no reconnect; pending sends are rejected with `closed`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimers();
    const socket = this.#socket;
    this.#socket = null;
    this.#ready = false;
    if (socket) socket.close(1000, "closed by the client");
    for (const [ref, pending] of this.#pending) {
      this.#pending.delete(ref);
      if (pending.timer) clearTimeout(pending.timer);
      pending.reject(new ApiError(0, "closed", "the connection was closed before the server answered"));
    }
    this.#setState("closed", null, null);
  }

  // ---- Socket life -------------------------------------------------------

  #open(): void {
    if (this.#closed) return;
    this.#retryTimer = null;
    this.#attempt += 1;
    this.#ready = false;
    this.#setState("connecting", null, null);
    let socket: WebSocketLike;
    try {
      socket = new this.#WebSocket(this.#client.socketUrl(this.#cursor));
    } catch {
      this.#scheduleReconnect(null, false);
      return;
    }
    this.#socket = socket;
    socket.addEventListener("message", (event: { data: unknown }) => {
      if (this.#socket === socket) this.#onText(event.data);
    });
    socket.addEventListener("close", (event: { code?: number }) => {
      if (this.#socket === socket) this.#onClose(event.code ?? null);
    });
    // Browsers follow an `error` with `close`; Node 20's WebSocket does not when the
    // connection is refused, so an error ends the socket here (whichever comes first wins).
    socket.addEventListener("error", () => {
      if (this.#socket === socket) this.#drop(socket, null);
    });
    // A handshake that hangs (a black-holed address) is given up after connectTimeout.
    this.#connectTimer = setTimeout(() => {
      if (this.#socket === socket && !this.#ready) this.#drop(socket, null);
    }, this.#connectTimeout);
  }

  /** Abandons `socket` (closing it if it can be) and reconnects. */
  #drop(socket: WebSocketLike, code: number | null): void {
    this.#socket = null;
    try {
      socket.close(4000, "abandoned by the client");
    } catch {
      /* not open yet, or already closing */
    }
    this.#onClose(code);
  }

  #onClose(code: number | null): void {
    const wasReady = this.#ready;
    this.#socket = null;
    this.#ready = false;
    this.#clearSocketTimers();
    if (this.#closed) return;
    this.#scheduleReconnect(code, !wasReady || code === POLICY_VIOLATION);
  }

  #scheduleReconnect(code: number | null, checkToken: boolean): void {
    const delay = Math.round(this.#backoff * (0.5 + Math.random() / 2));
    this.#backoff = Math.min(this.#backoff * 2, this.#maxDelay);
    this.#setState("reconnecting", delay, code);
    this.#retryTimer = setTimeout(() => this.#open(), delay);
    // A refused upgrade or a policy close may mean a revoked token: /me tells (a 401), not a network error.
    if (checkToken && this.#client.token) {
      this.#client.me().catch((error: unknown) => {
        if (error instanceof ApiError && error.status === 401 && !this.#closed) {
          this.close();
          this.emit("unauthorized", error);
        }
      });
    }
  }

  /** Drops a socket that has said nothing for two ping intervals (a dead TCP connection may take minutes to close). */
  #keepAlive(): void {
    const socket = this.#socket;
    if (!socket) return;
    if (Date.now() - this.#lastHeard > 2 * this.#pingInterval) {
      this.#drop(socket, null);
      return;
    }
    this.#write({ type: "ping" });
  }

  #write(frame: ClientFrame): boolean {
    const socket = this.#socket;
    if (!socket || socket.readyState !== OPEN) return false;
    try {
      socket.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  #setState(state: ConnectionState, delay: number | null, closeCode: number | null): void {
    this.#state = state;
    this.emit("state", state, { attempt: this.#attempt, delay, closeCode });
  }

  #clearSocketTimers(): void {
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    if (this.#connectTimer) clearTimeout(this.#connectTimer);
    this.#pingTimer = null;
    this.#connectTimer = null;
  }

  #stopTimers(): void {
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#clearSocketTimers();
  }

  // ---- Frames ------------------------------------------------------------

  #onText(data: unknown): void {
    this.#lastHeard = Date.now();
    if (typeof data !== "string") return;
    let frame: ServerFrame;
    try {
      frame = JSON.parse(data) as ServerFrame;
    } catch {
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    switch (frame.type) {
      case "ready":
        return this.#onReady(frame.user, String(frame.cursor));
      case "message": {
        const { message } = frame;
        const cursor = String(frame.cursor);
        if (!this.#seen.has(message.id)) {
          this.#remember(message.id);
          this.emit("message", message, cursor);
        }
        this.#cursor = cursor;
        return;
      }
      case "receipt":
        this.emit("receipt", frame);
        this.#cursor = String(frame.cursor);
        return;
      case "typing":
        this.emit("typing", frame);
        return;
      case "resync":
        this.#cursor = String(frame.cursor);
        this.emit("resync", this.#cursor);
        return;
      case "ack": {
        const pending = frame.ref === null ? undefined : this.#pending.get(frame.ref);
        if (!pending || frame.ref === null) return;
        this.#pending.delete(frame.ref);
        if (pending.timer) clearTimeout(pending.timer);
        pending.resolve(frame.message);
        return;
      }
      case "error": {
        const error = new ApiError(0, frame.code, frame.message);
        const pending = frame.ref === null ? undefined : this.#pending.get(frame.ref);
        if (pending && frame.ref !== null) {
          this.#pending.delete(frame.ref);
          if (pending.timer) clearTimeout(pending.timer);
          pending.reject(error);
        } else {
          this.emit("error", error);
        }
        return;
      }
      default:
        return; // pong, or a frame type this SDK does not know yet
    }
  }

  #onReady(user: User, cursor: string): void {
    const resumed = this.#cursor !== null;
    if (!resumed) this.#cursor = cursor;
    this.#user = user;
    this.#ready = true;
    this.#attempt = 0;
    this.#backoff = this.#initialDelay;
    this.#clearSocketTimers();
    if (this.#pingInterval > 0) this.#pingTimer = setInterval(() => this.#keepAlive(), this.#pingInterval);
    this.#setState("open", null, null);
    this.emit("ready", { user, cursor: this.#cursor ?? cursor, resumed });
    // Sends that were waiting, or unanswered when the last socket dropped: same ref and clientMessageId.
    for (const pending of this.#pending.values()) this.#write(pending.frame);
  }

  #remember(id: string): void {
    this.#seen.add(id);
    if (this.#seen.size > this.#dedupeWindow) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
  }
}
