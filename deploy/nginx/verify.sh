#!/usr/bin/env bash
# Checks deploy/nginx/wspush.conf with `nginx -t`, inside a minimal main
# config in a temp prefix (no root, nothing of the system's nginx touched).
#   deploy/nginx/verify.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
if [ ! -x "$nginx" ]; then
	echo "verify: nginx not found (apt-get install nginx)" >&2
	exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wspush-nginx.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/logs" "$tmp/conf.d"

# Same file, only the log path moved into the temp prefix; the listen port
# is not bound by -t.
sed "s|access_log /var/log/nginx/wspush.access.log|access_log $tmp/logs/wspush.access.log|" \
	"$here/wspush.conf" >"$tmp/conf.d/wspush.conf"
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log;
events { worker_connections 1024; }
http {
	client_body_temp_path $tmp/client_body;
	proxy_temp_path $tmp/proxy;
	fastcgi_temp_path $tmp/fastcgi;
	uwsgi_temp_path $tmp/uwsgi;
	scgi_temp_path $tmp/scgi;
	access_log $tmp/logs/access.log;
	include $tmp/conf.d/*.conf;
}
CONF

# The structure tests rely on (they sed these lines).
grep -c '^upstream wspush {$' "$here/wspush.conf" | grep -qx 1 ||
	{ echo "verify: need exactly one 'upstream wspush {' block" >&2; exit 1; }
grep -c '^[[:space:]]*listen 80;$' "$here/wspush.conf" | grep -qx 1 ||
	{ echo "verify: need exactly one 'listen 80;' line" >&2; exit 1; }
# shellcheck disable=SC2016 # literal $ in the pattern
if grep -v '^[[:space:]]*#' "$here/wspush.conf" |
	grep -Eq '\$(request|request_uri|args|query_string|arg_[a-z_]+)\b'; then
	echo "verify: the config logs or uses query strings" >&2
	exit 1
fi

"$nginx" -t -q -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/logs/error.log"
echo "verify: deploy/nginx/wspush.conf is valid"
