#!/bin/bash
# Builds bureau's golden images, read-only and versioned:
#
#   image/build.sh --out DIR [--agent PATH] [--mirror URL] [--suite SUITE] [--force] IMAGE...
#
# IMAGE is "tiny" and/or "desktop". Each build lands in
#   DIR/<image>/<version>/{disk.qcow2 (0444), vmlinuz, initrd.img, manifest.json}
# and DIR/<image>/current points (relative link) to the newest version. A
# version is never modified once published: desktops are qcow2 overlays on it.
# When current's recipeHash equals the recipe's hash (files under image/ plus
# the agent binary) nothing is rebuilt. The slow part of the desktop image
# (debootstrap + packages) is cached in DIR/.cache/ keyed by the package list.
#
# The mirror comes from the build host's apt sources unless --mirror is given;
# none is written into the repository.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT=""
AGENT="build/bureau-agent"
MIRROR=""
SUITE="bookworm"
FORCE=0
IMAGES=()

usage() {
	echo "usage: $0 --out DIR [--agent PATH] [--mirror URL] [--suite SUITE] [--force] tiny|desktop..." >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--out) OUT="$2"; shift 2 ;;
	--out=*) OUT="${1#*=}"; shift ;;
	--agent) AGENT="$2"; shift 2 ;;
	--agent=*) AGENT="${1#*=}"; shift ;;
	--mirror) MIRROR="$2"; shift 2 ;;
	--mirror=*) MIRROR="${1#*=}"; shift ;;
	--suite) SUITE="$2"; shift 2 ;;
	--suite=*) SUITE="${1#*=}"; shift ;;
	--force) FORCE=1; shift ;;
	-h|--help) usage ;;
	tiny|desktop) IMAGES+=("$1"); shift ;;
	*) echo "build.sh: unknown argument: $1" >&2; usage ;;
	esac
