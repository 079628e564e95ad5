#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need beyond package.json
# (OpenSSH client and server, oathtool, tmux, asciinema, rsync, ansible-core, chromium, ssh-audit, a C
# compiler and libssl-dev for the software security key, systemd-analyze), builds, and runs every test.
# Idempotent. Fails when the run leaves anything behind in the temp directory.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v oathtool >/dev/null 2>&1 || need+=(oathtool)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v asciinema >/dev/null 2>&1 || need+=(asciinema)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v ansible >/dev/null 2>&1 || need+=(ansible-core)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/bin/ssh-audit ] || need+=(ssh-audit)
# The software security key (test/helpers/sk-provider) is compiled by the tests against libcrypto.
command -v cc >/dev/null 2>&1 || need+=(gcc)
[ -f /usr/include/openssl/evp.h ] || need+=(libssl-dev)
# config/gatehouse.service is checked with systemd-analyze verify.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The PostgreSQL store is tested against throw-away clusters (test/helpers/postgres.ts), any version.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "test.sh: the tests need: ${need[*]} (Debian packages); install them as root and run again" >&2; exit 1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

[ -d node_modules ] || npm ci
npm run --silent build
# The tests and the bench are TypeScript too: type-checked with the sources (tsconfig.test.json),
# since vitest and tsx only strip the types.
npm run --silent typecheck

# The run gets a temp directory of its own (vitest, its workers and every process they start use
# it as TMPDIR; test/global-setup.ts makes one root per run in it and removes it at the end). Once
# the run is over it must be empty: whatever is left, a test made and did not remove.
run_tmp="$(mktemp -d -t gh-tmp-XXXXXX)"
report="$(mktemp -t gatehouse-vitest-XXXXXX.json)"
trap 'rm -rf "$run_tmp"; rm -f "$report"' EXIT
set +e
TMPDIR="$run_tmp" GATEHOUSE_TEST_LEFTOVERS="$run_tmp/leftovers.txt" npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
status=$?
set -e
# A plain closing line that any CI reads: "tests: N passed, N failed, N skipped".
node -e '
  const fs = require("fs");
  let r = {};
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch {}
  const p = r.numPassedTests ?? 0, f = r.numFailedTests ?? 0, s = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`tests: ${p} passed, ${f} failed, ${s} skipped`);
' "$report"
rm -f "$report"
# What the test run's teardown found (processes still running, directories not removed), and
# anything left outside the run's root.
left="$(cat "$run_tmp/leftovers.txt" 2>/dev/null; rm -f "$run_tmp/leftovers.txt"; find "$run_tmp" -mindepth 1 -maxdepth 2 2>/dev/null | sed "s|^$run_tmp/||" | { grep -Ev '^(tsx-[0-9]+|node-compile-cache|v8-compile-cache(-[0-9]+)?)(/|$)' || true; } | sort)"
if [ -n "$left" ]; then
  echo "test.sh: the run left these behind (every test must remove what it makes, also when it fails):" >&2
  printf '%s\n' "$left" | sed 's/^/  /' >&2
  [ "$status" -ne 0 ] || status=1
fi
rm -rf "$run_tmp"
exit $status
