#!/usr/bin/env bash
# Reference relay done by ffmpeg, for comparison with reference-relay.sh: one RTMP input copied (no re-encoding) to
# K RTMP outputs through the tee muxer.
#
#   pipelines/reference-relay-ffmpeg.sh IN_URL OUT_URL...
#   e.g. pipelines/reference-relay-ffmpeg.sh rtmp://127.0.0.1:1935/live/a \
#          rtmp://127.0.0.1:1935/mix/r1 rtmp://127.0.0.1:1935/mix/r2
#
# Known behaviour: no reconnect. An output that fails is dropped (onfail=ignore) and the others go on; ffmpeg exits
# when the input ends.
set -euo pipefail

if (($# < 2)); then
  echo "usage: $0 IN_URL OUT_URL...   (e.g. rtmp://127.0.0.1:1935/live/a rtmp://127.0.0.1:1935/mix/r1)" >&2
  exit 2
fi
in=$1
shift

# tee muxer slaves: "[options]url" joined by "|". f=flv: each slave is FLV (tee has no format of its own).
# flvflags=no_duration_filesize: live FLV, no seek back to patch the header at the end (RTMP cannot seek).
# onfail=ignore: one failed output does not stop the others. The tee syntax reserves | [ ] (and \ as its escape)
# in a URL: refuse those instead of escaping them.
slaves=
for url in "$@"; do
  case "$url" in
    *'|'* | *'['* | *']'* | *\\*)
      echo "$0: OUT_URL must not contain | [ ] or \\ (tee muxer syntax), got '$url'" >&2
      exit 2
      ;;
  esac
  slaves+="${slaves:+|}[f=flv:flvflags=no_duration_filesize:onfail=ignore]${url}"
done

# -fflags nobuffer: do not buffer input packets beyond what probing needs (lower latency).
# -map 0 -c copy: every stream of the input, as it is. -nostdin: runs in the background / in CI.
# -copytb 1: keep the demuxer's time base (FLV's 1 ms) on the copied streams. Left to itself, ffmpeg gives a
#   tee output's video the frame rate's time base (1/30 s; a plain -f flv output would keep 1 ms): every jittery
#   or bunched-up timestamp then collides, ffmpeg warns "Non-monotonous DTS" for each packet and shifts the video
#   timestamps further and further ahead of the audio.
exec ffmpeg -nostdin -hide_banner -loglevel warning \
  -fflags nobuffer -i "${in}" \
  -map 0 -c copy -copytb 1 \
  -f tee "${slaves}"
