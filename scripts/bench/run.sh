#!/usr/bin/env bash
# npm run bench: builds, then runs the offline benchmarks (compile, apply, packet path; scale.js:
# up to 100,000 policies) and the agent benchmarks against real API servers: agent.js (change
# latency at 5,000 and 30,000 policies, nft processes per change) and idle.js (cold start, memory,
# idle cost and drift repair at 10,000 policies); the two take about 25 minutes.
# Needs root, like the tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/test-deps.sh
npm run build --silent
FWA_CONTROLPLANE_BIN=$(bash scripts/controlplane/build.sh | tail -n 1)
export FWA_CONTROLPLANE_BIN
npx tsc -p tsconfig.bench.json
echo "# $(uname -r), $(nft --version), node $(node --version), $(nproc) cores"
node build/bench/scripts/bench/offline.js
node build/bench/scripts/bench/scale.js
node build/bench/scripts/bench/agent.js
node build/bench/scripts/bench/idle.js
node build/bench/scripts/bench/dns.js
node build/bench/scripts/bench/fqdn.js
