#!/usr/bin/env bash
# The browser tests of wspush.
#
#   tests/browser/run.sh BUILD_DIR            unit + end-to-end
#   tests/browser/run.sh BUILD_DIR unit       only (a): no npm, no browser
#   tests/browser/run.sh BUILD_DIR e2e        only (b)
#
# (a) unit/: gateway/web/wspush.js under Node's built-in test runner
#     (fake WebSocket, fake clock): needs node >= 20 only.
# (b) e2e/: playwright-core (pinned in package-lock.json, installed here with
#     `npm ci` when missing or stale) driving Debian's /usr/bin/chromium
#     against redis-server, two wspush nodes and nginx. Never downloads a
#     browser. Screenshots in BUILD_DIR/screenshots/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [unit|e2e|all]" >&2; exit 2; }
build=$(cd "$1" && pwd)
what=${2:-all}
case $what in unit | e2e | all) ;; *) echo "usage: $0 BUILD_DIR [unit|e2e|all]" >&2; exit 2 ;; esac

if ! command -v node >/dev/null; then
	echo "browser tests: node not found (apt-get install nodejs npm)" >&2
	exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
	echo "browser tests: node >= 20 needed, found $(node --version)" >&2
	exit 1
fi

# Never let anything fetch a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export PLAYWRIGHT_BROWSERS_PATH=0
export WSPUSH_BUILD_DIR=$build

rc=0
if [ "$what" != e2e ]; then
	echo "== browser unit tests (node --test unit/)"
	(cd "$here" && node --test unit/) || rc=1
fi

if [ "$what" != unit ]; then
	echo "== browser end-to-end tests (playwright-core + /usr/bin/chromium)"
	if [ ! -x /usr/bin/chromium ] && [ -z "${WSPUSH_CHROMIUM:-}" ]; then
		echo "browser tests: /usr/bin/chromium missing (apt-get install chromium, or .ci/deps browser)" >&2
		exit 1
	fi
	# npm ci when node_modules does not match the committed lock file.
	stamp=$here/node_modules/.package-lock.json
	if [ ! -f "$stamp" ] || ! cmp -s <(node -p 'JSON.stringify(require(process.argv[1]).packages["node_modules/playwright-core"].version)' "$here/package-lock.json") \
		<(node -p 'JSON.stringify(require(process.argv[1]).version)' "$here/node_modules/playwright-core/package.json" 2>/dev/null); then
		echo "browser tests: npm ci (playwright-core from package-lock.json)"
		(cd "$here" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
	fi
	(cd "$here" && node --test --test-concurrency=1 e2e/) || rc=1
	[ -d "$build/screenshots" ] && echo "screenshots: $build/screenshots/"
fi
exit $rc
