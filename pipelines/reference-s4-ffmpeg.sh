#!/usr/bin/env bash
# The standard 4-input scene ("S4") done by ffmpeg's filter graph, for comparison with reference-s4.sh (same
# inputs, layout, volumes and encoder settings).
#
#   pipelines/reference-s4-ffmpeg.sh RTMP_BASE OUT_URL
#   e.g. pipelines/reference-s4-ffmpeg.sh rtmp://127.0.0.1:1935 rtmp://127.0.0.1:1935/mix/ref-ffmpeg
#
# Layout on 1280x720@30 over a #202040 background: a full frame; b, c, d 320x180 at x = 1280 - 340*k (k = 1..3),
# y = 520. Volumes 1.0 / 0.5 / 0.25 / 0.1 (amix with normalize=0, so the volumes are absolute like audiomixer's).
# Known behaviour: ffmpeg waits for every input; one dead input stalls the output, then ffmpeg exits. Latency is
# higher than the GStreamer pipeline's (input probing and filter-graph buffering).
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 RTMP_BASE OUT_URL   (e.g. rtmp://127.0.0.1:1935 rtmp://127.0.0.1:1935/mix/ref-ffmpeg)" >&2
  exit 2
fi
base=${1%/} out=$2

inputs=()
for id in a b c d; do
  # -fflags nobuffer: do not buffer input packets beyond what probing needs (lower latency).
  inputs+=(-fflags nobuffer -i "${base}/live/${id}")
done

# Video: scale each input, overlay on a 30 fps background. color= is an endless source, so shortest=1 on the first
# overlay ends the output when input a ends. The inputs may differ in colorimetry (GStreamer tags SD as BT.601, HD
# as BT.709): every scale converts to BT.709 limited range, and the output is tagged so, as GStreamer does for 720p
# (otherwise overlay copies the YUV values as they are and 360p inputs look off in colour). Audio: per-input volume, then amix without renormalisation.
filter="
color=c=0x202040:s=1280x720:r=30[bg];
[0:v]scale=1280:720:out_color_matrix=bt709:out_range=tv,setsar=1[va];
[1:v]scale=320:180:out_color_matrix=bt709:out_range=tv,setsar=1[vb];
[2:v]scale=320:180:out_color_matrix=bt709:out_range=tv,setsar=1[vc];
[3:v]scale=320:180:out_color_matrix=bt709:out_range=tv,setsar=1[vd];
[bg][va]overlay=x=0:y=0:shortest=1[o1];
[o1][vb]overlay=x=940:y=520[o2];
[o2][vc]overlay=x=600:y=520[o3];
[o3][vd]overlay=x=260:y=520,format=yuv420p[vout];
[0:a]volume=1.0[aa];
[1:a]volume=0.5[ab];
[2:a]volume=0.25[ac];
[3:a]volume=0.1[ad];
[aa][ab][ac][ad]amix=inputs=4:normalize=0:dropout_transition=0[aout]"

# Encoder settings match reference-s4.sh: x264 veryfast zerolatency 2500 kbit/s, keyframe every 60 frames (2 s),
# 4:2:0; AAC-LC 128 kbit/s 44.1 kHz stereo; live FLV to RTMP. -nostdin: runs in the background / in CI.
exec ffmpeg -nostdin -hide_banner -loglevel warning \
  "${inputs[@]}" \
  -filter_complex "${filter//$'\n'/}" \
  -map '[vout]' -map '[aout]' \
  -c:v libx264 -preset veryfast -tune zerolatency -b:v 2500k -maxrate 2500k -bufsize 2500k \
  -g 60 -keyint_min 60 -pix_fmt yuv420p -r 30 \
  -colorspace bt709 -color_primaries bt709 -color_trc bt709 -color_range tv \
  -c:a aac -b:a 128k -ar 44100 -ac 2 \
  -f flv -flvflags no_duration_filesize "${out}"