done
[ -n "$OUT" ] || usage
[ ${#IMAGES[@]} -gt 0 ] || usage
[ "$(id -u)" = 0 ] || { echo "build.sh: must run as root (debootstrap, chroot, file ownership)" >&2; exit 1; }
[ -f "$AGENT" ] || { echo "build.sh: agent binary not found: $AGENT (build it first)" >&2; exit 1; }
AGENT="$(cd "$(dirname "$AGENT")" && pwd)/$(basename "$AGENT")"
# bureau-pilot (issue 6) is built beside bureau-agent, which starts it.
PILOT="$(dirname "$AGENT")/bureau-pilot"
[ -f "$PILOT" ] || { echo "build.sh: pilot binary not found: $PILOT (build it first)" >&2; exit 1; }
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
CACHE="$OUT/.cache"
TMPROOT="$OUT/.tmp"
mkdir -p "$CACHE" "$TMPROOT"

# One build at a time per output folder; what an interrupted build left in
# .tmp is removed once the lock is held.
exec 9>"$OUT/.lock"
if ! flock -n 9; then
	echo "[build] waiting for another build of $OUT" >&2
	flock 9
fi
for stale in "$TMPROOT"/*; do
	[ -e "$stale" ] || continue
	if grep -q " $stale/" /proc/mounts; then
		echo "build.sh: $stale has live mounts; unmount them first" >&2
		exit 1
	fi
	rm -rf "$stale"
done

T0=$(date +%s)
STAGE_T=$T0
STAGE_NAME=""
WORK=""
MOUNTS=()

log() { echo "[build $(date +%H:%M:%S)] $*"; }
stage() {
	local now
	now=$(date +%s)
	[ -z "$STAGE_NAME" ] || log "done: $STAGE_NAME ($((now - STAGE_T)) s)"
	STAGE_NAME="$1"
	STAGE_T=$now
	[ -z "$1" ] || log "stage: $1"
}
die() { echo "build.sh: $*" >&2; exit 1; }

unmount_all() {
	local i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		umount -l "${MOUNTS[$i]}" 2>/dev/null || true
	done
	MOUNTS=()
}

cleanup() {
	unmount_all
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		# Never delete through a live mount point.
		if ! grep -q " $WORK/" /proc/mounts; then
			rm -rf "$WORK"
		fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sha() { sha256sum | cut -d' ' -f1; }

# Hash of a set of files, by path (relative to image/) and content.
hash_files() {
	local f
	for f in "$@"; do
		printf '%s\0' "${f#"$HERE"/}"
		sha256sum <"$f"
	done | sha
}

# The first mirror of the host's apt sources that serves SUITE (or any
# Debian suite when SUITE is not listed), skipping security mirrors.
host_mirror() {
	local f uris suites line
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uris="" suites=""
		while IFS= read -r line || [ -n "$line" ]; do
			case "$line" in
			URIs:*) uris="${line#URIs:}" ;;
			Suites:*) suites="${line#Suites:}" ;;
			"")
				if [ -n "$uris" ] && [[ " $suites " == *" $SUITE "* ]]; then
					echo $uris | awk '{print $1}'
					return
				fi
				uris="" suites="" ;;
			esac
		done < <(grep -v '^#' "$f"; echo)
	done
	if [ -f /etc/apt/sources.list ]; then
		awk -v s="$SUITE" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i + 1) == s) { print $i; exit } } }' \
			/etc/apt/sources.list
	fi
}

# Publishes WORK as DIR/<name>/<version>: manifest, read-only disk, atomic
# rename, then moves the current link.
publish() {
	local name="$1" hash="$2" cmdline="$3" version dest
	version="$(date -u +%Y%m%d-%H%M%S)-${hash:0:8}"
	mkdir -p "$OUT/$name"
	dest="$OUT/$name/$version"
	[ ! -e "$dest" ] || die "$dest already exists"
	cat >"$WORK/manifest.json" <<EOF
{
  "name": "$name",
  "version": "$version",
  "cmdline": "$cmdline",
  "createdAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "recipeHash": "$hash",
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "disk": "disk.qcow2"
}
EOF
	chmod 0444 "$WORK/disk.qcow2" "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/manifest.json"
	chmod 0755 "$WORK"
	sync -f "$WORK/disk.qcow2"
	mv -T "$WORK" "$dest"
	WORK=""
	ln -sfn "$version" "$OUT/$name/.current.tmp"
	mv -T "$OUT/$name/.current.tmp" "$OUT/$name/current"
	log "published $name/$version"
}

up_to_date() {
	local name="$1" hash="$2" m="$OUT/$1/current/manifest.json"
	[ "$FORCE" = 0 ] && [ -f "$m" ] && grep -q "\"recipeHash\": \"$hash\"" "$m"
}

# ---------------------------------------------------------------- tiny ----

# The Debian kernel package the host's linux-image-amd64 points at, fetched
# once into the cache and unpacked there.
tiny_kernel() {
	local pkg deb dir
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
	[ -n "$pkg" ] || die "cannot resolve linux-image-amd64 (run apt-get update?)"
	mkdir -p "$CACHE/kernel"
	deb=$(ls "$CACHE/kernel/${pkg}"_*.deb 2>/dev/null | tail -n1 || true)
	if [ -z "$deb" ]; then
		log "downloading $pkg" >&2
		(cd "$CACHE/kernel" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
		deb=$(ls "$CACHE/kernel/${pkg}"_*.deb 2>/dev/null | tail -n1 || true)
		[ -n "$deb" ] || die "apt-get download $pkg failed"
	fi
	dir="${deb%.deb}"
	if [ ! -d "$dir" ]; then
		rm -rf "$dir.tmp"
		dpkg-deb -x "$deb" "$dir.tmp"
		mv -T "$dir.tmp" "$dir"
	fi
	echo "$dir"
}

# Prints the modules (paths relative to the modules dir) needed for the
# given module names, dependencies first, reading each .ko's "depends=".
module_closure() {
	local moddir="$1"; shift
	declare -A path seen
	local f n order=()
	while IFS= read -r f; do
		n=$(basename "$f" .ko)
		path[${n//-/_}]="${f#"$moddir"/}"
	done < <(find "$moddir/kernel" -name '*.ko')
	visit() {
		local m="${1//-/_}" d deps
		[ -z "${seen[$m]:-}" ] || return 0
		seen[$m]=1
		[ -n "${path[$m]:-}" ] || return 0 # built in
		deps=$(tr '\0' '\n' <"$moddir/${path[$m]}" | sed -n 's/^depends=//p' | head -n1)
		for d in ${deps//,/ }; do visit "$d"; done
		order+=("${path[$m]}")
	}
	for n in "$@"; do visit "$n"; done
	printf '%s\n' "${order[@]}"
}

build_tiny() {
	local kdir kver hash moddir m root
	stage "tiny: kernel package"
	kdir=$(tiny_kernel)
	kver=$(ls "$kdir/lib/modules" | head -n1)
	hash=$( {
		hash_files "$HERE/build.sh" $(find "$HERE/tiny" -type f | LC_ALL=C sort)
		basename "$kdir"
		sha256sum <"$AGENT"
		sha256sum <"$PILOT"
	} | sha)
	if up_to_date tiny "$hash"; then
		stage ""
		log "tiny is up to date ($(readlink "$OUT/tiny/current"))"
		return
	fi
	WORK=$(mktemp -d "$TMPROOT/tiny.XXXXXX")
	root="$WORK/initramfs"

	stage "tiny: initramfs"
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,etc/bureau,proc,sys,dev,tmp,data,root,run,lib/modules/"$kver"}
	chmod 1777 "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	file -L "$root/bin/busybox" | grep -q 'statically linked' || die "/bin/busybox is not static (install busybox-static)"
	for a in $(/bin/busybox --list-full); do
		[ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
	done
	install -m 0755 "$AGENT" "$root/sbin/bureau-agent"
	# The pilot is dynamic (libcurl): its libraries, the loader and the CA
	# bundle come along at their host paths.
	install -m 0755 "$PILOT" "$root/sbin/bureau-pilot"
	for m in $(ldd "$PILOT" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$m")"
		cp -L "$m" "$root$m"
	done
	if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
		mkdir -p "$root/etc/ssl/certs"
		cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
	fi
	install -m 0755 "$HERE/tiny/init" "$root/init"
	install -m 0755 "$HERE/tiny/rcS" "$root/etc/init.d/rcS"
	install -m 0755 "$HERE/tiny/rcK" "$root/etc/init.d/rcK"
	install -m 0644 "$HERE/tiny/inittab" "$root/etc/inittab"
	printf 'root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/data/home/agent:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:*:19000:0:99999:7:::\nagent:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
	printf 'root:x:0:\nagent:x:1000:\n' >"$root/etc/group"
	echo tiny >"$root/etc/bureau/image"
	echo bureau >"$root/etc/hostname"
	moddir="$kdir/lib/modules/$kver"
	module_closure "$moddir" $(grep -v '^#' "$HERE/tiny/modules") >"$root/etc/modules.order"
	while IFS= read -r m; do
		mkdir -p "$root/lib/modules/$kver/$(dirname "$m")"
		cp "$moddir/$m" "$root/lib/modules/$kver/$m"
	done <"$root/etc/modules.order"
	log "modules: $(tr '\n' ' ' <"$root/etc/modules.order" | sed 's#[^ ]*/##g')"
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --quiet | gzip -6) >"$WORK/initrd.img"
	cp "$kdir/boot/vmlinuz-$kver" "$WORK/vmlinuz"
	rm -rf "$root"

	stage "tiny: disk"
	mkdir -p "$WORK/data/home/agent"
	chown 1000:1000 "$WORK/data/home/agent"
	truncate -s 256M "$WORK/disk.raw"
	mkfs.ext4 -q -F -L bureau-data -E root_owner=0:0 -d "$WORK/data" "$WORK/disk.raw"
	qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$WORK/disk.qcow2"
	rm -rf "$WORK/disk.raw" "$WORK/data"

	stage "tiny: publish"
	publish tiny "$hash" "console=ttyS0 quiet"
	stage ""
}

