// `kiln scale`'s train_ddp.py --fsdp (FullyShardedDataParallel, each transformer block a
// unit) on the CPU with gloo: the same steps as DDP; an uneven step (3 processes, 5
// sequences, so one rank runs a micro-batch that counts zero) with dropout on one process's
// curve; checkpoints that continue in the other mode (DDP on Debian 12's torch 1.13 where it
// is here); and the final checkpoint back through kiln import --hf and kiln eval.
// Needs a torch >= 2.2 (scripts/torch2-chroot.sh installs Debian 13's; .ci/run does):
// skipped, with the reason, without one.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runKiln } from '../helpers/cli.ts';
import { expectEvalMatches, launchRanks, scaleMetrics, worstDiff } from '../helpers/scale-run.ts';
import { findFsdpPython, findPython } from '../helpers/torch-python.ts';

const fsdp = findFsdpPython();
const missing = 'missing' in fsdp ? fsdp.missing : null;
if (missing) console.warn(`scale-fsdp.test.ts: skipped: ${missing}`);
const PY2 = 'python' in fsdp ? fsdp.python : 'python3';
// The DDP side of the cross-mode checks: Debian 12's torch 1.13 when it is here (a checkpoint
// then crosses torch versions too), else the same torch.
const other = findPython();
const PY1 = 'python' in other ? other.python : PY2;

// Under /tmp whatever TMPDIR says: the chroot's python sees /tmp only.
const root = mkdtempSync('/tmp/kiln-scale-fsdp-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function scale(out: string, sets: string[]): Promise<void> {
  const r = await runKiln(['scale', '--preset', 'tiny', ...sets.flatMap((s) => ['--set', s]), '--data', 'names', '--out', out]);
  expect(r.code, r.stderr).toBe(0);
}

async function ranks(python: string, n: number, dir: string, args: string[]): Promise<string> {
  const r = await launchRanks(python, n, [join(dir, 'train_ddp.py'), '--device', 'cpu', ...args], dir);
  expect(r.code, r.stderr.slice(-4000)).toBe(0);
  return r.stderr;
}

describe.skipIf(missing !== null)(`kiln scale: train_ddp.py --fsdp (${'version' in fsdp ? `torch ${fsdp.version}` : 'no torch 2'}, gloo on the CPU)`, () => {
  const dir = join(root, 'scale');
  const fsdp2 = join(root, 'fsdp2');
  const one = join(root, 'one');

  it('2 FSDP processes take the same steps as 2 DDP processes, and one process', async () => {
    await scale(dir, ['steps=12', 'evalBatches=200', 'checkpointEvery=4']);
    const log = await ranks(PY2, 2, dir, ['--fsdp', '--out', fsdp2]);
    expect(log).toMatch(/2 processes \(gloo, fp32, FSDP\)/);
    await ranks(PY2, 2, dir, ['--out', join(root, 'ddp2')]);
    await ranks(PY1, 1, dir, ['--out', one]);
    const a = scaleMetrics(fsdp2);
    const b = scaleMetrics(join(root, 'ddp2'));
    const c = scaleMetrics(one);
    expect(a.map((r) => r.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    for (const key of ['loss', 'grad_norm'] as const) {
      const ddp = worstDiff(a, b, key, 12);
      expect(ddp.diff, `worst ${key} difference from DDP at step ${ddp.step}`).toBeLessThan(1e-6);
      const single = worstDiff(a, c, key, 12);
      expect(single.diff, `worst ${key} difference from one process at step ${single.step}`).toBeLessThan(1e-5);
    }
    expect(Math.abs(a[11].val_loss! - c[11].val_loss!)).toBeLessThan(1e-5);
    // Every checkpoint gathered whole and renamed into place; no temporaries left.
    expect(readdirSync(join(fsdp2, 'checkpoints')).sort()).toEqual(['step_12', 'step_4', 'step_8']);
  }, 600_000);

  it('3 processes on 5 sequences a step (one rank adds a micro-batch counting zero), with dropout: the curve of one process', async () => {
    const uneven = join(root, 'uneven');
    await scale(uneven, ['steps=6', 'batchSize=1', 'gradAccum=5', 'dropout=0.1']);
    await ranks(PY2, 3, uneven, ['--fsdp', '--out', join(root, 'fsdp3')]);
    await ranks(PY2, 1, uneven, ['--out', join(root, 'uneven-one')]);
    const a = scaleMetrics(join(root, 'fsdp3'));
    const b = scaleMetrics(join(root, 'uneven-one'));
    expect(a.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    const w = worstDiff(a, b, 'loss', 6);
    expect(w.diff, `worst loss difference at step ${w.step}`).toBeLessThan(1e-5);
  }, 300_000);

  it("an FSDP checkpoint continues in DDP, and a DDP checkpoint in FSDP, on the uninterrupted curve", async () => {
    const fromFsdp = join(root, 'from-fsdp');
    await ranks(PY2, 2, dir, ['--fsdp', '--out', fromFsdp, '--stop-after', '5']);
    expect(readdirSync(join(fromFsdp, 'checkpoints')).sort()).toEqual(['step_4', 'step_5']);
    const resumed = await ranks(PY1, 1, dir, ['--out', fromFsdp]);
    expect(resumed).toMatch(/resuming from .*step_5/);
    const fromDdp = join(root, 'from-ddp');
    await ranks(PY1, 1, dir, ['--out', fromDdp, '--stop-after', '6']);
    expect(await ranks(PY2, 2, dir, ['--fsdp', '--out', fromDdp])).toMatch(/resuming from .*step_6/);
    const whole = scaleMetrics(one);
    for (const out of [fromFsdp, fromDdp]) {
      const a = scaleMetrics(out);
      expect(a.map((r) => r.step)).toEqual(whole.map((r) => r.step));
      const w = worstDiff(a, whole, 'loss', 12);
      expect(w.diff, `${out}: worst loss difference at step ${w.step}`).toBeLessThan(1e-5);
    }
  }, 600_000);

  it('bf16 autocast (here on the CPU): FSDP takes the steps DDP takes, near fp32 but not equal to it', async () => {
    await ranks(PY2, 2, dir, ['--fsdp', '--precision', 'bf16', '--out', join(root, 'bf16-fsdp')]);
    await ranks(PY2, 2, dir, ['--precision', 'bf16', '--out', join(root, 'bf16-ddp')]);
    const a = scaleMetrics(join(root, 'bf16-fsdp'));
    const b = scaleMetrics(join(root, 'bf16-ddp'));
    const fp32 = scaleMetrics(one);
    const same = worstDiff(a, b, 'loss', 12);
    expect(same.diff, `worst loss difference from DDP at step ${same.step}`).toBeLessThan(1e-6);
    const near = worstDiff(a, fp32, 'loss', 12);
    expect(near.diff, `worst loss difference from fp32 at step ${near.step}`).toBeLessThan(1e-2);
    expect(near.diff, 'bf16 autocast changed nothing: it did not take effect').toBeGreaterThan(1e-6);
  }, 300_000);

  it('its final checkpoint imports, and kiln eval gives the val loss it logged', async () => {
    await expectEvalMatches(join(fsdp2, 'checkpoints', 'step_12'), join(root, 'back.safetensors'), scaleMetrics(fsdp2)[11].val_loss!);
  }, 300_000);
});
