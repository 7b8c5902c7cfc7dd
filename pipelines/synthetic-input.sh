#!/usr/bin/env bash
# Publishes a synthetic live input to an RTMP URL: a solid colour picture and a sine tone, until killed.
#
#   pipelines/synthetic-input.sh COLOR FREQ URL [WIDTH HEIGHT]
#
#   COLOR   red | green | blue | yellow | white | black | magenta | cyan, or RRGGBB / 0xRRGGBB / #RRGGBB
#   FREQ    tone frequency in Hz (e.g. 440)
#   URL     e.g. rtmp://127.0.0.1:1935/live/a
#   WIDTH HEIGHT   picture size, 640x360 by default
#
# A solid colour and a pure tone make an input recognisable in a mix: its region's pixel colour and its frequency
# in the mixed audio can be measured.
set -euo pipefail

if (($# != 3 && $# != 5)); then
  echo "usage: $0 COLOR FREQ URL [WIDTH HEIGHT]" >&2
  exit 2
fi
color=$1 freq=$2 url=$3 width=${4:-640} height=${5:-360}

case "${color,,}" in
  red) rgb=ff0000 ;;
  green) rgb=00ff00 ;;
  blue) rgb=0000ff ;;
  yellow) rgb=ffff00 ;;
  white) rgb=ffffff ;;
  black) rgb=000000 ;;
  magenta) rgb=ff00ff ;;
  cyan) rgb=00ffff ;;
  *)
    rgb=${color#\#}
    rgb=${rgb#0x}
    if [[ ! "$rgb" =~ ^[0-9a-fA-F]{6}$ ]]; then
      echo "$0: colour must be a name or RRGGBB, got '$color'" >&2
      exit 2
    fi
    ;;
esac

# videotestsrc is-live=true: frames are produced at the clock's pace (30 fps in real time), like a camera, not as
#   fast as the CPU allows. pattern=solid-color + foreground-color=0xAARRGGBB (opaque alpha) gives one flat colour.
# video/x-raw,...,framerate=30/1: the input size and rate.
# videoconvert ! format=I420: x264enc would otherwise negotiate High 4:4:4 (Y444) from videotestsrc's output,
#   which players and hardware decoders often refuse; I420 gives the usual High/Main 4:2:0 profile.
# x264enc tune=zerolatency: no B-frames, no lookahead, no frame-threading delay: each frame leaves at once.
#   speed-preset=ultrafast: the cheapest encode (several of these run beside the mixer on a 2-core machine).
#   key-int-max=30: a keyframe every second at 30 fps, so a player joining the stream (Tessera's input reconnecting)
#   can start decoding within a second. bitrate=800 (kbit/s): plenty for a flat picture.
# audiotestsrc is-live=true wave=sine freq=FREQ volume=0.1: a quiet live tone (0.1 leaves headroom when mixed).
# audio 44100 Hz stereo: the rate FLV's audio header can express.
# avenc_aac: FFmpeg's AAC-LC encoder (no fdk/faac in Debian's GStreamer); 128 kbit/s.
# flvmux streamable=true: live FLV, no seek back to patch the header and no index (RTMP cannot seek).
# rtmp2sink: publishes to the RTMP URL. The queues decouple the capture threads from the encoders and the muxer.
exec gst-launch-1.0 -q \
  videotestsrc is-live=true pattern=solid-color "foreground-color=0xff${rgb}" \
  ! "video/x-raw,width=${width},height=${height},framerate=30/1" \
  ! videoconvert ! video/x-raw,format=I420 \
  ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=800 \
  ! h264parse ! queue ! mux.video \
  audiotestsrc is-live=true wave=sine "freq=${freq}" volume=0.1 \
  ! audioconvert ! audioresample ! audio/x-raw,rate=44100,channels=2 \
  ! avenc_aac bitrate=128000 ! aacparse ! queue ! mux.audio \
  flvmux name=mux streamable=true ! rtmp2sink "location=${url}"
