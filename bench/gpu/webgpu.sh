#!/usr/bin/env bash
# Kiln's WebGPU (Dawn/Vulkan) checks and benchmarks on a GPU machine that has no Node,
# npm or network: the one command a session with a device runs (docs/GPU.md).
#
#   here:   bash scripts/pack-device.sh                       (builds .tools/, ~30 MiB)
#   device: run(command="bash bench/gpu/webgpu.sh", carry=[".tools"], timeout_s=540)
#
# Steps, most important first (what #3 still needs measured, the matmul, before the
# PyTorch checks, which also run on CPU torch elsewhere), each under its own timeout
# and all inside BUDGET_S (default 480 s, so the script ends within 8 minutes of the run's 9; a step that would not fit
# is reported as skipped):
#   setup     node and dawn.node unpacked into $KILN_RUN_DIR (/tmp/kiln-run); the Vulkan
#             loader from .tools/deb only if the machine lacks libvulkan.so.1; the ICD:
#             NVIDIA's if found, else SwiftShader's, else whatever the loader finds
#   adapter   name, info, features (subgroup matrix + its configs), limits; again with
#             Dawn's allow_unsafe_apis (the experimental subgroup-matrix feature needs it)
#   parity    `kiln train --preset tiny` 20 steps, seed 1, on cpu and on webgpu: per-step
#             losses must agree to 1e-3 relative (DESIGN.md)
#   parity-wide  the same, 3 steps of a 2-layer, 128-wide char model at T 256 (several
#             attention tiles, which tiny's T 16 never needs)
#   matmul    bench/matmul.ts, naive and the tile candidates 32, 64, 128 (K step 16 where
#             the device has 32 KiB of workgroup memory) and 128k8 at 1024, 2048, 4096
#   attention bench/attention.ts: the flash kernels and the multi-kernel path, forward and
#             backward, at char-shakespeare's and gpt2-124m's shapes
#   bench     `kiln bench --profile` on webgpu: tiny, names, char-shakespeare (GPU ms per
#             kernel family of one more step, where timestamp-query exists; steps timed
#             pipelined, as the trainer runs them, and one at a time); cpu: tiny, names
#   torch     Kiln's reference gradients (dump-grads) vs PyTorch f64 (torch_reference.py),
#             on the parity run's CPU checkpoint and on `names` at init; only if python3
#             has torch and safetensors. The tiny checkpoint is also exported (`kiln export
#             --hf`) and loaded by transformers' from_pretrained: same loss on the batch
#   import    a random GPT-2 saved by transformers (hf_random_gpt2.py), `kiln import --hf`,
#             then torch_reference.py --hf on the original folder: same loss
#   torch-train  20 optimizer steps of tiny (warmup, cosine, clipping, 2 micro-batches)
#             by Kiln (f64 reference, f32 reference, webgpu) and by torch.optim.AdamW +
#             clip_grad_norm_ in f64 (torch_train.py): f64 trajectories equal to 1e-8
#   unsafe    the 4096 matmul (tiles 64, 128, 128k8) and char-shakespeare's bench again
#             with Dawn's disable_robustness toggle (no bounds clamps in the shaders)
#   train     `kiln train --preset char-shakespeare --backend webgpu` on tinyshakespeare
#             (or generated text) for up to 100 s (stopped by SIGINT: Kiln saves), then
#             `kiln sample` from its checkpoint
#   gpt2      `kiln bench --preset gpt2-124m --profile` on webgpu (before train)
#   torch-speed  PyTorch eager f32 (torch_speed.py) on every shape `kiln bench` measured on
#             webgpu: tokens/s side by side (a yardstick, not a goal)
# Everything lands in $OUT: log.txt (all output), results.jsonl (every JSON line),
# train-metrics.jsonl, parity-cpu.jsonl, parity-webgpu.jsonl. A short table is printed last.
#
# Environment: OUT (default /tmp/kiln-gpu-out); SMALL=1 shrinks every size (simulation on
# SwiftShader); BUDGET_S; KILN_TOOLS (default .tools beside bench/); KILN_PYTHON (default
# python3); KILN_VK_ICD (an ICD json to use); KILN_FORCE_VK_DEB=1 (use the carried loader
# even where the machine has one: tests that path).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# say, left, record, step (with its KILN_STEPS filter), skip, undeb, unxz_to, begin_visit, unpack_node
source "$HERE/lib.sh"
begin_visit "kiln gpu" /tmp/kiln-gpu-out 480 /tmp/kiln-run

