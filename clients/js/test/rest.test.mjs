// The REST side of the SDK against a real server (AUTH_MODE=required):
// register, login by code, logout, chats and messages with pagination, and
// ApiError for what the server refuses.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ApiError, MissiveClient } from "../dist/missive.js";
import { startServer } from "./server.mjs";

const ALICE = "+15550001001";
const BOB = "+15550001002";
const CAROL = "+15550001003";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const client = (token = null, extra = {}) => new MissiveClient({ baseUrl: server.base, token, ...extra });

/** Asserts that `promise` rejects with an ApiError of this status and code. */
async function rejectsWith(promise, status, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof ApiError, `an ApiError, not ${e}`);
    assert.equal(e.status, status, `status of ${e.code}: ${e.message}`);
    assert.equal(e.code, code);
    assert.ok(e.message.length > 0, "a human message");
    return true;
  });
}

describe("identity", () => {
  it("register keeps the token, and /me answers with the new user", async () => {
    const alice = client();
    const registered = await alice.register({ phoneNumber: ALICE, displayName: "Alice" });
    assert.equal(registered.phoneNumber, ALICE);
    assert.equal(registered.displayName, "Alice");
    assert.equal(alice.token, registered.token);
    const me = await alice.me();
    assert.deepEqual(me, { id: registered.id, phoneNumber: ALICE, displayName: "Alice", createdAt: registered.createdAt });
  });

  it("registering a taken number is ApiError 409 phone_taken", async () => {
    await rejectsWith(client().register({ phoneNumber: ALICE }), 409, "phone_taken");
  });

  it("a new device logs in by code, and logout revokes only its token", async () => {
    const first = client();
    await first.register({ phoneNumber: CAROL });
    const device = client();
    await device.startLogin(CAROL);
    const session = await device.verifyLogin(CAROL, server.gateway.lastCode(CAROL));
    assert.equal(session.user.phoneNumber, CAROL);
    assert.equal(device.token, session.token);
    assert.notEqual(session.token, first.token);
    assert.equal((await device.me()).phoneNumber, CAROL);

    const revoked = device.token;
    await device.logout();
    assert.equal(device.token, null, "the client forgets the token");
    const refused = [];
    const stale = client(revoked, { onUnauthorized: (e) => refused.push(e.code) });
    await rejectsWith(stale.me(), 401, "unauthorized");
    assert.deepEqual(refused, ["unauthorized"], "onUnauthorized is told once");
    assert.equal((await first.me()).phoneNumber, CAROL, "the other device stays logged in");
  });

  it("a device lists the sessions and logs another one out (GET /sessions, DELETE /sessions/{id})", async (t) => {
    const phone = "+15550001004";
    const laptop = client();
    await laptop.register({ phoneNumber: phone });
    const phoneDevice = client();
    await phoneDevice.startLogin(phone);
    await phoneDevice.verifyLogin(phone, server.gateway.lastCode(phone));
    let sessions;
    try {
      sessions = await laptop.listSessions();
    } catch (e) {
      // A server without the session list answers 405 (POST /sessions exists) or 404.
      if (e instanceof ApiError && (e.status === 405 || e.status === 404)) return t.skip(`this server has no GET /sessions (${e.status})`);
      throw e;
    }
    assert.equal(sessions.length, 2);
    assert.equal(sessions.filter((s) => s.current).length, 1);
    const other = sessions.find((s) => !s.current);
    await laptop.revokeSession(other.id);
    await rejectsWith(phoneDevice.me(), 401, "unauthorized");
    assert.equal((await laptop.listSessions()).length, 1);
    await rejectsWith(laptop.revokeSession(other.id), 404, "not_found");
  });

  it("a wrong code is ApiError 401 invalid_code, and does not call onUnauthorized", async () => {
    const refused = [];
    const device = client(null, { onUnauthorized: (e) => refused.push(e) });
    await device.startLogin(ALICE);
    const right = server.gateway.lastCode(ALICE);
    const wrong = right === "000000" ? "111111" : "000000";
    await rejectsWith(device.verifyLogin(ALICE, wrong), 401, "invalid_code");
    assert.equal(device.token, null);
    assert.deepEqual(refused, []);
  });

  it("asking a code for an unknown number is ApiError 404 user_not_found", async () => {
    await rejectsWith(client().startLogin("+15550009999"), 404, "user_not_found");
  });

  it("without a token a user endpoint is ApiError 401", async () => {
    await rejectsWith(client().listChats(), 401, "unauthorized");
  });
});

