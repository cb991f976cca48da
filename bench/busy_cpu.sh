#!/usr/bin/env bash
# The whole machine's busy CPU-seconds and the wall time while a command runs, read from
# /proc/stat before and after (user + nice + system + irq + softirq + steal): unlike
# `/usr/bin/time`, it counts what the command's Docker containers and the PostgreSQL server
# spend too. How make test's figures in the README were taken:
#   d=$(mktemp -d) && git clone -q . "$d" && cd "$d" && bench/busy_cpu.sh bash .ci/run
# Busy CPU-s over wall seconds near 2 on this 2-core machine: the run is CPU-bound.
set -u
busy() { read -r _ u n s _ _ q sq st _ < /proc/stat; echo $((u + n + s + q + sq + st)); }
hz=$(getconf CLK_TCK)
b0=$(busy); t0=$(date +%s.%N)
"$@"
rc=$?
b1=$(busy); t1=$(date +%s.%N)
awk -v b="$((b1 - b0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" -v cmd="$*" -v rc="$rc" 'BEGIN {
  printf "busy CPU-s: %.0f  wall s: %.1f  cores busy: %.2f  exit: %d\n", b / hz, t1 - t0,
         b / hz / (t1 - t0), rc
  printf "command: bench/busy_cpu.sh %s\n", cmd }' >&2
exit "$rc"
