#!/usr/bin/env bash
# The CUDA runner's one GPU visit (issue #17), which also takes the WebGPU engine's open
# measurement (issue #3). One command, inside BUDGET_S (default 470 s), each part under
# its own limit and printing as it ends, the most important first:
#
#   here:   bash scripts/pack-device.sh
#   device: run(command="bash bench/gpu/visit.sh", carry=[".tools"], timeout_s=560)
#
#   build      the addon's cuda flavour with CMake + nvcc (sm_90; cuBLASLt from PyTorch's
#              nvidia-cublas wheel when Python finds it)
#   kernels    every CUDA kernel against the CPU reference on tiny odd shapes: the same
#              tests/cuda/*.test.ts as `npm test` runs on the emulation, bundled with a
#              small vitest stand-in (bench/gpu/mini-vitest.ts), on the real GPU
#   memcheck   the same under compute-sanitizer --tool memcheck
#   parity     `kiln train --preset tiny` 20 steps on cpu and on cuda --precision f32:
#              every step's loss within 1e-3 relative (report.mjs parity)
#   webgpu     #3: webgpu.sh's adapter, matmul (WGSL at 4096^3 against the FP32 peak) and
#              `kiln bench --profile` steps only (KILN_STEPS), in its own folder
#   gemm       our tensor-core GEMM against cuBLASLt at 4096^3 (matmulBench entry)
#   gpt2       `kiln bench --backend cuda --preset gpt2-124m` (B 16, T 1024): tokens/s
#              and MFU; then PyTorch on the same model (torch_speed.py: bf16 autocast,
#              eager and torch.compile)
#   hf         `kiln export --hf` of the parity run, loaded by transformers: same logits
#              (1e-4 relative, f32) and loss (torch_reference.py --hf)
#   scale      #21: `kiln scale`'s train_ddp.py through run.sh (torchrun, NCCL, 1 GPU): fp32
#              DDP against kiln's CPU run, FSDP against DDP, bf16 autocast against fp32
#   racecheck  compute-sanitizer --tool racecheck over the kernel tests
#   train      char-shakespeare on cuda toward val loss 1.50, while time is left
#
# Results land in $OUT (at most 8 files come back): log.txt, results.jsonl, summary.txt,
# parity-cpu.jsonl, parity-cuda.jsonl, train-metrics.jsonl, webgpu-summary.txt.
# Environment: OUT, BUDGET_S, SMALL=1 (simulation sizes, as webgpu.sh), KILN_TOOLS,
# KILN_PYTHON, KILN_CUDA_ARCHS (default 90), KILN_CUBLASLT_DIR.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
source "$HERE/lib.sh"
begin_visit "kiln visit" /tmp/kiln-visit-out 470 /tmp/kiln-visit
unpack_node
cp "$TOOLS"/*.mjs "$HERE/report.mjs" "$RUN/"
KILN=("$NODE" "$RUN/kiln.mjs")
if [ -f "$TOOLS/data/tinyshakespeare.txt.xz" ]; then unxz_to "$TOOLS/data/tinyshakespeare.txt.xz" "$RUN/input.txt"
else "$PY" -c 'import random; random.seed(1); w=["the","king","and","of","to","my","lord","thou","art","love","death","night"]; print("\n".join(" ".join(random.choice(w) for _ in range(12)) for _ in range(20000)))' > "$RUN/input.txt"; fi
cd "$RUN" || exit 1

# --- build ------------------------------------------------------------------------------
ARCHS=${KILN_CUDA_ARCHS:-90}
CUBLASLT=${KILN_CUBLASLT_DIR:-$("$PY" -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))' 2> /dev/null || true)}
[ -n "$CUBLASLT" ] && [ ! -f "$CUBLASLT/include/cublasLt.h" ] && CUBLASLT=$(dirname "$(find "$CUBLASLT" -name cublasLt.h 2> /dev/null | head -n 1)" 2> /dev/null | sed 's#/include$##')
say "build: archs $ARCHS, cuBLASLt ${CUBLASLT:-none}"
CM=(-DKILN_FLAVOUR=cuda -DKILN_CUDA_ARCHS="$ARCHS" -DKILN_NAPI_HEADERS="$TOOLS/napi/node-api-headers/include" -DKILN_NODE_ADDON_API="$TOOLS/napi/node-addon-api")
[ -n "$CUBLASLT" ] && CM+=(-DKILN_CUBLASLT_DIR="$CUBLASLT")
ADDON=$RUN/cuda/kiln_cuda.node
step build-configure 60 cmake -S "$ROOT/native/cuda" -B "$RUN/cuda" "${CM[@]}" &&
  step build 180 cmake --build "$RUN/cuda" -j "$(nproc)"
[ -f "$ADDON" ] || ADDON=$(find "$RUN/cuda" -name kiln_cuda.node | head -n 1)
export KILN_CUDA_ADDON=$ADDON KILN_CUDA_TEST_FLAVOURS=cuda
if [ -z "$ADDON" ] || [ ! -f "$ADDON" ]; then
  say "kiln visit: the addon did not build: the CUDA steps are skipped (see log.txt)"
  HAVE_CUDA=0
else
  DEV=$("$NODE" -e "const a=require(process.argv[1]); console.log(JSON.stringify({bench:'cuda-devices', ...a.devices(), gemm: a.gemmImpls()}))" "$ADDON" 2>> "$LOG")
  echo "$DEV" | tee -a "$RES" "$LOG"
  # Built but no usable GPU (the simulation here): every CUDA step skips with the reason.
  if echo "$DEV" | grep -q '"count":0'; then
    HAVE_CUDA=0
    say "kiln visit: the addon built, but no GPU is usable: $(echo "$DEV" | sed 's/.*"error":"\([^"]*\)".*/\1/'); the CUDA steps are skipped"
  else HAVE_CUDA=1; fi