# ------------------------------------------------------------- desktop ----

chroot_mounts() {
	local r="$1"
	mount -t proc proc "$r/proc" && MOUNTS+=("$r/proc")
	mount -t sysfs sysfs "$r/sys" && MOUNTS+=("$r/sys")
	mkdir -p "$r/dev/pts"
	mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts" && MOUNTS+=("$r/dev/pts")
}

# The slow stage: debootstrap and the package list, cached by their hash.
desktop_base() {
	local key="$1" base="$CACHE/desktop-rootfs-$key" r pkgs
	BASE="$base"
	if [ -d "$base" ]; then
		log "using cached rootfs $(basename "$base")"
		return
	fi
	r="$TMPROOT/rootfs-$key.$$"
	rm -rf "$r"
	mkdir -p "$CACHE/debs"
	stage "desktop: debootstrap $SUITE ($MIRROR)"
	debootstrap --variant=minbase --cache-dir="$CACHE/debs" "$SUITE" "$r" "$MIRROR" ||
		{ tail -n 30 "$r/debootstrap/debootstrap.log" >&2 2>/dev/null; die "debootstrap failed"; }

	stage "desktop: packages"
	WORK="$r"
	chroot_mounts "$r"
	mkdir -p "$CACHE/apt-archives/partial"
	mount --bind "$CACHE/apt-archives" "$r/var/cache/apt/archives" && MOUNTS+=("$r/var/cache/apt/archives")
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
	chmod 0755 "$r/usr/sbin/policy-rc.d"
	echo force-unsafe-io >"$r/etc/dpkg/dpkg.cfg.d/bureau-unsafe-io"
	echo "deb $MIRROR $SUITE main" >"$r/etc/apt/sources.list"
	mkdir -p "$r/etc/initramfs-tools/conf.d"
	# A small initrd boots faster under TCG: only what a virtio guest needs.
	echo MODULES=list >"$r/etc/initramfs-tools/conf.d/bureau"
	printf '%s\n' virtio_pci virtio_blk virtio_console ext4 >>"$r/etc/initramfs-tools/modules"
	pkgs=$(grep -v '^#' "$HERE/desktop/packages" | tr '\n' ' ')
	chroot "$r" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 apt-get -q update
	chroot "$r" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
		apt-get -q -y --no-install-recommends -o Dpkg::Use-Pty=0 install $pkgs
	unmount_all
	rm -f "$r/usr/sbin/policy-rc.d" "$r/etc/dpkg/dpkg.cfg.d/bureau-unsafe-io"
	WORK=""
	mv -T "$r" "$base"
}

