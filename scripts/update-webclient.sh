#!/bin/sh
# update-webclient.sh — put the pinned Converse.js release into
# webclient/dist, from where `go build` embeds it into the parley binary
# (the web client is never fetched from a CDN at run time).
#
# Usage: scripts/update-webclient.sh [VERSION]   (default: the pinned one)
# Needs npm. npm pack checks the package against the registry's integrity
# hash; the script then copies only what the browser loads in English
# (other locales are left out: the page pins i18n to English), and the
# licence. Commit the result.
set -eu
VERSION=${1:-14.0.0}
cd "$(dirname "$0")/.."
dest=webclient/dist
tmp=$(mktemp -d "${TMPDIR:-/tmp}/converse.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "converse.js@$VERSION" >/dev/null && tar xzf converse.js-"$VERSION".tgz)
src="$tmp/package/dist"
rm -rf "$dest"
mkdir -p "$dest"
for f in converse.min.js converse.min.css emoji.json libomemo.esm.min.js curve25519_compiled.wasm \
	shared-connection-worker.js webfonts images sounds; do
	cp -R "$src/$f" "$dest/"
done
cp "$tmp/package/LICENSE" "$dest/LICENSE-converse.js.txt"
echo "$VERSION" > "$dest/VERSION"
echo "Converse.js $VERSION in $dest ($(du -sh "$dest" | cut -f1))"
