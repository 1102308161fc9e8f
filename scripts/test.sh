#!/usr/bin/env bash
# The whole test suite: installs what the tests need on first use, builds, then runs jest
# (unit tests, then the real-kernel lab, one file at a time).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x node_modules/.bin/jest ]]; then
  npm ci
fi
bash scripts/test-deps.sh
npm run build --silent
exec npx jest --runInBand "$@"
