/**
 * The REST side of the SDK: {@link MissiveClient}.
 *
 * @module
 */

import { ApiError, errorBody } from "./errors.js";
import { LiveConnection, type LiveOptions } from "./live.js";
import type {
  Chat,
  DeviceSession,
  ListChatsQuery,
  ListMessagesQuery,
  LoginSession,
  Message,
  Page,
  PhoneNumber,
  ReceiptStatus,
  Registered,
  SendRequest,
  StatusResponse,
  User,
} from "./types.js";

/** The `fetch` function the client uses (the global one by default). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** Options of {@link MissiveClient}. */
export interface ClientOptions {
  /**
   * Where the server is, e.g. `http://localhost:8080` (a path prefix is
   * kept: `https://example.com/chat`). In a browser it defaults to the
   * page's own origin.
   */
  baseUrl?: string;
  /** The bearer token to start with (e.g. read from `localStorage`). */
  token?: string | null;
  /** Called when the server refuses the token (a 401 outside the login endpoints): log the user out. */
  onUnauthorized?: (error: ApiError) => void;
  /** The `fetch` to use (default: the global one). */
  fetch?: FetchLike;
}

/** A REST request of the client. */
interface Request {
  method: "GET" | "POST" | "DELETE";
  path: string;
  body?: unknown;
  /** Whether a 401 means "the token is no longer valid" (not so for the login endpoints). */
  session?: boolean;
}

/**
 * A typed client of the missive REST API.
 *
 * It keeps the bearer token for its requests but does not store it: the
 * caller reads {@link token} after {@link register} or {@link verifyLogin}
 * and keeps it where it likes (the web client uses `localStorage`).
 * Every failure is an {@link ApiError}.
 */
export class MissiveClient {
  /** The server's base URL (absolute, without a trailing slash). */
  readonly baseUrl: string;
  #token: string | null;
  readonly #fetch: FetchLike;
  readonly #onUnauthorized: ((error: ApiError) => void) | undefined;

  /** Makes a client; nothing is sent until a method is called. */
  constructor(options: ClientOptions = {}) {
    const base = options.baseUrl ?? (globalThis as { location?: { origin: string } }).location?.origin;
    if (!base) throw new TypeError("MissiveClient: baseUrl is required outside a browser");
    this.baseUrl = new URL(base).href.replace(/\/+$/, "");
    this.#token = options.token ?? null;
    const fetchFn = options.fetch ?? globalThis.fetch;
    if (typeof fetchFn !== "function") throw new TypeError("MissiveClient: no fetch available; pass options.fetch");
    this.#fetch = fetchFn.bind(globalThis) as FetchLike;
    this.#onUnauthorized = options.onUnauthorized;
  }

  /** The current bearer token, `null` when logged out. */
  get token(): string | null {
    return this.#token;
  }

  /** Replaces the bearer token (`null` to forget it). */
  setToken(token: string | null): void {
    this.#token = token;
  }

  // ---- Identity ----------------------------------------------------------

