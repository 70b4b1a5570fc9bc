#!/bin/sh
# Network benchmarks (root): published-port throughput against direct, Attach time (target
# p50 <= 5 ms), DNS query p50 (target <= 1 ms). Everything runs on temporary roots, in
# namespaces and bridges the benchmarks create (pool 10.211.0.0/16), and is removed afterwards.
#
#   bench/netns.sh [benchtime]      e.g. bench/netns.sh 500x
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/netns.sh: needs root (bridges, namespaces, nftables)" >&2
	exit 1
fi
benchtime=${1:-300x}
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cpus (numbers below scale with it)"
go test -tags integration,seccomp,osusergo,netgo -run '^$' \
	-bench 'BenchmarkAttach|BenchmarkCreateSandbox|BenchmarkDNS|BenchmarkThroughput' \
	-benchtime "$benchtime" -count 1 ./netns/ | tee /tmp/berth-bench-netns.txt
awk '
/^BenchmarkAttach/ { for (i = 1; i <= NF; i++) if ($i == "p50-µs") p = $(i-1); printf "attach p50: %.2f ms (target <= 5 ms)\n", p/1000 }
/^BenchmarkDNS/    { for (i = 1; i <= NF; i++) if ($i == "p50-µs") p = $(i-1); printf "dns p50: %.3f ms (target <= 1 ms)\n", p/1000 }
/Throughput\/direct/    { for (i = 1; i <= NF; i++) if ($i == "MB/s") d = $(i-1) }
/Throughput\/published/ { for (i = 1; i <= NF; i++) if ($i == "MB/s") p = $(i-1) }
END { if (d > 0) printf "published/direct throughput: %s / %s MB/s = %.0f%%\n", p, d, 100*p/d }
' /tmp/berth-bench-netns.txt
