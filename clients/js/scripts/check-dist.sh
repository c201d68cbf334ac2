#!/bin/sh
# Fails when the committed dist/ is not what `tsc` builds from src/ (the server
# embeds dist/, so that `cargo build` needs no Node.js). Run from the package
# directory after `npm ci`: `npm run check`. Fix with `npm run build` and commit.
set -eu
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
npx tsc -p tsconfig.json --outDir "$tmp"
if ! diff -r "$tmp" dist; then
  echo "clients/js/dist is stale: run \`npm run build\` in clients/js and commit dist/" >&2
  exit 1
fi
echo "clients/js/dist matches src/"
# The published declarations, as an app uses them.
npx tsc -p tsconfig.check.json
echo "test/types.check.ts type-checks against dist/"
