#!/bin/sh
# ensure-peers.sh — make the real federation peers used by the interop
# tests in test/federation (Prosody and ejabberd from Debian) available,
# and coturn, the TURN server test/interop checks XEP-0215 credentials
# against.
#
# Idempotent and quiet: does nothing when both are installed. Otherwise it
# installs the missing ones with apt-get, without letting the packages'
# system services start (and stops/disables them if they did anyway), so
# that nothing but the tests' own child processes runs them. The tests pick
# their own addresses (127.0.0.6 for Prosody, 127.0.0.7 for ejabberd) and
# ports, their own data dirs and Erlang node names, so a running system
# service cannot clash with them either.
#
# It never fails: when it cannot install, it prints a loud WARNING and
# exits 0; the interop tests then skip with a loud message of their own.
#
# Usage: scripts/ensure-peers.sh   (PARLEY_SKIP_PEERS=1 skips it)

set -u

warn() {
	printf '\n*** WARNING: %s ***\n*** Prosody/ejabberd interop tests in test/federation and the coturn test in test/interop will be SKIPPED. ***\n\n' "$*" >&2
	exit 0
}

[ "${PARLEY_SKIP_PEERS:-}" = "1" ] && exit 0

need=""
command -v prosody >/dev/null 2>&1 || [ -x /usr/bin/prosody ] || need="$need prosody"
command -v ejabberdctl >/dev/null 2>&1 || [ -x /usr/sbin/ejabberdctl ] || need="$need ejabberd"
command -v turnserver >/dev/null 2>&1 || [ -x /usr/bin/turnserver ] || need="$need coturn"
[ -z "$need" ] && exit 0

command -v apt-get >/dev/null 2>&1 || warn "apt-get not found; install$need by hand"

SUDO=""
if [ "$(id -u)" != "0" ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo -n"
	else
		warn "not root and no passwordless sudo; cannot apt-get install$need"
	fi
fi

# Keep the packages' services from starting on install (Debian's
# invoke-rc.d honours policy-rc.d). Only add one when there is none, and
# remove only the one we added.
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
	if printf '#!/bin/sh\n# added by parley scripts/ensure-peers.sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null 2>&1 &&
		$SUDO chmod 755 "$policy" 2>/dev/null; then
		added_policy=1
	fi
fi
cleanup() {
	if [ -n "$added_policy" ]; then
		$SUDO rm -f "$policy"
		added_policy=""
	fi
}
trap cleanup EXIT INT TERM

log=$(mktemp "${TMPDIR:-/tmp}/ensure-peers.XXXXXX") || warn "mktemp failed"
export DEBIAN_FRONTEND=noninteractive
do_install() {
	# shellcheck disable=SC2086
	$SUDO env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $need >>"$log" 2>&1
}
if ! do_install; then
	$SUDO timeout 300 apt-get update -qq >>"$log" 2>&1
	if ! do_install; then
		tail -n 20 "$log" >&2
		rm -f "$log"
		warn "apt-get install$need failed"
	fi
fi
rm -f "$log"

# If a service started anyway (no policy-rc.d honoured, e.g. systemd
# presets), stop and disable it: the tests never use the system instances.
for svc in prosody ejabberd coturn; do
	case " $need " in *" $svc "*) ;; *) continue ;; esac
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
	elif command -v service >/dev/null 2>&1; then
		$SUDO service "$svc" stop >/dev/null 2>&1 || true
	fi
done

for b in prosody ejabberdctl turnserver; do
	command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || [ -x "/usr/bin/$b" ] || warn "$b still missing after apt-get install"
done
exit 0