  /** `POST /register`: creates a user and keeps its token. 409 `phone_taken` when the number is registered. */
  async register(body: { phoneNumber: PhoneNumber; displayName?: string }): Promise<Registered> {
    const registered = (await this.#request<Registered>({ method: "POST", path: "/register", body })).data;
    this.#token = registered.token;
    return registered;
  }

  /** `POST /sessions`: asks the server to send a 6-digit login code to this number (404 `user_not_found` when unknown). */
  async startLogin(phoneNumber: PhoneNumber): Promise<void> {
    await this.#request({ method: "POST", path: "/sessions", body: { phoneNumber } });
  }

  /** `POST /sessions/verify`: trades the code for a new token, which the client keeps. 401 `invalid_code`, 429 after too many tries. */
  async verifyLogin(phoneNumber: PhoneNumber, code: string): Promise<LoginSession> {
    const session = (await this.#request<LoginSession>({ method: "POST", path: "/sessions/verify", body: { phoneNumber, code } })).data;
    this.#token = session.token;
    return session;
  }

  /** `DELETE /sessions/current`: revokes the token on every node and forgets it (also when the server already refused it). */
  async logout(): Promise<void> {
    const token = this.#token;
    if (!token) return;
    try {
      await this.#request({ method: "DELETE", path: "/sessions/current", session: false });
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) throw error;
    } finally {
      // Unless another token was set meanwhile (a new login).
      if (this.#token === token) this.#token = null;
    }
  }

  /** `GET /sessions`: the user's logged-in devices (sessions), the current one marked. */
  async listSessions(): Promise<DeviceSession[]> {
    return (await this.#request<DeviceSession[]>({ method: "GET", path: "/sessions" })).data;
  }

  /** `DELETE /sessions/{id}`: logs one of the user's devices out (404 when not one of the caller's sessions). */
  async revokeSession(sessionId: string): Promise<void> {
    await this.#request({ method: "DELETE", path: `/sessions/${encodeURIComponent(sessionId)}` });
  }

  /** `GET /me`: the token's user. */
  async me(): Promise<User> {
    return (await this.#request<User>({ method: "GET", path: "/me" })).data;
  }

  /** `GET /users?phoneNumber=`: looks a contact up (404 `user_not_found`). */
  async lookupUser(phoneNumber: PhoneNumber): Promise<User> {
    return (await this.#request<User>({ method: "GET", path: `/users?${query({ phoneNumber })}` })).data;
  }

  // ---- Chats -------------------------------------------------------------

  /**
   * `POST /chats`: creates a chat of these participants (the caller among
   * them), or finds the existing 1:1 chat of a pair. `created` says which.
   */
  async createChat(participants: PhoneNumber[]): Promise<{ chat: Chat; created: boolean }> {
    const { data, response } = await this.#request<Chat>({ method: "POST", path: "/chats", body: { participants } });
    return { chat: data, created: response.status === 201 };
  }

  /** `GET /chats`: a page of the caller's chats, most recent activity first. */
  async listChats(q: ListChatsQuery = {}): Promise<Page<Chat>> {
    return this.#page<Chat>(`/chats${withQuery(q)}`);
  }

  /** `GET /chats/{chatId}`: one chat (404 `chat_not_found` when unknown or not the caller's). */
  async getChat(chatId: string): Promise<Chat> {
    return (await this.#request<Chat>({ method: "GET", path: `/chats/${encodeURIComponent(chatId)}` })).data;
  }

  // ---- Messages ----------------------------------------------------------

  /**
   * `POST /messages`: sends a message and resolves once it is committed.
   * A `clientMessageId` is made when none is given; calling again with the
   * same one after a failure (e.g. a network error) stores the message once.
   */
  async sendMessage(request: SendRequest): Promise<Message> {
    const { chatId, to, content } = request;
    const clientMessageId = request.clientMessageId ?? newClientMessageId();
    const body = chatId !== undefined ? { chatId, content, clientMessageId } : { receiver: to, content, clientMessageId };
    return (await this.#request<Message>({ method: "POST", path: "/messages", body })).data;
  }

  /**
   * `GET /chats/{chatId}/messages`: a page of messages, newest first. As a
   * recipient, reading marks the returned messages delivered.
   */
  async listMessages(chatId: string, q: ListMessagesQuery = {}): Promise<Page<Message>> {
    return this.#page<Message>(`/chats/${encodeURIComponent(chatId)}/messages${withQuery(q)}`);
  }

  /**
   * The page after `page` (its `Link: rel="next"`), or `null` when `page`
   * was the last one. Works for chats and messages alike.
   */
  async nextPage<T>(page: Page<T>): Promise<Page<T> | null> {
    return page.next === null ? null : this.#page<T>(page.next);
  }

  /**
   * `POST /chats/{chatId}/status`: marks every message of the others up to
   * and including `messageId` `delivered` or `read` (a watermark).
   */
  async markStatus(chatId: string, messageId: string, status: ReceiptStatus): Promise<StatusResponse> {
    const path = `/chats/${encodeURIComponent(chatId)}/status`;
    return (await this.#request<StatusResponse>({ method: "POST", path, body: { messageId, status } })).data;
  }

  /** `POST /chats/{chatId}/typing`: tells the other participants' sockets (never stored). */
  async setTyping(chatId: string, isTyping: boolean): Promise<void> {
    await this.#request({ method: "POST", path: `/chats/${encodeURIComponent(chatId)}/typing`, body: { isTyping } });
  }

  // ---- Live --------------------------------------------------------------

  /**
   * Opens the live connection (`GET /ws`) with this client's token. It
   * reconnects by itself until {@link LiveConnection.close} is called.
   */
  connect(options: LiveOptions = {}): LiveConnection {
    return new LiveConnection(this, options);
  }

  /** The WebSocket URL of `GET /ws` for this token and resume cursor. */
  socketUrl(since: string | null): string {
    const url = new URL(`${this.baseUrl}/ws`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.#token) url.searchParams.set("token", this.#token);
    if (since !== null) url.searchParams.set("since", since);
    return url.href;
  }

  // ---- Plumbing ----------------------------------------------------------

  async #page<T>(path: string): Promise<Page<T>> {
    const { data, response } = await this.#request<T[]>({ method: "GET", path });
    if (!Array.isArray(data)) throw new ApiError(response.status, "invalid_response", "expected a JSON array");
    return { items: data, next: this.#nextLink(response.headers.get("Link")) };
  }

  /** The `rel="next"` target of a `Link` header, as a path on this server (`null` when none or foreign). */
  #nextLink(header: string | null): string | null {
    for (const part of (header ?? "").split(/,(?=\s*<)/)) {
      const match = /<([^>]*)>(.*)/s.exec(part);
      if (!match || !/;\s*rel\s*=\s*"?[^";]*\bnext\b/i.test(match[2] ?? "")) continue;
      const url = new URL(match[1] ?? "", `${this.baseUrl}/`);
      const base = new URL(this.baseUrl);
      if (url.origin !== base.origin) return null;
      const prefix = base.pathname.replace(/\/+$/, "");
      const path = url.pathname.startsWith(`${prefix}/`) ? url.pathname.slice(prefix.length) : url.pathname;
      return path + url.search;
    }
    return null;
  }

  async #request<T = unknown>(request: Request): Promise<{ data: T; response: Response }> {
    const headers: Record<string, string> = {};
    if (this.#token) headers["Authorization"] = `Bearer ${this.#token}`;
    const init: RequestInit = { method: request.method, headers };
    if (request.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(request.body);
    }
    let response: Response;
    try {
      response = await this.#fetch(this.baseUrl + request.path, init);
    } catch (cause) {
      throw new ApiError(0, "network_error", "the server cannot be reached", { cause });
    }
    const text = await response.text().catch(() => "");
    let data: unknown = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        /* not JSON: handled below */
      }
    }
    const requestId = response.headers.get("X-Request-Id");
    if (response.ok) {
      if (text && data === null) throw new ApiError(response.status, "invalid_response", "the answer is not JSON", { requestId });
      return { data: data as T, response };
    }
    const body = errorBody(data);
    const retry = Number(response.headers.get("Retry-After"));
    const error = new ApiError(
      response.status,
      body?.code ?? `http_${response.status}`,
      body?.message ?? `${response.status} ${response.statusText}`.trim(),
      { requestId, retryAfter: Number.isFinite(retry) && retry > 0 ? retry : null },
    );
    const loginPath = request.path === "/sessions/verify" || request.path === "/register" || (request.path === "/sessions" && request.method === "POST");
    if (error.status === 401 && this.#token && !loginPath && request.session !== false) this.#onUnauthorized?.(error);
    throw error;
  }
}

/** A fresh random idempotency key (a UUIDv4), for {@link SendRequest.clientMessageId}. */
export function newClientMessageId(): string {
  const c = globalThis.crypto;
  // randomUUID needs a secure context in browsers; plain http falls back to getRandomValues.
  if (typeof c.randomUUID === "function") return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined) search.set(key, String(value));
  return search.toString();
}

function withQuery(params: object): string {
  const q = query(params as Record<string, string | number | undefined>);
  return q ? `?${q}` : "";
}