# --- setup: node, the bundles, the webgpu package --------------------------------------
unpack_node
cp "$TOOLS"/*.mjs "$HERE/adapter.mjs" "$HERE/report.mjs" "$RUN/"
W=$RUN/node_modules/webgpu
mkdir -p "$W/dist/linux-x64"
cp "$TOOLS/node_modules/webgpu/index.js" "$TOOLS/node_modules/webgpu/package.json" "$W/"
unxz_to "$TOOLS/node_modules/webgpu/dist/linux-x64/dawn.node.xz" "$W/dist/linux-x64/dawn.node"
export KILN_SHADER_DIR=$TOOLS/shaders
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$RUN/xdg}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR" 2> /dev/null
say "node $("$NODE" --version) ($NODE, xz: $(command -v xz || echo none)); setup took $(($(date +%s) - T0)) s"
KILN=("$NODE" "$RUN/kiln.mjs")
# scripts/pack-device.sh records whether src/backends/webgpu/backend.ts was in the bundle.
BACKEND_OK=1
grep -q '^webgpu_backend missing' "$TOOLS/MANIFEST" 2> /dev/null && BACKEND_OK=0

# --- setup: Vulkan -----------------------------------------------------------------------
has_lib() { ldconfig -p 2> /dev/null | grep -q "$1" || ls /usr/local/nvidia/lib64/"$1"* > /dev/null 2>&1; }
LIBDIRS=""
VKLIB=$RUN/vk/usr/lib/x86_64-linux-gnu
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && LIBDIRS="$LIBDIRS:$d"; done
if [ "${KILN_FORCE_VK_DEB:-0}" = 1 ] || ! has_lib libvulkan.so.1; then
  deb=$(ls "$TOOLS"/deb/libvulkan1_*.deb 2> /dev/null | head -n 1)
  if [ -n "$deb" ] && undeb "$deb" "$RUN/vk"; then
    LIBDIRS="$VKLIB$LIBDIRS"
    say "vulkan: loader from $(basename "$deb") (unpacked in $RUN/vk)"
  else
    say "vulkan: WARNING: no libvulkan.so.1 on this machine and no usable .tools/deb/libvulkan1_*.deb"
  fi
else
  say "vulkan: the machine's loader: $(ldconfig -p 2> /dev/null | grep -m1 libvulkan.so.1 | sed 's/.*=> //')"
fi
if ! has_lib libGLdispatch.so.0; then
  deb=$(ls "$TOOLS"/deb/libglvnd0_*.deb 2> /dev/null | head -n 1)
  if [ -n "$deb" ] && undeb "$deb" "$RUN/vk"; then
    case ":$LIBDIRS:" in *":$VKLIB:"*) ;; *) LIBDIRS="$VKLIB:$LIBDIRS" ;; esac
    say "vulkan: libGLdispatch from $(basename "$deb")"
  fi
fi
LIBDIRS=${LIBDIRS#:}
LIBDIRS=${LIBDIRS%:}
[ -n "$LIBDIRS" ] && export LD_LIBRARY_PATH="${LIBDIRS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ICD=${KILN_VK_ICD:-}
if [ -z "$ICD" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd*.json /usr/share/vulkan/icd.d/nvidia_icd*.json \
    /etc/vulkan/icd.d/nvidia_icd*.json /usr/local/share/vulkan/icd.d/nvidia_icd*.json; do
    [ -f "$f" ] && { ICD=$f; break; }
  done
fi
if [ -z "$ICD" ] && [ -f /usr/lib/chromium/vk_swiftshader_icd.json ]; then ICD=/usr/lib/chromium/vk_swiftshader_icd.json; fi
if [ -n "$ICD" ]; then
  export VK_DRIVER_FILES=$ICD VK_ICD_FILENAMES=$ICD
  say "vulkan: ICD $ICD"
  cat "$ICD" >> "$LOG" 2>&1
else
  say "vulkan: no NVIDIA or SwiftShader ICD file found; the loader searches its default folders"
  ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d >> "$LOG" 2>&1
fi
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" >> "$LOG"
ldconfig -p 2> /dev/null | grep -E 'libvulkan|libGLX_nvidia|libGLdispatch|libnvidia-glcore' >> "$LOG"

# --- adapter ------------------------------------------------------------------------------
cd "$RUN" || exit 1
GPU_OK=1
has_adapter() { grep -q '"bench":"adapter","flags":\[\],"name"' "$RES"; }
step adapter 60 "$NODE" adapter.mjs
if ! has_adapter && ls "$TOOLS"/deb/*.deb > /dev/null 2>&1; then
  # Perhaps the driver's library needs more of libglvnd: unpack the whole carried set.
  say "vulkan: no adapter; unpacking all of .tools/deb into $RUN/vk and trying again"
  for deb in "$TOOLS"/deb/*.deb; do undeb "$deb" "$RUN/vk"; done
  case ":${LD_LIBRARY_PATH:-}:" in *":$VKLIB:"*) ;; *) export LD_LIBRARY_PATH="$VKLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
  step adapter-more-libs 60 "$NODE" adapter.mjs
fi
if ! has_adapter && [ -n "$ICD" ] && [ -z "${KILN_VK_ICD:-}" ]; then
  # The ICD file found may not be the one that works: let the loader search its defaults.
  say "vulkan: no adapter with $ICD; trying the loader's default ICD search"
  unset VK_DRIVER_FILES VK_ICD_FILENAMES
  ICD=""
  step adapter-default-icd 60 "$NODE" adapter.mjs
fi
if ! has_adapter; then
  GPU_OK=0
  # Once more with the loader's own messages, for the log.
  VK_LOADER_DEBUG=error,warn,driver timeout 60 "$NODE" adapter.mjs >> "$LOG" 2>&1
  say "kiln gpu: no WebGPU adapter: the WebGPU steps are skipped (see log.txt for the Vulkan loader's messages)"
else
  grep '"bench":"adapter"' "$RUN/step.out" | "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const a=JSON.parse(s);console.log(`adapter: ${a.name} | subgroup-matrix ${a.subgroup_matrix_feature} | f16 ${a.shader_f16} | maxStorageBufferBindingSize ${a.limits.maxStorageBufferBindingSize} | maxBufferSize ${a.limits.maxBufferSize} | wg mem ${a.limits.maxComputeWorkgroupStorageSize}`)})' | tee -a "$LOG"
  step adapter-unsafe-apis 60 "$NODE" adapter.mjs enable-dawn-features=allow_unsafe_apis
fi

# kiln's own WebGPU steps need an adapter and the backend in the bundle.
KGPU=$((GPU_OK && BACKEND_OK))
((BACKEND_OK)) || say "kiln gpu: the bundle has no WebGPU backend (packed before src/backends/webgpu/backend.ts existed): kiln --backend webgpu steps are skipped"
WHY="no adapter"
((BACKEND_OK)) || WHY="no webgpu backend in the bundle"

# --- data -------------------------------------------------------------------------------
if [ -f "$TOOLS/data/tinyshakespeare.txt.xz" ]; then
  unxz_to "$TOOLS/data/tinyshakespeare.txt.xz" "$RUN/input.txt"
else
  # Seeded pseudo-text (~1 MB): enough for throughput and for the loss to fall.
  "$NODE" -e 'let x=7,o=[];const w="the of and to a in that is was he for it with as his on be at by i this had not are but from or have an they which one you were her all she there would their we him been has when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people mr how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three".split(" ");while(o.length<200000){x=(x*1103515245+12345)%2147483648;o.push(w[x%w.length]);if(x%13==0)o.push(".\n")}require("fs").writeFileSync(process.argv[1],o.join(" "))' "$RUN/input.txt"
fi
say "data: $(wc -c < "$RUN/input.txt") bytes"

# --- parity: tiny, 20 steps, cpu vs webgpu ------------------------------------------------
PSTEPS=20
step parity-cpu 60 "${KILN[@]}" train --preset tiny --backend cpu --steps $PSTEPS --seed 1 --data input.txt --out "$RUN/tiny-cpu"
cp "$RUN/tiny-cpu/metrics.jsonl" "$OUT/parity-cpu.jsonl" 2> /dev/null
if ((KGPU)); then
  if step parity-webgpu 90 "${KILN[@]}" train --preset tiny --backend webgpu --steps $PSTEPS --seed 1 --data input.txt --out "$RUN/tiny-webgpu"; then
    cp "$RUN/tiny-webgpu/metrics.jsonl" "$OUT/parity-webgpu.jsonl"
    step parity-compare 30 "$NODE" report.mjs parity "$RUN/tiny-cpu/metrics.jsonl" "$RUN/tiny-webgpu/metrics.jsonl" 1e-3
  fi
else
  skip parity-webgpu "$WHY"
fi

# --- parity at a wider shape: several attention tiles (T 256, HS 64), C 128, V 65 ----------
# tiny (T 16) fits every kernel in one tile; this is where a race between tiles would show.
WIDE=(--preset char-shakespeare --set nLayer=2 --set nEmbd=128 --set nHead=2 --set batchSize=2 --set evalEvery=1000 --set evalBatches=1 --steps 3 --seed 1 --data input.txt)
((SMALL)) && WIDE+=(--set blockSize=64 --set nEmbd=64 --set nHead=1)
step parity-wide-cpu 60 "${KILN[@]}" train "${WIDE[@]}" --backend cpu --out "$RUN/wide-cpu"
if ((KGPU)); then
  step parity-wide-webgpu 60 "${KILN[@]}" train "${WIDE[@]}" --backend webgpu --out "$RUN/wide-webgpu" &&
    step parity-wide-compare 30 "$NODE" report.mjs parity "$RUN/wide-cpu/metrics.jsonl" "$RUN/wide-webgpu/metrics.jsonl" 1e-3 "2L 128C T256 cpu vs webgpu"
else
  skip parity-wide-webgpu "$WHY"
fi

# --- matmul -------------------------------------------------------------------------------
if ((GPU_OK)); then
  if ((SMALL)); then
    step matmul 90 "$NODE" bench-matmul.mjs --sizes 64,128 --kernels tiled,naive --tiles 32,64,128,128k8 --seconds 0.2
  else
    # One run, all candidates alternating within each round (about a minute on a GPU).
    step matmul 150 "$NODE" bench-matmul.mjs --sizes 1024,2048,4096 --kernels tiled,naive --tiles 32,64,128,128k8 --seconds 0.5
  fi
else
  skip matmul "no adapter"
fi

# --- attention ----------------------------------------------------------------------------
if ((GPU_OK)); then
  if ((SMALL)); then
    step attention 60 "$NODE" bench-attention.mjs --shapes '1,64,64,2' --seconds 0.2
  else
    step attention 60 "$NODE" bench-attention.mjs --seconds 0.3
  fi
else
  skip attention "no adapter"
fi

# --- kiln bench -----------------------------------------------------------------------------
if ((SMALL)); then
  ((KGPU)) && step bench-webgpu 120 "${KILN[@]}" bench --backend webgpu --preset tiny --steps 2 --profile
  step bench-cpu 60 "${KILN[@]}" bench --backend cpu --preset tiny --steps 2
else
  ((KGPU)) && step bench-webgpu 150 "${KILN[@]}" bench --backend webgpu --preset tiny,names,char-shakespeare --steps 10 --profile
  step bench-cpu 60 "${KILN[@]}" bench --backend cpu --preset tiny,names --steps 3
fi

# --- torch: the reference against PyTorch -------------------------------------------------
if "$PY" -c 'import torch, safetensors' > /dev/null 2>&1; then
  if [ -f "$RUN/tiny-cpu/checkpoint.safetensors" ]; then
    HF=()
    step export-hf-tiny 30 "${KILN[@]}" export --checkpoint "$RUN/tiny-cpu/checkpoint.safetensors" --hf "$RUN/hf-tiny" && HF=(--hf "$RUN/hf-tiny")
    step dump-grads-tiny 60 "$NODE" dump-grads.mjs --checkpoint "$RUN/tiny-cpu/checkpoint.safetensors" --out "$RUN/grads-tiny" --batch 4 --seed 2 &&
      step torch-tiny 120 env PYTHONUNBUFFERED=1 "$PY" "$HERE/torch_reference.py" --dir "$RUN/grads-tiny" --checkpoint "$RUN/tiny-cpu/checkpoint.safetensors" ${HF[@]+"${HF[@]}"}
  fi
  step dump-grads-names 60 "$NODE" dump-grads.mjs --preset names --vocab 65 --out "$RUN/grads-names" --batch 4 --seed 3 &&
    step torch-names 120 env PYTHONUNBUFFERED=1 "$PY" "$HERE/torch_reference.py" --dir "$RUN/grads-names"
  if "$PY" -c 'import transformers' > /dev/null 2>&1; then
    step hf-make 60 env PYTHONUNBUFFERED=1 "$PY" "$HERE/hf_random_gpt2.py" "$RUN/hf-orig" &&
      step import-hf 30 "${KILN[@]}" import --hf "$RUN/hf-orig" --out "$RUN/hf-imported.safetensors" &&
      step dump-grads-import 60 "$NODE" dump-grads.mjs --checkpoint "$RUN/hf-imported.safetensors" --out "$RUN/grads-import" --batch 2 --seed 4 &&
      step torch-import 120 env PYTHONUNBUFFERED=1 "$PY" "$HERE/torch_reference.py" --dir "$RUN/grads-import" --checkpoint "$RUN/hf-imported.safetensors" --hf "$RUN/hf-orig"
  fi
  STEPS_BACKENDS=cpu64,cpu
  ((GPU_OK)) && STEPS_BACKENDS=cpu64,cpu,webgpu
  step dump-steps 90 "$NODE" dump-steps.mjs --out "$RUN/steps-tiny" --backends "$STEPS_BACKENDS" &&
    step torch-train 120 env PYTHONUNBUFFERED=1 "$PY" "$HERE/torch_train.py" --dir "$RUN/steps-tiny"
else
  skip torch "$PY has no torch + safetensors"
fi

# --- Dawn without robustness: what Tint's bounds clamps cost ------------------------------
# KILN_DAWN_TOGGLES=disable_robustness (src/backends/webgpu/device.ts); lines carry dawn_toggles.
if ((GPU_OK)); then
  if ((SMALL)); then
    step matmul-unsafe 60 env KILN_DAWN_TOGGLES=disable_robustness "$NODE" bench-matmul.mjs --sizes 128 --kernels tiled --tiles 64,128 --seconds 0.2
  else
    step matmul-unsafe 60 env KILN_DAWN_TOGGLES=disable_robustness "$NODE" bench-matmul.mjs --sizes 4096 --kernels tiled --tiles 64,128,128k8 --seconds 0.5
  fi
  ((KGPU)) && step bench-webgpu-unsafe 60 env KILN_DAWN_TOGGLES=disable_robustness "${KILN[@]}" bench --backend webgpu --preset "$( ((SMALL)) && echo tiny || echo char-shakespeare)" --steps "$( ((SMALL)) && echo 2 || echo 10)"
fi

# --- gpt2-124m throughput and profile (before the training run: it says more about the engine) --
if ((KGPU)) && ((!SMALL)); then
  step bench-gpt2-124m 120 "${KILN[@]}" bench --backend webgpu --preset gpt2-124m --steps 2 --profile
fi

# --- PyTorch eager f32 on the shapes kiln bench measured: a yardstick on the same GPU ----------
if ((KGPU)) && "$PY" -c 'import torch' > /dev/null 2>&1; then  # torch_speed.py needs torch only
  step torch-speed 90 env PYTHONUNBUFFERED=1 "$PY" "$HERE/torch_speed.py" --results "$RES" --backend webgpu --steps "$( ((SMALL)) && echo 2 || echo 10)"
fi

# --- train char-shakespeare on webgpu, then sample -----------------------------------------
if ((KGPU)); then
  if ((SMALL)); then
    TRAIN=(--steps 20 --set nLayer=1 --set nHead=2 --set nEmbd=32 --set blockSize=32 --set batchSize=4 --set evalEvery=10 --set evalBatches=2)
    TLIM=${KILN_TRAIN_S:-120}
  else
    TRAIN=(--steps 2000 --set evalEvery=100 --set evalBatches=4 --set checkpointEvery=1000)
    TLIM=${KILN_TRAIN_S:-100}
  fi
  # Leave the sample step its time: the training run is the one that stretches.
  TREM=$(left)
  ((TLIM > TREM - 45)) && TLIM=$((TREM - 45))
  ((TLIM < 20)) && TLIM=20
  TIMEOUT_OK=1 step train "$TLIM" "${KILN[@]}" train --preset char-shakespeare --backend webgpu --seed 1 --data input.txt --out "$RUN/cs" "${TRAIN[@]}"
  cp "$RUN/cs/metrics.jsonl" "$OUT/train-metrics.jsonl" 2> /dev/null
  [ -s "$RUN/cs/metrics.jsonl" ] && "$NODE" report.mjs train "$RUN/cs/metrics.jsonl" char-shakespeare >> "$RES" 2>> "$LOG"
  if [ -f "$RUN/cs/checkpoint.safetensors" ]; then
    step sample 45 "${KILN[@]}" sample --checkpoint "$RUN/cs/checkpoint.safetensors" --backend webgpu --tokens 200 --seed 1 --prompt "ROMEO:"
    sed 's/^/    | /' "$RUN/step.out" | head -n 12
  fi
else
  skip train "$WHY"
fi

# --- table ------------------------------------------------------------------------------
say "kiln gpu: done in $(($(date +%s) - T0)) s; results in $OUT"
"$NODE" report.mjs table "$RES" | tee "$OUT/summary.txt"
