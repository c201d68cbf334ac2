/**
 * Wire types of the missive API: the JSON bodies of the REST endpoints and
 * the WebSocket frames, as the server's OpenAPI document (`/openapi.json`)
 * describes them. Field names are camelCase, times RFC 3339 UTC strings with
 * milliseconds, ids UUID strings. Every field is always present in what the
 * server sends; an absent optional value is `null`.
 *
 * @module
 */

/** A phone number: `+` followed by 7 to 15 digits, e.g. `+1234567890`. */
export type PhoneNumber = string;

/** A registered user. */
export interface User {
  /** Stable user id (UUIDv7). */
  id: string;
  /** Unique phone number. */
  phoneNumber: PhoneNumber;
  /** Optional display name (at most 64 characters), `null` when not set. */
  displayName: string | null;
  /** When the user registered. */
  createdAt: string;
}

/** Answer to {@link MissiveClient.register}: the new user and its first token. */
export interface Registered extends User {
  /** Opaque bearer token of the new user (shown once). */
  token: string;
}

/** Answer to {@link MissiveClient.verifyLogin}: a new token and its user. */
export interface LoginSession {
  /** The new opaque bearer token. */
  token: string;
  /** Its user. */
  user: User;
}

/** One logged-in device of the user ({@link MissiveClient.listSessions}). */
export interface DeviceSession {
  /** Session id (for {@link MissiveClient.revokeSession}). */
  id: string;
  /** When the session was created (registration or login). */
  createdAt: string;
  /** When its token was last used. */
  lastUsedAt: string;
  /** The `User-Agent` it logged in with, `null` when none was sent. */
  userAgent: string | null;
  /** Whether this is the session of the token making the request. */
  current: boolean;
}

/** Delivery state of a message for its recipient(s); it never goes backwards. */
export type MessageStatus = "sent" | "delivered" | "read";

/** The statuses a recipient can acknowledge. */
export type ReceiptStatus = "delivered" | "read";

/** A message of a chat. */
export interface Message {
  /** Message id (UUIDv7, time-ordered). */
  id: string;
  /** The chat it belongs to. */
  chatId: string;
  /** Per-chat sequence number, strictly increasing in send order: 1, 2, 3, … */
  seq: number;
  /** Phone number of the sender. */
  sender: PhoneNumber;
  /** The text, 1 to 4096 characters. */
  content: string;
  /** When the server stored it. */
  createdAt: string;
  /** The sender's idempotency key, `null` when none was given. */
  clientMessageId: string | null;
  /** Furthest state reached for the other participant(s) (minimum over a group). */
  status: MessageStatus;
}

/** A chat between two (or more, up to 32) users. */
export interface Chat {
  /** Chat id. */
  id: string;
  /** Phone numbers of the participants. */
  participants: PhoneNumber[];
  /** When the chat was created. */
  createdAt: string;
  /** The newest message, `null` when the chat is empty. */
  lastMessage: Message | null;
  /** For the caller: messages of the others not yet marked `read`. */
  unreadCount: number;
}

/** Answer to {@link MissiveClient.markStatus}. */
export interface StatusResponse {
  /** The chat. */
  chatId: string;
  /** The watermark message. */
  messageId: string;
  /** The status now reached by every message of the others up to that one. */
  status: ReceiptStatus;
}

/** What to send: to a chat by id, or to the 1:1 chat with a phone number. */
export type SendTarget = { chatId: string; to?: undefined } | { to: PhoneNumber; chatId?: undefined };

/** A message to send, over HTTP ({@link MissiveClient.sendMessage}) or the socket ({@link LiveConnection.send}). */
export type SendRequest = SendTarget & {
  /** The text, 1 to 4096 characters. */
  content: string;
  /**
   * Idempotency key (1 to 128 characters). A repeat with the same key, chat
   * and content returns the original message instead of storing a new one.
   * The SDK makes a random one when it is left out.
   */
  clientMessageId?: string;
};

/** One page of a list and the path of the next page, `null` on the last one. */
export interface Page<T> {
  /** The items of this page, in the server's order. */
  items: T[];
  /** Path and query of the next page (from the `Link: rel="next"` header), or `null`. */
  next: string | null;
}

/** Query of {@link MissiveClient.listChats}. */
export interface ListChatsQuery {
  /** Page size, 1 to 200 (server default 50). */
  limit?: number;
  /** Items to skip from the most recent. */
  offset?: number;
  /** Chat id cursor: the chats that come after this one (less recent). */
  before?: string;
}

/** Query of {@link MissiveClient.listMessages}; every page is newest first. */
export interface ListMessagesQuery {
  /** Page size, 1 to 200 (server default 50). */
  limit?: number;
  /** Items to skip from the newest. */
  offset?: number;
  /** Message id: the `limit` messages immediately older than it. */
  before?: string;
  /** Message id: the `limit` messages immediately newer than it (to catch up forward). */
  after?: string;
}

/** `ready`: the first frame of a connection. */
export interface ReadyFrame {
  type: "ready";
  /** The connection's user. */
  user: User;
  /** Opaque cursor of the user's newest durable event. */
  cursor: string;
}

/** `message`: a new message in any chat of the user (the user's own included). */
export interface MessageFrame {
  type: "message";
  /** The message. */
  message: Message;
  /** Opaque cursor of this event. */
  cursor: string;
}

/** `receipt`: a participant's delivered/read watermark moved. */
export interface ReceiptFrame {
  type: "receipt";
  /** The chat. */
  chatId: string;
  /** The watermark message: every message of the others up to it reached `status`. */
  messageId: string;
  /** The new status. */
  status: ReceiptStatus;
  /** Phone number of the participant who acknowledged. */
  user: PhoneNumber;
  /** When. */
  at: string;
  /** Opaque cursor of this event. */
  cursor: string;
}

/** `typing`: a participant started or stopped typing (ephemeral, no cursor). */
export interface TypingFrame {
  type: "typing";
  /** The chat. */
  chatId: string;
  /** Phone number of the participant. */
  user: PhoneNumber;
  /** Whether they are typing. */
  isTyping: boolean;
}

/** `ack`: a `send` was committed. */
export interface AckFrame {
  type: "ack";
  /** The `ref` of the send, `null` when it had none. */
  ref: string | null;
  /** The stored message. */
  message: Message;
}

/** `error`: a frame could not be processed; the connection stays open. */
export interface ErrorFrame {
  type: "error";
  /** The `ref` of the offending frame, `null` when it had none. */
  ref: string | null;
  /** Stable snake_case reason. */
  code: string;
  /** Human text. */
  message: string;
}

/** `resync`: the resume cursor is older than what the server keeps; re-list, then go on from `cursor`. */
export interface ResyncFrame {
  type: "resync";
  /** The cursor to continue from. */
  cursor: string;
}

/** `pong`: answer to `ping`. */
export interface PongFrame {
  type: "pong";
}

/** Any frame the server sends over `GET /ws`, discriminated by `type`. */
export type ServerFrame =
  | ReadyFrame
  | MessageFrame
  | ReceiptFrame
  | TypingFrame
  | AckFrame
  | ErrorFrame
  | ResyncFrame
  | PongFrame;

/** Any frame the SDK sends over `GET /ws`. */
export type ClientFrame =
  | ({ type: "send"; ref: string; clientMessageId: string; content: string } & SendTarget)
  | { type: "receipt"; chatId: string; messageId: string; status: ReceiptStatus }
  | { type: "typing"; chatId: string; isTyping: boolean }
  | { type: "ping" };
