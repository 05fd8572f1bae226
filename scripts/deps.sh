#!/bin/sh
# Installs the Debian packages (and npm packages, when package.json lists
# any) that building, running and testing bureau need. Idempotent: only
# what is missing is installed, and apt's lists are refreshed only then.
set -eu

PACKAGES="
build-essential pkg-config meson ninja-build git ca-certificates
libuv1-dev libjansson-dev libsodium-dev libsqlite3-dev libcurl4-openssl-dev libwslay-dev libpng-dev
nettle-dev chromium firefox-esr websockify
node-llhttp nodejs
qemu-system-x86 qemu-utils debootstrap e2fsprogs busybox-static cpio zstd
python3 python3-yaml curl wrk socat
clang libclang-rt-14-dev
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

# Debian's npm conflicts with a nodejs that bundles its own (NodeSource's).
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
	echo "deps: installing$missing"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
else
	echo "deps: Debian packages present"
fi

cd "$(dirname "$0")/.."
if [ -f package.json ]; then
	if [ ! -d node_modules ] || [ package.json -nt node_modules ] ||
		{ [ -f package-lock.json ] && [ package-lock.json -nt node_modules ]; }; then
		echo "deps: installing npm packages"
		npm install --no-audit --no-fund --loglevel=error
		touch node_modules
	else
		echo "deps: npm packages present"
	fi
fi
