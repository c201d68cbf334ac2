// Failure handling of the live connection that a healthy server does not
// produce on demand, with a scripted stand-in for the WebSocket (the only
// mock of this package): a `resync` frame, a replay that repeats messages,
// backoff growth with jitter and cap, a socket that goes silent, and sends
// resent with the same clientMessageId after a reconnect.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MissiveClient } from "../dist/missive.js";
import { sleep, until } from "./server.mjs";

const USER = { id: "u1", phoneNumber: "+15550000001", displayName: null, createdAt: "2026-01-01T00:00:00.000Z" };
const message = (seq) => ({
  id: `m${seq}`, chatId: "c1", seq, sender: "+15550000002", content: `hi ${seq}`,
  createdAt: "2026-01-01T00:00:00.000Z", clientMessageId: null, status: "sent",
});

/** A scripted WebSocket: every instance is recorded; the test plays the server. */
function fakeSockets() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = new URL(url);
      this.readyState = 0;
      this.sent = [];
      this.listeners = {};
      sockets.push(this);
    }
    addEventListener(type, fn) {
      (this.listeners[type] ??= []).push(fn);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close() {
      this.readyState = 3;
    }
    // The server side of the script:
    accept() {
      this.readyState = 1;
      for (const fn of this.listeners.open ?? []) fn({});
    }
    frame(f) {
      for (const fn of this.listeners.message ?? []) fn({ data: JSON.stringify(f) });
    }
    drop(code = 1006) {
      this.readyState = 3;
      for (const fn of this.listeners.close ?? []) fn({ code, reason: "" });
    }
    refuse() {
      for (const fn of this.listeners.error ?? []) fn({});
    }
  }
  return { sockets, FakeSocket };
}

/** A client whose /me always answers (so that a failed connect is not taken for a revoked token). */
function client() {
  const fetch = async () => new Response(JSON.stringify(USER), { status: 200, headers: { "Content-Type": "application/json" } });
  return new MissiveClient({ baseUrl: "http://missive.test", token: "tok", fetch });
}

