#!/usr/bin/env bash
# The main job: set up (if needed) and train Dense vs SpectralDense on MNIST side by side.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
python -m keras_spectral.demo "$@"
