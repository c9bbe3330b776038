// train_ddp.py draws Kiln's dropout masks (src/core/dropout.ts), not torch's: with dropout
// 0.1 on tiny (gradAccum 3, so 12 sequences a step and, with 2 processes, a rank's chunk
// that straddles two of Kiln's micro-batches), one PyTorch process matches Kiln's CPU
// backend over the first 5 steps to 1e-4, and 2 processes (torchrun, gloo) match 1 to 1e-5.
// Plus the hash itself against dropoutKeep. Skipped, with the reason, where python3 or
// torch is missing.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dropoutKeep, dropoutKey, dropoutStepSeed, dropoutThreshold } from '../../src/core/dropout.ts';
import { REPO_ROOT, readMetrics, runKiln, tempDir } from '../helpers/cli.ts';
import { type ScaleRow, scaleMetrics as metrics, worstDiff as worst } from '../helpers/scale-run.ts';
import { findPython } from '../helpers/torch-python.ts';


const found = findPython();
const PY = 'python' in found ? found.python : 'python3';
const missing = 'missing' in found ? found.missing : null;
if (missing) console.warn(`scale-dropout.test.ts: skipped: ${missing}`);

const root = tempDir('kiln-scale-dropout-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SETS = ['--set', 'steps=5', '--set', 'dropout=0.1', '--set', 'gradAccum=3'];

describe.skipIf(missing !== null)('kiln scale: dropout as Kiln draws it', () => {
  const dir = join(root, 'scale');
  const one = join(root, 'one');

  it("the masks are dropoutKeep's, bit for bit", () => {
    const cases: Array<[number, number, number, number, number]> = [[1337, 0, 0, 0, 0.1], [42, 17, 3, 7, 0.5], [0xffffffff, 123456, 65535, 4, 0.9]];
    const js = cases.map(([seed, step, mb, site, p]) => {
      const key = dropoutKey(dropoutStepSeed(seed, step), mb, site);
      const th = dropoutThreshold(p);
      return Array.from({ length: 2000 }, (_, i) => (dropoutKeep(key, i * 977 + 13, th) ? '1' : '0')).join('');
    });
    const code = [
      'import json, sys, torch', `sys.path.insert(0, ${JSON.stringify(join(REPO_ROOT, 'scale'))})`, 'import train_ddp as t',
      'out = []',
      `for seed, step, mb, site, p in ${JSON.stringify(cases)}:`,
      '    key = t.dropout_key(t.dropout_step_seed(seed, step), mb, site)',
      "    th = t.KilnDropout(p, 0, [], 1, 'cpu').threshold",
      "    keep = t.dropout_keep(torch.tensor(key), torch.arange(2000, dtype=torch.int64) * 977 + 13, th)",
      "    out.append(''.join('1' if k else '0' for k in keep.tolist()))",
      'print(json.dumps(out))',
    ].join('\n');
    const r = spawnSync(PY, ['-c', code], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout) as string[]).toEqual(js);
  });

  it("1 process matches Kiln's CPU backend over the first 5 steps to 1e-4", async () => {
    const made = await runKiln(['scale', '--preset', 'tiny', ...SETS, '--data', 'names', '--out', dir]);
    expect(made.code, made.stderr).toBe(0);
    const k = join(root, 'kiln');
    const r = await runKiln(['train', '--preset', 'tiny', ...SETS, '--backend', 'cpu', '--data', 'names', '--out', k]);
    expect(r.code, r.stderr).toBe(0);
    const p = spawnSync(PY, [join(dir, 'train_ddp.py'), '--out', one, '--device', 'cpu'], {
      encoding: 'utf8', timeout: 300_000, env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    expect(p.status, p.stderr.slice(-4000)).toBe(0);
    const kiln = readMetrics(k) as unknown as ScaleRow[];
    const torch = metrics(one);
    expect(torch.map((x) => x.step)).toEqual([1, 2, 3, 4, 5]);
    for (const key of ['loss', 'lr', 'grad_norm'] as const) {
      const w = worst(torch, kiln, key, 5);
      expect(w.diff, `worst ${key} difference at step ${w.step}`).toBeLessThan(1e-4);
    }
    // Dropout is on: the same run without it starts from another loss.
    const k0 = join(root, 'kiln-no-dropout');
    const r0 = await runKiln(['train', '--preset', 'tiny', ...SETS, '--set', 'dropout=0', '--backend', 'cpu', '--data', 'names', '--out', k0]);
    expect(r0.code, r0.stderr).toBe(0);
    expect(Math.abs((readMetrics(k0) as unknown as ScaleRow[])[0].loss - torch[0].loss)).toBeGreaterThan(1e-3);
    console.log(`scale-dropout: torch vs Kiln CPU, worst loss difference ${worst(torch, kiln, 'loss', 5).diff}`);
  }, 300_000);

  it('2 processes (torchrun, gloo) match 1 to 1e-5', () => {
    const two = join(root, 'two');
    const launched = spawnSync('bash', [join(dir, 'run.sh'), '--out', two, '--device', 'cpu'], {
      encoding: 'utf8', timeout: 300_000, env: { ...process.env, NPROC: '2', PYTHON: PY, OMP_NUM_THREADS: '1' },
    });
    expect(launched.status, launched.stderr.slice(-4000)).toBe(0);
    expect(launched.stderr).toMatch(/2 processes \(gloo, fp32, DDP\), 12 sequences/);
    const a = metrics(two);
    const b = metrics(one);
    expect(a.map((x) => x.step)).toEqual(b.map((x) => x.step));
    const w = worst(a, b, 'loss', 5);
    expect(w.diff, `worst loss difference at step ${w.step}`).toBeLessThan(1e-5);
    console.log(`scale-dropout: 2 processes vs 1, worst loss difference ${w.diff}`);
  }, 300_000);
});
