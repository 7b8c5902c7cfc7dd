#!/usr/bin/env bash
# The standard 4-input scene ("S4", benches/scenes/s4.json) done by ffmpeg's filter graph, for comparison with
# reference-s4.sh (same inputs, layout, crop, volumes and encoder settings). A thin wrapper: the filter graph
# itself is reference-mix-ffmpeg.sh's.
#
#   pipelines/reference-s4-ffmpeg.sh RTMP_BASE OUT_URL
#   e.g. pipelines/reference-s4-ffmpeg.sh rtmp://127.0.0.1:1935 rtmp://127.0.0.1:1935/mix/ref-ffmpeg
#
# Layout on 1280x720@30 over a #101010 background: a full frame; b, c, d 320x180 at x = 1280 - 340*k (k = 1..3),
# y = 520; d shows the centre 320x180 of its 640x360 source (crop at 160,90). Volumes 1.0 / 0.5 / 0.25 / 0.1 (amix
# with normalize=0, so the volumes are absolute like audiomixer's).
# Known behaviour: ffmpeg waits for every input; one dead input stalls the output, then ffmpeg exits. Latency is
# higher than the GStreamer pipeline's (input probing and filter-graph buffering).
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 RTMP_BASE OUT_URL   (e.g. rtmp://127.0.0.1:1935 rtmp://127.0.0.1:1935/mix/ref-ffmpeg)" >&2
  exit 2
fi

# The S4 numbers are fixed: REF_VIDEO_KBPS from the caller's environment must not change them.
REF_VIDEO_KBPS=2500 exec "$(dirname "$0")/reference-mix-ffmpeg.sh" "$1" "$2" 1280x720 101010 \
  a:0,0,1280,720:100 \
  b:940,520,320,180:50 \
  c:600,520,320,180:25 \
  d:260,520,320,180:10:160,90,320,180,640,360
