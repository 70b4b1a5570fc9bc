#!/usr/bin/env bash
# bench/engine.sh: wall-clock timings of the engine's main paths, as root.
#
#   up -d / down -t 0 of 10 and 100 services, no-op up of 10 and 100, scale 1 -> 50.
#
# Usage: sudo bench/engine.sh [BERTH_BINARY]
# Builds ./cmd/berth when no binary is given. Uses its own temporary roots and cleans up.
# Issue 6 targets: up of 10 services <= 0.5 s, no-op up of 10 <= 50 ms. Ends with the floor
# under up: N parallel `runc run -d` of the same busybox (when runc is installed).
set -euo pipefail

if [[ $(id -u) != 0 ]]; then
	echo "bench/engine.sh needs root" >&2
	exit 1
fi
if [[ ! -x /bin/busybox ]]; then
	echo "bench/engine.sh needs /bin/busybox (apt-get install busybox-static)" >&2
	exit 1
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /var/tmp/berth-engine-bench.XXXXXX)
run=$(mktemp -d /run/bb.XXXXXX)
bin=${1:-}
if [[ -z $bin ]]; then
	bin=$work/berth
	(cd "$repo" && CGO_ENABLED=1 go build -tags seccomp,osusergo,netgo -o "$bin" ./cmd/berth)
fi
# The per-container monitor, found beside berth (as make build installs it).
if [[ ! -x $(dirname "$bin")/berth-monitor ]]; then
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$(dirname "$bin")/berth-monitor" ./runtime/monitor/berth-monitor)
fi
if [[ ! -x $(dirname "$bin")/berth-seccomp ]]; then
	(cd "$repo" && cc -static -O2 -o "$(dirname "$bin")/berth-seccomp" runtime/loader/berth-seccomp.c)
fi

berth() { "$bin" --root "$work/root" --run-root "$run" --progress quiet "$@"; }

cleanup() {
	for d in "$work"/p*; do
		[[ -d $d ]] && (cd "$d" && berth down -v -t 0 --remove-orphans >/dev/null 2>&1 || true)
	done
	if [[ -d $work/runc-root ]]; then
		for id in $(runc --root "$work/runc-root" list -q 2>/dev/null); do
			runc --root "$work/runc-root" delete -f "$id" >/dev/null 2>&1 || true
		done
	fi
	umount -l "$run/netns" 2>/dev/null || true
	rm -rf "$run" "$work"
}
trap cleanup EXIT

# Image: busybox plus applet links.
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/"
for a in sh sleep echo; do ln -s busybox "$rootfs/bin/$a"; done
berth image import -c 'ENV PATH=/bin' -c 'CMD ["sleep","3600"]' "$rootfs" bench:latest >/dev/null

# project N: N independent services on the default network.
project() {
	local n=$1 dir=$work/p$1
	mkdir -p "$dir"
	{
		echo "name: bench$n"
		echo "services:"
		for i in $(seq 1 "$n"); do
			printf '  s%d:\n    image: bench:latest\n    stop_signal: SIGKILL\n' "$i"
		done
	} >"$dir/compose.yaml"
	echo "$dir"
}

# timeit LABEL CMD...: prints the wall time of one run in seconds.
timeit() {
	local label=$1
	shift
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	printf '%-28s %8.3f s\n' "$label" "$(echo "$t1 - $t0" | bc -l)"
}

echo "berth engine bench ($(nproc) CPUs, $(date -u +%FT%TZ))"
for n in 10 100; do
	dir=$(project "$n")
	cd "$dir"
	timeit "up -d ($n services)" berth up -d
	timeit "no-op up -d ($n services)" berth up -d
	timeit "ps ($n services)" berth ps
	timeit "down -t 0 ($n services)" berth down -t 0
	cd "$work"
done

dir=$(project 1)
cd "$dir"
berth up -d
timeit "scale 1 -> 50" berth up -d --scale s1=50
timeit "scale 50 -> 1" berth up -d --scale s1=1
timeit "down -t 0 (1 service)" berth down -t 0

# The floor under `up`, in the same run: N containers started in parallel by runc, libcontainer's
# own CLI, from a bundle of the same busybox running sleep (no image store, no overlay, no
# networks, no monitor). berth starts its containers with libcontainer too.
if command -v runc >/dev/null && command -v python3 >/dev/null; then
	bundle=$work/bundle
	mkdir -p "$bundle"
	cp -a "$rootfs" "$bundle/rootfs"
	(cd "$bundle" && runc spec && python3 - config.json <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "3600"]
c["process"]["env"] = ["PATH=/bin"]
json.dump(c, open(p, "w"))
PY
)
	rr=$work/runc-root
	runc_up() {
		local n=$1 i
		for i in $(seq 1 "$n"); do
			runc --root "$rr" run -d -b "$bundle" "bb-$$-$i" </dev/null >/dev/null 2>&1 &
		done
		wait
	}
	runc_down() {
		local id
		for id in $(runc --root "$rr" list -q); do
			runc --root "$rr" delete -f "$id" >/dev/null 2>&1 &
		done
		wait
	}
	for n in 10 50 100; do
		timeit "runc run -d x $n, parallel" runc_up "$n"
		runc_down
	done
fi
