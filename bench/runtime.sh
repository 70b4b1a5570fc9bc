#!/usr/bin/env bash
# Median wall time of starting a trivial container three ways, on the same busybox rootfs:
#   berth:   berth container run --rm --network none bench /bin/true
#   runc:    runc run of an OCI bundle (runc's default spec: new netns, pid, mount, ...)
#   unshare: unshare --fork --pid --mount --uts --ipc --net chroot ROOTFS /bin/true
# Target: berth <= 10 ms median. Needs root, /bin/busybox (busybox-static) and runc (apt).
#
# The variants run interleaved (one of each per round), so load changes on a shared machine hit
# them alike; each is reported with its median and p90 and as a ratio to runc's median.
#
# Usage: bench/runtime.sh [N]   (env BERTH=path to a built berth; BERTH_SHIM=path to berth-shim,
#        BERTH_MONITOR=path to berth-monitor (default: beside berth-shim);
#        BERTH_BEFORE=path to another berth build, with its berth-shim next to it, to compare
#        before/after in the same run)
set -euo pipefail

N=${1:-30}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/runtime.sh: needs root" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "bench/runtime.sh: needs /bin/busybox (apt-get install busybox-static)" >&2; exit 1; }
command -v runc >/dev/null || { echo "bench/runtime.sh: needs runc (apt-get install runc)" >&2; exit 1; }

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
cleanup() {
	"$BERTH" --root "$work/root" --run-root "$work/run" container prune -f >/dev/null 2>&1 || true
	umount -R "$work/root/storage/mounts"/* 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

TAGS=seccomp,osusergo,netgo,runc_nocriu
if [ -z "${BERTH:-}" ]; then
	echo "building berth, berth-shim and berth-monitor..." >&2
	CGO_ENABLED=1 go build -tags "$TAGS" -o "$work/bin/berth" ./cmd/berth
	BERTH="$work/bin/berth"
fi
if [ -z "${BERTH_SHIM:-}" ] && [ ! -x "$(dirname "$BERTH")/berth-shim" ]; then
	CGO_ENABLED=1 go build -tags "$TAGS" -ldflags '-s -w -extldflags=-static' -o "$(dirname "$BERTH")/berth-shim" ./runtime/shim 2>/dev/null
fi
if [ -z "${BERTH_MONITOR:-}" ] && [ ! -x "$(dirname "$BERTH")/berth-monitor" ]; then
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$(dirname "$BERTH")/berth-monitor" ./runtime/monitor/berth-monitor
fi
if [ ! -x "$(dirname "$BERTH")/berth-seccomp" ]; then
	cc -static -O2 -o "$(dirname "$BERTH")/berth-seccomp" runtime/loader/berth-seccomp.c
fi

rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh true echo sleep cat; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"

B=("$BERTH" --root "$work/root" --run-root "$work/run")
"${B[@]}" image import -c 'CMD ["/bin/true"]' "$rootfs" bench:latest >/dev/null

bundle="$work/bundle"
mkdir -p "$bundle"
(cd "$bundle" && runc spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"\/bin\/true"/; s|"path": "rootfs"|"path": "'"$rootfs"'"|' "$bundle/config.json"

ms() { echo "scale=2; $1 / 1000000" | bc; }

n=0
runc_once() { n=$((n + 1)); runc --root "$work/runc" run -b "$bundle" "bench-$$-$n"; }

names=(unshare runc berth)
cmds=("unshare --fork --pid --mount --uts --ipc --net chroot $rootfs /bin/true"
	"runc_once"
	"${B[*]} container run --rm --network none bench /bin/true")
if [ -n "${BERTH_BEFORE:-}" ]; then
	"$BERTH_BEFORE" --root "$work/root-before" --run-root "$work/run-before" image import -c 'CMD ["/bin/true"]' "$rootfs" bench:latest >/dev/null
	names+=(before)
	cmds+=("$BERTH_BEFORE --root $work/root-before --run-root $work/run-before container run --rm --network none bench /bin/true")
fi

echo "machine: nproc $(nproc), $(uname -r), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Warm-ups (the first berth start also compiles and caches the seccomp profile).
for i in 1 2 3; do
	for k in "${!names[@]}"; do
		eval "${cmds[$k]}" >/dev/null 2>&1 || { echo "${names[$k]} failed:"; eval "${cmds[$k]}"; exit 1; }
	done
done
for k in "${!names[@]}"; do : >"$work/${names[$k]}.times"; done
for i in $(seq "$N"); do
	for k in "${!names[@]}"; do
		t0=$(date +%s%N)
		eval "${cmds[$k]}" >/dev/null
		t1=$(date +%s%N)
		echo $((t1 - t0)) >>"$work/${names[$k]}.times"
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
sort -n "$work/runc.times" >"$work/runc.sorted"
runc_med=$(sed -n "$(((N + 1) / 2))p" "$work/runc.sorted")
for k in "${!names[@]}"; do
	name=${names[$k]}
	sort -n "$work/$name.times" >"$work/$name.sorted"
	med=$(sed -n "$(((N + 1) / 2))p" "$work/$name.sorted")
	p90=$(sed -n "$(((N * 9 + 9) / 10))p" "$work/$name.sorted")
	printf '%-8s median %8s ms   p90 %8s ms   %5s x runc   (n=%d)\n' "$name" "$(ms "$med")" "$(ms "$p90")" \
		"$(echo "scale=2; $med / $runc_med" | bc)" "$N"
done
