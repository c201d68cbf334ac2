// Test harness: a real `missive` server (the debug binary) on a free port with
// a temp SQLite file, and a stand-in SMS gateway on 127.0.0.1 that receives the
// login codes (OTP_WEBHOOK_URL), as the server's own API tests do.
//
// MISSIVE_BIN names the binary (default: $CARGO_TARGET_DIR/debug/missive, or
// ../../target/debug/missive from this package).

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = process.env.MISSIVE_BIN
  ? resolve(process.env.MISSIVE_BIN)
  : process.env.CARGO_TARGET_DIR
    ? join(process.env.CARGO_TARGET_DIR, "debug", "missive")
    : resolve(HERE, "../../../target/debug/missive");
const WAIT = 10_000;
const servers = new Set();

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((ok, fail) => {
    const srv = createNetServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** A stand-in SMS gateway: remembers the last code POSTed for each number. */
async function startGateway() {
  const codes = new Map();
  const server = createHttpServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      try {
        const { phoneNumber, code } = JSON.parse(body);
        codes.set(phoneNumber, code);
        res.writeHead(200).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}/sms`,
    lastCode(phone) {
      const code = codes.get(phone);
      if (!code) throw new Error(`no code was sent to ${phone}`);
      return code;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

/**
 * Starts a server; `stop()` ends it (SIGTERM), `kill()` SIGKILLs it, and
 * `start()` starts it again on the same port and database file.
 */
export async function startServer(extraEnv = {}) {
  const tmp = mkdtempSync(join(tmpdir(), "missive-sdk-"));
  const port = await freePort();
  const gateway = await startGateway();
  const log = [];
  const server = {
    base: `http://127.0.0.1:${port}`,
    gateway,
    log,
    child: null,
    async start() {
      const child = spawn(BIN, [], {
        env: {
          ...process.env,
          PORT: String(port),
          BIND: "127.0.0.1",
          DATABASE_URL: `sqlite://${tmp}/sdk.db`, // tmp is absolute: sqlite:///tmp/...
          AUTH_MODE: "required",
          AUTH_RATE_LIMIT: "0",
          LOOKUP_RATE_LIMIT: "0",
          SEND_RATE_LIMIT: "0",
          OTP_WEBHOOK_URL: gateway.url,
          LOG_LEVEL: "WARN",
          ...extraEnv,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      child.on("error", (e) => log.push(`spawn ${BIN}: ${e.message}\n`));
      child.stdout.on("data", (d) => log.push(String(d)));
      child.stderr.on("data", (d) => log.push(String(d)));
      this.child = child;
      const deadline = Date.now() + WAIT;
      while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${log.join("")}`);
        try {
          const res = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(1000) });
          if (res.ok) return;
        } catch {
          /* not listening yet */
        }
        await sleep(50);
      }
      throw new Error(`/healthz did not answer within ${WAIT} ms:\n${log.join("")}`);
    },
    async kill(signal = "SIGKILL") {
      const child = this.child;
      this.child = null;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
    async stop() {
      await this.kill("SIGTERM");
      await gateway.close();
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  servers.add(server);
  await server.start();
  return server;
}

/** Resolves with the listener arguments of the first `event` for which `pred` holds. */
export function waitFor(emitter, event, pred = () => true, ms = WAIT) {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      off();
      fail(new Error(`no matching "${event}" event within ${ms} ms`));
    }, ms);
    const off = emitter.on(event, (...args) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      off();
      ok(args);
    });
  });
}

/** Waits until `check()` is true. */
export async function until(check, what, ms = WAIT) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Last resort if the process is ended early: never leave a server running.
process.on("exit", () => {
  for (const s of servers) if (s.child && s.child.exitCode === null) s.child.kill("SIGKILL");
});
