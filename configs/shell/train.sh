#!/bin/sh
# A training "program" in plain POSIX shell + awk: no Python, no sweepq library.
# It receives `--width=W --depth=D` and reports metrics by printing lines of the form
#   @sweepq {"score": 0.42}
# (the documented line protocol; anything else on stdout is ordinary output).
width=1; depth=1
for arg in "$@"; do
  case "$arg" in
    --width=*) width="${arg#--width=}" ;;
    --depth=*) depth="${arg#--depth=}" ;;
  esac
done
echo "training a ${width}x${depth} model"
for epoch in 1 2 3 4; do
  score=$(awk -v w="$width" -v d="$depth" -v e="$epoch" \
    'BEGIN { printf "%.6f", 1 - 1/(1 + w*d*e/64) - ((w-48)^2 + (d-6)^2*40)/20000 }')
  echo "@sweepq {\"score\": $score, \"epoch\": $epoch}"
done
