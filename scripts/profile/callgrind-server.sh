#!/bin/sh
# Usage: missive-bench --server-bin scripts/profile/callgrind-server.sh --server-timeout 300 ws ...
# Runs the release server under callgrind (one output file per thread) in
# place of this shell (same pid, so the bench's SIGTERM reaches valgrind,
# which lets the server shut down and writes the profile).
# MISSIVE_BIN: the server binary; PROFILE_DIR: where the outputs go; PROFILE_TAG: their prefix.
dir=${PROFILE_DIR:-/tmp}; tag=${PROFILE_TAG:-cg}
exec valgrind --tool=callgrind --separate-threads=yes \
  --log-file="$dir/$tag.valgrind.log" \
  --callgrind-out-file="$dir/$tag.out.%p" \
  "${MISSIVE_BIN:-target/release/missive}" "$@"
