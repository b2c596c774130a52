#!/bin/sh
# Compiles the CUDA kernels to PTX for the jar (called by the quant-kernels pom's "cuda-ptx" profile).
# Usage: build-ptx.sh NVCC OUTPUT_DIR SOURCE.cu [SOURCE.cu ...]
# sm_90 PTX for Hopper; compute_80 PTX for Ampere/Ada. The driver JIT-compiles PTX at module load, so no GPU is
# needed here and no machine code is pinned to one toolkit.
set -eu
nvcc="$1"; out="$2"; shift 2
mkdir -p "$out"
for src in "$@"; do
  name=$(basename "$src" .cu)
  echo "CUDA: compiling $src to PTX (sm_90, compute_80) with $nvcc ($("$nvcc" --version | tail -1))"
  "$nvcc" -arch=sm_90 -ptx -o "$out/$name.sm_90.ptx" "$src"
  "$nvcc" -arch=compute_80 -ptx -o "$out/$name.compute_80.ptx" "$src"
  echo "CUDA: wrote $out/$name.sm_90.ptx and $name.compute_80.ptx"
done
