#!/usr/bin/env bash
# One self-contained executable for the firewall image: the compiled agent and its dependencies
# bundled into one minified CommonJS file (esbuild) and injected into a stripped copy of the
# project's Node.js runtime as a single executable application (Node SEA, postject).
# Outputs:
#   build/firewall-agent         the executable
#   build/firewall-agent.js      the bundle inside it (for reference)
#   build/firewall-agent.js.map  its source map, back to src/*.ts (not embedded: decode stack traces
#                                offline, e.g. with `npx source-map-cli` or any source-map tool)
# Needs binutils' strip. Prints the executable's path on stdout, the sizes on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build
rm -f "$out/firewall-agent" "$out/firewall-agent.cjs" "$out/firewall-agent.js" "$out/firewall-agent.js.map" \
  "$out/sea-prep.blob" "$out/sea-config.json"
mkdir -p "$out"
command -v strip >/dev/null || { echo "build-binary: strip not found (install binutils)" >&2; exit 1; }
npm run build --silent

# --keep-names: minified, but classes and functions keep their .name (error names, library checks).
# The input is tsc's output with its source maps, so esbuild's map points at src/*.ts.
npx esbuild dist/cli.js --bundle --platform=node --target=node22 --format=cjs \
  --minify --keep-names --sourcemap=external --sources-content=false \
  --outfile="$out/firewall-agent.js" --log-level=warning \
  --define:require.main=module

cat >"$out/sea-config.json" <<JSON
{ "main": "$out/firewall-agent.js", "output": "$out/sea-prep.blob", "disableExperimentalSEAWarning": true, "useCodeCache": false }
JSON
node --experimental-sea-config "$out/sea-config.json" 2>&1 | grep -v '^Wrote single executable preparation blob' >&2 || true
test "${PIPESTATUS[0]}" -eq 0

# The runtime without its symbol table and debug info (.symtab, .debug_*: ~18 MB). The dynamic
# symbols stay (addons would need them), and so does the SEA sentinel fuse in .rodata, which
# postject flips when it injects the blob.
runtime=$(node -p process.execPath)
strip --strip-all -o "$out/firewall-agent" "$runtime"
chmod 0755 "$out/firewall-agent"
# postject warns about ELF note sections it does not need; its exit code still counts.
npx postject "$out/firewall-agent" NODE_SEA_BLOB "$out/sea-prep.blob" \
  --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 2>&1 >/dev/null | grep -v "Can't find string offset" >&2 || true
test "${PIPESTATUS[0]}" -eq 0
rm -f "$out/sea-prep.blob" "$out/sea-config.json"
"$out/firewall-agent" --version >/dev/null
# (exit code not checked: the example deliberately holds policies that are refused)
rendered=$("$out/firewall-agent" render -f examples/forbidden 2>/dev/null || true)
grep -q '^table inet firewall {' <<<"$rendered" ||
  { echo "build-binary: $out/firewall-agent does not render examples/forbidden" >&2; exit 1; }

mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
echo "build-binary: $out/firewall-agent $(mb "$out/firewall-agent") (runtime $(mb "$runtime") unstripped, bundle $(mb "$out/firewall-agent.js"))" >&2
echo "$out/firewall-agent"
