#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need beyond package.json
# (OpenSSH client and server, oathtool, tmux, asciinema, rsync, ansible-core, chromium), builds, and runs every test. Idempotent.
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

report="$(mktemp -t gatehouse-vitest-XXXXXX.json)"
set +e
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
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
exit $status
