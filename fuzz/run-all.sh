#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 300) each, all at once, with the seed corpus and the dictionary;
# new inputs go to fuzz/target/corpus/<target> (git-ignored), crashes to fuzz/artifacts/<target>/, logs to
# fuzz/target/logs/.
# Prints each target's final libFuzzer execution count. Usage: fuzz/run-all.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(annotations multus_networks kube_ovn spiderpool ranges nad_config admission_review)
fi
unset CARGO_TARGET_DIR
cargo +nightly fuzz build -s none
bin=target/x86_64-unknown-linux-gnu/release
logs=target/logs
mkdir -p "$logs"
for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t" "artifacts/$t"
  "$bin/$t" "target/corpus/$t" "corpus/$t" -dict=dict/nadipam.dict -max_total_time="$secs" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$logs/$t.log" 2>&1 &
done
wait
status=0
for t in "${targets[@]}"; do
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || echo '?')
  crash=$(grep -c 'SUMMARY: libFuzzer' "$logs/$t.log" || true)
  printf '%-18s %12s executions  %s\n' "$t" "$runs" "$([ "$crash" = 0 ] && echo ok || echo "CRASH (see fuzz/$logs/$t.log)")"
  [ "$crash" = 0 ] || status=1
done
exit "$status"
