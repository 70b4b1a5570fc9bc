#!/usr/bin/env bash
# bench/storage.sh — berth's image store against its peers, all measured in ONE run on this
# machine (every number is a median over ROUNDS rounds; the peers and berth alternate inside a
# round so that load from other jobs hits them alike). Needs root (ownership is preserved like
# tar does) and skopeo (Debian package `skopeo`).
#
#   bench/storage.sh [SIZE_MB]       (import tarball size, default 600)
#
# 1. Import: `berth image import` of a generated ~SIZE_MB rootfs tarball vs `tar -x` of the same
#    file, and vs `tar -x && sync -f` (berth makes the layer durable before committing it, so this
#    is the like-for-like peer). Re-import of content the store already has vs hashing the file.
# 2. Pull: `berth image pull` of a 10-layer ~200 MB (unpacked; ~100 MB gzip) image from an
#    in-memory registry on 127.0.0.1 (bench/storagebench) vs `skopeo copy docker://… oci:DIR`
#    (download and verify only; berth's pull stores the verified blobs too and unpacks a layer
#    on first use), and vs skopeo copy + `tar -xzf` of every layer + sync (a pull that unpacks).
# 3. Disk: 20 images that share the base of (2), pulled into one store: `du` of the store vs 20x
#    the store holding the base alone.
#
# Measured 2026-11-27 on the shared 2-core CI VM (Debian 12, ext4 without a journal, kernel
# 6.18, 24 GB; load 4-11 from other jobs during these runs), ROUNDS=3, ratios are medians of
# per-round ratios, berth vs the peer in the same run:
#   before (blob + tree, eager pull): import / tar -x = 1.80 (per round 1.80 1.14 2.75; tar 1.89 s,
#     berth 2.37 s), import / (tar -x && sync) = 1.63; pull / skopeo copy = 2.37 (2.20 2.37 2.60;
#     skopeo 1.12 s, berth 2.92 s), pull / (skopeo + tar -xzf + sync) = 0.59.
#   after (import keeps the tree + tar-split only, pull keeps the gzip blobs and unpacks on first
#     use): import / tar -x = 1.80 (per round 2.95 0.96 1.80; tar 1.87 s, berth 3.42 s), import /
#     (tar -x && sync) = 1.37 (1.37 1.36 1.84); pull / skopeo copy = 0.91 (0.91 1.14 0.67; skopeo
#     0.96 s, berth 0.64 s): target met; pull / (skopeo + unpack) = 0.25.
#   20 images on that base: 104 MB store (gzip blobs only until first use) vs 20 x 103 MB -> 0.05.
#   two later runs the same day (13:50 and 13:55 UTC, load 1.9-4 at the end, berth 6dcab57):
#     import / tar -x = 0.78 (0.57 0.78 0.90) and 0.87 (0.73 0.87 2.02); import / (tar -x &&
#     sync) = 1.15 and 1.01; pull / skopeo copy = 0.81 (0.81 0.83 0.77) and 0.81 (0.89 0.81
#     0.74); store of 20 images on one base / 20 x base = 0.05 both times. Both speed targets
#     are met in these runs.
#   a third run (14:10 UTC, berth fecd18b): import / tar -x = 1.73 (1.24 1.73 5.65) -- tar -x
#     ran at page-cache speed (0.72-1.39 s) while berth waits for the disk (1.58-4.06 s) --,
#     import / (tar -x && sync) = 1.04 (1.04 1.08 1.02); pull / skopeo copy = 0.80 (0.67 0.80
#     0.83); re-import of the unchanged file 0.07 s = 0.13x a sha256 of it (the store
#     remembers the file it imported). Over the three runs, 6 of 9 rounds meet the import
#     target against a bare tar -x, whose time swings 0.7-3.6 s with the page cache's
#     writeback; against tar -x && sync (berth makes the layer durable before it commits it,
#     with one syncfs) import is 1.01-1.15x in every run.
# One import under /usr/bin/time (the first run): berth 2.73 s wall, 0.81 s user, 1.69 s sys
# (tar: 1.76 s, 0.10 s user, 1.60 s sys): the kernel cost of creating the files is the same as
# tar's; what is left is berth's user time on the unpacking core (tar parsing, tar-split
# recording, the copy to the hashing core) and the final syncfs (~0.3 s).
# Floor measured here: filling new page cache costs ~2 ms per MB of system time (dd 600 MB:
# 1.07 s buffered, 0.10 s O_DIRECT), klauspost inflate ~360 MB/s, sha256 ~660-1500 MB/s,
# crc64 ~1 GB/s (which is why tar-split file entries carry no crc64: the diff ID is checked).
# Earlier numbers (tar -x 3.92 s, berth pull 2.85 s vs skopeo 1.24 s) were taken with an rm -rf
# of the previous tree right before each measurement, which slowed every file-creating tool
# (see discard below); they are not comparable with these.
# Every measurement uses fresh temporary roots under one scratch directory, which is removed at
# the end together with the registry process (killed by its PID); nothing is deleted before
# then, so the scratch filesystem needs about 12 GB free with the defaults.
# Environment: ROUNDS (default 3), BENCH_DIR (parent of the scratch dir, default /var/tmp),
# BERTH (a berth binary; default: built from this checkout), KEEP=1 keeps the scratch dir.
set -euo pipefail
shopt -s inherit_errexit

