#!/usr/bin/env bash
# A private wspush stack for development: what `make run` executes.
#
#   deploy/dev/run-stack.sh BUILD_DIR
#   BROKER=amqp deploy/dev/run-stack.sh BUILD_DIR   (make run BROKER=amqp)
#
# Starts a private redis-server (free loopback port, own temp dir, no
# persistence) - or with BROKER=amqp a private rabbitmq-server instead (see
# start_rabbit below) - wspush-bridge and wspush-gateway (workers = auto, auth.mode
# = none, demo page on, listening on 127.0.0.1:8080 or the first free port
# after it) from a config generated in a temp dir; waits until they are
# ready and prints the URLs and a redis-cli line to try. Ctrl-C (or SIGTERM)
# stops exactly the processes it started, by PID, and removes the temp dir.
#
# Environment: BROKER (redis or amqp, default redis), WSPUSH_WORKERS
# (default auto), WSPUSH_PORT (first port to try, default 8080),
# WSPUSH_LOG_LEVEL (default info).
set -euo pipefail

usage() { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
[ $# -eq 1 ] || usage
build=$1
bridge_bin=$build/bridge/wspush-bridge
gateway_bin=$build/gateway/wspush-gateway
for b in "$bridge_bin" "$gateway_bin"; do
	if [ ! -x "$b" ]; then
		echo "run-stack: $b not found; build first (make release)" >&2
		exit 1
	fi
done
broker=${BROKER:-redis}
# Debian's /usr/sbin/rabbitmq-* wrappers insist on running as root or the
# rabbitmq user; the real scripts here run as whoever we are.
rabbit_bin=/usr/lib/rabbitmq/bin
case $broker in
redis)
	redis_bin=$(command -v redis-server || true)
	redis_cli=$(command -v redis-cli || true)
	if [ -z "$redis_bin" ] || [ -z "$redis_cli" ]; then
		echo "run-stack: redis-server/redis-cli not found (apt-get install redis-server redis-tools)" >&2
		exit 1
	fi
	;;
amqp)
	if [ ! -x "$rabbit_bin/rabbitmq-server" ]; then
		echo "run-stack: $rabbit_bin/rabbitmq-server not found (apt-get install rabbitmq-server)" >&2
		exit 1
	fi
	;;
*)
	echo "run-stack: BROKER must be redis or amqp, not '$broker'" >&2
	exit 2
	;;
esac
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)

# First port >= $1 that can be bound on 127.0.0.1 (0: any free port).
free_port() {
	"$py" - "$1" <<'PY'
import socket, sys
start = int(sys.argv[1])
for p in ([0] if start == 0 else range(start, min(start + 200, 65536))):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        print(s.getsockname()[1])
        sys.exit(0)
    except OSError:
        pass
    finally:
        s.close()
sys.exit(1)
PY
}

# HTTP status of a GET (000 when nothing answers), bounded to 2 s.
http_status() {
	"$py" - "$1" <<'PY' 2>/dev/null || echo 000
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wspush-run.XXXXXX")
chmod 0700 "$tmp"
names=()
pids=()

# True while $1 runs (a zombie counts as gone; it is reaped here).
alive() {
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	if [ "$st" = Z ]; then
		wait "$1" 2>/dev/null || true
		return 1
	fi
	return 0
}

# Stops one started process: SIGTERM, wait up to $2 s, then SIGKILL.
stop_pid() {
	local pid=$1 secs=$2 i
	alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	echo "run-stack: pid $pid did not stop in ${secs}s; killing it" >&2
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleaned=0
cleanup() {
	local i
	[ "$cleaned" -eq 1 ] && return
	cleaned=1
	trap '' INT TERM
	# Reverse start order: gateway (drains its clients), bridge, broker.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		case ${names[$i]} in
		gateway) stop_pid "${pids[$i]}" 20 ;;
		# The foreground rabbitmq-server stops its Erlang VM cleanly on
		# SIGTERM, which takes a few seconds.
		rabbitmq) stop_pid "${pids[$i]}" 30 ;;
		*) stop_pid "${pids[$i]}" 10 ;;
		esac
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
# Ctrl-C is how a developer ends the stack: a clean stop, exit status 0
# (make would report a non-zero one as an error). SIGTERM from elsewhere
# keeps its usual status.
trap 'echo; echo "wspush: stopping" >&2; cleanup; echo "wspush: stopped" >&2; exit 0' INT
trap 'exit 143' TERM

