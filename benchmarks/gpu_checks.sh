#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one run that fits a 10-minute call of a lent GPU
# machine: the CUDA tests, then the GPU rows of the benchmarks, most wanted first. Each step
# has its own time limit and a step that would overrun the total is skipped, so one slow step
# cannot cost the others. Output: each step's log under OUTDIR (default $OUT, else
# ./gpu-checks), a summary line per step on stdout.
#
#   bash benchmarks/gpu_checks.sh [OUTDIR]          # from the repository root
#
# Needs python3 with a CUDA torch, numpy, h5py, typer, rich, tqdm, pytest. Packages the
# machine lacks (a bare image usually has no sigpy, nilearn, nibabel) travel as wheels in
# .whl/ at the repository root (ignored by git), fetched beforehand where pip works:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform any -d .whl sigpy nilearn nibabel
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 -d .whl finufft pywavelets packaging
#
# (sigpy needs pywavelets; nilearn, packaging >= 26. The CUDA tests of the NUFFT need
# cufinufft, whose wheels (2.4.1, 2.5.1) are linked against CUDA 12's libcudart.so.12 and
# libcufft.so.11 and weigh 53-114 MB: on a CUDA 13 image without those libraries, or over the
# carry limit, those tests skip, saying so.)
#
# The mrgen checkout itself is used in place (PYTHONPATH), nothing is installed into the
# machine's Python.
set -u
out=${1:-${OUT:-gpu-checks}}
budget=${GPU_CHECKS_SECONDS:-570}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/mrgen-site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/mrgen-site"
fi
if ! python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_checks: torch sees no CUDA device; nothing to check here" >&2
    exit 1
fi
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" \
    | tee "$out/device.txt"

# step NAME LIMIT_SECONDS COMMAND...: run it unless it could overrun the total budget.
step() {
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    if (( SECONDS + limit > budget )); then
        echo "$name: skipped (${limit} s would overrun the ${budget} s budget)"
        return
    fi
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    rc=$?
    echo "$name: exit $rc in $((SECONDS - start)) s (log $out/$name.txt)"
}

step cuda-tests 100 python3 -m pytest -q -m cuda -p no:cacheprovider \
    --continue-on-collection-errors tests
step ipalm-paper-prior 40 python3 benchmarks/bench_ipalm.py --sections gpu
step convdecoder-speed 60 python3 benchmarks/bench_convdecoder.py --skip-quality --timing-iters 1
# What `convdecoder` gives a GPU user on the README's example (auto preset on CUDA: paper).
step convdecoder-paper-preset 120 python3 benchmarks/bench_convdecoder.py --tables presets \
    --presets paper --threads 16
step deepen 90 python3 benchmarks/bench_deepen.py --model deepen-brain-small --device cuda
# Posterior sampling throughput at the paper's size (320 x 320, 15 coils, the paper's network).
step sampling 30 python3 benchmarks/bench_sampling.py --device cuda --steps 30
# The default 8 x 256 network, 2500 iterations per mask (runs averaging was measured on the CPU).
step convdecoder-quality 120 python3 benchmarks/bench_convdecoder.py --skip-timing --runs 1 \
    --variants coils