fi

# --- kernels against the reference, then under memcheck ------------------------------------
if ((HAVE_CUDA)); then
  step kernels 90 "$NODE" "$RUN/cuda-tests.mjs"
  grep '"status":"failed"' "$RUN/step.out" | head -n 5 | cut -c1-300 | sed 's/^/    /'
  if command -v compute-sanitizer > /dev/null; then
    step memcheck 150 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 "$NODE" "$RUN/cuda-tests.mjs"
    grep -m 5 -E '=========.*(Invalid|ERROR)' "$RUN/step.out" "$RUN/step.err" | cut -c1-300 | sed 's/^/    /'
  else skip memcheck "no compute-sanitizer on PATH"; fi
else skip kernels "no addon or no GPU"; fi

# --- parity: 20 steps of tiny, cpu vs cuda f32 ----------------------------------------------
PSTEPS=$( ((SMALL)) && echo 5 || echo 20)
step parity-cpu 60 "${KILN[@]}" train --preset tiny --backend cpu --steps "$PSTEPS" --seed 1 --data input.txt --out "$RUN/tiny-cpu"
cp "$RUN/tiny-cpu/metrics.jsonl" "$OUT/parity-cpu.jsonl" 2> /dev/null
if ((HAVE_CUDA)); then
  step parity-cuda 60 "${KILN[@]}" train --preset tiny --backend cuda --precision f32 --steps "$PSTEPS" --seed 1 --data input.txt --out "$RUN/tiny-cuda" &&
    step parity-compare 30 "$NODE" report.mjs parity "$RUN/tiny-cpu/metrics.jsonl" "$RUN/tiny-cuda/metrics.jsonl" 1e-3 "tiny cpu vs cuda f32"
  cp "$RUN/tiny-cuda/metrics.jsonl" "$OUT/parity-cuda.jsonl" 2> /dev/null
fi