size_mb=${1:-600}
rounds=${ROUNDS:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/storage.sh needs root" >&2; exit 1; }
command -v skopeo >/dev/null || { echo "bench/storage.sh needs skopeo (apt-get install skopeo)" >&2; exit 1; }

dir=$(mktemp -d "${BENCH_DIR:-/var/tmp}/berth-bench-storage.XXXXXX")
reg_pid=
cleanup() {
	if [ -n "$reg_pid" ]; then
		kill "$reg_pid" 2>/dev/null || true
		wait "$reg_pid" 2>/dev/null || true
	fi
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building berth and bench/storagebench..." >&2
if [ -z "${BERTH:-}" ]; then
	(cd "$here" && go build -o "$dir/berth" ./cmd/berth)
	BERTH=$dir/berth
fi
(cd "$here" && go build -o "$dir/storagebench" ./bench/storagebench)
SB=$dir/storagebench

# ms CMD...: run CMD (output discarded) and print its wall time in milliseconds.
ms() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null || { echo "failed: $*" >&2; return 1; }
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
secs() { awk -v m="$1" 'BEGIN {printf "%6.2f s", m/1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a/b; else print "n/a"}'; }
# pratio A[] B[]: the median of the per-round ratios A[i]/B[i] (berth and its peer ran back to
# back in each round, so this is less sensitive to load that changes between rounds).
pratio() {
	local -n a=$1 b=$2
	local i out=()
	for i in "${!a[@]}"; do out+=("$(ratio "${a[$i]}" "${b[$i]}")"); done
	printf '%s (per round: %s)' "$(printf '%s\n' "${out[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')" "${out[*]}"
}
fresh() { local d; d=$(mktemp -d "$dir/r.XXXXXX"); echo "$d"; }
settle() { sync; }
# discard DIR: set a measured tree aside; everything is deleted at the end. Deleting thousands
# of files between measurements would bill the next tool that creates files: ext4 without a
# journal (this VM's root) scans past every inode freed in the last 60-360 s on each file
# creation (fs/ext4/ialloc.c recently_deleted), which made tar and berth up to 2x slower right
# after an rm -rf, while skopeo (a dozen files) does not notice.
discard() { mv "$1" "$dir/trash/"; }
mkdir "$dir/trash"

echo "== machine"
echo "cpus: $(nproc)   memory: $(free -m | awk '/^Mem:/ {print $2 " MiB"}')   kernel: $(uname -r)"
echo "scratch filesystem: $(df -T "$dir" | awk 'NR==2 {print $2 " on " $1}')   load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "berth: $BERTH   skopeo: $(skopeo --version | awk '{print $3}')   rounds: $rounds (medians)"

# ---------------------------------------------------------------------------------------------
tarball=$dir/rootfs.tar
echo "generating a ${size_mb} MB rootfs tarball..." >&2
python3 - "$tarball" "$size_mb" <<'PY'
import io, os, random, sys, tarfile, time
path, size_mb = sys.argv[1], int(sys.argv[2])
target = size_mb * 1000 * 1000
rnd = random.Random(42)
# Semi-compressible content like binaries and libraries: random blocks repeated a little.
pool = os.urandom(8 << 20)
def content(n):
    off = rnd.randrange(0, len(pool) - min(n, len(pool)) + 1)
    if n <= len(pool):
        return pool[off:off + n]
    return (pool * (n // len(pool) + 1))[:n]
now = int(time.time())
total = 0
with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
    dirs = ["usr", "usr/bin", "usr/lib", "usr/share", "etc", "var", "var/lib", "opt"]
    for d in dirs:
        ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = now
        tf.addfile(ti)
    i = 0
    while total < target:
        # Size mix like a distro rootfs: mostly small files, some large libraries.
        r = rnd.random()
        if r < 0.70: n = rnd.randrange(100, 8 << 10)
        elif r < 0.99: n = rnd.randrange(8 << 10, 256 << 10)
        else: n = rnd.randrange(1 << 20, 8 << 20)
        n = min(n, target - total) or 1
        sub = "usr/share/d%03d" % (i // 200) if i % 3 else "usr/lib/l%03d" % (i // 300)
        if i % 200 == 0 or i % 300 == 0:
            ti = tarfile.TarInfo(sub); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = now
            tf.addfile(ti)
        ti = tarfile.TarInfo("%s/f%06d" % (sub, i)); ti.size = n; ti.mode = 0o755 if i % 10 == 0 else 0o644; ti.mtime = now
        tf.addfile(ti, io.BytesIO(content(n)))
        if i % 50 == 0:
            ln = tarfile.TarInfo("usr/bin/link%06d" % i); ln.type = tarfile.SYMTYPE; ln.linkname = "../../%s/f%06d" % (sub, i); ln.mtime = now
            tf.addfile(ln)
        total += n; i += 1
print("files: %d, content bytes: %d" % (i, total), file=sys.stderr)
PY
settle

tar_x() { mkdir "$1" && tar -x -f "$tarball" -C "$1"; }
tar_x_sync() { mkdir "$1" && tar -x -f "$tarball" -C "$1" && sync -f "$1"; }
imp() { "$BERTH" --root "$1" image import "$tarball" "$2"; }

echo "importing (${rounds} rounds)..." >&2
T_TAR=() T_TARSYNC=() T_IMP=() T_AGAIN=() T_HASH=()
for ((r = 1; r <= rounds; r++)); do
	cat "$tarball" >/dev/null # the source is in the page cache for everybody
	d=$(fresh); settle; T_TAR+=("$(ms tar_x "$d/x")"); discard "$d"
	d=$(fresh); settle; T_TARSYNC+=("$(ms tar_x_sync "$d/x")"); discard "$d"
	d=$(fresh); settle; T_IMP+=("$(ms imp "$d/root" bench:1)")
	settle; T_AGAIN+=("$(ms imp "$d/root" bench:2)"); discard "$d"
	T_HASH+=("$(ms "$SB" sha256 "$tarball")")
done
tar_ms=$(median "${T_TAR[@]}") tarsync_ms=$(median "${T_TARSYNC[@]}") imp_ms=$(median "${T_IMP[@]}")
again_ms=$(median "${T_AGAIN[@]}") hash_ms=$(median "${T_HASH[@]}")

echo
echo "== import of a $(du -h "$tarball" | cut -f1) rootfs tarball ($(tar -tf "$tarball" | wc -l) entries)"
printf '%-40s %s   runs(ms): %s\n' "tar -x" "$(secs "$tar_ms")" "${T_TAR[*]}"
printf '%-40s %s   runs(ms): %s\n' "tar -x && sync -f" "$(secs "$tarsync_ms")" "${T_TARSYNC[*]}"
printf '%-40s %s   runs(ms): %s\n' "berth image import (tree+tar-split, synced)" "$(secs "$imp_ms")" "${T_IMP[*]}"
printf '%-40s %s   runs(ms): %s\n' "berth image import, content already stored" "$(secs "$again_ms")" "${T_AGAIN[*]}"
printf '%-40s %s   runs(ms): %s\n' "sha256 of the tarball (Go, as berth)" "$(secs "$hash_ms")" "${T_HASH[*]}"
echo "ratio import / tar -x:              $(pratio T_IMP T_TAR)   (target <= 1.43)"
echo "ratio import / (tar -x && sync):    $(pratio T_IMP T_TARSYNC)"
echo "ratio re-import / sha256 of file:   $(pratio T_AGAIN T_HASH)"
rm -f "$tarball"

# ---------------------------------------------------------------------------------------------
echo "starting the registry and pushing images..." >&2
"$SB" serve "$dir/reg.port" -layers 10 -mb 200 -derived 20 >"$dir/reg.log" 2>&1 &
reg_pid=$!
for ((i = 0; i < 600; i++)); do
	[ -s "$dir/reg.port" ] && break
	kill -0 "$reg_pid" 2>/dev/null || { cat "$dir/reg.log" >&2; exit 1; }
	sleep 0.2
done
[ -s "$dir/reg.port" ] || { echo "registry did not start" >&2; exit 1; }
read -r port base_bytes base_unpacked <"$dir/reg.port"
reg=127.0.0.1:$port

pull() { "$BERTH" --root "$1" image pull -q "$reg/bench/$2:latest"; }
sko() { skopeo copy -q --src-tls-verify=false "docker://$reg/bench/base:latest" "oci:$1:base"; }
# skopeo copy, then unpack every layer in order like a runtime would, then sync.
sko_unpack() {
	sko "$1/oci"
	mkdir "$1/rootfs"
	python3 - "$1/oci" <<'PY' | while read -r blob; do tar -x -z -f "$1/oci/blobs/sha256/$blob" -C "$1/rootfs"; done
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + idx["manifests"][0]["digest"].split(":")[1]))
for l in m["layers"]:
    print(l["digest"].split(":")[1])
PY
	sync -f "$1"
}

echo "pulling (${rounds} rounds)..." >&2
T_PULL=() T_SKO=() T_SKOX=()
for ((r = 1; r <= rounds; r++)); do
	d=$(fresh); settle; T_SKO+=("$(ms sko "$d/oci")"); discard "$d"
	d=$(fresh); settle; T_PULL+=("$(ms pull "$d/root" base)"); discard "$d"
	d=$(fresh); settle; T_SKOX+=("$(ms sko_unpack "$d")"); discard "$d"
done
pull_ms=$(median "${T_PULL[@]}") sko_ms=$(median "${T_SKO[@]}") skox_ms=$(median "${T_SKOX[@]}")
echo
echo "== pull of a 10-layer image: $((base_unpacked / 1000000)) MB unpacked, $((base_bytes / 1000000)) MB gzip, from $reg"
printf '%-40s %s   runs(ms): %s\n' "skopeo copy docker:// oci: (no unpack)" "$(secs "$sko_ms")" "${T_SKO[*]}"
printf '%-40s %s   runs(ms): %s\n' "skopeo copy + tar -xzf layers + sync" "$(secs "$skox_ms")" "${T_SKOX[*]}"
printf '%-40s %s   runs(ms): %s\n' "berth image pull (verify, sync; lazy)" "$(secs "$pull_ms")" "${T_PULL[*]}"
echo "ratio berth pull / skopeo copy:           $(pratio T_PULL T_SKO)   (target < 1)"
echo "ratio berth pull / skopeo copy + unpack:  $(pratio T_PULL T_SKOX)"

# ---------------------------------------------------------------------------------------------
echo "pulling 20 images that share the base..." >&2
d=$(fresh)
pull "$d/base" base >/dev/null
one=$(du -sb "$d/base" | cut -f1)
t0=$(date +%s%N)
for ((i = 1; i <= 20; i++)); do pull "$d/root" "app$i" >/dev/null; done
t1=$(date +%s%N)
all=$(du -sb "$d/root" | cut -f1)
echo
echo "== disk: 20 images (the base above + one 64 KB layer each) in one store"
echo "store with the base image only:   $(du -sh "$d/base" | cut -f1)   (gzip blobs + metadata; layers unpack on first use)"
echo "store with the 20 images:         $(du -sh "$d/root" | cut -f1)   (pulled one after another in $(secs $(((t1 - t0) / 1000000))))"
echo "20 x base:                        $(awk -v b="$one" 'BEGIN {printf "%.0fM", 20*b/1048576}')"
echo "ratio store / (20 x base):        $(ratio "$all" "$((20 * one))")   (1/20 = 0.05 means the base is stored once)"
echo "layer directories in the store:   $(ls "$d/root/storage/layers" | wc -l)   (0: a pull unpacks nothing until a Mount)"
rm -rf "$d"
echo
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
