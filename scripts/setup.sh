# Sourced by demo.sh and test.sh: make .venv with the package and its test tools, and lay
# out the data sets. Idempotent; safe to run on a fresh machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
# The installer's own notices (setuptools' editable-install banner, pip's location
# warnings) go to .venv/install.log, shown only if the installation fails.
{ python -m pip install -q --upgrade pip && python -m pip install -q -e ".[test]"; } > .venv/install.log 2>&1 || {
    cat .venv/install.log >&2; echo "setup: pip install failed (log: .venv/install.log)" >&2; exit 1; }
python -c "import keras_spectral, tensorflow, jax" >/dev/null 2>&1 || {
    echo "setup: installing the package failed" >&2; exit 1; }
# Data: $KERAS_SPECTRAL_DATA if set, else .data/, prepared from ../shared/datasets when
# that offline copy exists (otherwise the loaders download on first use).
export KERAS_SPECTRAL_DATA="${KERAS_SPECTRAL_DATA:-$ROOT/.data}"
if [ -f "$ROOT/../shared/datasets/prepare.py" ]; then
    python "$ROOT/../shared/datasets/prepare.py" "$KERAS_SPECTRAL_DATA"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
