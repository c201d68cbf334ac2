#!/bin/sh
# Usage: missive-bench --server-bin scripts/profile/perf-server.sh ws ...
# Attaches `perf record` (DWARF call graphs, 499 Hz) to this shell's pid, then
# execs the release server in its place (same pid), so perf follows it and
# every thread it starts; perf stops when the server exits.
# MISSIVE_BIN: the server binary; PROFILE_DIR: where the outputs go; PROFILE_TAG: their prefix.
dir=${PROFILE_DIR:-/tmp}; tag=${PROFILE_TAG:-perf}
perf record -F 499 --call-graph dwarf,16384 -o "$dir/$tag.data" -p $$ 2>"$dir/$tag.perf.log" &
sleep 1
exec "${MISSIVE_BIN:-target/release/missive}" "$@"
