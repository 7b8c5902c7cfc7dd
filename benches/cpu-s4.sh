#!/usr/bin/env bash
# Quick side-by-side CPU of the S4 scene: Tessera (release build) vs the plain gst-launch reference, on the same
# four synthetic inputs published to a local nginx-rtmp. Prints CPU cores used (process CPU time / wall time).
#   benches/cpu-s4.sh [SECONDS]   (default 20; run by hand, not in CI)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
dir=$(mktemp -d)
rtmp_port=19361 http_port=19362 api_port=19363
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
mkdir -p "$dir/www"
sed -e "s#@PREFIX@#$dir#g; s#@RTMP_PORT@#$rtmp_port#g; s#@HTTP_PORT@#$http_port#g" pipelines/nginx-rtmp.conf.in >"$dir/nginx.conf"
[ "$(id -u)" = 0 ] || sed -i '/^user /d' "$dir/nginx.conf"
nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/nginx.out" 2>&1 & pids+=($!)
sleep 1
base=rtmp://127.0.0.1:$rtmp_port
bash pipelines/synthetic-input.sh red 440 "$base/live/a" 1280 720 >/dev/null 2>&1 & pids+=($!)
for s in "b green 550" "c blue 660" "d yellow 880"; do
  set -- $s
  bash pipelines/synthetic-input.sh "$2" "$3" "$base/live/$1" >/dev/null 2>&1 & pids+=($!)
done
sleep 3
# cores PID SECS: CPU time the process (and its threads) used per wall second.
cores() {
  local t0 t1
  t0=$(awk '{print $14+$15}' "/proc/$1/stat"); sleep "$2"; t1=$(awk '{print $14+$15}' "/proc/$1/stat")
  echo "scale=3; ($t1-$t0)/$(getconf CLK_TCK)/$2" | bc
}
cat >"$dir/t.toml" <<TOML
[server]
listen = "127.0.0.1:$api_port"
[ingest]
pull_url = "$base/live/{stream_id}"
[egress]
push_url = "$base/mix/{stream_id}"
TOML
target/release/tessera serve --config "$dir/t.toml" >"$dir/tessera.log" 2>&1 & tpid=$!; pids+=($tpid)
sleep 1
curl -sf -X PUT "http://127.0.0.1:$api_port/v1/mixes/s4" -H 'content-type: application/json' -d @benches/scenes/s4.json >/dev/null
sleep 5
t=$(cores "$tpid" "$secs")
fps=$(curl -s "http://127.0.0.1:$api_port/v1/mixes/s4" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["output_fps"])')
kill "$tpid"; sleep 1
bash pipelines/reference-s4.sh "$base" "$base/mix/ref" >"$dir/ref.log" 2>&1 & rpid=$!; pids+=($rpid)
sleep 5
rp=$(pgrep -P "$rpid" gst-launch-1.0 || echo "$rpid")
r=$(cores "$rp" "$secs")
echo "S4 CPU cores over ${secs}s: tessera $t (output ${fps} fps), plain gst-launch reference $r, ratio $(echo "scale=2; $t/$r" | bc)"
