# Shell functions shared by the GPU-visit scripts (webgpu.sh, visit.sh). begin_visit sets
# what the others use: TOOLS, OUT, SMALL, BUDGET_S, RUN (scratch folder), PY, T0 (start,
# epoch seconds), LOG and RES (results.jsonl); unpack_node sets NODE.
#
# KILN_STEPS (optional): the step names to run, space-separated; a name matches a step
# whose name it is or starts (KILN_STEPS="adapter matmul" runs adapter, adapter-unsafe-apis
# and matmul; every other step is reported as skipped). visit.sh uses it to take only
# WebGPU's open measurement from webgpu.sh.
say() { echo "$*" | tee -a "$LOG"; }
left() { echo $((T0 + BUDGET_S - $(date +%s))); }
record() { echo "{\"bench\":\"step\",\"name\":\"$1\",\"status\":\"$2\",\"rc\":$3,\"seconds\":$4}" >> "$RES"; }

# step NAME LIMIT_S CMD...: CMD's stdout and stderr go to the log, its stdout's JSON lines
# to results.jsonl. The timeout sends SIGINT (kiln train saves its checkpoint on it), then
# SIGKILL 15 s later. Returns CMD's exit code (124 timed out, 125 skipped). With
# TIMEOUT_OK=1 a timeout is the planned end (status "stopped", return 0).
wanted() {
  [ -z "${KILN_STEPS:-}" ] && return 0
  local w
  for w in $KILN_STEPS; do
    case $1 in "$w"*) return 0 ;; esac
  done
  return 1
}

step() {
  local name=$1 limit=$2
  shift 2
  if ! wanted "$name"; then
    record "$name" skipped-not-wanted 125 0
    return 125
  fi
  local rem
  rem=$(left)
  if ((rem < 25)); then
    say "[skipped: no time left] $name"
    record "$name" skipped-no-time 125 0
    return 125
  fi
  ((limit > rem - 15)) && limit=$((rem - 15))
  echo "=== $name (limit ${limit}s): $*" >> "$LOG"
  local s e rc status
  s=$(date +%s.%N)
  timeout -k 15 -s INT "$limit" "$@" > "$RUN/step.out" 2> "$RUN/step.err"
  rc=$?
  e=$(date +%s.%N)
  cat "$RUN/step.out" >> "$LOG"
  sed 's/^/  [stderr] /' "$RUN/step.err" >> "$LOG"
  grep '^{' "$RUN/step.out" >> "$RES" || true
  case $rc in
    0) status=ok ;;
    124) if [ "${TIMEOUT_OK:-0}" = 1 ]; then status=stopped; rc=0; else status=timeout; fi ;;
    137) status=killed ;;
    *) status=failed ;;
  esac
  local secs
  secs=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.1f", e - s }')
  record "$name" "$status" "$rc" "$secs"
  say "[$status ${secs}s] $name"
  [ "$status" != ok ] && [ "$status" != stopped ] && grep -v '^\s*$' "$RUN/step.err" | tail -n 3 | cut -c1-300 | sed 's/^/    /'
  return "$rc"
}
skip() { say "[skipped] $1: $2"; record "$1" "skipped: $2" 125 0; }

# Unpack a .deb's files under a folder (dpkg-deb where there is one, else ar + tar).
undeb() {
  local deb=$1 dest=$2
  mkdir -p "$dest"
  if command -v dpkg-deb > /dev/null; then dpkg-deb -x "$deb" "$dest"
  elif command -v ar > /dev/null; then (cd "$dest" && ar p "$deb" "$(ar t "$deb" | grep '^data.tar')" | tar -x -J -f - 2> /dev/null || ar p "$deb" "$(ar t "$deb" | grep '^data.tar')" | tar -x -f -)
  else return 1; fi
}

# xz -dc FILE > OUT, or Python's lzma where the image has no xz (check which on the device).
unxz_to() {
  if command -v xz > /dev/null && [ "${KILN_NO_XZ:-0}" != 1 ]; then xz -dc "$1" > "$2"
  else "${PYTHON_FOR_XZ:-python3}" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"), 1 << 20)' "$1" "$2"; fi
}

# begin_visit LABEL DEFAULT_OUT DEFAULT_BUDGET_S DEFAULT_RUN_DIR: the environment's knobs
# (OUT, SMALL, BUDGET_S, KILN_RUN_DIR, KILN_TOOLS, KILN_PYTHON) or these defaults, a fresh
# scratch folder, empty log and results, and the first lines of the log.
begin_visit() {
  TOOLS=${KILN_TOOLS:-$ROOT/.tools}
  OUT=${OUT:-$2}
  SMALL=${SMALL:-0}
  BUDGET_S=${BUDGET_S:-$3}
  RUN=${KILN_RUN_DIR:-$4}
  PY=${KILN_PYTHON:-python3}
  T0=$(date +%s)
  mkdir -p "$OUT"
  rm -rf "$RUN" && mkdir -p "$RUN"
  LOG=$OUT/log.txt
  RES=$OUT/results.jsonl
  : > "$LOG"
  : > "$RES"
  say "$1: $(date -u +%Y-%m-%dT%H:%M:%SZ) small=$SMALL budget=${BUDGET_S}s tools=$TOOLS out=$OUT"
  [ -f "$TOOLS/MANIFEST" ] && sed 's/^/  manifest: /' "$TOOLS/MANIFEST" | tee -a "$LOG"
  { uname -a; nvidia-smi 2> /dev/null || echo "no nvidia-smi"; nvcc --version 2> /dev/null | tail -n 2; } >> "$LOG" 2>&1
}

# unpack_node: NODE is the carried node (unpacked into RUN), else the machine's; exits when
# there is neither.
unpack_node() {
  if [ -f "$TOOLS/node.xz" ]; then
    unxz_to "$TOOLS/node.xz" "$RUN/node" && chmod +x "$RUN/node"
    NODE=$RUN/node
  elif command -v node > /dev/null; then
    NODE=$(command -v node)
  else
    say "kiln: no $TOOLS/node.xz and no node: run scripts/pack-device.sh and carry .tools"
    exit 1
  fi
}
