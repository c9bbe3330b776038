// `kiln scale` on several machines, played on this one: run.sh's multi-node form (NNODES,
// RDZV_ENDPOINT: two torchrun agents meeting at a c10d rendezvous, one process each, gloo)
// trains the curve of one process; and slurm.sbatch, run under stand-ins for Slurm's srun
// (one task per node, here all on localhost) and scontrol, does the same. The stand-ins
// check the script's own logic (the head node, the variables it passes to run.sh), not
// Slurm. Skipped, with the reason, where python3 or torch is missing.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runKiln, tempDir } from '../helpers/cli.ts';
import { freePort, scaleMetrics, worstDiff } from '../helpers/scale-run.ts';
import { findPython } from '../helpers/torch-python.ts';

const found = findPython();
const PY = 'python' in found ? found.python : 'python3';
const missing = 'missing' in found ? found.missing : null;
if (missing) console.warn(`scale-nodes.test.ts: skipped: ${missing}`);

const root = tempDir('kiln-scale-nodes-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** bash ARGS in `cwd` with `env` added; resolves with the exit code and the output. */
function bash(args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', args, { cwd, env: { ...process.env, PYTHON: PY, OMP_NUM_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 137, out });
    });
  });
}

describe.skipIf(missing !== null)('kiln scale: several machines (torchrun agents on this one)', () => {
  const dir = join(root, 'scale');
  const one = join(root, 'one');

  it('run.sh with NNODES=2 and RDZV_ENDPOINT: two agents, one process each, train the curve of one process', async () => {
    const r = await runKiln(['scale', '--preset', 'tiny', '--set', 'steps=8', '--data', 'names', '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    const single = await bash([join(dir, 'run.sh'), '--out', one, '--device', 'cpu'], dir, { NPROC: '1' });
    expect(single.code, single.out.slice(-3000)).toBe(0);
    const port = await freePort();
    const env = { NNODES: '2', NPROC: '1', RDZV_ENDPOINT: `127.0.0.1:${port}`, RDZV_ID: 'kiln-nodes-test' };
    const out = join(root, 'two-nodes');
    const nodes = await Promise.all([0, 1].map(() => bash([join(dir, 'run.sh'), '--out', out, '--device', 'cpu'], dir, env)));
    for (const n of nodes) expect(n.code, n.out.slice(-3000)).toBe(0);
    expect(nodes.map((n) => n.out).join('\n')).toMatch(/2 processes \(gloo, fp32, DDP\)/);
    const a = scaleMetrics(out);
    const b = scaleMetrics(one);
    expect(a.map((x) => x.step)).toEqual(b.map((x) => x.step));
    const w = worstDiff(a, b, 'loss', 8);
    expect(w.diff, `worst loss difference at step ${w.step}`).toBeLessThan(1e-5);
  }, 600_000);

  it('slurm.sbatch under stand-in srun and scontrol: two nodes meet at the head node and train the same curve', async () => {
    const bin = join(root, 'bin');
    mkdirSync(bin, { recursive: true });
    // srun: the command once per node, all at once, with each task's SLURM_NODEID/PROCID.
    writeFileSync(join(bin, 'srun'), [
      '#!/usr/bin/env bash',
      'while [[ ${1:-} == --* ]]; do shift; done',
      'pids=()',
      'for ((i = 0; i < SLURM_NNODES; i++)); do SLURM_NODEID=$i SLURM_PROCID=$i SLURM_LOCALID=0 "$@" & pids+=($!); done',
      'rc=0; for p in "${pids[@]}"; do wait "$p" || rc=$?; done; exit $rc', '',
    ].join('\n'));
    // scontrol show hostnames LIST: one name per line (here each node is this machine).
    writeFileSync(join(bin, 'scontrol'), '#!/usr/bin/env bash\n[ "$1 $2" = "show hostnames" ] || exit 2\ntr \',\' \'\\n\' <<< "$3"\n');
    chmodSync(join(bin, 'srun'), 0o755);
    chmodSync(join(bin, 'scontrol'), 0o755);
    const port = await freePort();
    const out = join(root, 'slurm');
    const job = await bash([join(dir, 'slurm.sbatch'), '--out', out, '--device', 'cpu'], root, {
      PATH: `${bin}:${process.env.PATH ?? ''}`, SLURM_JOB_NODELIST: 'localhost,localhost', SLURM_NNODES: '2', SLURM_JOB_ID: '4242',
      SLURM_SUBMIT_DIR: dir, RDZV_PORT: String(port), NPROC: '1',
    });
    expect(job.code, job.out.slice(-3000)).toBe(0);
    const w = worstDiff(scaleMetrics(out), scaleMetrics(one), 'loss', 8);
    expect(w.diff, `worst loss difference at step ${w.step}`).toBeLessThan(1e-5);
  }, 600_000);
});
