/**
 * The live side of the SDK: {@link LiveConnection}, the WebSocket `GET /ws`
 * with reconnect, resume, deduplication and acknowledged sends.
 *
 * @module
 */
import { newClientMessageId } from "./client.js";
import { Emitter } from "./emitter.js";
import { ApiError } from "./errors.js";
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
export class LiveConnection extends Emitter {
    #client;
    #WebSocket;
    #initialDelay;
    #maxDelay;
    #pingInterval;
    #sendTimeout;
    #connectTimeout;
    #dedupeWindow;
    #socket = null;
    #ready = false;
    #closed = false;
    #state = "connecting";
    #cursor;
    #user = null;
    #attempt = 0;
    #backoff;
    #retryTimer = null;
    #pingTimer = null;
    #connectTimer = null;
    #lastHeard = 0;
    #nextRef = 0;
    #pending = new Map();
    #seen = new Set();
    /** Opens the connection (on the next microtask, so that listeners added right away see everything). */
    constructor(client, options = {}) {
        super();
        const WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
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
    get cursor() {
        return this.#cursor;
    }
    /** The connection's user, once `ready` was received. */
    get user() {
        return this.#user;
    }
    /** Where the connection stands. */
    get state() {
        return this.#state;
    }
    /** Socket sends waiting for their `ack`. */
    get pendingSends() {
        return this.#pending.size;
    }
    /**
     * Sends a message over the socket; resolves with the stored message on
     * `ack`, rejects with an {@link ApiError} on an `error` frame (e.g.
     * `chat_not_found`, `invalid_content`, `rate_limited`), on `timeout`, or
     * when the connection is closed (`closed`). While disconnected the send
     * waits and goes out after the reconnect, with the same `clientMessageId`.
     */
    send(request) {
        if (this.#closed)
            return Promise.reject(new ApiError(0, "closed", "the connection is closed"));
        const ref = `s${++this.#nextRef}`;
        const clientMessageId = request.clientMessageId ?? newClientMessageId();
        const frame = request.chatId !== undefined
            ? { type: "send", ref, chatId: request.chatId, content: request.content, clientMessageId }
            : { type: "send", ref, to: request.to, content: request.content, clientMessageId };
        return new Promise((resolve, reject) => {
            const pending = { frame, resolve, reject, timer: null };
            if (this.#sendTimeout > 0) {
                pending.timer = setTimeout(() => {
                    this.#pending.delete(ref);
                    reject(new ApiError(0, "timeout", `no answer to the send within ${this.#sendTimeout} ms`));
                }, this.#sendTimeout);
            }
            this.#pending.set(ref, pending);
            if (this.#ready)
                this.#write(frame);
        });
    }
    /** Marks every message of the others up to `messageId` delivered or read; `false` when not connected (nothing sent). */
    receipt(chatId, messageId, status) {
        return this.#ready && this.#write({ type: "receipt", chatId, messageId, status });
    }
    /** Tells the other participants whether the user is typing; `false` when not connected (nothing sent). */
    typing(chatId, isTyping) {
        return this.#ready && this.#write({ type: "typing", chatId, isTyping });
    }
    /** Closes for good: no reconnect; pending sends are rejected with `closed`. */
    close() {
        if (this.#closed)
            return;
        this.#closed = true;
        this.#stopTimers();
        const socket = this.#socket;
        this.#socket = null;
        this.#ready = false;
        if (socket)
            socket.close(1000, "closed by the client");
        for (const [ref, pending] of this.#pending) {
            this.#pending.delete(ref);
            if (pending.timer)
                clearTimeout(pending.timer);
            pending.reject(new ApiError(0, "closed", "the connection was closed before the server answered"));
        }
        this.#setState("closed", null, null);
    }
    // ---- Socket life -------------------------------------------------------
    #open() {
        if (this.#closed)
            return;
        this.#retryTimer = null;
        this.#attempt += 1;
        this.#ready = false;
        this.#setState("connecting", null, null);
        let socket;
        try {
            socket = new this.#WebSocket(this.#client.socketUrl(this.#cursor));
        }
        catch {
            this.#scheduleReconnect(null, false);
            return;
        }
        this.#socket = socket;
        socket.addEventListener("message", (event) => {
            if (this.#socket === socket)
                this.#onText(event.data);
        });
        socket.addEventListener("close", (event) => {
            if (this.#socket === socket)
                this.#onClose(event.code ?? null);
        });
        // Browsers follow an `error` with `close`; Node 20's WebSocket does not when the
        // connection is refused, so an error ends the socket here (whichever comes first wins).
        socket.addEventListener("error", () => {
            if (this.#socket === socket)
                this.#drop(socket, null);
        });
        // A handshake that hangs (a black-holed address) is given up after connectTimeout.
        this.#connectTimer = setTimeout(() => {
            if (this.#socket === socket && !this.#ready)
                this.#drop(socket, null);
        }, this.#connectTimeout);
    }
    /** Abandons `socket` (closing it if it can be) and reconnects. */
    #drop(socket, code) {
        this.#socket = null;
        try {
            socket.close(4000, "abandoned by the client");
        }
        catch {
            /* not open yet, or already closing */
        }
        this.#onClose(code);
    }
    #onClose(code) {
        const wasReady = this.#ready;
        this.#socket = null;
        this.#ready = false;
        this.#clearSocketTimers();
        if (this.#closed)
            return;
        this.#scheduleReconnect(code, !wasReady || code === POLICY_VIOLATION);
    }
    #scheduleReconnect(code, checkToken) {
        const delay = Math.round(this.#backoff * (0.5 + Math.random() / 2));
        this.#backoff = Math.min(this.#backoff * 2, this.#maxDelay);
        this.#setState("reconnecting", delay, code);
        this.#retryTimer = setTimeout(() => this.#open(), delay);
        // A refused upgrade or a policy close may mean a revoked token: /me tells (a 401), not a network error.
        if (checkToken && this.#client.token) {
            this.#client.me().catch((error) => {
                if (error instanceof ApiError && error.status === 401 && !this.#closed) {
                    this.close();
                    this.emit("unauthorized", error);
                }
            });
        }
    }
    /** Drops a socket that has said nothing for two ping intervals (a dead TCP connection may take minutes to close). */
    #keepAlive() {
        const socket = this.#socket;
        if (!socket)
            return;
        if (Date.now() - this.#lastHeard > 2 * this.#pingInterval) {
            this.#drop(socket, null);
            return;
        }
        this.#write({ type: "ping" });
    }
    #write(frame) {
        const socket = this.#socket;
        if (!socket || socket.readyState !== OPEN)
            return false;
        try {
            socket.send(JSON.stringify(frame));
            return true;
        }
        catch {
            return false;
        }
    }
    #setState(state, delay, closeCode) {
        this.#state = state;
        this.emit("state", state, { attempt: this.#attempt, delay, closeCode });
    }
    #clearSocketTimers() {
        if (this.#pingTimer)
            clearInterval(this.#pingTimer);
        if (this.#connectTimer)
            clearTimeout(this.#connectTimer);
        this.#pingTimer = null;
        this.#connectTimer = null;
    }
    #stopTimers() {
        if (this.#retryTimer)
            clearTimeout(this.#retryTimer);
        this.#retryTimer = null;
        this.#clearSocketTimers();
    }
    // ---- Frames ------------------------------------------------------------
    #onText(data) {
        this.#lastHeard = Date.now();
        if (typeof data !== "string")
            return;
        let frame;
        try {
            frame = JSON.parse(data);
        }
        catch {
            return;
        }
        if (frame === null || typeof frame !== "object")
            return;
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
                if (!pending || frame.ref === null)
                    return;
                this.#pending.delete(frame.ref);
                if (pending.timer)
                    clearTimeout(pending.timer);
                pending.resolve(frame.message);
                return;
            }
            case "error": {
                const error = new ApiError(0, frame.code, frame.message);
                const pending = frame.ref === null ? undefined : this.#pending.get(frame.ref);
                if (pending && frame.ref !== null) {
                    this.#pending.delete(frame.ref);
                    if (pending.timer)
                        clearTimeout(pending.timer);
                    pending.reject(error);
                }
                else {
                    this.emit("error", error);
                }
                return;
            }
            default:
                return; // pong, or a frame type this SDK does not know yet
        }
    }
    #onReady(user, cursor) {
        const resumed = this.#cursor !== null;
        if (!resumed)
            this.#cursor = cursor;
        this.#user = user;
        this.#ready = true;
        this.#attempt = 0;
        this.#backoff = this.#initialDelay;
        this.#clearSocketTimers();
        if (this.#pingInterval > 0)
            this.#pingTimer = setInterval(() => this.#keepAlive(), this.#pingInterval);
        this.#setState("open", null, null);
        this.emit("ready", { user, cursor: this.#cursor ?? cursor, resumed });
        // Sends that were waiting, or unanswered when the last socket dropped: same ref and clientMessageId.
        for (const pending of this.#pending.values())
            this.#write(pending.frame);
    }
    #remember(id) {
        this.#seen.add(id);
        if (this.#seen.size > this.#dedupeWindow) {
            const oldest = this.#seen.values().next().value;
            if (oldest !== undefined)
                this.#seen.delete(oldest);
        }
    }
}