build_desktop() {
	local key hash base r
	[ -n "$MIRROR" ] || MIRROR=$(host_mirror)
	[ -n "$MIRROR" ] || die "no apt mirror for suite $SUITE in the host's sources; pass --mirror"
	key=$( { sha256sum <"$HERE/desktop/packages"; echo "$SUITE $MIRROR v1"; } | sha | cut -c1-16)
	hash=$( {
		hash_files "$HERE/build.sh" $(find "$HERE/desktop" -type f | LC_ALL=C sort)
		echo "$SUITE $MIRROR"
		sha256sum <"$AGENT"
		sha256sum <"$PILOT"
	} | sha)
	if up_to_date desktop "$hash"; then
		log "desktop is up to date ($(readlink "$OUT/desktop/current"))"
		return
	fi
	desktop_base "$key"
	base="$BASE"

	WORK=$(mktemp -d "$TMPROOT/desktop.XXXXXX")
	r="$WORK/rootfs"
	stage "desktop: copy cached rootfs"
	cp -a "$base" "$r"

	stage "desktop: configure"
	tar -C "$HERE/desktop/files" --owner=0 --group=0 -cf - . | tar -C "$r" --no-overwrite-dir -xpf -
	install -m 0755 "$AGENT" "$r/usr/local/sbin/bureau-agent"
	install -m 0755 "$PILOT" "$r/usr/local/sbin/bureau-pilot"
	mkdir -p "$r/etc/bureau"
	echo desktop >"$r/etc/bureau/image"
	chroot_mounts "$r"
	install -m 0755 "$HERE/desktop/configure.sh" "$r/tmp/configure.sh"
	chroot "$r" /usr/bin/env LC_ALL=C.UTF-8 /bin/sh /tmp/configure.sh
	rm -f "$r/tmp/configure.sh"
	unmount_all
	cp -L "$r/vmlinuz" "$WORK/vmlinuz"
	cp -L "$r/initrd.img" "$WORK/initrd.img"

	stage "desktop: mkfs.ext4 (6 GiB)"
	truncate -s 6G "$WORK/disk.raw"
	mkfs.ext4 -q -F -L bureau-root -E root_owner=0:0 -d "$r" "$WORK/disk.raw"
	rm -rf "$r"

	stage "desktop: qcow2"
	qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$WORK/disk.qcow2"
	rm -f "$WORK/disk.raw"

	stage "desktop: publish"
	publish desktop "$hash" "root=/dev/vda rw console=ttyS0 quiet"
	stage ""
}

for img in "${IMAGES[@]}"; do
	"build_$img"
done
rmdir "$TMPROOT" 2>/dev/null || true
log "all done in $(($(date +%s) - T0)) s"
