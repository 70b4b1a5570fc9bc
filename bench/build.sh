#!/usr/bin/env bash
# bench/build.sh: cold build and cached rebuild of a 5-step Dockerfile with berth and with
# `buildah bud --isolation chroot` (Debian's buildah), on the same context.
#
#   sudo bench/build.sh [path/to/berth]      (default: bin/berth)
#
# Needs root (RUN steps), /bin/busybox (busybox-static) and, for the comparison, buildah. Every
# tool gets its own fresh state under a temporary directory; nothing touches the network.
set -euo pipefail

berth=$(realpath "${1:-bin/berth}")
runs=${RUNS:-3}

if [ "$(id -u)" != 0 ]; then
  echo "bench/build.sh needs root (RUN steps run in containers)" >&2
  exit 1
fi
[ -x /bin/busybox ] || { echo "needs /bin/busybox (apt-get install busybox-static)" >&2; exit 1; }
have_buildah=1
command -v buildah >/dev/null || { have_buildah=0; echo "buildah not found: only berth is measured (apt-get install buildah)" >&2; }

work=$(mktemp -d /tmp/berth-bench-build.XXXXXX)
cleanup() {
  set +e
  if [ "$have_buildah" = 1 ]; then
    buildah --root "$work/buildah-root" --runroot "$work/buildah-run" rmi --all --force >/dev/null 2>&1 || true
  fi
  # Unmount anything left under the work directory (deepest first), then remove it.
  { grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done; } 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The context: busybox, 200 small files and one 8 MiB file.
ctx=$work/ctx
mkdir -p "$ctx/app/conf"
cp /bin/busybox "$ctx/busybox"
for i in $(seq 1 200); do echo "file $i" >"$ctx/app/conf/f$i.conf"; done
head -c $((8 << 20)) /dev/urandom >"$ctx/app/blob.bin"
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY app/ /app/
RUN cat /app/conf/*.conf > /app/all.conf && wc -l /app/all.conf
ENV APP_CONF=/app/all.conf
EOF

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

berth_build() { # $1: state dir
  "$berth" --root "$1/root" --run-root "$1/run" --progress quiet image build -q -t bench-build:latest "$ctx" >/dev/null
}
buildah_build() { # $1: state dir
  buildah --root "$1/root" --runroot "$1/run" bud --isolation chroot --layers --quiet -t bench-build:latest "$ctx" >/dev/null
}

measure() { # $1: name, $2: build function
  local name=$1 fn=$2 cold=() warm=()
  for r in $(seq 1 "$runs"); do
    local st=$work/$name-$r
    mkdir -p "$st"
    local t0 t1 t2
    t0=$(now); "$fn" "$st"; t1=$(now); "$fn" "$st"; t2=$(now)
    cold+=("$(elapsed "$t0" "$t1")"); warm+=("$(elapsed "$t1" "$t2")")
    if [ "$name" = buildah ]; then
      buildah --root "$st/root" --runroot "$st/run" rmi --all --force >/dev/null 2>&1 || true
    fi
  done
  printf '%-8s cold: %s   cached: %s   (seconds, %d runs)\n' "$name" "$(median "${cold[@]}")" "$(median "${warm[@]}")" "$runs"
}
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "5-step Dockerfile (2 COPY, 2 RUN, 1 ENV), context $(du -sh "$ctx" | cut -f1):"
measure berth berth_build
if [ "$have_buildah" = 1 ]; then
  measure buildah buildah_build
fi
