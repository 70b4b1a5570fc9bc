#!/usr/bin/env bash
# make demo: build the hello example's images, bring the project up, show it answering through
# the published port and from several replicas after scaling, then take it down again.
set -euo pipefail
berth=$(realpath "${1:-bin/berth}")
here=$(cd "$(dirname "$0")/hello" && pwd)
cd "$here"

if [ "$(id -u)" != 0 ]; then
  echo "make demo runs containers and needs root; showing the plan instead:"
  "$berth" up --dry-run
  exit 0
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "compile the example's static binaries"
mkdir -p bin
for s in web store worker; do CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "bin/$s" "./$s"; done

step "build the images (FROM scratch)"
"$berth" build

cleanup() { "$berth" down -v -t 2 >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "berth up -d --wait"
"$berth" up -d --wait
"$berth" ps

step "a request through the published port 127.0.0.1:8080"
for i in 1 2 3; do curl -fsS http://127.0.0.1:8080/; done

step "berth up -d --wait --scale web=3 (each replica takes a port of 127.0.0.1:8080-8082)"
"$berth" up -d --wait --scale web=3
"$berth" ps
for port in 8080 8081 8082; do curl -fsS "http://127.0.0.1:$port/"; done

step "requests spread over the web replicas by service-name DNS"
"$berth" run --rm --no-deps worker -probe http://web:8080/ -n 6

step "logs"
"$berth" logs --tail 3 worker store

step "berth down -v"
trap - EXIT
"$berth" down -v -t 2
echo "done: the project is gone (berth ps shows nothing)"
"$berth" ps -a
