#!/usr/bin/env bash
# Set up (if needed) and run the test suite: everything on the TensorFlow backend, then
# the backend-agnostic tests on JAX and (where installed) PyTorch.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
start=$SECONDS
AGNOSTIC="tests/test_layer.py tests/test_pruning.py tests/test_weight_sparsity.py tests/test_checkpoints.py tests/test_export.py"
KERAS_BACKEND=tensorflow python -m pytest -q -p no:cacheprovider tests "$@"
KERAS_BACKEND=jax python -m pytest -q -p no:cacheprovider $AGNOSTIC tests/test_training.py "$@"
if python -c "import torch" >/dev/null 2>&1; then
    KERAS_BACKEND=torch python -m pytest -q -p no:cacheprovider $AGNOSTIC "$@"
else
    echo "PyTorch is not installed: skipped the torch-backend tests."
fi
echo "test suite wall time: $((SECONDS - start)) s"
