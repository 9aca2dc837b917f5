#!/usr/bin/env bash
# Installs the Debian 12 packages stimloop needs to build, test and run.
# Idempotent: packages already installed are skipped, and apt-get update runs
# only when something is missing. Needs root (or sudo).
# `install-deps.sh --fuzz` also installs the optional fuzzing and sanitizer
# tools (clang, libFuzzer) that scripts/fuzz.sh uses; the build and CI do
# not need them.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache
  libtorch-dev libopenblas0-pthread
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc
  libprotobuf-dev protobuf-compiler
  libopencv-dev libabsl-dev libgtest-dev libsqlite3-dev zlib1g-dev
  libpq-dev  # the PostgreSQL session store (server/pg_session_store.h)
  postgresql  # tests start a throwaway PostgreSQL server (tests/server/pg_test_cluster.h)
  python3-grpcio python3-protobuf python3-numpy python3-pil  # the Python client decodes PNG with Pillow
  openssl libssl-dev  # report digests link libcrypto (server/report_digest.h)
  chromium  # headless Chromium renders the inspect report in tests/inspect
)
if [ "${1:-}" = "--fuzz" ]; then
  packages+=(clang-14 libfuzzer-14-dev libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
