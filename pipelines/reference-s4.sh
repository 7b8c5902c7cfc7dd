#!/usr/bin/env bash
# Reference implementation of the standard 4-input scene ("S4", benches/scenes/s4.json) as one plain gst-launch-1.0
# pipeline: the baseline Tessera's CPU use and latency are compared with in benchmarks. A thin wrapper: the
# pipeline itself is reference-mix.sh's.
#
#   pipelines/reference-s4.sh RTMP_BASE OUT_URL
#   e.g. pipelines/reference-s4.sh rtmp://127.0.0.1:1935 rtmp://127.0.0.1:1935/mix/ref
#
# Inputs RTMP_BASE/live/{a,b,c,d} (H.264 + AAC in FLV). Scene on a 1280x720@30 canvas over a #101010 background:
#   a  full frame (0,0 1280x720), zorder 1, volume 1.0
#   b  320x180 at (940,520), zorder 2, volume 0.5     x = 1280 - 340*k, y = 520, k = 1..3:
#   c  320x180 at (600,520), zorder 3, volume 0.25    a row of insets along the bottom right,
#   d  320x180 at (260,520), zorder 4, volume 0.1     20 px from the bottom edge and from each other;
#      d shows the centre 320x180 of its (640x360) source: crop (160,90) 320x180
# (s4.json's corner radius 16 on the insets has no plain-pipeline equivalent here: the insets are square.)
# Output: H.264 (x264 veryfast, zerolatency, 2500 kbit/s, keyframe every 2 s) + AAC-LC 128 kbit/s 44.1 kHz stereo
# in FLV, published to OUT_URL.
#
# Known limits of this plain pipeline: rtmp2src is not a live source, so the compositor and mixer
# run non-live, wait for every input forever (one dead input stalls the output) and align each input by its own
# first frame (inputs may be skewed by up to a GOP).
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 RTMP_BASE OUT_URL   (e.g. rtmp://127.0.0.1:1935 rtmp://127.0.0.1:1935/mix/ref)" >&2
  exit 2
fi

# The S4 numbers are fixed: REF_VIDEO_KBPS from the caller's environment must not change them.
REF_VIDEO_KBPS=2500 exec "$(dirname "$0")/reference-mix.sh" "$1" "$2" 1280x720 101010 \
  a:0,0,1280,720:100 \
  b:940,520,320,180:50 \
  c:600,520,320,180:25 \
  d:260,520,320,180:10:160,90,320,180,640,360
