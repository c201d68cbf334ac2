#!/bin/sh
# Installs wrk (Debian package `wrk`) when it is missing, for `missive-bench wrk` / `make bench`.
set -eu
if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
echo "wrk not found: installing the Debian package wrk" >&2
if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && apt-get install -y wrk
else
    sudo apt-get update -qq && sudo apt-get install -y wrk
fi