# --- #3: the WebGPU engine's open measurement ----------------------------------------------
WREM=$(left)
WB=$((WREM > 330 ? 150 : WREM / 3))
if ((WB >= 60)); then
  say "webgpu: webgpu.sh's adapter, matmul and bench steps within ${WB}s"
  mkdir -p "$RUN/webgpu-out"
  (export KILN_STEPS="adapter matmul bench-webgpu" BUDGET_S=$WB OUT=$RUN/webgpu-out KILN_RUN_DIR=$RUN/webgpu-run KILN_TOOLS=$TOOLS SMALL=$SMALL
    timeout -k 10 $((WB + 20)) bash "$HERE/webgpu.sh") > "$RUN/webgpu.console" 2>&1
  cat "$RUN/webgpu.console" >> "$LOG"
  grep '^{' "$RUN/webgpu-out/results.jsonl" 2> /dev/null | grep -v '"skipped-not-wanted"' >> "$RES"
  cp "$RUN/webgpu-out/summary.txt" "$OUT/webgpu-summary.txt" 2> /dev/null
  grep -E '^\[(ok|failed|timeout|killed)' "$RUN/webgpu.console" | sed 's/^/  webgpu /' | tee -a "$LOG"
else skip webgpu "only $WREM s left"; fi

# --- speed: our GEMM vs cuBLASLt, gpt2-124m, PyTorch on the same model ----------------------
if ((HAVE_CUDA)); then
  G=$( ((SMALL)) && echo 512 || echo 4096)
  step gemm 60 "$NODE" -e "
    const a = require(process.env.KILN_CUDA_ADDON);
    for (const [impl, name] of [[2, 'tensor-core'], [3, 'cublaslt'], [1, 'simt']]) {
      if (!a.gemmImpls().includes(name)) { console.log(JSON.stringify({ bench: 'gemm', impl: name, skipped: 'not built' })); continue; }
      const out = new Float32Array(2);
      a.kernel('matmulBench', [out], [$G, $G, $G, 1, impl, name === 'simt' ? 3 : 20]);
      console.log(JSON.stringify({ bench: 'gemm', impl: name, M: $G, N: $G, K: $G, dtype: 'bf16', ms: out[0], tflops: out[1] }));
    }"
  GP=$( ((SMALL)) && echo tiny || echo gpt2-124m)
  step bench-cuda 120 "${KILN[@]}" bench --backend cuda --preset "tiny,$GP" --steps "$( ((SMALL)) && echo 2 || echo 10)"
  if "$PY" -c 'import torch' > /dev/null 2>&1; then
    step torch-speed 120 env PYTHONUNBUFFERED=1 "$PY" "$HERE/torch_speed.py" --results "$RES" --backend cuda --precision bf16 --compile \
      --steps "$( ((SMALL)) && echo 2 || echo 10)"
  else skip torch-speed "no torch"; fi
else skip gemm "no addon or no GPU"; fi

# --- Hugging Face export read by transformers ------------------------------------------------
if [ -f "$RUN/tiny-cuda/checkpoint.safetensors" ] && "$PY" -c 'import torch, safetensors, transformers' > /dev/null 2>&1; then
  step export-hf 30 "${KILN[@]}" export --checkpoint "$RUN/tiny-cuda/checkpoint.safetensors" --hf "$RUN/hf-tiny" &&
    step dump-grads-hf 60 "$NODE" dump-grads.mjs --checkpoint "$RUN/tiny-cuda/checkpoint.safetensors" --out "$RUN/grads-hf" --batch 4 --seed 2 &&
    step hf-logits 120 env PYTHONUNBUFFERED=1 "$PY" "$HERE/torch_reference.py" --dir "$RUN/grads-hf" --checkpoint "$RUN/tiny-cuda/checkpoint.safetensors" --hf "$RUN/hf-tiny"
else skip export-hf "no cuda checkpoint, or python lacks torch/safetensors/transformers"; fi

