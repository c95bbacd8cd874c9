#!/bin/sh
# Runs every libFuzzer target of BUILD_DIR (built with -DWSP_FUZZ=ON, `make
# fuzz-build`) for SECONDS each, growing its corpus under
# tests/fuzz/corpus/<name>/ in place and then minimising it (libFuzzer's
# -merge=1: the fewest inputs with the same coverage). Commit the result;
# `make test` replays it. A crash, leak or timeout leaves its input in
# BUILD_DIR/fuzz-artifacts/ and fails the run: turn it into a corpus file
# (the regression test) once it is fixed.
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS] [NAME...]
set -eu

build=${1:?usage: tests/fuzz/run.sh BUILD_DIR [SECONDS] [NAME...]}
secs=${2:-60}
[ $# -ge 2 ] && shift 2 || shift $#
here=$(cd "$(dirname "$0")" && pwd)
arts=$build/fuzz-artifacts
mkdir -p "$arts"

if [ $# -eq 0 ]; then
	set --
	for src in "$here"/fuzz_*.c; do
		n=$(basename "$src" .c)
		set -- "$@" "${n#fuzz_}"
	done
fi

failed=""
for name in "$@"; do
	bin=$build/tests/fuzz/fuzz_$name
	corpus=$here/corpus/$name
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin missing (make fuzz-build)" >&2
		exit 1
	fi
	mkdir -p "$corpus"
	before=$(ls "$corpus" | wc -l)
	dict=""
	[ -f "$here/$name.dict" ] && dict="-dict=$here/$name.dict"
	echo "fuzz: $name for ${secs}s ($before inputs)"
	# shellcheck disable=SC2086 # $dict is one word or none
	if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="$arts/$name-" $dict \
	    "$corpus" >"$arts/$name.log" 2>&1; then
		failed="$failed $name"
		tail -n 30 "$arts/$name.log" >&2
	fi
	# Keep the committed corpus small: the smallest set of inputs with
	# the same coverage (libFuzzer's merge), replacing the grown one.
	min=$(mktemp -d)
	if "$bin" -merge=1 "$min" "$corpus" >"$arts/$name.merge.log" 2>&1; then
		find "$corpus" -type f -delete
		find "$min" -type f -exec mv {} "$corpus"/ \;
	fi
	rm -rf "$min"
	echo "fuzz: $name: $(ls "$corpus" | wc -l) inputs" \
	    "($(grep -h '^stat::number_of_executed_units' "$arts/$name.log" |
	    awk '{print $2}') runs)"
done
if [ -n "$failed" ]; then
	echo "fuzz: FAILED:$failed (inputs in $arts/)" >&2
	exit 1
fi
echo "fuzz: all targets ran clean; commit the new corpus files"
