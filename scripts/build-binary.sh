#!/usr/bin/env bash
# One self-contained executable for the firewall image: the compiled agent and its dependencies
# bundled into one CommonJS file (esbuild) and injected into a copy of the project's Node.js
# runtime as a single executable application (Node SEA, postject). Output: build/firewall-agent.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build
rm -f "$out/firewall-agent" "$out/firewall-agent.cjs" "$out/sea-prep.blob" "$out/sea-config.json"
mkdir -p "$out"
npm run build --silent

npx esbuild dist/cli.js --bundle --platform=node --target=node22 --format=cjs \
  --outfile="$out/firewall-agent.cjs" --log-level=warning \
  --define:require.main=module

cat >"$out/sea-config.json" <<JSON
{ "main": "$out/firewall-agent.cjs", "output": "$out/sea-prep.blob", "disableExperimentalSEAWarning": true, "useCodeCache": false }
JSON
node --experimental-sea-config "$out/sea-config.json"

cp "$(node -p process.execPath)" "$out/firewall-agent"
chmod u+w "$out/firewall-agent"
# postject warns about ELF note sections it does not need; its exit code still counts.
npx postject "$out/firewall-agent" NODE_SEA_BLOB "$out/sea-prep.blob" \
  --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 2>&1 >/dev/null | grep -v "Can't find string offset" >&2 || true
test "${PIPESTATUS[0]}" -eq 0
rm -f "$out/sea-prep.blob" "$out/sea-config.json"
"$out/firewall-agent" --version >/dev/null
echo "$out/firewall-agent"
