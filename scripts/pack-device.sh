#!/usr/bin/env bash
# Packs what a GPU machine without Node, npm or network needs to run Kiln into .tools/
# (gitignored; name it in the device tool's `carry`). See docs/GPU.md.
#
#   bash scripts/pack-device.sh          (from the repository root, after `npm ci`)
#
# .tools/ then holds:
#   node.xz                     this machine's node binary, xz'd (unpacked to /tmp there)
#   kiln.mjs                    the kiln CLI bundled into one ES module (esbuild); `webgpu` external
#   bench-matmul.mjs            bench/matmul.ts, bundled the same way
#   bench-attention.mjs         bench/attention.ts, bundled the same way
#   dump-grads.mjs              bench/gpu/dump-grads.ts, bundled the same way
#   cuda-tests.mjs              tests/cuda/*.test.ts on bench/gpu/mini-vitest.ts, for the GPU visit
#   napi/                       Node-API headers (node-api-headers, node-addon-api) to build the addon there
#   node_modules/webgpu/        index.js, package.json, dist/linux-x64/dawn.node.xz
#   shaders/*.wgsl              read through KILN_SHADER_DIR (src/backends/webgpu/shader-source.ts)
#   deb/*.deb                   libvulkan1, libglvnd0 (+ EGL/GL libs as a fallback), Debian 12; unpacked
#                               there into /tmp only if the machine lacks them
#   data/tinyshakespeare.txt.xz when /work/shared/datasets has it (else the GPU script makes text)
#   MANIFEST                    commit, date, whether the WebGPU backend was in the bundle
# and the sizes are printed. node.xz is rebuilt only when the node binary changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
T=.tools
ESBUILD=node_modules/.bin/esbuild
[ -x "$ESBUILD" ] || { echo "pack-device: $ESBUILD missing: run npm ci first" >&2; exit 1; }
[ -f node_modules/webgpu/dist/linux-x64/dawn.node ] || { echo "pack-device: node_modules/webgpu missing: run npm ci first" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || { echo "pack-device: this machine is $(uname -m); the GPU machine is x86-64: pack on an x86-64 machine" >&2; exit 1; }
mkdir -p "$T"

# 1. Node: xz -9 of the binary (~24 MB from ~99 MB); slow (~100 s on 2 cores), so cached.
NODE_BIN=$(readlink -f "$(command -v node)")
NODE_VER=$(node --version)
if [ ! -f "$T/node.xz" ] || [ "$(cat "$T/node.version" 2>/dev/null)" != "$NODE_VER $(stat -c %s "$NODE_BIN")" ]; then
  echo "pack-device: compressing $NODE_BIN ($NODE_VER)..."
  xz -T0 -9 -c "$NODE_BIN" > "$T/node.xz.tmp" && mv "$T/node.xz.tmp" "$T/node.xz"
  echo "$NODE_VER $(stat -c %s "$NODE_BIN")" > "$T/node.version"
fi

# 2. Bundles. Node ESM has no `require`; bundled CommonJS dependencies get one from the banner.
BANNER="import { createRequire as __kilnCreateRequire } from 'node:module'; const require = __kilnCreateRequire(import.meta.url);"
EXTERNAL=(--external:webgpu)
if [ -f src/backends/webgpu/backend.ts ]; then
  WEBGPU_BACKEND=bundled
else
  # Not written yet: the CLI's lazy import stays a (failing) runtime import, so
  # `--backend webgpu` reports "Cannot find module" and the GPU script marks it skipped.
  WEBGPU_BACKEND=missing
  EXTERNAL+=('--external:*/webgpu/backend.ts')
fi
bundle() { # bundle OUT (entry on stdin, resolved from the repo root) | bundle OUT FILE
  local out=$1; shift
  "$ESBUILD" "$@" --bundle --platform=node --format=esm --target=node20 --outfile="$T/$out" \
    "${EXTERNAL[@]}" --banner:js="$BANNER" --log-level=warning
}
printf "import { main } from './src/cli/main.ts';\nprocess.exitCode = await main(process.argv.slice(2));\n" \
  | bundle kiln.mjs --sourcefile=kiln-entry.ts --loader=ts
bundle bench-matmul.mjs bench/matmul.ts
bundle bench-attention.mjs bench/attention.ts
bundle dump-grads.mjs bench/gpu/dump-grads.ts
bundle dump-steps.mjs bench/gpu/dump-steps.ts
# The CUDA kernel tests as `npm test` runs them on the emulation, for the real GPU (visit.sh):
# vitest is not there, so `vitest` resolves to bench/gpu/mini-vitest.ts (vitest's own
# matchers, a small runner). The tests that build with CMake or spawn the CLI stay here.
CUDA_TESTS=$(ls tests/cuda/*.test.ts 2>/dev/null | grep -v -E '/(addon|cli-cuda|emu)\.test\.ts$' || true)
if [ -n "$CUDA_TESTS" ]; then
  { for f in $CUDA_TESTS; do echo "import './$f';"; done
    echo "import { runAll } from './bench/gpu/mini-vitest.ts';"
    echo "process.exitCode = (await runAll('cuda')) > 0 ? 1 : 0;"
  } | bundle cuda-tests.mjs --sourcefile=cuda-tests-entry.ts --loader=ts --alias:vitest=./bench/gpu/mini-vitest.ts
fi

# 3. The webgpu package (index.js needs only node builtins and dawn.node).
W=$T/node_modules/webgpu
mkdir -p "$W/dist/linux-x64"
cp node_modules/webgpu/index.js node_modules/webgpu/package.json node_modules/webgpu/LICENSE.md "$W/"
DAWN=node_modules/webgpu/dist/linux-x64/dawn.node
SUM=$(sha256sum < "$DAWN" | cut -c1-64)
if [ ! -f "$W/dist/linux-x64/dawn.node.xz" ] || [ "$(cat "$T/dawn.version" 2>/dev/null)" != "$SUM" ]; then
  xz -T0 -9 -c "$DAWN" > "$W/dist/linux-x64/dawn.node.xz.tmp"
  mv "$W/dist/linux-x64/dawn.node.xz.tmp" "$W/dist/linux-x64/dawn.node.xz"
  echo "$SUM" > "$T/dawn.version"
fi

# 4. Shaders.
rm -rf "$T/shaders" && mkdir -p "$T/shaders" && cp shaders/*.wgsl "$T/shaders/"

# 5. Vulkan loader (+ libglvnd's libGLdispatch, which NVIDIA's ICD library links) for a
#    machine whose image lacks them; the GPU script unpacks them into /tmp only if missing.
#    The rest of the device README's set (EGL/GL/GLX) is a fallback the script tries
#    only if no adapter is found with these two.
mkdir -p "$T/deb"
DEBS=(libvulkan1 libglvnd0 libegl1 libopengl0 libgl1 libglx0 libgles2)
MISSING=()
for p in "${DEBS[@]}"; do ls "$T"/deb/"${p}"_*.deb >/dev/null 2>&1 || MISSING+=("$p"); done
if [ ${#MISSING[@]} -gt 0 ]; then
  (cd "$T/deb" && apt-get download "${MISSING[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
fi
ls "$T"/deb/libvulkan1_*.deb >/dev/null 2>&1 || echo "pack-device: WARNING: could not download libvulkan1 (apt-get update first?)" >&2

# 6. Text for the training run.
mkdir -p "$T/data"
SHAKES=/work/shared/datasets/tinyshakespeare.txt
if [ -f "$SHAKES" ] && [ ! -f "$T/data/tinyshakespeare.txt.xz" ]; then xz -9 -c "$SHAKES" > "$T/data/tinyshakespeare.txt.xz"; fi

# 7. Node-API headers for building the CUDA addon there (no node_modules travels).
rm -rf "$T/napi" && mkdir -p "$T/napi/node-api-headers" "$T/napi/node-addon-api"
cp -r node_modules/node-api-headers/include "$T/napi/node-api-headers/"
cp node_modules/node-addon-api/*.h "$T/napi/node-addon-api/"

# 8. Manifest.
{
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src shaders bench || echo '+dirty')"
  echo "packed $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), node $NODE_VER"
  echo "webgpu_backend $WEBGPU_BACKEND"
} > "$T/MANIFEST"

# Sizes. What travels is .tools plus the git tree; the device tool allows 64 MiB in all.
echo "pack-device: sizes"
(cd "$T" && find . -type f -printf '%s\t%p\n' | sort -rn | awk '{printf "  %8.2f MiB  %s\n", $1/1048576, $2}')
TOOLS=$(find "$T" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
TREE=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s}')
SHARED=0
[ -d shared ] && SHARED=$(du -sb shared | cut -f1)
awk -v t="$TOOLS" -v g="$TREE" -v s="$SHARED" 'BEGIN {
  printf "  .tools: %.2f MiB; git tree: %.2f MiB; shared/: %.2f MiB; total carried: %.2f MiB of 64 MiB\n", t/1048576, g/1048576, s/1048576, (t+g+s)/1048576 }'
echo "pack-device: webgpu backend $WEBGPU_BACKEND in kiln.mjs; run on the device: bash bench/gpu/visit.sh (the CUDA visit, which also takes WebGPU's measurement) or bash bench/gpu/webgpu.sh (carry [\".tools\"])"
