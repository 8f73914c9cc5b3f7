#!/usr/bin/env bash
# The main job: set up (if needed) and train Dense vs SpectralDense on MNIST side by side.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# Hide the backends' start-up noise on CPU machines (absl lines logged before absl is
# initialised: CUDA driver probes, oneDNN notices); other messages pass. KEEP_LOGS=1 keeps all.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
NOISE='^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR|[IWE][0-9]{4} [0-9:. ]+ +[0-9]+ (cudart_stub|cuda_executor|cuda_dnn|cuda_fft|cuda_blas|cuda_platform|computation_placer|port|cpu_feature_guard|gpu_device)\.cc:|To enable the following instructions: .* rebuild TensorFlow)'
if [ "${KEEP_LOGS:-0}" = 1 ]; then
    python -m keras_spectral.demo "$@"
else
    python -m keras_spectral.demo "$@" 2> >(grep -Ev "$NOISE" >&2)
fi
