# Argument parsing shared by reference-mix.sh and reference-mix-ffmpeg.sh (sourced, not run), so that both
# references accept exactly the same scene description.
#
#   RTMP_BASE OUT_URL CANVAS BACKGROUND INPUT...
#
#   RTMP_BASE   e.g. rtmp://127.0.0.1:1935; input STREAM is pulled from RTMP_BASE/live/STREAM
#   OUT_URL     e.g. rtmp://127.0.0.1:1935/mix/ref
#   CANVAS      WxH, even numbers (4:2:0 output); always 30 fps
#   BACKGROUND  RRGGBB (a leading # or 0x is accepted)
#   INPUT       STREAM:X,Y,W,H:VOLUME[:CX,CY,CW,CH[,SW,SH]]
#     STREAM      stream name (letters, digits, . _ ~ -); the same name may be given several times (one pull each)
#     X,Y,W,H     the input's rect on the canvas; the picture is stretched to W x H
#     VOLUME      0..100 (%), the input's audio level in the mix (100 = unchanged)
#     CX,CY,CW,CH crop of the source picture in source pixels, applied before scaling to W x H
#     SW,SH       optional source picture size: only checks that the crop fits (neither reference needs it)
#   Input order is z-order: the first input is the lowest layer, just above the background. 1 to 16 inputs
#   (Tessera's limit per mix).
#
# Sets: base out canvas_w canvas_h bg (rrggbb, lower case) n, and per input i = 0..n-1: in_stream[i]
# in_x[i] in_y[i] in_w[i] in_h[i] in_vol[i] (gain as a decimal, e.g. 0.25) in_crop[i] ("CX CY CW CH" or empty).
# On bad arguments: prints the usage (and what was wrong) and exits 2.
# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts that source this file

mix_usage() {
  local prog=$1 example_out=$2
  cat >&2 <<EOF
usage: $prog RTMP_BASE OUT_URL CANVAS BACKGROUND INPUT...
  CANVAS      WxH (30 fps), e.g. 1280x720
  BACKGROUND  RRGGBB, e.g. 101010
  INPUT       STREAM:X,Y,W,H:VOLUME[:CX,CY,CW,CH[,SW,SH]]   (1 to 16; first = lowest layer)
e.g. $prog rtmp://127.0.0.1:1935 $example_out 1280x720 101010 \\
       a:0,0,1280,720:100 b:940,520,320,180:50 d:260,520,320,180:10:160,90,320,180
EOF
  exit 2
}

# parse_mix_args PROG EXAMPLE_OUT_URL ARG...
parse_mix_args() {
  local prog=$1 example_out=$2
  shift 2
  if (($# < 5)); then
    mix_usage "$prog" "$example_out"
  fi
  if (($# > 20)); then
    echo "$prog: at most 16 inputs, got $(($# - 4))" >&2
    mix_usage "$prog" "$example_out"
  fi
  base=${1%/} out=$2
  local canvas=$3 color=$4
  shift 4

  if [[ ! "$canvas" =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] ||
    ((BASH_REMATCH[1] % 2 || BASH_REMATCH[2] % 2)); then
    echo "$prog: CANVAS must be WxH with even W and H (4:2:0 output), got '$canvas'" >&2
    mix_usage "$prog" "$example_out"
  fi
  canvas_w=${BASH_REMATCH[1]} canvas_h=${BASH_REMATCH[2]}

  bg=${color#\#}
  bg=${bg#0x}
  if [[ ! "$bg" =~ ^[0-9a-fA-F]{6}$ ]]; then
    echo "$prog: BACKGROUND must be RRGGBB, got '$color'" >&2
    mix_usage "$prog" "$example_out"
  fi
  bg=${bg,,}

  in_stream=() in_x=() in_y=() in_w=() in_h=() in_vol=() in_crop=()
  n=0
  local arg num='(0|[1-9][0-9]*)' pos='([1-9][0-9]*)' vol
  # STREAM : X,Y,W,H : VOLUME [ : CX,CY,CW,CH [ ,SW,SH ] ]. X and Y may be negative (partly off the canvas).
  local re="^([A-Za-z0-9._~-]+):(-?$num),(-?$num),$pos,$pos:$num(:$num,$num,$pos,$pos(,$pos,$pos)?)?\$"
  for arg in "$@"; do
    if [[ ! "$arg" =~ $re ]]; then
      echo "$prog: bad INPUT '$arg' (want STREAM:X,Y,W,H:VOLUME or STREAM:X,Y,W,H:VOLUME:CX,CY,CW,CH[,SW,SH])" >&2
      mix_usage "$prog" "$example_out"
    fi
    # Groups: 1 stream, 2 x (3 its digits), 4 y (5), 6 w, 7 h, 8 volume, 9 crop part, 10-13 crop,
    # 14 source size part, 15-16 source size.
    vol=${BASH_REMATCH[8]}
    if ((vol > 100)); then
      echo "$prog: VOLUME must be 0..100, got $vol in '$arg'" >&2
      mix_usage "$prog" "$example_out"
    fi
    if [[ -n "${BASH_REMATCH[14]}" ]] &&
      ((BASH_REMATCH[10] + BASH_REMATCH[12] > BASH_REMATCH[15] ||
        BASH_REMATCH[11] + BASH_REMATCH[13] > BASH_REMATCH[16])); then
      echo "$prog: crop does not fit the ${BASH_REMATCH[15]}x${BASH_REMATCH[16]} source in '$arg'" >&2
      mix_usage "$prog" "$example_out"
    fi
    in_stream[n]=${BASH_REMATCH[1]}
    in_x[n]=${BASH_REMATCH[2]} in_y[n]=${BASH_REMATCH[4]} in_w[n]=${BASH_REMATCH[6]} in_h[n]=${BASH_REMATCH[7]}
    # Percent to gain without floating point: 50 -> 0.50, 100 -> 1.00.
    in_vol[n]=$(printf '%d.%02d' $((vol / 100)) $((vol % 100)))
    in_crop[n]=
    if [[ -n "${BASH_REMATCH[9]}" ]]; then
      in_crop[n]="${BASH_REMATCH[10]} ${BASH_REMATCH[11]} ${BASH_REMATCH[12]} ${BASH_REMATCH[13]}"
    fi
    n=$((n + 1))
  done
}