# Starts "$@" in its own session (so the terminal's Ctrl-C reaches only
# this script, which then stops everything in order), logging to $tmp/$1.log.
start() {
	local name=$1
	shift
	setsid "$@" </dev/null >"$tmp/$name.log" 2>&1 &
	names+=("$name")
	pids+=("$!")
}

# Prints the end of a log and fails.
die_with_log() {
	echo "run-stack: $1" >&2
	if [ -f "$tmp/$2.log" ]; then
		echo "---- last lines of the $2 log ----" >&2
		tail -n 30 "$tmp/$2.log" >&2
	fi
	exit 1
}

# Waits (bounded) until "$2..." succeeds; $1 = name of the process to watch.
# The bound is wall-clock time: on a loaded machine each check (a python3
# start) can take far longer than the 0.1 s pause.
wait_for() {
	local name=$1 secs=$2 pid deadline
	shift 2
	pid=${pids[$((${#pids[@]} - 1))]}
	deadline=$((SECONDS + secs))
	while ((SECONDS < deadline)); do
		if "$@"; then
			return 0
		fi
		alive "$pid" || die_with_log "$name exited during startup" "$name"
		sleep 0.1
	done
	die_with_log "$name not ready after ${secs}s" "$name"
}

broker_port=$(free_port 0) || { echo "run-stack: no free port" >&2; exit 1; }
gw_port=$(free_port "${WSPUSH_PORT:-8080}") || { echo "run-stack: no free port from ${WSPUSH_PORT:-8080}" >&2; exit 1; }
metrics_port=$(free_port 9480) || { echo "run-stack: no free port from 9480" >&2; exit 1; }
mkdir -p "$tmp/run"
chmod 0750 "$tmp/run"

if [ "$broker" = amqp ]; then
	broker_conf="[broker]
kind = amqp

[amqp]
url = amqp://guest:guest@127.0.0.1:$broker_port/%2f"
else
	broker_conf="[redis]
url = redis://127.0.0.1:$broker_port
prefix = wspush"
fi

cat >"$tmp/wspush.conf" <<EOF
# Generated by deploy/dev/run-stack.sh for a private development stack.
[node]
id = dev
runtime_dir = $tmp/run
log_level = ${WSPUSH_LOG_LEVEL:-info}

$broker_conf

[gateway]
listen = 127.0.0.1:$gw_port
workers = ${WSPUSH_WORKERS:-auto}
demo_page = on
# Let the demo page send user to user as well as to channels.
client_publish = all

[auth]
# Development only: the user is ?user=<id>.
mode = none

[bridge]
metrics_listen = 127.0.0.1:$metrics_port
EOF

redis_ping() { [ "$("$redis_cli" -h 127.0.0.1 -p "$broker_port" ping 2>/dev/null)" = PONG ]; }
start_redis() {
	mkdir -p "$tmp/redis"
	start redis "$redis_bin" --bind 127.0.0.1 --port "$broker_port" \
		--dir "$tmp/redis" --save '' --appendonly no --daemonize no \
		--protected-mode yes --logfile ''
	wait_for redis 10 redis_ping
}

# A RabbitMQ node that shares nothing with any other on the machine: its
# own node name, AMQP and distribution ports on loopback, mnesia and log
# directories, and a HOME with its own Erlang cookie (rabbitmqctl run with
# the same environment agrees on it; ~/.erlang.cookie is never touched).
# No plugins (the management plugin doubles the start time). It runs in the
# foreground as our child, so it is stopped by its PID; epmd, shared by
# every Erlang node on the machine, is left running.
rabbit_dir=$tmp/rabbit
rabbit_node=wspushdev$$@localhost
# The AMQP port opens only once the node has booted; a protocol header is
# answered with connection.start (frame type 1).
rabbit_ready() {
	"$py" - "$broker_port" <<'PY' 2>/dev/null
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        d = s.recv(7)
        sys.exit(0 if len(d) == 7 and d[0] == 1 else 1)
except OSError:
    sys.exit(1)
PY
}
start_rabbit() {
	rabbit_dist_port=$(free_port 0) || { echo "run-stack: no free port" >&2; exit 1; }
	mkdir -p "$rabbit_dir/home" "$rabbit_dir/mnesia" "$rabbit_dir/log"
	"$py" -c 'import secrets; print(secrets.token_hex(16).upper(), end="")' \
		>"$rabbit_dir/home/.erlang.cookie"
	chmod 0400 "$rabbit_dir/home/.erlang.cookie"
	echo '[].' >"$rabbit_dir/enabled_plugins"
	cat >"$rabbit_dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$broker_port
loopback_users.guest = true
log.console = true
log.console.level = warning
log.file = false
EOF
	# Through env (setsid cannot run a shell function): env execs the
	# script, so the recorded PID is rabbitmq-server's own.
	start rabbitmq env HOME="$rabbit_dir/home" \
		RABBITMQ_NODENAME="$rabbit_node" \
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
		RABBITMQ_NODE_PORT="$broker_port" \
		RABBITMQ_DIST_PORT="$rabbit_dist_port" \
		RABBITMQ_MNESIA_BASE="$rabbit_dir/mnesia" \
		RABBITMQ_LOG_BASE="$rabbit_dir/log" \
		RABBITMQ_PID_FILE="$rabbit_dir/rabbit.pid" \
		RABBITMQ_CONFIG_FILE="$rabbit_dir/rabbitmq.conf" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$rabbit_dir/enabled_plugins" \
		RABBITMQ_ENABLED_PLUGINS= \
		RABBITMQ_ALLOW_INPUT= \
		ERL_CRASH_DUMP="$rabbit_dir/erl_crash.dump" \
		"$rabbit_bin/rabbitmq-server"
	wait_for rabbitmq 90 rabbit_ready
}

if [ "$broker" = amqp ]; then
	start_rabbit
else
	start_redis
fi

bridge_ready() { [ -S "$tmp/run/bus1.ipc" ] && [ -S "$tmp/run/up.ipc" ]; }
start bridge "$bridge_bin" -c "$tmp/wspush.conf"
wait_for bridge 15 bridge_ready

gateway_ready() { [ "$(http_status "http://127.0.0.1:$gw_port/healthz")" = 200 ]; }
start gateway "$gateway_bin" -c "$tmp/wspush.conf"
wait_for gateway 30 gateway_ready

cat <<EOF

wspush is running (Ctrl-C stops everything it started)
  WebSocket:  ws://127.0.0.1:$gw_port/ws?user=alice
  demo page:  http://127.0.0.1:$gw_port/
              two tabs: http://127.0.0.1:$gw_port/?user=alice&autoconnect=1
                        http://127.0.0.1:$gw_port/?user=bob&autoconnect=1
$(if [ "$broker" = amqp ]; then
	echo "  publish:    amqp-publish -u amqp://guest:guest@127.0.0.1:$broker_port/%2f -e wspush -r user:alice -b '{\"hello\":\"world\"}'"
	echo "  rabbitmq:   node $rabbit_node; rabbitmqctl needs its environment, e.g."
	echo "              HOME=$rabbit_dir/home $rabbit_bin/rabbitmqctl -n $rabbit_node list_bindings"
else
	echo "  publish:    redis-cli -p $broker_port PUBLISH wspush:user:alice '{\"hello\":\"world\"}'"
fi)
  metrics:    http://127.0.0.1:$metrics_port/metrics
  config:     $tmp/wspush.conf
  logs:       tail -f $tmp/bridge.log $tmp/gateway.log
EOF

# Runs until Ctrl-C; reports (and stops everything) if a process dies.
while :; do
	for i in "${!pids[@]}"; do
		if ! alive "${pids[$i]}"; then
			die_with_log "${names[$i]} (pid ${pids[$i]}) exited unexpectedly" "${names[$i]}"
		fi
	done
	sleep 1
done
