#!/usr/bin/env bash
# Memory of berth's per-container monitor with 10 and then 200 idle containers
# (`berth container run -d --network none bench sleep 100000`): median and total RSS and PSS of
# the monitors, from /proc/PID/smaps_rollup. Target: an idle monitor at most 3 MiB RSS.
#
# The peer is measured in the same run when podman is installed and has localhost/bb (as
# ../shared/bench sets it up): podman's conmon for the same counts of `podman run -d --network
# none localhost/bb sleep` containers. With BERTH_BEFORE (another berth build with its
# berth-shim beside it), that build's monitors are measured too.
#
# Usage: bench/monitor.sh [COUNTS...]   (default: 10 200; env BERTH=path to a built berth with
#        berth-shim and berth-monitor beside it; PEER=0 skips podman)
set -euo pipefail

cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/monitor.sh: needs root" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "bench/monitor.sh: needs /bin/busybox (apt-get install busybox-static)" >&2; exit 1; }
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(10 200)

work=$(mktemp -d /tmp/berth-monbench.XXXXXX)
run=$(mktemp -d /run/bm.XXXXXX)
tag="berthmon$$"
cleanup() {
	set +e
	for b in "$work/root" "$work/root-before"; do
		[ -d "$b" ] || continue
		bin=$BERTH
		[ "$b" = "$work/root-before" ] && bin=$BERTH_BEFORE
		ids=$("$bin" --root "$b" --run-root "$run${b#"$work/root"}" container ps -aq 2>/dev/null)
		[ -n "$ids" ] && "$bin" --root "$b" --run-root "$run${b#"$work/root"}" container rm -f $ids >/dev/null 2>&1
	done
	if [ "${PEER:-1}" = 1 ] && command -v podman >/dev/null; then
		ids=$(podman ps -aq --filter "label=$tag" 2>/dev/null)
		[ -n "$ids" ] && podman rm -f -t 0 $ids >/dev/null 2>&1
	fi
	umount -R "$work/root/storage/mounts"/* "$work/root-before/storage/mounts"/* 2>/dev/null
	rm -rf "$work" "$run" "$run-before"
}
trap cleanup EXIT

if [ -z "${BERTH:-}" ]; then
	echo "building berth, berth-shim and berth-monitor..." >&2
	TAGS=seccomp,osusergo,netgo,runc_nocriu
	CGO_ENABLED=1 go build -tags "$TAGS" -o "$work/bin/berth" ./cmd/berth
	CGO_ENABLED=1 go build -tags "$TAGS" -ldflags '-s -w -extldflags=-static' -o "$work/bin/berth-shim" ./runtime/shim
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/bin/berth-monitor" ./runtime/monitor/berth-monitor
	cc -static -O2 -o "$work/bin/berth-seccomp" runtime/loader/berth-seccomp.c
	BERTH="$work/bin/berth"
fi
ls -l "$(dirname "$BERTH")"/berth-monitor >&2 || echo "note: no berth-monitor beside $BERTH: the monitor runs as berth-shim __monitor" >&2

rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"

# stats NAME PID...: median and total of Rss and Pss (KiB), one line.
stats() {
	local name=$1
	shift
	local f="$work/stats"
	: >"$f"
	for p in "$@"; do
		awk '/^Rss:/{r=$2} /^Pss:/{s=$2} END{if (r) print r, s}' "/proc/$p/smaps_rollup" 2>/dev/null >>"$f" || true
	done
	local n
	n=$(wc -l <"$f")
	[ "$n" -gt 0 ] || { printf '%-24s n=0\n' "$name"; return; }
	local rmed smed rtot stot
	rmed=$(cut -d' ' -f1 "$f" | sort -n | sed -n "$(((n + 1) / 2))p")
	smed=$(cut -d' ' -f2 "$f" | sort -n | sed -n "$(((n + 1) / 2))p")
	rtot=$(awk '{t+=$1} END{print t}' "$f")
	stot=$(awk '{t+=$2} END{print t}' "$f")
	printf '%-24s n=%-4d RSS median %5d KiB total %7d KiB   PSS median %5d KiB total %7d KiB\n' \
		"$name" "$n" "$rmed" "$rtot" "$smed" "$stot"
	echo "$rmed $smed" >"$work/last"
}

# berth_fill BIN ROOT RUN COUNT: runs idle containers until COUNT exist; prints monitor pids.
berth_fill() {
	local bin=$1 root=$2 runr=$3 want=$4
	local B=("$bin" --root "$root" --run-root "$runr")
	local have
	have=$("${B[@]}" container ps -q | wc -l)
	for _ in $(seq $((want - have))); do
		"${B[@]}" container run -d --network none bench sleep 100000 >/dev/null
	done
	sleep 2 # idle
	for s in "$root"/containers/*/state.json; do
		grep -o '"monitorPid":[0-9]*' "$s" | cut -d: -f2
	done
}

peer=0
if [ "${PEER:-1}" = 1 ] && command -v podman >/dev/null && timeout 20 podman image exists localhost/bb:latest 2>/dev/null; then
	peer=1
	# As ../shared/bench/03-podman.sh: this machine has no CAP_SYS_RESOURCE, and crun refuses
	# its hybrid cgroup layout.
	export CONTAINERS_CONF="$work/containers.conf"
	printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[engine]\nruntime = "runc"\n' >"$CONTAINERS_CONF"
fi

echo "machine: nproc $(nproc), $(uname -r), $(awk '/MemTotal/{print $2 " KiB RAM"}' /proc/meminfo)"
"$BERTH" --root "$work/root" --run-root "$run" image import -c 'CMD ["/bin/sh"]' "$rootfs" bench:latest >/dev/null
if [ -n "${BERTH_BEFORE:-}" ]; then
	"$BERTH_BEFORE" --root "$work/root-before" --run-root "$run-before" image import -c 'CMD ["/bin/sh"]' "$rootfs" bench:latest >/dev/null
fi
for n in "${COUNTS[@]}"; do
	echo "== $n idle containers"
	t0=$(date +%s%N)
	mapfile -t pids < <(berth_fill "$BERTH" "$work/root" "$run" "$n")
	echo "started in $((($(date +%s%N) - t0) / 1000000)) ms (with 2 s idle)"
	stats "berth monitor" "${pids[@]}"
	read -r brss bpss <"$work/last"
	if [ -n "${BERTH_BEFORE:-}" ]; then
		t0=$(date +%s%N)
		mapfile -t pids < <(berth_fill "$BERTH_BEFORE" "$work/root-before" "$run-before" "$n")
		echo "before: started in $((($(date +%s%N) - t0) / 1000000)) ms (with 2 s idle)"
		stats "berth monitor (before)" "${pids[@]}"
	fi
	if [ $peer = 1 ]; then
		t0=$(date +%s%N)
		have=$(podman ps -q --filter "label=$tag" | wc -l)
		for _ in $(seq $((n - have))); do
			podman run -d --label "$tag" --network none localhost/bb sleep 100000 >/dev/null
		done
		sleep 2
		echo "podman: started in $((($(date +%s%N) - t0) / 1000000)) ms (with 2 s idle)"
		mapfile -t pids < <(for c in $(podman ps -q --filter "label=$tag"); do
			podman inspect -f '{{.State.ConmonPid}}' "$c"
		done)
		stats "podman conmon" "${pids[@]}"
		read -r crss cpss <"$work/last"
		echo "berth/conmon: RSS $(echo "scale=2; $brss / $crss" | bc)x, PSS $(echo "scale=2; $bpss / $cpss" | bc)x (medians)"
	fi
done
