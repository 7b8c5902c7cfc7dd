#!/usr/bin/env bash
# The floor under any mix scene: the work every mixer must do whatever it does, as one plain gst-launch-1.0
# pipeline. Every input is pulled and decoded (picture and sound), and the first input alone (the host, the lowest
# layer) is encoded and published, at the canvas size, with the output's settings. Nothing is composited or mixed,
# and no inset is scaled. What a contender costs above this is what its mixing costs (benches/README.md).
#
#   pipelines/floor-mix.sh RTMP_BASE OUT_URL CANVAS BACKGROUND INPUT...
#     the arguments of reference-mix.sh (reference-mix-args.sh); BACKGROUND, rects other than the host's size,
#     volumes and crops are read and not used.
#
# Output: H.264 (x264 veryfast, zerolatency, 2500 kbit/s or $REF_VIDEO_KBPS, keyframe every 2 s) + AAC-LC 128 kbit/s
# 44.1 kHz stereo in FLV, published to OUT_URL: the host's picture and sound only.
set -euo pipefail

here=$(dirname "$0")
# shellcheck source=reference-mix-args.sh
. "$here/reference-mix-args.sh"
parse_mix_args "$0" rtmp://127.0.0.1:1935/mix/floor "$@"

kbps=${REF_VIDEO_KBPS:-2500}
if [[ ! "$kbps" =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: REF_VIDEO_KBPS must be a positive integer (kbit/s), got '$kbps'" >&2
  exit 2
fi
if ((canvas_h > 576)); then colorimetry=bt709; else colorimetry=bt601; fi
size="width=${canvas_w},height=${canvas_h},colorimetry=${colorimetry},chroma-site=mpeg2"

# shellcheck disable=SC2054 # the commas belong to GStreamer caps, not to the array
pipeline=(
  rtmp2src "location=${base}/live/${in_stream[0]}" ! flvdemux name=demux_0
  # The host at the canvas size: videoscale passes it through when it already is (S4's 720p host).
  demux_0.video ! queue ! h264parse ! avdec_h264 ! videoconvert ! videoscale
  ! "video/x-raw,format=I420,${size}"
  ! x264enc speed-preset=veryfast tune=zerolatency "bitrate=${kbps}" key-int-max=60
  ! h264parse ! queue ! mux.video
  demux_0.audio ! queue ! aacparse ! avdec_aac ! audioconvert ! audioresample ! audio/x-raw,rate=44100,channels=2
  ! avenc_aac bitrate=128000 ! aacparse ! queue ! mux.audio
  flvmux name=mux streamable=true ! rtmp2sink "location=${out}"
)

# Every other input: decoded, then dropped.
for ((i = 1; i < n; i++)); do
  pipeline+=(
    rtmp2src "location=${base}/live/${in_stream[i]}" ! flvdemux "name=demux_${i}"
    "demux_${i}.video" ! queue ! h264parse ! avdec_h264 ! fakesink sync=false
    "demux_${i}.audio" ! queue ! aacparse ! avdec_aac ! fakesink sync=false
  )
done

exec gst-launch-1.0 -q "${pipeline[@]}"
