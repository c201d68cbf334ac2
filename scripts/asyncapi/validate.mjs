// Validates an AsyncAPI document with the official parser: any error or
// warning fails (exit 1). Usage: node validate.mjs <file>
import { Parser } from "@asyncapi/parser";
import { readFileSync } from "node:fs";

const file = process.argv[2];
const { document, diagnostics } = await new Parser().parse(readFileSync(file, "utf8"));
const severity = ["error", "warning", "info", "hint"];
let failed = !document;
for (const d of diagnostics) {
  console.log(`${severity[d.severity] ?? d.severity}: ${d.code}: ${d.message} at /${d.path.join("/")}`);
  if (d.severity <= 1) failed = true;
}
if (failed) {
  console.error(`${file}: not a valid AsyncAPI document`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()}, ${document.allMessages().length} messages`);
