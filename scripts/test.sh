#!/usr/bin/env bash
# Set up (if needed) and run the test suite: everything on the TensorFlow backend, then
# the backend-agnostic tests on JAX and (where installed) PyTorch.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# PyTorch only where a CPU build is at hand (this machine image keeps one on disk);
# otherwise pip would fetch a multi-GB CUDA build, so its tests are skipped instead.
if ! python -c "import torch" >/dev/null 2>&1 && ls /opt/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
    python -m pip install -q "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
fi
start=$SECONDS
AGNOSTIC="tests/test_layer.py tests/test_kronecker.py tests/test_triangular.py tests/test_pruning.py tests/test_weight_sparsity.py tests/test_checkpoints.py tests/test_export.py tests/test_bad_inputs.py tests/test_faults.py tests/test_relevance.py tests/test_plots.py tests/test_graph_pruning.py tests/test_benchmark_harness.py tests/test_convolutional.py tests/test_cnn_pruning.py tests/test_equal_budget_baselines.py tests/test_rules.py tests/test_zoo.py tests/test_graph_faults.py tests/test_budgets.py tests/test_transformers.py tests/test_hub.py tests/test_learned_importance.py"
KERAS_BACKEND=tensorflow python -m pytest -q -p no:cacheprovider tests "$@"
KERAS_BACKEND=jax python -m pytest -q -p no:cacheprovider $AGNOSTIC tests/test_training.py tests/test_gpu_check.py "$@"
if python -c "import torch" >/dev/null 2>&1; then
    KERAS_BACKEND=torch python -m pytest -q -p no:cacheprovider $AGNOSTIC "$@"
else
    echo "PyTorch is not installed: skipped the torch-backend tests."
fi
echo "test suite wall time: $((SECONDS - start)) s"
