#!/usr/bin/env bash
# Set up (if needed) and run the test suite: everything on the TensorFlow backend, then
# the backend-agnostic layer and training tests on JAX, and the layer tests on PyTorch.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
start=$SECONDS
KERAS_BACKEND=tensorflow python -m pytest -q -p no:cacheprovider tests "$@"
KERAS_BACKEND=jax python -m pytest -q -p no:cacheprovider tests/test_layer.py tests/test_training.py "$@"
if python -c "import torch" >/dev/null 2>&1; then
    KERAS_BACKEND=torch python -m pytest -q -p no:cacheprovider tests/test_layer.py "$@"
else
    echo "PyTorch is not installed: skipped the torch-backend layer tests."
fi
echo "test suite wall time: $((SECONDS - start)) s"