describe("chats and messages", () => {
  let alice, bob, chat;

  before(async () => {
    alice = client();
    bob = client();
    await alice.register({ phoneNumber: "+15550002001", displayName: "Alice" });
    await bob.register({ phoneNumber: "+15550002002", displayName: "Bob" });
    const made = await alice.createChat(["+15550002001", "+15550002002"]);
    assert.equal(made.created, true, "201: a new chat");
    chat = made.chat;
  });

  it("creating the same 1:1 chat again finds it (created: false)", async () => {
    const again = await bob.createChat(["+15550002002", "+15550002001"]);
    assert.equal(again.created, false);
    assert.equal(again.chat.id, chat.id);
    assert.deepEqual((await bob.getChat(chat.id)).participants.sort(), chat.participants.sort());
  });

  it("lookupUser finds a contact by phone number", async () => {
    const found = await alice.lookupUser("+15550002002");
    assert.equal(found.displayName, "Bob");
    await rejectsWith(alice.lookupUser("+15550002999"), 404, "user_not_found");
  });

  it("messages sent over HTTP come back page by page, newest first, none lost or repeated", async () => {
    const sent = [];
    for (let i = 1; i <= 7; i += 1) sent.push(await alice.sendMessage({ chatId: chat.id, content: `m${i}` }));
    assert.deepEqual(sent.map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7]);
    assert.ok(sent.every((m) => typeof m.clientMessageId === "string"), "the SDK gives every send a clientMessageId");

    const seen = [];
    let page = await bob.listMessages(chat.id, { limit: 3 });
    const sizes = [];
    while (page) {
      sizes.push(page.items.length);
      seen.push(...page.items.map((m) => m.content));
      page = await bob.nextPage(page);
    }
    assert.deepEqual(sizes, [3, 3, 1]);
    assert.deepEqual(seen, ["m7", "m6", "m5", "m4", "m3", "m2", "m1"]);

    // Cursors: the two older than m5, and the two newer than m2 (the oldest ones after it).
    const older = await bob.listMessages(chat.id, { limit: 2, before: sent[4].id });
    assert.deepEqual(older.items.map((m) => m.content), ["m4", "m3"]);
    const newer = await bob.listMessages(chat.id, { limit: 2, after: sent[1].id });
    assert.deepEqual(newer.items.map((m) => m.content), ["m4", "m3"]);
    assert.ok(newer.next, "more newer messages exist");
  });

  it("a retried send with the same clientMessageId is stored once", async () => {
    const first = await alice.sendMessage({ chatId: chat.id, content: "once", clientMessageId: "retry-1" });
    const again = await alice.sendMessage({ chatId: chat.id, content: "once", clientMessageId: "retry-1" });
    assert.equal(again.id, first.id);
    assert.equal(again.seq, first.seq);
    await rejectsWith(alice.sendMessage({ chatId: chat.id, content: "other", clientMessageId: "retry-1" }), 409, "idempotency_conflict");
  });

  it("a send to a phone number lands in the 1:1 chat", async () => {
    const m = await bob.sendMessage({ to: "+15550002001", content: "by number" });
    assert.equal(m.chatId, chat.id);
    assert.equal(m.sender, "+15550002002");
  });

  it("markStatus moves the watermark: the sender sees read and the reader's unread count drops", async () => {
    const last = await alice.sendMessage({ chatId: chat.id, content: "read me" });
    const answer = await bob.markStatus(chat.id, last.id, "read");
    assert.deepEqual(answer, { chatId: chat.id, messageId: last.id, status: "read" });
    const page = await alice.listMessages(chat.id, { limit: 1 });
    assert.equal(page.items[0].status, "read");
    assert.equal((await bob.getChat(chat.id)).unreadCount, 0);
    await alice.setTyping(chat.id, true); // 200 {}: nothing to assert beyond no error
  });

  it("listChats pages with Link, most recent activity first", async () => {
    const dave = client();
    await dave.register({ phoneNumber: "+15550003000" });
    const others = ["+15550003001", "+15550003002", "+15550003003"];
    for (const phone of others) {
      await client().register({ phoneNumber: phone });
      const { chat: c } = await dave.createChat(["+15550003000", phone]);
      await dave.sendMessage({ chatId: c.id, content: `to ${phone}` });
    }
    const first = await dave.listChats({ limit: 2 });
    assert.equal(first.items.length, 2);
    const second = await dave.nextPage(first);
    assert.equal(second.items.length, 1);
    assert.equal(second.next, null, "no Link on the last page");
    assert.equal(await dave.nextPage(second), null);
    const order = [...first.items, ...second.items].map((c) => c.lastMessage.content);
    assert.deepEqual(order, others.map((p) => `to ${p}`).reverse());
  });

  it("what the server refuses is an ApiError with its status and code", async () => {
    await rejectsWith(alice.sendMessage({ chatId: chat.id, content: "" }), 400, "invalid_content");
    await rejectsWith(alice.sendMessage({ chatId: chat.id, content: "x".repeat(4097) }), 400, "invalid_content");
    await rejectsWith(alice.listMessages(chat.id, { limit: 0 }), 400, "invalid_parameter");
    await rejectsWith(alice.getChat("not-a-uuid"), 400, "invalid_parameter");
    await rejectsWith(alice.getChat("01943f6f-1111-7222-8333-444455556666"), 404, "chat_not_found");
    await rejectsWith(alice.createChat(["+15550002001"]), 400, "invalid_participants");
    const err = await alice.getChat("01943f6f-1111-7222-8333-444455556666").catch((e) => e);
    assert.match(err.requestId ?? "", /\S+/, "the request id is kept for support");
  });

  it("an unreachable server is ApiError status 0 network_error", async () => {
    const nowhere = new MissiveClient({ baseUrl: "http://127.0.0.1:9", token: "x" });
    await rejectsWith(nowhere.me(), 0, "network_error");
  });
});
