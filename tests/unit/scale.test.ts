// `kiln scale` end to end: the folder it writes, then PyTorch on it. torchrun with two
// gloo processes on the CPU against one process with the same global batch (losses to
// 1e-5), against Kiln's own CPU backend on the same RunSpec (first steps to 1e-4), and the
// script's final checkpoint back through `kiln import --hf` and `kiln eval` (the loss the
// script logged). Skipped, with the reason, where python3 or torch is missing.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, expectKilnError, readMetrics, runKiln, tempDir } from '../helpers/cli.ts';
import { expectEvalMatches, launchRanks, scaleMetrics as metrics, worstDiff as worst } from '../helpers/scale-run.ts';
import { findPython } from '../helpers/torch-python.ts';

/**
 * A Python with torch and numpy: $KILN_PYTHON, else python3 on the PATH, else Debian's
 * /usr/bin/python3 (where apt's python3-torch lives when a pyenv python3 comes first);
 * or why there is none.
 */

const found = findPython();
const PY = 'python' in found ? found.python : 'python3';
const missing = 'missing' in found ? found.missing : null;
if (missing) console.warn(`scale.test.ts: the PyTorch tests are skipped: ${missing}`);

const root = tempDir('kiln-scale-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

function python(args: string[], extraEnv: Record<string, string> = {}): void {
  const r = spawnSync(PY, args, {
    cwd: REPO_ROOT, encoding: 'utf8', timeout: 300_000,
    env: { ...process.env, OMP_NUM_THREADS: '1', ...extraEnv },
  });
  if (r.status !== 0) throw new Error(`${PY} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr.slice(-4000)}`);
}

// The RunSpec of the whole test: tiny on names for 20 steps; evalBatches high enough that
// the script's val loss scores the whole held-out split, as kiln eval does.
const SETS = ['--set', 'steps=20', '--set', 'evalBatches=200'];
const scaleDir = join(root, 'scale');

describe('kiln scale: the folder', () => {
  it('writes the spec, the tokens, the starting weights, the trainer and the launch scripts', async () => {
    const r = await runKiln(['scale', '--preset', 'tiny', ...SETS, '--data', 'names', '--out', scaleDir]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['spec.json', 'tokens.bin', 'tokens.json', 'train_ddp.py', 'run.sh', 'slurm.sbatch', 'init/model.safetensors', 'init/config.json', 'init/kiln_tokenizer.json'])
      expect(existsSync(join(scaleDir, f)), f).toBe(true);
    const spec = JSON.parse(readFileSync(join(scaleDir, 'spec.json'), 'utf8')) as { spec: { config: { steps: number }; data: unknown }; model: { vocabSize: number } };
    expect(spec.spec.config.steps).toBe(20);
    expect(spec.spec.data).toEqual({ kind: 'bundled', id: 'names' });
    const tok = JSON.parse(readFileSync(join(scaleDir, 'tokens.json'), 'utf8')) as { train: number; val: number; vocabSize: number };
    expect(statSync(join(scaleDir, 'tokens.bin')).size).toBe(4 * (tok.train + tok.val));
    expect(tok.vocabSize).toBe(spec.model.vocabSize);
    const run = readFileSync(join(scaleDir, 'run.sh'), 'utf8');
    expect(run).toMatch(/--nproc_per_node/);
    expect(run).toMatch(/--nnodes .*--rdzv_endpoint|--rdzv_endpoint/s);
    expect(readFileSync(join(scaleDir, 'slurm.sbatch'), 'utf8')).toMatch(/#SBATCH --nodes/);
    // The starting weights are Kiln's own initialisation: they import as a checkpoint.
    const imported = join(root, 'init.safetensors');
    const imp = await runKiln(['import', '--hf', join(scaleDir, 'init'), '--out', imported]);
    expect(imp.code, imp.stderr).toBe(0);
  });

  it('refuses a folder that holds files, unless --force', async () => {
    const again = await runKiln(['scale', '--preset', 'tiny', '--data', 'names', '--out', scaleDir]);
    expectKilnError(again, 1, /is not empty/);
    const forced = await runKiln(['scale', '--preset', 'tiny', ...SETS, '--data', 'names', '--out', scaleDir, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
  });
});

describe.skipIf(missing !== null)('kiln scale: train_ddp.py with PyTorch (gloo on the CPU)', () => {
  const two = join(root, 'ddp2');
  const one = join(root, 'ddp1');

  it('2 processes match 1 process with the same global batch to 1e-5', () => {
    // Through run.sh: torchrun --nproc_per_node $NPROC, one node, its rendezvous on a free port.
    const launched = spawnSync('bash', [join(scaleDir, 'run.sh'), '--out', two, '--device', 'cpu'], {
      encoding: 'utf8', timeout: 300_000, env: { ...process.env, NPROC: '2', PYTHON: PY, OMP_NUM_THREADS: '1' },
    });
    expect(launched.status, launched.stderr.slice(-4000)).toBe(0);
    expect(launched.stderr).toMatch(/2 processes \(gloo, fp32, DDP\)/);
    python([join(scaleDir, 'train_ddp.py'), '--out', one, '--device', 'cpu']);
    const a = metrics(two);
    const b = metrics(one);
    expect(a.map((r) => r.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(b.map((r) => r.step)).toEqual(a.map((r) => r.step));
    const w = worst(a, b, 'loss', 20);
    expect(w.diff, `worst loss difference at step ${w.step}`).toBeLessThan(1e-5);
    expect(a[19].val_loss).toBeCloseTo(b[19].val_loss!, 5);
    expect(readdirSync(join(two, 'checkpoints')).sort()).toEqual(['step_20']);
  }, 600_000);

  it("matches Kiln's CPU backend on the same RunSpec over the first 5 steps to 1e-4", async () => {
    const k = join(root, 'kiln-cpu');
    const r = await runKiln(['train', '--preset', 'tiny', '--set', 'steps=5', '--backend', 'cpu', '--data', 'names', '--out', k]);
    expect(r.code, r.stderr).toBe(0);
    const kiln = readMetrics(k) as unknown as ReturnType<typeof metrics>;
    const torch = metrics(one);
    expect(kiln.slice(0, 5).map((x) => x.step)).toEqual([1, 2, 3, 4, 5]);
    for (const key of ['loss', 'lr', 'grad_norm'] as const) {
      const w = worst(torch, kiln, key, 5);
      expect(w.diff, `worst ${key} difference at step ${w.step}`).toBeLessThan(1e-4);
    }
  }, 300_000);

  it('its final checkpoint imports, and kiln eval gives the val loss the script logged', async () => {
    await expectEvalMatches(join(one, 'checkpoints', 'step_20'), join(root, 'back.safetensors'), metrics(one)[19].val_loss!);
  }, 300_000);

  it('--resume continues a stopped run on the same curve', () => {
    const r = join(root, 'resumed');
    python([join(scaleDir, 'train_ddp.py'), '--out', r, '--device', 'cpu', '--stop-after', '8']);
    expect(readdirSync(join(r, 'checkpoints'))).toContain('step_8');
    python([join(scaleDir, 'train_ddp.py'), '--out', r, '--device', 'cpu', '--resume']);
    const a = metrics(r);
    const b = metrics(one);
    expect(a.map((x) => x.step)).toEqual(b.map((x) => x.step));
    const w = worst(a, b, 'loss', 20);
    expect(w.diff, `worst loss difference at step ${w.step}`).toBeLessThan(1e-6);
  }, 300_000);

  it('--fsdp wants torchrun, and says which torch it needs where it is too old', async () => {
    const alone = spawnSync(PY, [join(scaleDir, 'train_ddp.py'), '--fsdp', '--device', 'cpu', '--out', join(root, 'fsdp')], { encoding: 'utf8' });
    expect(alone.status).not.toBe(0);
    expect(alone.stderr).toMatch(/--fsdp shards the model over torchrun's processes: launch it through run.sh/);
    const version = spawnSync(PY, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).stdout.trim();
    if (!version.startsWith('1.')) return; // FSDP itself: scale-fsdp.test.ts
    const r = await launchRanks(PY, 1, [join(scaleDir, 'train_ddp.py'), '--fsdp', '--device', 'cpu', '--out', join(root, 'fsdp')], scaleDir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--fsdp needs torch >= 2\.2 .* this is torch 1\./);
  }, 120_000);
});
