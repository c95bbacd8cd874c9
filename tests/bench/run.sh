#!/usr/bin/env bash
# The fan-out benchmark: wspush beside nchan, Socket.IO and a bare C floor
# server, in one run (bench.py says what it measures).
#
#   tests/bench/run.sh BUILD_DIR            full run, ~40 min (make bench):
#                                           history and RabbitMQ benches,
#                                           the main table (bench-table.md),
#                                           100k connections (bench-c100k.md)
#   tests/bench/run.sh BUILD_DIR --smoke    200 connections, wspush only, a
#                                           few seconds; non-zero on any loss
#   extra options go to bench.py: --servers nchan,floor --keep --json F ...
#   with --scenarios (a run of chosen scenarios, e.g. --scenarios c100k
#   --workers 6 --nginx-workers 6) only bench.py runs: the history and
#   RabbitMQ comparisons (bench_history.py, bench_amqp.py) are left out.
#
# The C tools come from BUILD_DIR/tests/bench when CMake built them there,
# otherwise they are compiled here with gcc. The Socket.IO peer's packages
# are installed with `npm ci` from the committed package-lock.json.
set -euo pipefail

if [ $# -lt 1 ]; then
	echo "usage: $0 BUILD_DIR [--smoke] [bench.py options]" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
build=$(cd "$1" && pwd)
shift

smoke=0
servers=""
scenarios=0
prev=""
for a in "$@"; do
	[ "$a" = "--smoke" ] && smoke=1
	[ "$prev" = "--servers" ] && servers=$a
	case "$a" in --scenarios | --scenarios=*) scenarios=1 ;; esac
	prev=$a
done

bindir="$build/tests/bench"
if [ ! -x "$bindir/wsb_client" ] || [ ! -x "$bindir/wsb_pub" ] ||
	[ ! -x "$bindir/wsb_floor" ]; then
	bindir="$build/bench-bin"
	mkdir -p "$bindir"
	cflags=(-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow
		-Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
		-Wno-unused-parameter)
	for t in wsb_client wsb_pub wsb_floor; do
		if [ ! -x "$bindir/$t" ] || [ "$here/$t.c" -nt "$bindir/$t" ] ||
			[ "$here/wsb_common.h" -nt "$bindir/$t" ]; then
			libs=()
			[ "$t" = wsb_client ] || libs=(-lhiredis)
			gcc "${cflags[@]}" -o "$bindir/$t" "$here/$t.c" "${libs[@]}"
		fi
	done
fi

# Socket.IO is needed unless this run leaves it out.
need_node=1
if [ $smoke -eq 1 ] && [ -z "$servers" ]; then
	need_node=0
elif [ -n "$servers" ] && [[ ",$servers," != *,sio,* ]]; then
	need_node=0
fi
if [ $need_node -eq 1 ]; then
	if [ ! -f "$here/node_modules/.package-lock.json" ] ||
		[ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
		(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
	fi
fi

extra=()
if [ $smoke -eq 0 ]; then
	extra=(--json "$build/bench-results.json" --md "$build/bench-table.md")
fi
others=1
[ $smoke -eq 0 ] && [ $scenarios -eq 0 ] || others=0
[ $others -eq 0 ] || /usr/bin/python3 "$here/bench_history.py" "$build" --bin-dir "$bindir" --json "$build/bench-history.json" --parts "publish,storm$([ $need_node -eq 1 ] && echo ,sio-storm)" || echo "run.sh: bench_history.py failed (see above)" >&2
[ $others -eq 0 ] || /usr/bin/python3 "$here/bench_amqp.py" "$build" --bin-dir "$bindir" --budget-s 300 --json "$build/bench-amqp.json" --md "$build/bench-amqp.md" || echo "bench: the RabbitMQ comparison (bench_amqp.py) failed" >&2
rc=0
/usr/bin/python3 "$here/bench.py" "$build" --bin-dir "$bindir" \
	"${extra[@]}" "$@" || rc=$?
# 100,000 connections on one node: six workers (and six nginx workers for
# nchan) for the 20,000-descriptor limit per process; its own table.
if [ $others -eq 1 ]; then
	/usr/bin/python3 "$here/bench.py" "$build" --bin-dir "$bindir" \
		--servers wspush,nchan --scenarios c100k --workers 6 \
		--nginx-workers 6 --json "$build/bench-c100k.json" \
		--md "$build/bench-c100k.md" || rc=$?
fi
exit $rc
