// Safe writes (issue 19, item 6): Kiln writes only where it was asked. Temporary files
// are created exclusively under a random name, so a symlink planted at a predictable name
// is never written through; a run's metrics.jsonl and checkpoints are never written
// through a link; `kiln train --out` refuses a folder with files but no Kiln run, and
// `kiln export --hf` a non-empty folder that is not a Kiln export, unless --force. Each
// refusal is one "kiln: error:" line with a hint, and every other file stays byte for byte.
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkExportFolder, checkRunFolder, looksLikeMetrics, MetricsLog, writeFileAtomic } from '../../src/cli/files.ts';
import { KilnError } from '../../src/core/errors.ts';
import { expectKilnError, namesText, runKiln, tempDir } from '../helpers/cli.ts';

let root: string;
let names: string;
/** A run of 2 steps that saves a checkpoint, for export. */
let trained: string;
const VICTIM_TEXT = 'precious: not Kiln\'s to write\n';

function victim(name: string): string {
  const p = join(root, name);
  writeFileSync(p, VICTIM_TEXT);
  return p;
}

/** Every file under `dir` (not following links) with its bytes, or the link's target. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    out[f] = lstatSync(p).isSymbolicLink() ? `-> ${readlinkSync(p)}` : readFileSync(p).toString('base64');
  }
  return out;
}

async function train(out: string, ...more: string[]) {
  return runKiln(['train', '--preset', 'tiny', '--steps', '2', '--set', 'checkpointEvery=2', '--set', 'evalEvery=2', '--data', names, '--out', out, ...more]);
}

beforeAll(async () => {
  root = tempDir('kiln-safe-writes-');
  names = join(root, 'names.txt');
  writeFileSync(names, namesText(2000));
  trained = join(root, 'trained');
  const r = await train(trained);
  expect(r.code, r.stderr).toBe(0);
}, 120_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('temporary files', () => {
  it('are created under a random name, exclusively: a link planted at the old .NAME.<pid>.tmp name is not written through', () => {
    const dir = join(root, 'tmp-planted');
    mkdirSync(dir);
    const target = victim('tmp-victim.txt');
    const planted = join(dir, `.file.bin.${process.pid}.tmp`);
    symlinkSync(target, planted);
    writeFileAtomic(join(dir, 'file.bin'), 'new contents');
    expect(readFileSync(join(dir, 'file.bin'), 'utf8')).toBe('new contents');
    expect(readFileSync(target, 'utf8')).toBe(VICTIM_TEXT);
    expect(lstatSync(planted).isSymbolicLink()).toBe(true);
    // Nothing of this write is left behind but the planted link.
    expect(readdirSync(dir).sort()).toEqual([`.file.bin.${process.pid}.tmp`, 'file.bin']);
  });

  it('kiln train with links planted at the old checkpoint temp names leaves their targets unchanged', async () => {
    const dir = join(root, 'train-planted');
    mkdirSync(dir);
    const targets = ['checkpoint.safetensors', 'best.safetensors', 'metrics.jsonl'].map((f) => {
      const t = victim(`victim-${f}`);
      symlinkSync(t, join(dir, `.${f}.${process.pid}.tmp`));
      return t;
    });
    // Only the planted links are there: not a Kiln run, so --force.
    const r = await train(dir, '--force');
    expect(r.code, r.stderr).toBe(0);
    for (const t of targets) expect(readFileSync(t, 'utf8')).toBe(VICTIM_TEXT);
    expect(existsSync(join(dir, 'checkpoint.safetensors'))).toBe(true);
    expect(lstatSync(join(dir, 'checkpoint.safetensors')).isSymbolicLink()).toBe(false);
  });
});

describe('run files are never written through a link', () => {
  it('a symlinked metrics.jsonl is refused and the file it points to is unchanged', async () => {
    const dir = join(root, 'metrics-link');
    mkdirSync(dir);
    const target = victim('metrics-victim.txt');
    symlinkSync(target, join(dir, 'metrics.jsonl'));
    const before = snapshot(dir);
    for (const more of [[], ['--force']]) {
      const r = await train(dir, ...more);
      const e = expectKilnError(r, 2, /metrics\.jsonl is a symbolic link/);
      expect(e.hint).toMatch(/remove the link/);
      expect(readFileSync(target, 'utf8')).toBe(VICTIM_TEXT);
      expect(snapshot(dir)).toEqual(before);
    }
  });

  it('a symlinked metrics.jsonl in a run being resumed is refused too', async () => {
    const dir = join(root, 'resume-link');
    const r0 = await train(dir);
    expect(r0.code, r0.stderr).toBe(0);
    const target = victim('resume-victim.txt');
    rmSync(join(dir, 'metrics.jsonl'));
    symlinkSync(target, join(dir, 'metrics.jsonl'));
    const before = snapshot(dir);
    const r = await train(dir, '--resume', '--steps', '4');
    expectKilnError(r, 2, /metrics\.jsonl is a symbolic link/);
    expect(readFileSync(target, 'utf8')).toBe(VICTIM_TEXT);
    expect(snapshot(dir)).toEqual(before);
  });

  it('a symlinked checkpoint.safetensors or best.safetensors is refused, the target unchanged', async () => {
    for (const f of ['checkpoint.safetensors', 'best.safetensors']) {
      const dir = join(root, `link-${f}`);
      mkdirSync(dir);
      const target = victim(`victim2-${f}`);
      symlinkSync(target, join(dir, f));
      const before = snapshot(dir);
      const r = await train(dir, '--force');
      expectKilnError(r, 2, new RegExp(`${f.replace('.', '\\.')} is a symbolic link`));
      expect(readFileSync(target, 'utf8')).toBe(VICTIM_TEXT);
      expect(snapshot(dir)).toEqual(before);
    }
  });

  it('MetricsLog refuses a link even one placed after the run started', () => {
    const dir = join(root, 'metrics-late');
    mkdirSync(dir);
    const log = new MetricsLog(join(dir, 'metrics.jsonl'));
    log.reset();
    log.append({ step: 1 });
    const target = victim('late-victim.txt');
    rmSync(join(dir, 'metrics.jsonl'));
    symlinkSync(target, join(dir, 'metrics.jsonl'));
    expect(() => log.append({ step: 2 })).toThrow(KilnError);
    expect(() => log.reset()).toThrow(/symbolic link/);
    expect(() => log.truncateAfter(1)).toThrow(/symbolic link/);
    expect(readFileSync(target, 'utf8')).toBe(VICTIM_TEXT);
  });
});

describe('kiln train --out: a folder that holds files but no Kiln run', () => {
  it('is refused with a hint, leaving its files byte for byte; --force allows it', async () => {
    const dir = join(root, 'not-a-run');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'my notes\n');
    writeFileSync(join(dir, 'metrics.jsonl'), 'my own metrics, not Kiln\'s\n');
    const before = snapshot(dir);
    const r = await train(dir);
    const e = expectKilnError(r, 1, /not-a-run holds files but no Kiln run/);
    expect(e.hint).toMatch(/choose another --out/);
    expect(e.hint).toMatch(/--force/);
    expect(snapshot(dir)).toEqual(before);

    const forced = await train(dir, '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('my notes\n');
    expect(existsSync(join(dir, 'checkpoint.safetensors'))).toBe(true);
  });

  it('a new folder, an empty one, or one with only a Kiln metrics.jsonl (no checkpoint yet) is fine', async () => {
    const empty = join(root, 'empty-out');
    mkdirSync(empty);
    expect(() => checkRunFolder(empty, false)).not.toThrow();
    expect(() => checkRunFolder(join(root, 'no-such-folder'), false)).not.toThrow();
    const early = join(root, 'early-stop');
    mkdirSync(early);
    writeFileSync(join(early, 'metrics.jsonl'), JSON.stringify({ step: 1, loss: 4.1 }) + '\n');
    writeFileSync(join(early, 'other.txt'), 'x');
    expect(() => checkRunFolder(early, false)).not.toThrow();
    const r = await train(early);
    expect(r.code, r.stderr).toBe(0);
  });

  it('looksLikeMetrics: empty, or a first line that is an object with a numeric step', () => {
    const d = join(root, 'looks');
    mkdirSync(d);
    const cases: [string, boolean][] = [['', true], ['{"step":1,"loss":2}\n', true], ['{"step":"1"}\n', false], ['[1]\n', false], ['hello\n', false], ['{"step":1}', false]];
    cases.forEach(([text, ok], i) => {
      writeFileSync(join(d, `m${i}`), text);
      expect(looksLikeMetrics(join(d, `m${i}`)), JSON.stringify(text)).toBe(ok);
    });
  });

  it('--resume rules are unchanged: a run folder with other files resumes', async () => {
    const dir = join(root, 'resume-extra');
    expect((await train(dir)).code).toBe(0);
    writeFileSync(join(dir, 'notes.txt'), 'mine\n');
    const r = await train(dir, '--resume', '--steps', '3');
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine\n');
    // And a run folder without --resume is still "already holds a run", --force or not.
    expectKilnError(await train(dir, '--force'), 1, /already holds a run/);
  });
});

describe('kiln export --hf: a non-empty folder that is not a Kiln export', () => {
  it('is refused with a hint, leaving its files byte for byte; --force allows it; a Kiln export is overwritten', async () => {
    const ckpt = join(trained, 'checkpoint.safetensors');
    const hf = join(root, 'someone-elses-model');
    mkdirSync(hf);
    writeFileSync(join(hf, 'config.json'), '{"model_type": "gpt2", "theirs": true}\n');
    writeFileSync(join(hf, 'model.safetensors'), 'their weights');
    const before = snapshot(hf);
    const r = await runKiln(['export', '--checkpoint', ckpt, '--hf', hf]);
    const e = expectKilnError(r, 1, /someone-elses-model holds files but is not a Kiln export/);
    expect(e.hint).toMatch(/choose another --hf folder/);
    expect(e.hint).toMatch(/--force/);
    expect(snapshot(hf)).toEqual(before);

    const forced = await runKiln(['export', '--checkpoint', ckpt, '--hf', hf, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(join(hf, 'config.json'), 'utf8')).not.toContain('theirs');

    // Now it is a Kiln export (it has kiln_tokenizer.json): exporting again needs no --force.
    const again = await runKiln(['export', '--checkpoint', ckpt, '--hf', hf]);
    expect(again.code, again.stderr).toBe(0);
    // A new folder needs none either.
    const fresh = await runKiln(['export', '--checkpoint', ckpt, '--hf', join(root, 'fresh-export')]);
    expect(fresh.code, fresh.stderr).toBe(0);
  });

  it('checkExportFolder: empty or missing is fine; a linked marker does not count', () => {
    const d = join(root, 'export-check');
    mkdirSync(d);
    expect(() => checkExportFolder(d, 'kiln_tokenizer.json', false)).not.toThrow();
    expect(() => checkExportFolder(join(root, 'nope'), 'kiln_tokenizer.json', false)).not.toThrow();
    symlinkSync(victim('marker-victim.txt'), join(d, 'kiln_tokenizer.json'));
    expect(() => checkExportFolder(d, 'kiln_tokenizer.json', false)).toThrow(/not a Kiln export/);
    expect(() => checkExportFolder(d, 'kiln_tokenizer.json', true)).not.toThrow();
  });
});
