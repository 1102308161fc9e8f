#!/usr/bin/env bash
# The whole test suite: installs what the tests need on first use, builds, then runs jest
# (unit tests, the real-kernel lab and the end-to-end tests against real API servers, one file at a time).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x node_modules/.bin/jest ]]; then
  npm ci
fi
bash scripts/test-deps.sh
npm run build --silent
# The single executable (Node SEA) for the release tests.
npm run build:binary --silent >/dev/null
# The test control plane (kube-apiserver + etcd), built from Go modules on first use and cached.
FWA_CONTROLPLANE_BIN=$(bash scripts/controlplane/build.sh | tail -n 1)
export FWA_CONTROLPLANE_BIN
exec npx jest --runInBand "$@"