# --- #21: kiln scale's trainer on the GPU: NCCL, bf16 autocast, FSDP ------------------------
# torchrun with one process (NCCL on the GPU; gloo on the CPU in the simulation): fp32 DDP
# against kiln's CPU run (parity-cpu, the same RunSpec), FSDP against DDP, bf16 autocast
# against fp32 (near, as bf16 allows), bf16 FSDP against bf16 DDP.
if "$PY" -c 'import torch' > /dev/null 2>&1; then
  SDEV=$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
  HAVE_FSDP=$("$PY" -c 'import torch; print(int(tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 2)))' 2> /dev/null || echo 0)
  # kiln.mjs finds the trainer at ../../scale/train_ddp.py from itself, as in the repository.
  mkdir -p "$RUN/k/bin" && cp "$RUN/kiln.mjs" "$RUN/k/bin/" && ln -sfn "$ROOT/scale" "$RUN/scale"
  if step scale-folder 30 "$NODE" "$RUN/k/bin/kiln.mjs" scale --preset tiny --steps "$PSTEPS" --seed 1 --data input.txt --out "$RUN/scaled"; then
    for m in "fp32 ddp" "fp32 fsdp" "bf16 ddp" "bf16 fsdp"; do
      read -r prec mode <<< "$m"
      if [ "$mode" = fsdp ] && [ "$HAVE_FSDP" != 1 ]; then skip "scale-$prec-$mode" "torch < 2.2: no FSDP"; continue; fi
      FLAGS=(--device "$SDEV" --precision "$prec" --out "$RUN/scaled-$prec-$mode")
      [ "$mode" = fsdp ] && FLAGS+=(--fsdp)
      step "scale-$prec-$mode" 60 env NPROC=1 PYTHON="$PY" bash "$RUN/scaled/run.sh" "${FLAGS[@]}"
    done
    S=$RUN/scaled
    step scale-vs-kiln 20 "$NODE" report.mjs parity "$RUN/tiny-cpu/metrics.jsonl" "$S-fp32-ddp/metrics.jsonl" 1e-3 "kiln cpu vs kiln scale fp32 ddp ($SDEV)"
    step scale-bf16 20 "$NODE" report.mjs parity "$S-fp32-ddp/metrics.jsonl" "$S-bf16-ddp/metrics.jsonl" 2e-2 "kiln scale fp32 vs bf16 autocast ($SDEV)"
    if [ "$HAVE_FSDP" = 1 ]; then
      step scale-fsdp 20 "$NODE" report.mjs parity "$S-fp32-ddp/metrics.jsonl" "$S-fp32-fsdp/metrics.jsonl" 1e-5 "kiln scale fp32 ddp vs fsdp ($SDEV)"
      step scale-fsdp-bf16 20 "$NODE" report.mjs parity "$S-bf16-ddp/metrics.jsonl" "$S-bf16-fsdp/metrics.jsonl" 1e-3 "kiln scale bf16 ddp vs fsdp ($SDEV)"
    fi
  fi
else skip scale-folder "no torch"; fi

# --- racecheck, then training while time is left ---------------------------------------------
if ((HAVE_CUDA)) && command -v compute-sanitizer > /dev/null; then
  step racecheck 120 compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 9 "$NODE" "$RUN/cuda-tests.mjs"
  grep -m 5 -E '=========.*(hazard|Race|ERROR)' "$RUN/step.out" "$RUN/step.err" | cut -c1-300 | sed 's/^/    /'
fi
if ((HAVE_CUDA)); then
  TLIM=$(($(left) - 20))
  if ((TLIM >= 40)); then
    TRAIN=(--set evalEvery=100)
    ((SMALL)) && TRAIN=(--steps 10 --set evalEvery=5)
    TIMEOUT_OK=1 step train "$TLIM" "${KILN[@]}" train --preset char-shakespeare --backend cuda --seed 1 --data input.txt --out "$RUN/cs" "${TRAIN[@]}"
    cp "$RUN/cs/metrics.jsonl" "$OUT/train-metrics.jsonl" 2> /dev/null
    [ -s "$RUN/cs/metrics.jsonl" ] && "$NODE" report.mjs train "$RUN/cs/metrics.jsonl" char-shakespeare >> "$RES" 2>> "$LOG"
  else skip train "only $((TLIM + 20)) s left"; fi
else skip train "no addon or no GPU"; fi

say "kiln visit: done in $(($(date +%s) - T0)) s; results in $OUT"
"$NODE" report.mjs table "$RES" | tee "$OUT/summary.txt"
