#!/usr/bin/env bash
# Checks deploy/systemd/*.service with `systemd-analyze verify`.
#
#   deploy/systemd/verify.sh BUILD_DIR
#   deploy/systemd/verify.sh BRIDGE_BINARY GATEWAY_BINARY
#
# The units are copied to a temp dir with ExecStart pointed at the built
# binaries (verify fails when an ExecStart binary is missing). verify exits
# 0 even for unknown keys and unparsable values, which it only prints as
# warnings (systemd 252 behaves so), so ANY output on stderr fails too.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 1 ]; then
	bridge="$1/bridge/wspush-bridge"
	gateway="$1/gateway/wspush-gateway"
elif [ $# -eq 2 ]; then
	bridge=$1
	gateway=$2
else
	echo "usage: $0 BUILD_DIR | BRIDGE_BINARY GATEWAY_BINARY" >&2
	exit 2
fi
for b in "$bridge" "$gateway"; do
	if [ ! -x "$b" ]; then
		echo "verify: $b: not an executable (build it first)" >&2
		exit 1
	fi
done
bridge=$(cd "$(dirname "$bridge")" && pwd)/$(basename "$bridge")
gateway=$(cd "$(dirname "$gateway")" && pwd)/$(basename "$gateway")
if ! command -v systemd-analyze >/dev/null; then
	echo "verify: systemd-analyze not found (apt-get install systemd)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wspush-units.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Replace only the binary path of ExecStart; keep the arguments.
sed "s|^ExecStart=/usr/local/bin/wspush-bridge|ExecStart=$bridge|" \
	"$here/wspush-bridge.service" >"$tmp/wspush-bridge.service"
sed "s|^ExecStart=/usr/local/bin/wspush-gateway|ExecStart=$gateway|" \
	"$here/wspush-gateway.service" >"$tmp/wspush-gateway.service"
for u in bridge gateway; do
	if ! grep -q "^ExecStart=/" "$tmp/wspush-$u.service" ||
		grep -q "^ExecStart=/usr/local/bin/" "$tmp/wspush-$u.service"; then
		echo "verify: could not rewrite ExecStart of wspush-$u.service" >&2
		exit 1
	fi
done

rc=0
# SYSTEMD_LOG_LEVEL=notice would hide warnings: keep the default (info).
( cd "$tmp" && systemd-analyze verify --man=no \
	"$tmp/wspush-bridge.service" "$tmp/wspush-gateway.service" ) \
	>"$tmp/out" 2>"$tmp/err" || rc=$?
cat "$tmp/out"
if [ "$rc" -ne 0 ] || [ -s "$tmp/err" ]; then
	echo "verify: systemd-analyze verify failed (exit $rc); stderr:" >&2
	cat "$tmp/err" >&2
	exit 1
fi
echo "verify: wspush-bridge.service and wspush-gateway.service are clean"
