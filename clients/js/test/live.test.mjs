// The live connection against a real server: two users chat over WebSocket
// with acks, receipts and typing; the server is killed and restarted on the
// same port and file, and the recipient resumes with no message lost or
// repeated; a revoked token ends the connection.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ApiError, MissiveClient } from "../dist/missive.js";
import { sleep, startServer, until, waitFor } from "./server.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

let next = 0;
/** A registered user with a client (fresh phone number per call). */
async function user(name) {
  next += 1;
  const phone = `+1555100${String(next).padStart(4, "0")}`;
  const client = new MissiveClient({ baseUrl: server.base });
  await client.register({ phoneNumber: phone, displayName: name });
  return { phone, client };
}

/** Opens a live connection and waits for `ready`. */
async function online(u, options = {}) {
  const live = u.client.connect({ initialDelay: 50, maxDelay: 400, ...options });
  const messages = [];
  live.on("message", (m) => messages.push(m));
  await waitFor(live, "ready");
  return { live, messages };
}

describe("live connection", () => {
  it("a socket send is acked with the stored message and reaches the other user once, with receipts and typing", async () => {
    const alice = await user("Alice");
    const bob = await user("Bob");
    const { chat } = await alice.client.createChat([alice.phone, bob.phone]);
    const a = await online(alice);
    const b = await online(bob);
    try {
      assert.equal(a.live.state, "open");
      assert.equal(a.live.user.phoneNumber, alice.phone);

      const bobGets = waitFor(b.live, "message");
      const sent = await a.live.send({ chatId: chat.id, content: "hello over the socket", clientMessageId: "ws-1" });
      assert.equal(sent.seq, 1);
      assert.equal(sent.clientMessageId, "ws-1");
      const [received, cursor] = await bobGets;
      assert.equal(received.id, sent.id);
      assert.equal(received.content, "hello over the socket");
      assert.equal(typeof cursor, "string");
      assert.equal(b.live.cursor, cursor, "the cursor moved past the processed event");
      await until(() => a.messages.length === 1, "Alice's own message event");
      assert.equal(a.messages[0].id, sent.id, "the sender gets its own message once too");

      // Receipts: Bob's device says delivered, then read; Alice hears both.
      const delivered = waitFor(a.live, "receipt", (r) => r.status === "delivered");
      assert.equal(b.live.receipt(chat.id, sent.id, "delivered"), true);
      const [d] = await delivered;
      assert.deepEqual([d.chatId, d.messageId, d.user], [chat.id, sent.id, bob.phone]);
      const read = waitFor(a.live, "receipt", (r) => r.status === "read");
      b.live.receipt(chat.id, sent.id, "read");
      await read;
      assert.equal((await alice.client.listMessages(chat.id)).items[0].status, "read");

      // Typing is relayed to the other participant.
      const typing = waitFor(a.live, "typing");
      assert.equal(b.live.typing(chat.id, true), true);
      const [t] = await typing;
      assert.deepEqual([t.chatId, t.user, t.isTyping], [chat.id, bob.phone, true]);

      // A send to an unknown chat is rejected with the server's code; the socket stays usable.
      await assert.rejects(
        a.live.send({ chatId: "01943f6f-1111-7222-8333-444455556666", content: "nobody" }),
        (e) => e instanceof ApiError && e.code === "chat_not_found",
      );
      await assert.rejects(a.live.send({ chatId: chat.id, content: "" }), (e) => e instanceof ApiError && e.code === "invalid_content");
      assert.equal(a.live.pendingSends, 0);
      // A receipt for a message that does not exist: an `error` event, not a crash.
      const error = waitFor(b.live, "error");
      b.live.receipt(chat.id, "01943f70-0000-7000-8000-000000000001", "read");
      const [e] = await error;
      assert.ok(e instanceof ApiError && e.code.length > 0);
      const again = await a.live.send({ to: bob.phone, content: "still connected" });
      assert.equal(again.seq, 2);
    } finally {
      a.live.close();
      b.live.close();
    }
  });

  it("keep-alive pings are answered: the connection stays open without reconnecting", async () => {
    const carol = await user("Carol");
    const { live } = await online(carol, { pingInterval: 50 });
    const states = [];
    live.on("state", (s) => states.push(s));
    await sleep(400); // 8 pings; two silent intervals would have dropped it
    assert.deepEqual(states, []);
    assert.equal(live.state, "open");
    live.close();
    assert.equal(live.state, "closed");
  });

  it("after the server is killed and restarted, the recipient resumes: nothing lost, nothing twice, and a pending send goes through", async () => {
    const alice = await user("Alice");
    const bob = await user("Bob");
    const { chat } = await alice.client.createChat([alice.phone, bob.phone]);
    const a = await online(alice);
    const b = await online(bob);
    try {
      for (let i = 1; i <= 3; i += 1) await a.live.send({ chatId: chat.id, content: `before ${i}` });
      await until(() => b.messages.length === 3, "the first three live");
      const cursorBefore = b.live.cursor;

      await server.kill(); // SIGKILL: no goodbye
      await waitFor(b.live, "state", (s) => s === "reconnecting");
      // Sent while the server is down: it waits, then goes out after the reconnect.
      const pending = a.live.send({ chatId: chat.id, content: "while down", clientMessageId: "down-1" });
      await sleep(200);
      assert.equal(a.live.pendingSends, 1);

      const resumed = waitFor(b.live, "ready", undefined, 20_000);
      await server.start(); // same port, same file
      assert.equal((await resumed)[0].resumed, true);
      assert.notEqual(b.live.cursor, null);
      const acked = await pending;
      assert.equal(acked.seq, 4);
      for (let i = 1; i <= 2; i += 1) await alice.client.sendMessage({ chatId: chat.id, content: `after ${i}` });
      await until(() => b.messages.length >= 6, "every message after the restart");
      await sleep(200); // a duplicate would arrive now

      const contents = b.messages.map((m) => m.content);
      assert.deepEqual(contents, ["before 1", "before 2", "before 3", "while down", "after 1", "after 2"]);
      assert.deepEqual(b.messages.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
      assert.equal(new Set(b.messages.map((m) => m.id)).size, 6);
      assert.notEqual(b.live.cursor, cursorBefore);
      // The message sent while down is stored once (the resent frame had the same clientMessageId).
      const all = await bob.client.listMessages(chat.id, { limit: 50 });
      assert.equal(all.items.filter((m) => m.clientMessageId === "down-1").length, 1);
    } finally {
      a.live.close();
      b.live.close();
    }
  });

  it("a connection that resumes from a saved cursor gets what it missed", async () => {
    const alice = await user("Alice");
    const bob = await user("Bob");
    const { chat } = await alice.client.createChat([alice.phone, bob.phone]);
    const first = await online(bob);
    await alice.client.sendMessage({ chatId: chat.id, content: "seen" });
    await until(() => first.messages.length === 1, "the first message");
    const saved = first.live.cursor;
    first.live.close();

    await alice.client.sendMessage({ chatId: chat.id, content: "missed 1" });
    await alice.client.sendMessage({ chatId: chat.id, content: "missed 2" });
    const later = await online(bob, { since: saved });
    try {
      await until(() => later.messages.length === 2, "the replay");
      assert.deepEqual(later.messages.map((m) => m.content), ["missed 1", "missed 2"]);
    } finally {
      later.live.close();
    }
  });

  it("a revoked token closes the connection and emits unauthorized", async () => {
    const dave = await user("Dave");
    const device = new MissiveClient({ baseUrl: server.base });
    await device.startLogin(dave.phone);
    await device.verifyLogin(dave.phone, server.gateway.lastCode(dave.phone));
    const live = device.connect({ initialDelay: 50 });
    await waitFor(live, "ready");
    const refused = waitFor(live, "unauthorized");
    const pending = live.send({ to: "+15559999999", content: "never" }).catch((e) => e);
    // Logged out elsewhere (e.g. from another tab): the server closes the socket (1008).
    await new MissiveClient({ baseUrl: server.base, token: device.token }).logout();
    const [error] = await refused;
    assert.equal(error.status, 401);
    assert.equal(live.state, "closed");
    const outcome = await pending;
    assert.ok(outcome instanceof ApiError, "the pending send was rejected, never left hanging");
    assert.equal((await dave.client.me()).phoneNumber, dave.phone, "the first device is still logged in");
  });

  it("without any WebSocket implementation, connect() says how to get one", () => {
    const saved = globalThis.WebSocket;
    try {
      delete globalThis.WebSocket;
      const client = new MissiveClient({ baseUrl: server.base, token: "t" });
      assert.throws(() => client.connect(), /WebSocket/);
    } finally {
      globalThis.WebSocket = saved;
    }
  });
});
