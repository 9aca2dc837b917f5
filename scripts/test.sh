#!/usr/bin/env bash
# Builds everything and runs every test (unit and integration) with ctest.
# Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cd build
# Tests that need PostgreSQL fail, not skip, when it cannot start.
export STIMLOOP_REQUIRE_POSTGRES=1
ctest --output-on-failure -j"$(nproc)" --timeout 600