describe("live connection, scripted failures", () => {
  it("a resync frame emits resync and the connection continues from its cursor", async () => {
    const { sockets, FakeSocket } = fakeSockets();
    const live = client().connect({ WebSocket: FakeSocket, since: "5", pingInterval: 0, initialDelay: 1 });
    const events = [];
    live.on("ready", (r) => events.push(["ready", r.resumed]));
    live.on("resync", (c) => events.push(["resync", c]));
    live.on("message", (m, c) => events.push(["message", m.id, c]));
    await until(() => sockets.length === 1, "the first socket");
    assert.equal(sockets[0].url.searchParams.get("since"), "5");
    assert.equal(sockets[0].url.searchParams.get("token"), "tok");
    sockets[0].accept();
    sockets[0].frame({ type: "ready", user: USER, cursor: "900" });
    sockets[0].frame({ type: "resync", cursor: "800" });
    assert.equal(live.cursor, "800");
    sockets[0].frame({ type: "message", message: message(1), cursor: "801" });
    assert.deepEqual(events, [["ready", true], ["resync", "800"], ["message", "m1", "801"]]);

    sockets[0].drop();
    await until(() => sockets.length === 2, "the reconnect");
    assert.equal(sockets[1].url.searchParams.get("since"), "801", "resumes after the last processed event");
    live.close();
  });

  it("messages replayed around the resume point are emitted once", async () => {
    const { sockets, FakeSocket } = fakeSockets();
    const live = client().connect({ WebSocket: FakeSocket, pingInterval: 0, initialDelay: 1 });
    const ids = [];
    live.on("message", (m) => ids.push(m.id));
    await until(() => sockets.length === 1, "the first socket");
    sockets[0].accept();
    sockets[0].frame({ type: "ready", user: USER, cursor: "10" });
    assert.equal(live.cursor, "10", "a fresh start continues from the ready cursor");
    sockets[0].frame({ type: "message", message: message(1), cursor: "11" });
    sockets[0].frame({ type: "message", message: message(2), cursor: "12" });
    sockets[0].drop();
    await until(() => sockets.length === 2, "the reconnect");
    assert.equal(sockets[1].url.searchParams.get("since"), "12");
    sockets[1].accept();
    sockets[1].frame({ type: "ready", user: USER, cursor: "13" });
    // The server may repeat the event at the resume point; the id tells.
    sockets[1].frame({ type: "message", message: message(2), cursor: "12" });
    sockets[1].frame({ type: "message", message: message(3), cursor: "13" });
    assert.deepEqual(ids, ["m1", "m2", "m3"]);
    assert.equal(live.cursor, "13");
    live.close();
  });

  it("reconnect delays double with jitter up to the cap, and reset after ready", async () => {
    const { sockets, FakeSocket } = fakeSockets();
    const live = client().connect({ WebSocket: FakeSocket, pingInterval: 0, initialDelay: 8, maxDelay: 40 });
    const delays = [];
    live.on("state", (s, d) => s === "reconnecting" && delays.push(d.delay));
    for (let i = 1; i <= 6; i += 1) {
      await until(() => sockets.length === i, `attempt ${i}`);
      sockets[i - 1].refuse(); // Node 20 reports a refused connect with `error` only
    }
    const bases = [8, 16, 32, 40, 40, 40];
    delays.forEach((d, i) => assert.ok(d >= bases[i] / 2 && d <= bases[i], `delay ${i}: ${d} within [${bases[i] / 2}, ${bases[i]}]`));
    await until(() => sockets.length === 7, "attempt 7");
    sockets[6].accept();
    sockets[6].frame({ type: "ready", user: USER, cursor: "1" });
    sockets[6].drop();
    await until(() => delays.length === 7, "the next reconnect");
    assert.ok(delays[6] <= 8, `after ready the delay starts over (${delays[6]})`);
    live.close();
  });

  it("a socket silent for two ping intervals is dropped and replaced", async () => {
    const { sockets, FakeSocket } = fakeSockets();
    const live = client().connect({ WebSocket: FakeSocket, pingInterval: 30, initialDelay: 1 });
    await until(() => sockets.length === 1, "the first socket");
    sockets[0].accept();
    sockets[0].frame({ type: "ready", user: USER, cursor: "1" });
    await until(() => sockets.length === 2, "a new socket after the silence", 2000);
    assert.ok(sockets[0].sent.some((f) => f.type === "ping"), "pings were sent first");
    live.close();
  });

  it("an unanswered send is sent again after the reconnect with the same clientMessageId, and resolved by its ack", async () => {
    const { sockets, FakeSocket } = fakeSockets();
    const live = client().connect({ WebSocket: FakeSocket, pingInterval: 0, initialDelay: 1 });
    await until(() => sockets.length === 1, "the first socket");
    const sent = live.send({ chatId: "c1", content: "hi" }); // before ready: waits
    sockets[0].accept();
    sockets[0].frame({ type: "ready", user: USER, cursor: "1" });
    assert.equal(sockets[0].sent.length, 1);
    const first = sockets[0].sent[0];
    assert.equal(first.type, "send");
    assert.match(first.clientMessageId, /^[0-9a-f-]{36}$/);
    sockets[0].drop();
    await until(() => sockets.length === 2, "the reconnect");
    sockets[1].accept();
    sockets[1].frame({ type: "ready", user: USER, cursor: "1" });
    assert.deepEqual(sockets[1].sent, [first], "the same frame: same ref, same clientMessageId");
    sockets[1].frame({ type: "ack", ref: first.ref, message: { ...message(1), clientMessageId: first.clientMessageId } });
    assert.equal((await sent).clientMessageId, first.clientMessageId);
    assert.equal(live.pendingSends, 0);

    // An error frame with no pending ref is an `error` event.
    const errors = [];
    live.on("error", (e) => errors.push(e.code));
    sockets[1].frame({ type: "error", ref: null, code: "invalid_frame", message: "bad" });
    assert.deepEqual(errors, ["invalid_frame"]);

    // close() rejects what is still pending.
    const late = live.send({ chatId: "c1", content: "late" });
    live.close();
    await assert.rejects(late, (e) => e.code === "closed");
    await sleep(5);
    assert.equal(sockets.length, 2, "no reconnect after close()");
  });

  it("a send unanswered within sendTimeout is rejected with timeout", async () => {
    const { sockets, FakeSocket } = fakeSockets();
    const live = client().connect({ WebSocket: FakeSocket, pingInterval: 0, sendTimeout: 30 });
    await until(() => sockets.length === 1, "the first socket");
    await assert.rejects(live.send({ to: "+15550000002", content: "hi" }), (e) => e.code === "timeout" && e.status === 0);
    assert.equal(live.pendingSends, 0);
    live.close();
  });
});
