#!/usr/bin/env bash
# Reference implementation of any mix scene (1 to 16 inputs) as one plain gst-launch-1.0 pipeline: the baseline
# Tessera's CPU use and latency are compared with in benchmarks. reference-mix-ffmpeg.sh does the same job with ffmpeg.
#
#   pipelines/reference-mix.sh RTMP_BASE OUT_URL CANVAS BACKGROUND INPUT...
#     CANVAS      WxH (even), 30 fps
#     BACKGROUND  RRGGBB
#     INPUT       STREAM:X,Y,W,H:VOLUME[:CX,CY,CW,CH[,SW,SH]]
#                 pulled from RTMP_BASE/live/STREAM (H.264 + AAC in FLV), drawn stretched into the rect X,Y,W,H;
#                 VOLUME 0..100 %; optional crop of the source picture in source pixels (SW,SH, the source size,
#                 is optional and only checked); input order is z-order (first = lowest, above the background)
#   e.g. pipelines/reference-mix.sh rtmp://127.0.0.1:1935 rtmp://127.0.0.1:1935/mix/ref 1280x720 101010 \
#          a:0,0,1280,720:100 b:940,520,320,180:50 d:260,520,320,180:10:160,90,320,180
#
# Output: H.264 (x264 veryfast, zerolatency, 2500 kbit/s or $REF_VIDEO_KBPS, keyframe every 2 s) + AAC-LC 128 kbit/s
# 44.1 kHz stereo in FLV, published to OUT_URL.
#
# Known limits of this plain pipeline: rtmp2src is not a live source, so the compositor and mixer run non-live,
# wait for every input forever (one dead input stalls the output) and align each input by its own first frame
# (inputs may be skewed by up to a GOP).
set -euo pipefail

here=$(dirname "$0")
# shellcheck source=reference-mix-args.sh
. "$here/reference-mix-args.sh"
parse_mix_args "$0" rtmp://127.0.0.1:1935/mix/ref "$@"

# Video bitrate in kbit/s: 2500 like the S4 scene; a bigger canvas may be given more.
kbps=${REF_VIDEO_KBPS:-2500}
if [[ ! "$kbps" =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: REF_VIDEO_KBPS must be a positive integer (kbit/s), got '$kbps'" >&2
  exit 2
fi

size="width=${canvas_w},height=${canvas_h}"
# The canvas' colorimetry, as Tessera picks it: BT.709 above 576 lines, BT.601 below, MPEG-2 chroma siting. Left
# open, the compositor adopts one of its inputs' tags; when it takes the 360p insets' BT.601, it converts the 720p
# BT.709 host every frame (0.18 cores in an S4-like gst-launch pipeline). Layers tagged like the canvas are blended
# as they are.
if ((canvas_h > 576)); then colorimetry=bt709; else colorimetry=bt601; fi
size+=",colorimetry=${colorimetry},chroma-site=mpeg2"

# Compositor pads: sink_0 is the background; sink_1..N are the inputs in order, zorder = pad number, so the
# argument order is the stacking order. The compositor scales each pad to the pad's width/height itself (no separate
# videoscale). Audio mixer pads sink_1..N are the same inputs.
comp=(compositor name=comp sink_0::zorder=0)
amix=(audiomixer name=amix)
for ((i = 0; i < n; i++)); do
  pad=$((i + 1))
  comp+=(
    "sink_${pad}::xpos=${in_x[i]}" "sink_${pad}::ypos=${in_y[i]}"
    "sink_${pad}::width=${in_w[i]}" "sink_${pad}::height=${in_h[i]}" "sink_${pad}::zorder=${pad}"
  )
  amix+=("sink_${pad}::volume=${in_vol[i]}")
done

# shellcheck disable=SC2054 # the commas belong to GStreamer caps, not to the array
pipeline=(
  "${comp[@]}"
  # I420 out of the compositor: it blends straight into the encoder's format (no alpha format, no extra
  # conversion), and x264enc gets 4:2:0 (left to negotiate, it would pick High 4:4:4).
  ! "video/x-raw,format=I420,${size},framerate=30/1"
  ! x264enc speed-preset=veryfast tune=zerolatency "bitrate=${kbps}" key-int-max=60
  ! h264parse ! queue ! mux.video

  "${amix[@]}"
  ! audioconvert ! audioresample ! audio/x-raw,rate=44100,channels=2
  ! avenc_aac bitrate=128000 ! aacparse ! queue ! mux.audio

  # streamable: live FLV (no header rewrite, no index).
  flvmux name=mux streamable=true ! rtmp2sink "location=${out}"

  # Background: a solid colour layer (compositor's own background property has no arbitrary colour). Not live,
  # like the RTMP inputs: the non-live compositor paces it to them.
  videotestsrc pattern=solid-color "foreground-color=0xff${bg}"
  ! "video/x-raw,format=I420,${size},framerate=30/1" ! comp.sink_0
)

# One input: pull, demux, decode the video into compositor pad N and the audio into mixer pad N. Elements are
# named by pad number, not by stream name: the same stream may be pulled more than once.
for ((i = 0; i < n; i++)); do
  pad=$((i + 1))
  crop=()
  if [[ -n "${in_crop[i]}" ]]; then
    read -r cx cy cw ch <<<"${in_crop[i]}"
    # right/bottom -1: videocrop works them out from the source size and the cropped size the caps filter asks
    # for (right = source width - left - CW), so the script needs not know the source size.
    crop=(
      ! videocrop "left=${cx}" "top=${cy}" right=-1 bottom=-1 ! "video/x-raw,width=${cw},height=${ch}"
    )
  fi
  pipeline+=(
    rtmp2src "location=${base}/live/${in_stream[i]}" ! flvdemux "name=demux_${pad}"
    "demux_${pad}.video" ! queue ! h264parse ! avdec_h264 "${crop[@]}" ! videoconvert ! queue ! "comp.sink_${pad}"
    "demux_${pad}.audio" ! queue ! aacparse ! avdec_aac ! audioconvert ! audioresample ! queue ! "amix.sink_${pad}"
  )
done

exec gst-launch-1.0 -q "${pipeline[@]}"
