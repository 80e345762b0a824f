#!/bin/sh
# ensure-browser.sh — make the browser test of the web client runnable:
# Debian's chromium (and chromium-driver) from apt, playwright-core from
# npm into test/browser (it drives that chromium; no browser download).
#
# Idempotent and quiet; never fails: when it cannot install, it prints a
# loud WARNING and exits 0, and test/browser then skips loudly.
# Usage: scripts/ensure-browser.sh   (PARLEY_SKIP_BROWSER=1 skips it)
set -u
warn() {
	printf '\n*** WARNING: %s ***\n*** The web client browser test (test/browser) will be SKIPPED. ***\n\n' "$*" >&2
	exit 0
}
[ "${PARLEY_SKIP_BROWSER:-}" = "1" ] && exit 0
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
	command -v apt-get >/dev/null 2>&1 || warn "apt-get not found; install chromium by hand"
	SUDO=""
	if [ "$(id -u)" != "0" ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
			warn "not root and no passwordless sudo; cannot apt-get install chromium"
		fi
	fi
	log=$(mktemp "${TMPDIR:-/tmp}/ensure-browser.XXXXXX") || warn "mktemp failed"
	install() {
		$SUDO env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver fonts-dejavu-core >>"$log" 2>&1
	}
	if ! install; then
		$SUDO timeout 300 apt-get update -qq >>"$log" 2>&1
		if ! install; then
			tail -n 20 "$log" >&2
			rm -f "$log"
			warn "apt-get install chromium chromium-driver failed"
		fi
	fi
	rm -f "$log"
fi

if [ ! -d test/browser/node_modules/playwright-core ]; then
	command -v npm >/dev/null 2>&1 || warn "npm not found; cannot install playwright-core"
	(cd test/browser && npm install --no-audit --no-fund --silent >/dev/null 2>&1) || warn "npm install playwright-core failed"
fi
exit 0
