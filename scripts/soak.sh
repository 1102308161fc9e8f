#!/usr/bin/env bash
# The long soak by hand (issue 13, point 4): builds, then runs test/lab/soak.test.ts for
# MINUTES (default 20; CI runs the 2-minute default of the test itself). Needs root (the lab).
# Prints the figures and the memory curve (t rssMiB/heapMiB/fds) for RELIABILITY.md.
#   bash scripts/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-20}"
npm run build --silent
FWA_SOAK_MINUTES="$minutes" exec npx jest --runInBand test/lab/soak.test.ts
