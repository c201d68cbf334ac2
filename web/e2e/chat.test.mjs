// End-to-end test of the web client served at `GET /`: two people in two
// isolated headless Chromium contexts register, chat live over WebSocket, see
// receipts and typing, and the conversation survives a reload.
//
//   cd web/e2e && npm ci && node chat.test.mjs      (or: make e2e)
//
// MISSIVE_BIN overrides the server binary (default ../../target/debug/missive),
// CHROMIUM_BIN the browser (default /usr/bin/chromium). Screenshots of the key
// steps go to /tmp/e2e-*.png (and /tmp/e2e-failure-*.png when a step fails).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = resolve(HERE, process.env.MISSIVE_BIN || "../../target/debug/missive");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const WAIT = 10_000; // every single wait is bounded by this
const ALICE = { phone: "+15550000001", name: "Alice" };
const BOB = { phone: "+15550000002", name: "Bob" };

const env = { server: null, log: [], tmp: null, browser: null, base: null, alice: null, bob: null };
let step = 0;

async function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitForHealth(base, child) {
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${env.log.join("")}`);
    try {
      const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch { /* not listening yet */ }
    await sleep(100);
  }
  throw new Error(`/healthz did not answer within ${WAIT} ms:\n${env.log.join("")}`);
}

async function stopServer() {
  const child = env.server;
  env.server = null;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

async function shot(name) {
  step += 1;
  const n = String(step).padStart(2, "0");
  await env.alice.page.screenshot({ path: `/tmp/e2e-${n}-${name}-alice.png` });
  await env.bob.page.screenshot({ path: `/tmp/e2e-${n}-${name}-bob.png` });
}

// A person: their own browser context (own localStorage, own WebSocket) and one page.
async function person(who) {
  const context = await env.browser.newContext({ viewport: { width: 1000, height: 640 } });
  context.setDefaultTimeout(WAIT);
  context.setDefaultNavigationTimeout(WAIT);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    // The page has no favicon: the browser's own request for one is not the page's error.
    if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) errors.push(`${m.text()} (${m.location().url})`);
  });
  return { ...who, context, page, errors };
}

// The message bubble with this text in the open chat.
const bubble = (p, text) => p.page.locator('#message-list [data-testid="message"]', { hasText: text });
// The chat list entry whose preview or name contains this text.
const chatItem = (p, text) => p.page.locator('#chat-list [data-testid="chat"]', { hasText: text });

async function waitForStatus(p, text, status) {
  await bubble(p, text).and(p.page.locator(`[data-status="${status}"]`)).waitFor();
}

async function register(p) {
  await p.page.goto(env.base + "/");
  await p.page.locator("#auth").waitFor();
  await p.page.fill("#reg-phone", p.phone);
  await p.page.fill("#reg-name", p.name);
  await p.page.click("#register-form button");
  await p.page.locator("#app").waitFor();
  await p.page.locator("#conn.online").waitFor(); // the WebSocket said `ready`
  assert.match(await p.page.textContent("#me-name"), new RegExp(`${p.name} \\(\\${p.phone}\\)`));
}

describe("web client, two people in two browsers", { timeout: 120_000 }, () => {
  let failed = false;

  before(async () => {
    for (const f of readdirSync("/tmp")) if (/^e2e-.*\.png$/.test(f)) rmSync(join("/tmp", f)); // last run's
    env.tmp = mkdtempSync(join(tmpdir(), "missive-e2e-"));
    const port = await freePort();
    env.base = `http://127.0.0.1:${port}`;
    env.server = spawn(BIN, [], {
      env: {
        ...process.env,
        PORT: String(port),
        BIND: "127.0.0.1",
        DATABASE_URL: `sqlite://${env.tmp}/e2e.db`, // tmp is absolute: sqlite:///tmp/...
        AUTH_RATE_LIMIT: "0",
        LOOKUP_RATE_LIMIT: "0",
        SEND_RATE_LIMIT: "0",
        LOG_LEVEL: "INFO",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    env.server.on("error", (e) => env.log.push(`spawn ${BIN}: ${e.message}\n`));
    env.server.stdout.on("data", (d) => env.log.push(String(d)));
    env.server.stderr.on("data", (d) => env.log.push(String(d)));
    await waitForHealth(env.base, env.server);

    env.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: WAIT,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ],
    });
    env.alice = await person(ALICE);
    env.bob = await person(BOB);
  });

  after(async () => {
    try {
      if (failed && env.alice && env.bob) {
        await env.alice.page.screenshot({ path: "/tmp/e2e-failure-alice.png" }).catch(() => {});
        await env.bob.page.screenshot({ path: "/tmp/e2e-failure-bob.png" }).catch(() => {});
        console.error("screenshots of the failure: /tmp/e2e-failure-{alice,bob}.png");
        console.error(`server log (last lines):\n${env.log.join("").split("\n").slice(-40).join("\n")}`);
      }
      for (const p of [env.alice, env.bob]) if (p && p.errors.length) console.error(`${p.name}'s page errors:`, p.errors);
    } finally {
      await env.browser?.close().catch(() => {});
      await stopServer();
      if (env.tmp) rmSync(env.tmp, { recursive: true, force: true });
    }
  });

  // Steps depend on each other: after the first failure the rest are skipped.
  const stepIt = (name, fn) => it(name, async (t) => {
    if (failed) return t.skip("an earlier step failed");
    try { await fn(); } catch (e) { failed = true; throw e; }
  });

  stepIt("both register through the form and go online", async () => {
    await register(env.alice);
    await register(env.bob);
    // A marker that a reload would wipe: Bob's page must get everything live.
    await env.bob.page.evaluate(() => { window.__e2eNoReload = true; });
    await shot("registered");
  });

  stepIt("Alice starts a chat with Bob's number and sends a message", async () => {
    const { page } = env.alice;
    await page.fill("#new-chat-phone", BOB.phone);
    await page.click("#new-chat button");
    await page.locator("#composer").waitFor();
    await page.waitForFunction((name) => document.getElementById("chat-title").textContent === name, BOB.name, { timeout: WAIT });
    await page.fill("#text", "Hello Bob!");
    await page.press("#text", "Enter");
    await bubble(env.alice, "Hello Bob!").and(page.locator(".mine")).waitFor();
    assert.equal(await page.inputValue("#text"), "", "the composer is cleared after sending");
  });

  stepIt("Bob's page shows it live, and Alice's message turns delivered", async () => {
    const { page } = env.bob;
    // The new chat appears in Bob's list with the preview and an unread badge, without a reload.
    const item = chatItem(env.bob, "Hello Bob!");
    await item.waitFor();
    // The display name is looked up after the entry first renders (the phone number shows until then).
    await item.and(chatItem(env.bob, ALICE.name)).waitFor();
    assert.equal(await item.locator(".badge").textContent(), "1");
    assert.equal(await page.evaluate(() => window.__e2eNoReload), true, "Bob's page was not reloaded");
    // Bob's device received it: Alice sees ✓✓ (delivered) while Bob has not opened the chat yet.
    await waitForStatus(env.alice, "Hello Bob!", "delivered");
    assert.equal(await bubble(env.alice, "Hello Bob!").locator(".tick").textContent(), "✓✓");
    await shot("live-message");
  });

  stepIt("Bob opens the chat: the message is there and Alice sees it read", async () => {
    const { page } = env.bob;
    await chatItem(env.bob, "Hello Bob!").click();
    await bubble(env.bob, "Hello Bob!").waitFor();
    assert.equal(await bubble(env.bob, "Hello Bob!").and(page.locator(".mine")).count(), 0, "shown as received, not sent");
    assert.equal(await page.textContent("#chat-title"), ALICE.name);
    await waitForStatus(env.alice, "Hello Bob!", "read");
    await env.alice.page.locator('#message-list [data-status="read"] .tick.read').waitFor();
    await page.locator('#chat-list [data-testid="chat"] .badge').waitFor({ state: "detached" });
  });

  stepIt("Bob replies and Alice sees the reply live", async () => {
    const { page } = env.bob;
    await page.fill("#text", "Hi Alice, got it.");
    await page.click("#composer button");
    await bubble(env.alice, "Hi Alice, got it.").waitFor();
    // Alice has the chat open and visible: Bob's reply is read at once.
    await waitForStatus(env.bob, "Hi Alice, got it.", "read");
    const texts = await env.alice.page.locator('#message-list [data-testid="message"] .text').allTextContents();
    assert.deepEqual(texts, ["Hello Bob!", "Hi Alice, got it."]);
    await shot("reply");
  });

  stepIt("Bob's page shows Alice typing, and clears it when she sends", async () => {
    const alice = env.alice.page, bob = env.bob.page;
    await alice.click("#text");
    await alice.keyboard.type("Great, see you", { delay: 20 });
    await bob.waitForFunction((name) => document.getElementById("typing").textContent === `${name} is typing…`, ALICE.name, { timeout: WAIT });
    await shot("typing");
    await alice.keyboard.type(" tomorrow");
    await alice.keyboard.press("Enter");
    await bubble(env.bob, "Great, see you tomorrow").waitFor();
    await bob.waitForFunction(() => document.getElementById("typing").textContent === "", null, { timeout: WAIT });
    await waitForStatus(env.alice, "Great, see you tomorrow", "read");
  });

  stepIt("Alice reloads and still has her session and the conversation", async () => {
    const { page } = env.alice;
    await page.reload();
    await page.locator("#conn.online").waitFor();
    assert.ok(await page.evaluate(() => localStorage.getItem("missive.token")), "the token is kept in localStorage");
    const item = chatItem(env.alice, "Great, see you tomorrow");
    await item.waitFor();
    // After a reload too, the display name is looked up after the entry first renders.
    await item.and(chatItem(env.alice, BOB.name)).waitFor();
    assert.match(await item.textContent(), /Bob/);
    await item.click();
    await bubble(env.alice, "Great, see you tomorrow").waitFor();
    const rows = await page.locator('#message-list [data-testid="message"]').evaluateAll((els) =>
      els.map((e) => [e.querySelector(".text").textContent, e.classList.contains("mine"), e.dataset.status]));
    assert.deepEqual(rows, [
      ["Hello Bob!", true, "read"],
      ["Hi Alice, got it.", false, "read"],
      ["Great, see you tomorrow", true, "read"],
    ]);
    await shot("after-reload");
  });

  stepIt("no page reported a JavaScript error", async () => {
    assert.deepEqual(env.alice.errors, []);
    assert.deepEqual(env.bob.errors, []);
  });
});

// Last resort if the process is ended early: never leave the server running.
process.on("exit", () => { if (env.server && env.server.exitCode === null) env.server.kill("SIGKILL"); });
