#!/usr/bin/env bash
# The GPU checks of the engine, as run for the book on one GPU. Needs CUDA, a python with torch, and a data root
# ($FR_DATA) holding celeba_train/ (train.rec, train.idx, property) and lfw.bin (flat or under verification/).
#
#   scripts/gpu_checks.sh tests      # the gpu-marked tests: every head on CUDA against the CPU; amp + resume
#   scripts/gpu_checks.sh bench      # benchmarks/bench_train.py --gpu (IResNet-50, batch 512, bf16)
#   scripts/gpu_checks.sh bench-compile
#   scripts/gpu_checks.sh loader     # benchmarks/bench_loader.py augmenting on the GPU (recipe and AdaFace mixes)
#   scripts/gpu_checks.sh r50        # configs/paper/casia_r50_adaface.yaml's whole schedule on CelebA (python -m)
#   scripts/gpu_checks.sh r100       # configs/paper/webface4m_r100_smaface.yaml on CelebA under torchrun (NCCL),
#                                    # Partial FC at sample rate 0.5
#
# The paper configs run unchanged except for the training set (CelebA, 238 identities, 5,286 images: the papers'
# sets are not shipped), periodic verification every 100 steps, and LFW only. The schedule keeps the papers'
# epochs, so on CelebA it is a few hundred steps. Records land in results/runs/ like any run.
#
# The book's runs used a data root of celeba_train/ and a fold-balanced 3,000-pair LFW (sha256 b5dfa106a53a...,
# recorded in each run), made to fit the GPU machine's upload limit with
#   python -c "from fr.data.bins import subset_bin; subset_bin('<data>/verification/lfw.bin', '<root>/lfw.bin', 3000)"
# Outside a git checkout (or with a stale .git), set FR_GIT_SHA (and FR_GIT_DIRTY=0/1) so the records name the code.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
celeba=(--set data.train=celeba_train --set data.num_classes=238 --set "eval.sets=[lfw]" --set eval.every_steps=100
        --set data.num_workers=8 --no-progress)

for what in "$@"; do
  echo "=== $what ($(date -u +%H:%M:%S))"
  case "$what" in
    tests) "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/heads/test_gpu.py tests/test_train_gpu.py ;;
    bench) "$PY" benchmarks/bench_train.py --gpu ;;
    bench-compile) "$PY" benchmarks/bench_train.py --gpu --compile --out results/bench/train_gpu_compile.csv ;;
    loader) "$PY" benchmarks/bench_loader.py --device cuda --out results/bench/loader_gpu.csv &&
            "$PY" benchmarks/bench_loader.py --device cuda --augment adaface --out results/bench/loader_gpu_adaface.csv ;;
    r50) "$PY" -m fr.train --config configs/paper/casia_r50_adaface.yaml --set name=gpu_casia_r50_adaface_on_celeba \
           "${celeba[@]}" ;;
    r100) "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 -m fr.train \
            --config configs/paper/webface4m_r100_smaface.yaml --set name=gpu_webface4m_r100_smaface_on_celeba \
            --set head.sample_rate=0.5 "${celeba[@]}" ;;
    *) echo "unknown check: $what" >&2; exit 2 ;;
  esac
done
