/**
 * The REST side of the SDK: {@link MissiveClient}.
 *
 * @module
 */
import { ApiError } from "./errors.js";
import { LiveConnection, type LiveOptions } from "./live.js";
import type { Chat, DeviceSession, ListChatsQuery, ListMessagesQuery, LoginSession, Message, Page, PhoneNumber, ReceiptStatus, Registered, SendRequest, StatusResponse, User } from "./types.js";
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
/**
 * A typed client of the missive REST API.
 *
 * It keeps the bearer token for its requests but does not store it: the
 * caller reads {@link token} after {@link register} or {@link verifyLogin}
 * and keeps it where it likes (the web client uses `localStorage`).
 * Every failure is an {@link ApiError}.
 */
export declare class MissiveClient {
    #private;
    /** The server's base URL (absolute, without a trailing slash). */
    readonly baseUrl: string;
    /** Makes a client; nothing is sent until a method is called. */
    constructor(options?: ClientOptions);
    /** The current bearer token, `null` when logged out. */
    get token(): string | null;
    /** Replaces the bearer token (`null` to forget it). */
    setToken(token: string | null): void;
    /** `POST /register`: creates a user and keeps its token. 409 `phone_taken` when the number is registered. */
    register(body: {
        phoneNumber: PhoneNumber;
        displayName?: string;
    }): Promise<Registered>;
    /** `POST /sessions`: asks the server to send a 6-digit login code to this number (404 `user_not_found` when unknown). */
    startLogin(phoneNumber: PhoneNumber): Promise<void>;
    /** `POST /sessions/verify`: trades the code for a new token, which the client keeps. 401 `invalid_code`, 429 after too many tries. */
    verifyLogin(phoneNumber: PhoneNumber, code: string): Promise<LoginSession>;
    /** `DELETE /sessions/current`: revokes the token on every node and forgets it (also when the server already refused it). */
    logout(): Promise<void>;
    /** `GET /sessions`: the user's logged-in devices (sessions), the current one marked. */
    listSessions(): Promise<DeviceSession[]>;
    /** `DELETE /sessions/{id}`: logs one of the user's devices out (404 when not one of the caller's sessions). */
    revokeSession(sessionId: string): Promise<void>;
    /** `GET /me`: the token's user. */
    me(): Promise<User>;
    /** `GET /users?phoneNumber=`: looks a contact up (404 `user_not_found`). */
    lookupUser(phoneNumber: PhoneNumber): Promise<User>;
    /**
     * `POST /chats`: creates a chat of these participants (the caller among
     * them), or finds the existing 1:1 chat of a pair. `created` says which.
     */
    createChat(participants: PhoneNumber[]): Promise<{
        chat: Chat;
        created: boolean;
    }>;
    /** `GET /chats`: a page of the caller's chats, most recent activity first. */
    listChats(q?: ListChatsQuery): Promise<Page<Chat>>;
    /** `GET /chats/{chatId}`: one chat (404 `chat_not_found` when unknown or not the caller's). */
    getChat(chatId: string): Promise<Chat>;
    /**
     * `POST /messages`: sends a message and resolves once it is committed.
     * A `clientMessageId` is made when none is given; calling again with the
     * same one after a failure (e.g. a network error) stores the message once.
     */
    sendMessage(request: SendRequest): Promise<Message>;
    /**
     * `GET /chats/{chatId}/messages`: a page of messages, newest first. As a
     * recipient, reading marks the returned messages delivered.
     */
    listMessages(chatId: string, q?: ListMessagesQuery): Promise<Page<Message>>;
    /**
     * The page after `page` (its `Link: rel="next"`), or `null` when `page`
     * was the last one. Works for chats and messages alike.
     */
    nextPage<T>(page: Page<T>): Promise<Page<T> | null>;
    /**
     * `POST /chats/{chatId}/status`: marks every message of the others up to
     * and including `messageId` `delivered` or `read` (a watermark).
     */
    markStatus(chatId: string, messageId: string, status: ReceiptStatus): Promise<StatusResponse>;
    /** `POST /chats/{chatId}/typing`: tells the other participants' sockets (never stored). */
    setTyping(chatId: string, isTyping: boolean): Promise<void>;
    /**
     * Opens the live connection (`GET /ws`) with this client's token. It
     * reconnects by itself until {@link LiveConnection.close} is called.
     */
    connect(options?: LiveOptions): LiveConnection;
    /** The WebSocket URL of `GET /ws` for this token and resume cursor. */
    socketUrl(since: string | null): string;
}
/** A fresh random idempotency key (a UUIDv4), for {@link SendRequest.clientMessageId}. */
export declare function newClientMessageId(): string;
