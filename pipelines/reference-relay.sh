#!/usr/bin/env bash
# Reference relay as one plain gst-launch-1.0 pipeline: one RTMP input pushed unchanged (no decoding, no
# re-encoding) to K RTMP outputs. The baseline for Tessera's relay / multi-output cost and latency.
#
#   pipelines/reference-relay.sh IN_URL OUT_URL...
#   e.g. pipelines/reference-relay.sh rtmp://127.0.0.1:1935/live/a \
#          rtmp://127.0.0.1:1935/mix/r1 rtmp://127.0.0.1:1935/mix/r2
#
# Known limits: no reconnect. If the input ends, the pipeline ends; if one output fails, rtmp2sink posts an error and
# gst-launch stops the whole relay (the other outputs too).
set -euo pipefail

if (($# < 2)); then
  echo "usage: $0 IN_URL OUT_URL...   (e.g. rtmp://127.0.0.1:1935/live/a rtmp://127.0.0.1:1935/mix/r1)" >&2
  exit 2
fi
in=$1
shift

# rtmp2src hands out the stream as FLV tags (video/x-flv), which is what rtmp2sink takes: the tags go through
# untouched (no flvdemux/flvmux needed). The tee gives every output its own copy; the queue gives every output its
# own thread, so a slow server on one output does not hold back the others (until that queue fills).
# rtmp2sink sync=false: rtmp2src stamps each tag with the publisher's stream time (minutes, if the publisher started
# before the relay), so a clock-synced sink would hold everything back for that long; the tags arrive at the
# stream's own pace from the network anyway, so each is sent on at once.
pipeline=(rtmp2src "location=${in}" ! tee name=t)
for url in "$@"; do
  pipeline+=(t. ! queue ! rtmp2sink "location=${url}" sync=false)
done

exec gst-launch-1.0 -q "${pipeline[@]}"
