#!/usr/bin/env bash
# Mutation check for the CUDA kernels: for every kernel launched in native/cuda/kernels/<op>.cu
# (the first argument of each KILN_LAUNCH), skip its launches (KILN_CUDA_NOOP=<kernel>) and
# run tests/cuda/<op>.test.ts. Each run must FAIL; a kernel whose tests still pass is one
# the suite would not notice breaking. Runs on the emulation flavour (plus the GPU where
# the cuda flavour is built and a GPU is present), like the tests themselves.
# One JSON line per kernel, then survivors=N; exits non-zero when any survived.
# Usage: bash scripts/cuda-noop-mutation.sh [op ...]     (op: encoder, layernorm, ...)
set -u
cd "$(dirname "$0")/.."
node scripts/build-cuda.mjs --flavour emu --quiet >/dev/null || { echo "cuda-noop-mutation: the emulation flavour does not build"; exit 2; }
ops=("$@")
[ ${#ops[@]} -eq 0 ] && ops=($(ls native/cuda/kernels/*.cu | xargs -n1 basename | sed 's/\.cu$//'))
# matmul_cublaslt.cu is compiled only where cuBLASLt was found.
impls=$(node -e "console.log(require('./build/cuda-emu/kiln_cuda_emu.node').gemmImpls().join(','))")
log=$(mktemp -d)
survivors=0
for op in "${ops[@]}"; do
  src="native/cuda/kernels/$op.cu"
  [ -f "$src" ] || { echo "{\"op\":\"$op\",\"error\":\"no $src\"}"; survivors=$((survivors+1)); continue; }
  test="tests/cuda/$op.test.ts"
  [ -f "$test" ] || test="tests/cuda/${op%%_*}.test.ts"   # matmul_cublaslt -> matmul
  [ -f "$test" ] || { echo "{\"op\":\"$op\",\"error\":\"no $test\"}"; survivors=$((survivors+1)); continue; }
  # layernorm.cu also holds the plain residual add, tested on its own.
  [ "$op" = layernorm ] && test="$test tests/cuda/residual.test.ts"
  if [[ "$op" == *cublaslt* && ",$impls," != *",cublaslt,"* ]]; then
    echo "{\"op\":\"$op\",\"skipped\":\"not in this build (no cuBLASLt)\"}"
    continue
  fi
  # The launched name as written: "(kernel<T, D>)" with its parentheses, or a bare name.
  # Kernel sources keep the first argument on KILN_LAUNCH's line.
  mapfile -t kernels < <(grep -oE 'KILN_LAUNCH\((\([^)]*\)|[A-Za-z_][A-Za-z0-9_]*)' "$src" | sed 's/^KILN_LAUNCH(//' | sort -u)
  for k in "${kernels[@]}"; do
    name=$(printf '%s' "$k" | tr -d '()')
    out="$log/$op-$(printf '%s' "$name" | tr -c 'A-Za-z0-9_' '_').log"
    KILN_CUDA_NOOP="$k" npx vitest run $test >"$out" 2>&1
    rc=$?
    launched=$(grep -q 'KILN_CUDA_NOOP: skipping' "$out" && echo true || echo false)
    if [ $rc -eq 0 ]; then
      echo "{\"op\":\"$op\",\"kernel\":\"$name\",\"caught\":false,\"launched\":$launched,\"log\":\"$out\"}"
      survivors=$((survivors+1))
    else
      echo "{\"op\":\"$op\",\"kernel\":\"$name\",\"caught\":true}"
    fi
  done
done
echo "survivors=$survivors"
[ "$survivors" -eq 0 ]
