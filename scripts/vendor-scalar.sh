#!/usr/bin/env bash
# Refreshes the vendored Scalar API reference bundle (web/vendor/scalar/),
# which `/docs` serves from the binary so the docs page needs no internet.
# Usage: scripts/vendor-scalar.sh [version]   (needs npm; run by hand, not by CI)
set -euo pipefail
version="${1:-1.76.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "@scalar/api-reference@$version" >/dev/null
expected="$(npm view "@scalar/api-reference@$version" dist.integrity)"
actual="sha512-$(openssl dgst -sha512 -binary scalar-api-reference-"$version".tgz | base64 -w0)"
[ "$expected" = "$actual" ] || { echo "integrity mismatch: $actual != $expected" >&2; exit 1; }
tar xzf scalar-api-reference-"$version".tgz

dest="$root/web/vendor/scalar"
mkdir -p "$dest"
cp package/dist/browser/standalone.js "$dest/standalone.js"
cat > "$dest/VERSION" <<INFO
@scalar/api-reference $version (MIT, https://github.com/scalar/scalar)
file: dist/browser/standalone.js
npm integrity of the package: $expected
INFO
echo "vendored @scalar/api-reference $version into web/vendor/scalar/"
