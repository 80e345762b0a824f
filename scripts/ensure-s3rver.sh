#!/bin/sh
# ensure-s3rver.sh — make s3rver (npm, pinned in test/s3/package.json and
# package-lock.json) available for the S3 upload tests: a real
# S3-compatible server that test/s3 (package s3test) starts on 127.0.0.1
# when PARLEY_TEST_S3 is not set.
#
# Idempotent and quiet: does nothing when the pinned version is installed.
# Otherwise it runs npm ci (npm install without a lock file) in test/s3.
#
# It never fails: when it cannot install, it prints a loud WARNING and
# exits 0; the S3 tests then skip with a message of their own (or fail
# with PARLEY_TEST_S3_REQUIRED=1).
#
# Usage: scripts/ensure-s3rver.sh   (PARLEY_SKIP_S3RVER=1 skips it)

set -u

warn() {
	printf '\n*** WARNING: %s ***\n*** S3 upload tests will be SKIPPED unless PARLEY_TEST_S3 names a server. ***\n\n' "$*" >&2
	exit 0
}

[ "${PARLEY_SKIP_S3RVER:-}" = "1" ] && exit 0

dir="$(cd "$(dirname "$0")/.." && pwd)/test/s3"
want=$(sed -n 's/.*"s3rver": *"\([^"]*\)".*/\1/p' "$dir/package.json")
have=$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' "$dir/node_modules/s3rver/package.json" 2>/dev/null)
[ -n "$want" ] && [ "$have" = "$want" ] && exit 0

command -v node >/dev/null 2>&1 || warn "node is not installed (s3rver needs Node.js)"
command -v npm >/dev/null 2>&1 || warn "npm is not installed; cannot install s3rver $want"

printf '[ensure-s3rver] installing s3rver %s into %s\n' "$want" "$dir" >&2
if [ -f "$dir/package-lock.json" ]; then
	(cd "$dir" && npm ci --no-audit --no-fund --silent >/dev/null 2>&1) ||
		(cd "$dir" && npm install --no-audit --no-fund --silent >/dev/null 2>&1) ||
		warn "npm could not install s3rver $want in $dir"
else
	(cd "$dir" && npm install --no-audit --no-fund --silent >/dev/null 2>&1) ||
		warn "npm could not install s3rver $want in $dir"
fi
have=$(sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' "$dir/node_modules/s3rver/package.json" 2>/dev/null)
[ "$have" = "$want" ] || warn "s3rver $want is not in $dir/node_modules after npm (found '${have:-nothing}')"
exit 0
