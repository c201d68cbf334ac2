// Runs the tests with node's test runner, one file at a time (each starts its
// own server). Node 20 has a global WebSocket only behind
// --experimental-websocket; Node 22+ has it by default.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";

const files = readdirSync("test").filter((f) => f.endsWith(".test.mjs")).sort().map((f) => `test/${f}`);
const flags = typeof globalThis.WebSocket === "undefined" ? ["--experimental-websocket"] : [];
const run = spawnSync(process.execPath, [...flags, "--test", "--test-concurrency=1", ...files, ...process.argv.slice(2)], { stdio: "inherit" });
process.exit(run.status ?? 1);
