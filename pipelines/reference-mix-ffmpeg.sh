#!/usr/bin/env bash
# Any mix scene (1 to 16 inputs) done by ffmpeg's filter graph, for comparison with reference-mix.sh (same
# arguments, so the same inputs, layout, crops, volumes and encoder settings).
#
#   pipelines/reference-mix-ffmpeg.sh RTMP_BASE OUT_URL CANVAS BACKGROUND INPUT...
#     CANVAS      WxH (even), 30 fps
#     BACKGROUND  RRGGBB
#     INPUT       STREAM:X,Y,W,H:VOLUME[:CX,CY,CW,CH[,SW,SH]]
#                 pulled from RTMP_BASE/live/STREAM, drawn stretched into the rect X,Y,W,H; VOLUME 0..100 %;
#                 optional crop of the source picture in source pixels (SW,SH optional, only checked); input order
#                 is z-order (first = lowest, above the background)
#   e.g. pipelines/reference-mix-ffmpeg.sh rtmp://127.0.0.1:1935 rtmp://127.0.0.1:1935/mix/ref-ffmpeg 1280x720 101010 \
#          a:0,0,1280,720:100 b:940,520,320,180:50 d:260,520,320,180:10:160,90,320,180
#
# Output: as reference-mix.sh (x264 veryfast zerolatency, 2500 kbit/s or $REF_VIDEO_KBPS, keyframe every 2 s;
# AAC-LC 128 kbit/s 44.1 kHz stereo; FLV to OUT_URL).
# Known behaviour: ffmpeg opens the inputs one after another and waits for every input; one dead input stalls the
# output, then ffmpeg exits. Latency is higher than the GStreamer pipeline's (input probing and filter-graph
# buffering).
set -euo pipefail

here=$(dirname "$0")
# shellcheck source=reference-mix-args.sh
. "$here/reference-mix-args.sh"
parse_mix_args "$0" rtmp://127.0.0.1:1935/mix/ref-ffmpeg "$@"

kbps=${REF_VIDEO_KBPS:-2500}
if [[ ! "$kbps" =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: REF_VIDEO_KBPS must be a positive integer (kbit/s), got '$kbps'" >&2
  exit 2
fi

inputs=()
for ((i = 0; i < n; i++)); do
  # -fflags nobuffer: do not buffer input packets beyond what probing needs (lower latency). One -i per INPUT,
  # even when a stream name repeats (one pull each, as in reference-mix.sh).
  inputs+=(-fflags nobuffer -i "${base}/live/${in_stream[i]}")
done

# Video: crop (when asked) and scale each input, overlay them in argument order on a 30 fps background. color= is
# an endless source, so shortest=1 on the first overlay ends the output when the first input ends. The inputs may
# differ in colorimetry (GStreamer tags SD as BT.601, HD as BT.709): every scale converts to BT.709 limited range,
# and the output is tagged so (otherwise overlay copies the YUV values as they are and inputs of another
# colorimetry look off in colour). reference-mix.sh's output may carry another tag (seen: BT.601 on the 720p S4
# mix, whose insets are BT.601 360p inputs); the decoded colours agree. Audio: per-input volume, then amix
# without renormalisation (normalize=0: the volumes are absolute, like audiomixer's).
filter="color=c=0x${bg}:s=${canvas_w}x${canvas_h}:r=30[bg];"
amix_in=
for ((i = 0; i < n; i++)); do
  crop=
  if [[ -n "${in_crop[i]}" ]]; then
    read -r cx cy cw ch <<<"${in_crop[i]}"
    crop="crop=w=${cw}:h=${ch}:x=${cx}:y=${cy}:exact=1,"
  fi
  filter+="[${i}:v]${crop}scale=${in_w[i]}:${in_h[i]}:out_color_matrix=bt709:out_range=tv,setsar=1[v${i}];"
  filter+="[${i}:a]volume=${in_vol[i]}[a${i}];"
  amix_in+="[a${i}]"
done
prev="bg"
for ((i = 0; i < n; i++)); do
  opts=
  if ((i == 0)); then
    opts=:shortest=1
  fi
  if ((i == n - 1)); then
    filter+="[${prev}][v${i}]overlay=x=${in_x[i]}:y=${in_y[i]}${opts},format=yuv420p[vout];"
  else
    filter+="[${prev}][v${i}]overlay=x=${in_x[i]}:y=${in_y[i]}${opts}[o${i}];"
    prev=o${i}
  fi
done
filter+="${amix_in}amix=inputs=${n}:normalize=0:dropout_transition=0[aout]"

# Encoder settings match reference-mix.sh: x264 veryfast zerolatency, CBR-ish at the bitrate, keyframe every 60
# frames (2 s), 4:2:0; AAC-LC 128 kbit/s 44.1 kHz stereo; live FLV to RTMP. -nostdin: runs in the background / in CI.
exec ffmpeg -nostdin -hide_banner -loglevel warning \
  "${inputs[@]}" \
  -filter_complex "${filter}" \
  -map '[vout]' -map '[aout]' \
  -c:v libx264 -preset veryfast -tune zerolatency -b:v "${kbps}k" -maxrate "${kbps}k" -bufsize "${kbps}k" \
  -g 60 -keyint_min 60 -pix_fmt yuv420p -r 30 \
  -colorspace bt709 -color_primaries bt709 -color_trc bt709 -color_range tv \
  -c:a aac -b:a 128k -ar 44100 -ac 2 \
  -f flv -flvflags no_duration_filesize "${out}"
