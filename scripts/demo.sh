#!/usr/bin/env bash
# The main job: an offline closed-loop session against a simulated neuron on
# the embedded defaults (64x64 gray, the default strategy: gradient ascent
# on a surrogate refit online and CMA-ES sharing each generation, in the
# spectral space, re-showing the 4 leading images; a simulated V1 simple
# cell, Poisson noise over 0.2 s, 1000 responses). It
# installs what is missing, builds, starts a server on a free loopback port,
# plays the rig over gRPC, prints a line per generation and a summary, and
# closes the session (it stays in the store for stimloop-inspect).
# Arguments go to stimloop-simulate (see --help), e.g. --cell=complex.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec build/clients/stimloop-simulate --data_dir=stimloop-data "$@"
