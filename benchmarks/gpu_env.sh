# Sourced by the GPU scripts (gpu_check.sh, gpu_scale.sh): from the repository root, install the wheels carried
# in .whl/ (the machine has no registry; see gpu_check.sh for the `pip download` line) and put them and src/
# on PYTHONPATH; a shared cache folder for poisonlab.
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD/src"
else
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export POISONLAB_CACHE="${POISONLAB_CACHE:-/tmp/poisonlab-cache}"
