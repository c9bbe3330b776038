#!/usr/bin/env bash
# Mutation check: for every WGSL entry point, make it return at once and run the tests
# named after its shader file. Each run must FAIL; an entry whose tests still pass is a
# kernel the suite would not notice breaking. Slow on SwiftShader (minutes per file):
# run by hand, not in CI. Usage: bash scripts/noop-mutation.sh [shader ...]
set -u
cd "$(dirname "$0")/.."
files=("$@")
[ ${#files[@]} -eq 0 ] && files=($(ls shaders/*.wgsl | xargs -n1 basename | sed 's/\.wgsl$//'))
survivors=0
for f in "${files[@]}"; do
  test="tests/gpu/$f.test.ts"
  [ -f "$test" ] || test="tests/gpu/${f%%_*}.test.ts"   # attention_naive -> attention
  [ -f "$test" ] || { echo "{\"shader\":\"$f\",\"error\":\"no $test\"}"; survivors=$((survivors+1)); continue; }
  for e in $(grep -A3 '@compute' "shaders/$f.wgsl" | grep -oE 'fn [A-Za-z0-9_]+' | awk '{print $2}'); do
    if KILN_NOOP_ENTRY="$f:$e" npx vitest run "$test" >/tmp/noop-$f-$e.log 2>&1; then
      echo "{\"shader\":\"$f\",\"entry\":\"$e\",\"caught\":false}"; survivors=$((survivors+1))
    else
      echo "{\"shader\":\"$f\",\"entry\":\"$e\",\"caught\":true}"
    fi
  done
done
echo "survivors=$survivors"
[ "$survivors" -eq 0 ]
