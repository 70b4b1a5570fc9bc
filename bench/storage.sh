#!/usr/bin/env bash
# bench/storage.sh — import a generated ~600 MB root filesystem tarball with `berth image import`
# and compare with `tar -x` of the same file (with and without a final filesystem sync, since
# berth syncs a layer before committing it). Needs root (ownership is preserved like tar does).
#
#   bench/storage.sh [SIZE_MB]       (default 600)
#
# Measured on the shared 2-core CI VM (Debian 12, ext4, page cache warm, load from other jobs):
#   tar -x 0.84-1.25 s, tar -x + sync 2.2-2.9 s, berth image import 4.7 s  (ratio vs tar -x+sync
#   about 1.6; vs plain tar -x 3.8). berth writes the bytes twice (the layer blob, needed for
#   save/push, and the unpacked tree) and syncs both before committing; hashing runs on a
#   second core while unpacking (that halved import time: 116 -> 234 MB/s in BenchmarkImport).
#
# Environment: BENCH_DIR (scratch, default a mktemp dir on /var/tmp), BERTH (a berth binary;
# default: built from this checkout), KEEP=1 keeps the scratch directory.
set -euo pipefail

size_mb=${1:-600}
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${BENCH_DIR:-$(mktemp -d /var/tmp/berth-bench.XXXXXX)}
mkdir -p "$dir"
cleanup() { [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"; }
trap cleanup EXIT

if [ -z "${BERTH:-}" ]; then
	echo "building berth..." >&2
	(cd "$here" && go build -o "$dir/berth" ./cmd/berth)
	BERTH=$dir/berth
fi

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
ls -l "$tarball" >&2
sync

now() { date +%s.%N; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; cat "$tarball" > /dev/null; }

drop
t0=$(now)
mkdir "$dir/x1" && tar -x -f "$tarball" -C "$dir/x1"
t1=$(now)
tar_s=$(echo "$t1 - $t0" | bc)

drop
t0=$(now)
mkdir "$dir/x2" && tar -x -f "$tarball" -C "$dir/x2" && sync -f "$dir/x2"
t1=$(now)
tarsync_s=$(echo "$t1 - $t0" | bc)

drop
t0=$(now)
"$BERTH" --root "$dir/state" image import "$tarball" bench:latest >/dev/null
t1=$(now)
berth_s=$(echo "$t1 - $t0" | bc)

# Re-import of the same content: the layer already exists (content still read and hashed).
t0=$(now)
"$BERTH" --root "$dir/state" image import "$tarball" bench:again >/dev/null
t1=$(now)
again_s=$(echo "$t1 - $t0" | bc)

printf 'tar -x:                 %6.2f s\n' "$tar_s"
printf 'tar -x + sync:          %6.2f s\n' "$tarsync_s"
printf 'berth image import:     %6.2f s   (blob + unpacked layer, synced)\n' "$berth_s"
printf 'berth import (again):   %6.2f s\n' "$again_s"
printf 'ratio import / tar -x:        %.2f\n' "$(echo "$berth_s / $tar_s" | bc -l)"
printf 'ratio import / (tar -x+sync): %.2f\n' "$(echo "$berth_s / $tarsync_s" | bc -l)"
