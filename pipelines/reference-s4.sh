#!/usr/bin/env bash
# Reference implementation of the standard 4-input scene ("S4") as one plain gst-launch-1.0 pipeline: the baseline
# Tessera's CPU use and latency are compared with in benchmarks.
#
#   pipelines/reference-s4.sh RTMP_BASE OUT_URL
#   e.g. pipelines/reference-s4.sh rtmp://127.0.0.1:1935 rtmp://127.0.0.1:1935/mix/ref
#
# Inputs RTMP_BASE/live/{a,b,c,d} (H.264 + AAC in FLV). Scene on a 1280x720@30 canvas:
#   a  full frame (0,0 1280x720), zorder 1, volume 1.0
#   b  320x180 at (940,520), zorder 2, volume 0.5     x = 1280 - 340*k, y = 520, k = 1..3:
#   c  320x180 at (600,520), zorder 3, volume 0.25    a row of insets along the bottom right,
#   d  320x180 at (260,520), zorder 4, volume 0.1     20 px from the bottom edge and from each other
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
base=${1%/} out=$2

# Compositor pads: sink_0 is the background; sink_1..4 are a..d. The compositor scales each pad to the pad's
# width/height itself (no separate videoscale). Audio mixer pads sink_1..4 are a..d.
# shellcheck disable=SC2054 # the commas belong to GStreamer caps, not to the array
pipeline=(
  compositor name=comp
    sink_0::zorder=0
    sink_1::xpos=0 sink_1::ypos=0 sink_1::width=1280 sink_1::height=720 sink_1::zorder=1
    sink_2::xpos=940 sink_2::ypos=520 sink_2::width=320 sink_2::height=180 sink_2::zorder=2
    sink_3::xpos=600 sink_3::ypos=520 sink_3::width=320 sink_3::height=180 sink_3::zorder=3
    sink_4::xpos=260 sink_4::ypos=520 sink_4::width=320 sink_4::height=180 sink_4::zorder=4
  # I420 out of the compositor: it blends straight into the encoder's format (no alpha format, no extra
  # conversion), and x264enc gets 4:2:0 (left to negotiate, it would pick High 4:4:4).
  ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1
  ! x264enc speed-preset=veryfast tune=zerolatency bitrate=2500 key-int-max=60
  ! h264parse ! queue ! mux.video

  audiomixer name=amix
    sink_1::volume=1.0 sink_2::volume=0.5 sink_3::volume=0.25 sink_4::volume=0.1
  ! audioconvert ! audioresample ! audio/x-raw,rate=44100,channels=2
  ! avenc_aac bitrate=128000 ! aacparse ! queue ! mux.audio

  # streamable: live FLV (no header rewrite, no index).
  flvmux name=mux streamable=true ! rtmp2sink "location=${out}"

  # Background: a solid #202040 layer (compositor's own background property has no arbitrary colour). Not live,
  # like the RTMP inputs: the non-live compositor paces it to them.
  videotestsrc pattern=solid-color foreground-color=0xff202040
  ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 ! comp.sink_0
)

# One input: pull, demux, decode the video into compositor pad N and the audio into mixer pad N.
for entry in a:1 b:2 c:3 d:4; do
  id=${entry%:*} pad=${entry#*:}
  pipeline+=(
    rtmp2src "location=${base}/live/${id}" ! flvdemux "name=demux_${id}"
    "demux_${id}.video" ! queue ! h264parse ! avdec_h264 ! videoconvert ! queue ! "comp.sink_${pad}"
    "demux_${id}.audio" ! queue ! aacparse ! avdec_aac ! audioconvert ! audioresample ! queue ! "amix.sink_${pad}"
  )
done

exec gst-launch-1.0 -q "${pipeline[@]}"
