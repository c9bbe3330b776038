// The `kiln` command end to end on the cpu backend with the tiny preset: exit codes and
// one-line errors with hints for every kind of bad input, train/eval/sample/export/
// import, refusing to overwrite a run, bit-identical --resume, and Ctrl-C.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../../src/core/checkpoint.ts';
import { splitTokens } from '../../src/core/data.ts';
import { tokenizerFromJSON } from '../../src/core/tokenizers/index.ts';
import { Rng } from '../../src/core/rng.ts';
import { bytesOf, expectKilnError, interruptTrain, namesText, readMetrics, runKiln, spawnKiln, tempDir } from '../helpers/cli.ts';

function sameBits(a: Float32Array | null, b: Float32Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let root: string;
let names: string;
/** A finished 6-step run: checkpoint.safetensors, best.safetensors, metrics.jsonl. */
let trained: string;

beforeAll(async () => {
  root = tempDir('kiln-cli-');
  names = join(root, 'names.txt');
  writeFileSync(names, namesText(3000));
  trained = join(root, 'trained');
  const r = await runKiln(['train', '--preset', 'tiny', '--steps', '6', '--data', names, '--out', trained]);
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** Children still running when a test ends (it failed early) are stopped, never left training. */
const children: Array<ReturnType<typeof spawnKiln>['child']> = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function train(out: string, ...more: string[]): Promise<ReturnType<typeof runKiln> extends Promise<infer R> ? R : never> {
  return runKiln(['train', '--preset', 'tiny', '--data', names, '--out', out, ...more]);
}

describe('kiln: bad usage and config (exit 1)', () => {
  it('an invalid config: --set nEmbd=100 with nHead 3', async () => {
    const out = join(root, 'bad-config');
    const r = await train(out, '--steps', '2', '--set', 'nEmbd=100', '--set', 'nHead=3');
    const e = expectKilnError(r, 1, /nEmbd 100 is not divisible by nHead 3: choose nHead \d+ or \d+, or nEmbd \d+/);
    expect(e.message).toContain('invalid config');
    expect(existsSync(join(out, 'checkpoint.safetensors'))).toBe(false);
  });

  it('a bad --set value names the setting', async () => {
    expectKilnError(await train(join(root, 'bad-set'), '--set', 'lr=fast'), 1, /lr must be a number, not "fast"/);
    const unknown = expectKilnError(await train(join(root, 'bad-set2'), '--set', 'nembd=64'), 1, /unknown setting "nembd"/);
    expect(unknown.hint).toContain('nEmbd');
  });

  it('an unknown preset lists the real ones', async () => {
    const r = await runKiln(['train', '--preset', 'huge', '--data', names, '--out', join(root, 'p')]);
    const e = expectKilnError(r, 1, /unknown preset "huge"/);
    expect(e.hint).toContain('tiny');
    expect(e.hint).toContain('gpt2-124m');
  });

  it('an unknown flag is named', async () => {
    const r = await runKiln(['train', '--preset', 'tiny', '--bogus', '--data', names, '--out', join(root, 'f')]);
    const e = expectKilnError(r, 1, /--bogus/);
    expect(e.hint).toContain('--help');
    expectKilnError(await runKiln(['frobnicate']), 1, /unknown command "frobnicate"/);
  });

  it('no --data: a link to a file of its own says how to give it', async () => {
    const link = `v=1&preset=tiny&file=mine.txt&bytes=10&sha256=${'a'.repeat(64)}`;
    const r = await runKiln(['train', '--link', link, '--out', join(root, 'nodata')]);
    const e = expectKilnError(r, 1, /no training data/);
    expect(e.hint).toContain('--data');
    expect(e.hint).toContain('shakespeare');
  });

  it('no --data: the preset trains on its bundled dataset, and says so; --data NAME picks a bundled one', async () => {
    const out = join(root, 'bundled');
    const r = await runKiln(['train', '--preset', 'tiny', '--steps', '2', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('the bundled names dataset');
    const ckpt = await decodeCheckpoint(bytesOf(join(out, 'checkpoint.safetensors')));
    expect(ckpt.extra?.['kiln.dataset']).toBe(JSON.stringify({ kind: 'bundled', id: 'names' }));
    const s = await runKiln(['train', '--preset', 'tiny', '--steps', '1', '--data', 'shakespeare', '--out', join(root, 'bundled2')]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stderr).toMatch(/vocab 65 \(char\)/);
  });

  it('a malformed share link names the bad part', async () => {
    const bad = await runKiln(['train', '--link', 'https://kiln.example/#v=1&preset=tiny&nEmbd=abc', '--data', names, '--out', join(root, 'l1')]);
    expectKilnError(bad, 1, /nEmbd/);
    const version = await runKiln(['train', '--link', '#v=9&preset=tiny', '--data', names, '--out', join(root, 'l2')]);
    expectKilnError(version, 1, /version/);
    const junk = await runKiln(['train', '--link', 'not a link at all', '--data', names, '--out', join(root, 'l3')]);
    expectKilnError(junk, 1, /link/);
  });

  it('a share link whose value decodes to a newline still gives a one-line error', async () => {
    // %0A is a newline once decoded: the message must not break onto a second line (the
    // hint line would then be a fragment of the link).
    const r = await runKiln(['train', '--link', '#v=1&preset=tiny&bias=a%0Ab', '--data', names, '--out', join(root, 'l4')]);
    expectKilnError(r, 1, /bias/);
    const set = await train(join(root, 'l5'), '--set', 'nEmbd=1\n2');
    expectKilnError(set, 1, /nEmbd/);
  });

  it('train into a folder that holds a run, without --resume, refuses and leaves it byte-identical', async () => {
    const dir = join(root, 'occupied');
    mkdirSync(dir);
    for (const f of ['checkpoint.safetensors', 'best.safetensors', 'metrics.jsonl']) copyFileSync(join(trained, f), join(dir, f));
    const before = ['checkpoint.safetensors', 'best.safetensors', 'metrics.jsonl'].map((f) => readFileSync(join(dir, f)));
    const r = await train(dir, '--steps', '3');
    const e = expectKilnError(r, 1, /already holds a run/);
    expect(e.hint).toContain('--resume');
    const after = ['checkpoint.safetensors', 'best.safetensors', 'metrics.jsonl'].map((f) => readFileSync(join(dir, f)));
    for (let i = 0; i < 3; i++) expect(after[i].equals(before[i])).toBe(true);
  });

  it('--out (or --hf) naming an existing file, not a folder, is a readable error, not an internal one', async () => {
    const file = join(root, 'a-file.txt');
    writeFileSync(file, 'not a folder\n');
    for (const r of [
      await train(file, '--steps', '2'),
      await runKiln(['export', '--checkpoint', join(trained, 'checkpoint.safetensors'), '--hf', file]),
    ]) {
      const context = r.stderr;
      expect(r.stderr, context).not.toContain('internal error');
      expect([1, 2], context).toContain(r.code);
      expect(r.stderr, context).toMatch(/^kiln: error: .*a-file\.txt/m);
      expect(r.stderr, context).toMatch(/^ {2}hint: \S/m);
    }
    expect(readFileSync(file, 'utf8')).toBe('not a folder\n');
  });

  it('--resume with nothing to resume refuses', async () => {
    const r = await runKiln(['train', '--resume', '--data', names, '--out', join(root, 'empty-out')]);
    expectKilnError(r, 1, /nothing to resume/);
  });
});

describe('kiln: bad data and checkpoints (exit 2)', () => {
  it('a missing data file', async () => {
    const missing = join(root, 'no-such-file.txt');
    const e = expectKilnError(await train(join(root, 'd1'), '--data', missing), 2, /no such file/);
    expect(e.message).toContain(missing);
  });

  it('an empty data file', async () => {
    const empty = join(root, 'empty.txt');
    writeFileSync(empty, '');
    expectKilnError(await runKiln(['train', '--preset', 'tiny', '--data', empty, '--out', join(root, 'd2')]), 2, /empty/);
  });

  it('data shorter than a block says how many tokens it has', async () => {
    const short = join(root, 'short.txt');
    writeFileSync(short, 'ana\nbo\n');
    const r = await runKiln(['train', '--preset', 'tiny', '--data', short, '--out', join(root, 'd3')]);
    const e = expectKilnError(r, 2, /too short: 7 tokens/);
    expect(e.hint).toMatch(/more text|blockSize/);
  });

  it('a binary file given as text', async () => {
    const bin = join(root, 'weights.bin');
    const rng = new Rng(4);
    writeFileSync(bin, Uint8Array.from({ length: 10_000 }, () => rng.int(256)));
    const r = await runKiln(['train', '--preset', 'tiny', '--data', bin, '--out', join(root, 'd4')]);
    const e = expectKilnError(r, 2, /binary|UTF-8/);
    expect(e.message).toContain('weights.bin');
    // And a checkpoint given as --data is refused the same way.
    const r2 = await runKiln(['train', '--preset', 'tiny', '--data', join(trained, 'checkpoint.safetensors'), '--out', join(root, 'd5')]);
    expectKilnError(r2, 2, /binary|UTF-8/);
  });

  it('a checkpoint with one flipped byte in its tensors is refused by eval', async () => {
    const bytes = new Uint8Array(bytesOf(join(trained, 'checkpoint.safetensors')));
    bytes[bytes.length - 1001] ^= 0x01;
    const path = join(root, 'flipped-data.safetensors');
    writeFileSync(path, bytes);
    const e = expectKilnError(await runKiln(['eval', '--checkpoint', path, '--data', names]), 2, /corrupt/);
    expect(e.hint).toMatch(/earlier checkpoint|best\.safetensors|train again/);
  });

  it('a checkpoint with one flipped byte in its header (a digit of the learning rate) is refused by eval', async () => {
    const bytes = new Uint8Array(bytesOf(join(trained, 'checkpoint.safetensors')));
    const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
    const at = header.indexOf('\\"lr\\":0.003');
    expect(at).toBeGreaterThan(0);
    const digit = 8 + at + '\\"lr\\":0.00'.length;
    expect(String.fromCharCode(bytes[digit])).toBe('3');
    bytes[digit] ^= 0x07; // '3' -> '4'
    const path = join(root, 'flipped-header.safetensors');
    writeFileSync(path, bytes);
    expectKilnError(await runKiln(['eval', '--checkpoint', path, '--data', names]), 2, /corrupt|header/);
  });

  it('a truncated checkpoint', async () => {
    const bytes = bytesOf(join(trained, 'checkpoint.safetensors'));
    const path = join(root, 'truncated.safetensors');
    writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expectKilnError(await runKiln(['eval', '--checkpoint', path, '--data', names]), 2, /truncated/);
    writeFileSync(path, bytes.subarray(0, 5));
    expectKilnError(await runKiln(['sample', '--checkpoint', path]), 2, /too short/);
  });

  it('a missing checkpoint file', async () => {
    const missing = join(root, 'nope.safetensors');
    const e = expectKilnError(await runKiln(['eval', '--checkpoint', missing, '--data', names]), 2, /no such file/);
    expect(e.message).toContain(missing);
  });
});

// --backend cuda without a usable GPU (exit 3) is tests/cuda/cli-cuda.test.ts's, which
// knows whether this machine has one.
describe('kiln: an unknown backend (exit 1)', () => {
  it('--backend tpu', async () => {
    expectKilnError(await train(join(root, 'tpu'), '--backend', 'tpu'), 1, /unknown backend "tpu"/);
  });
});

describe('kiln: train, eval, sample, export, import', () => {
  it('train writes checkpoint, best and metrics; eval scores the whole held-out split and says how many tokens', async () => {
    const metrics = readMetrics(trained);
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    const last = metrics[metrics.length - 1];
    expect(last.val_loss).toBeDefined();
    for (const m of metrics) {
      for (const k of ['loss', 'lr', 'grad_norm', 'tokens_per_s', 'elapsed_s'] as const) expect(Number.isFinite(m[k]), k).toBe(true);
    }
    const ckpt = await decodeCheckpoint(bytesOf(join(trained, 'checkpoint.safetensors')));
    expect(ckpt.step).toBe(6);
    expect(ckpt.state.m).not.toBeNull();
    expect((await decodeCheckpoint(bytesOf(join(trained, 'best.safetensors')))).extra!['kiln.best_val_loss']).toBeDefined();

    const r = await runKiln(['eval', '--checkpoint', join(trained, 'checkpoint.safetensors'), '--data', names]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]) as { loss: number; step: number; tokens: number; split: string };
    // Every window of 16 tokens of the held-out split (training's evaluations take 8 of them).
    const tokenizer = await tokenizerFromJSON(ckpt.tokenizer);
    const val = splitTokens(tokenizer.encode(readFileSync(names, 'utf8')), ckpt.config.valFraction, 16).val;
    expect(out).toMatchObject({ step: 6, split: 'val', tokens: Math.floor((val.length - 1) / 16) * 16 });
    expect(out.tokens).toBeGreaterThan(ckpt.config.evalBatches * ckpt.config.batchSize * 16);
    // The same model on more of the same text: near the trainer's sampled val loss.
    expect(Math.abs(out.loss - last.val_loss!)).toBeLessThan(0.25);
  });

  it('6 steps straight == 3 steps + --resume to 6, loss for loss', async () => {
    const straight = join(root, 'straight');
    const split = join(root, 'split');
    expect((await train(straight, '--steps', '6')).code).toBe(0);
    expect((await train(split, '--steps', '3')).code).toBe(0);
    const r = await runKiln(['train', '--resume', '--steps', '6', '--data', names, '--out', split]);
    expect(r.code, r.stderr).toBe(0);
    const a = readMetrics(straight);
    const b = readMetrics(split);
    expect(b.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(b.map((m) => m.loss)).toEqual(a.map((m) => m.loss));
    expect(b.map((m) => m.grad_norm)).toEqual(a.map((m) => m.grad_norm));
    expect(b.map((m) => m.lr)).toEqual(a.map((m) => m.lr));
    expect(b[5].val_loss).toBe(a[5].val_loss);
    const [ca, cb] = await Promise.all([straight, split].map((d) => decodeCheckpoint(bytesOf(join(d, 'checkpoint.safetensors')))));
    expect(cb.step).toBe(6);
    expect(sameBits(cb.state.params, ca.state.params)).toBe(true);
    expect(sameBits(cb.state.v, ca.state.v)).toBe(true);
  });

  it('sample prints text from the model\'s vocabulary, the same for the same seed', async () => {
    const ckpt = join(trained, 'checkpoint.safetensors');
    const r = await runKiln(['sample', '--checkpoint', ckpt, '--tokens', '60', '--seed', '3']);
    expect(r.code, r.stderr).toBe(0);
    const text = r.stdout.replace(/\n$/, '');
    expect([...text].length).toBe(60);
    const vocab = new Set(readFileSync(names, 'utf8'));
    for (const ch of text) expect(vocab.has(ch), JSON.stringify(ch)).toBe(true);
    const again = await runKiln(['sample', '--checkpoint', ckpt, '--tokens', '60', '--seed', '3']);
    expect(again.stdout).toBe(r.stdout);
    const prompted = await runKiln(['sample', '--checkpoint', ckpt, '--prompt', 'ka', '--tokens', '10', '--temperature', '0']);
    expect(prompted.code, prompted.stderr).toBe(0);
    expect(prompted.stdout.startsWith('ka')).toBe(true);
    expect([...prompted.stdout.replace(/\n$/, '')].length).toBe(12);
    expectKilnError(await runKiln(['sample', '--checkpoint', ckpt, '--tokens', 'lots']), 1, /--tokens lots is not valid/);
  });

  it('export --hf then import --hf round-trips the weights exactly', async () => {
    const ckptPath = join(trained, 'checkpoint.safetensors');
    const hf = join(root, 'hf');
    const ex = await runKiln(['export', '--checkpoint', ckptPath, '--hf', hf]);
    expect(ex.code, ex.stderr).toBe(0);
    expect(existsSync(join(hf, 'model.safetensors'))).toBe(true);
    const cfg = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg).toMatchObject({ model_type: 'gpt2', n_layer: 2, n_head: 2, n_embd: 32, n_positions: 16 });
    const back = join(root, 'imported.safetensors');
    const im = await runKiln(['import', '--hf', hf, '--out', back]);
    expect(im.code, im.stderr).toBe(0);
    const [orig, imported] = await Promise.all([decodeCheckpoint(bytesOf(ckptPath)), decodeCheckpoint(bytesOf(back))]);
    expect(imported.model).toEqual(orig.model);
    expect(imported.tokenizer).toEqual(orig.tokenizer);
    expect(sameBits(imported.state.params, orig.state.params)).toBe(true);
    expect(imported.state.m).toBeNull();
    // The imported checkpoint carries the defaults' batch settings (batchSize 16,
    // evalBatches 8, not tiny's 4 and 2: an HF folder does not hold them), yet eval of the
    // same weights gives the same loss on the same tokens.
    expect(imported.config.batchSize).not.toBe(orig.config.batchSize);
    const e1 = await runKiln(['eval', '--checkpoint', ckptPath, '--data', names]);
    const e2 = await runKiln(['eval', '--checkpoint', back, '--data', names]);
    expect(e1.code, e1.stderr).toBe(0);
    expect(e2.code, e2.stderr).toBe(0);
    const [a, b] = [e1, e2].map((e) => JSON.parse(e.stdout) as { loss: number; tokens: number });
    expect(b.tokens).toBe(a.tokens);
    expect(Math.abs(b.loss - a.loss)).toBeLessThan(1e-6);
    // import never overwrites.
    const again = await runKiln(['import', '--hf', hf, '--out', back]);
    expectKilnError(again, 1, /already exists/);
    // A folder where the tokenizer file should be is a readable refusal, not an EISDIR trace.
    const odd = join(root, 'hf-odd');
    mkdirSync(join(odd, 'kiln_tokenizer.json'), { recursive: true });
    copyFileSync(join(hf, 'model.safetensors'), join(odd, 'model.safetensors'));
    copyFileSync(join(hf, 'config.json'), join(odd, 'config.json'));
    expectKilnError(await runKiln(['import', '--hf', odd, '--out', join(root, 'odd.safetensors')]), 2, /kiln_tokenizer\.json is not a file/);
  });
});

describe('kiln: Ctrl-C', () => {
  it('SIGINT saves a valid checkpoint, exits 130, and --resume continues the same curve without gaps', async () => {
    const dir = join(root, 'interrupted');
    const p = spawnKiln(['train', '--preset', 'tiny', '--steps', '100000', '--data', names, '--out', dir]);
    children.push(p.child);
    const metricsPath = join(dir, 'metrics.jsonl');
    const deadline = Date.now() + 60_000;
    let lines = 0;
    while (Date.now() < deadline) {
      if (existsSync(metricsPath)) lines = readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l.trim()).length;
      if (lines >= 3) break;
      if (p.child.exitCode !== null) break;
      await sleep(20);
    }
    expect(lines, p.output().stderr).toBeGreaterThanOrEqual(3);
    p.child.kill('SIGINT');
    const { code, signal } = await p.exit;
    const { stdout, stderr } = p.output();
    expect(signal, stderr).toBeNull();
    expect(code, stderr).toBe(130);
    expect(JSON.parse(stdout.trim())).toMatchObject({ stopped: true });

    const ckpt = await decodeCheckpoint(bytesOf(join(dir, 'checkpoint.safetensors')));
    const S = ckpt.step;
    expect(S).toBeGreaterThanOrEqual(3);
    expect(S).toBeLessThan(100000);
    expect(ckpt.state.m).not.toBeNull();
    const before = readMetrics(dir);
    expect(before.map((m) => m.step)).toEqual(Array.from({ length: S }, (_, i) => i + 1));

    const r = await runKiln(['train', '--resume', '--steps', String(S + 3), '--data', names, '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    const after = readMetrics(dir);
    expect(after.map((m) => m.step)).toEqual(Array.from({ length: S + 3 }, (_, i) => i + 1));
    expect(after.slice(0, S).map((m) => m.loss)).toEqual(before.map((m) => m.loss));
    expect((await decodeCheckpoint(bytesOf(join(dir, 'checkpoint.safetensors')))).step).toBe(S + 3);

    // The same curve as a run that was never interrupted.
    const straight = join(root, 'uninterrupted');
    expect((await train(straight, '--steps', String(S + 3))).code).toBe(0);
    expect(after.map((m) => m.loss)).toEqual(readMetrics(straight).map((m) => m.loss));
  });

  it('stops within one step when the signal falls between evaluations and checkpoints', async () => {
    // names on the CPU (~0.1 s a step), nothing due for 400 steps: before the trainer gave
    // the event loop a turn each step, Ctrl-C here was ignored until step 400.
    const dir = join(root, 'interrupted-mid-cadence');
    const r = await interruptTrain(['--preset', 'names', '--backend', 'cpu', '--data', names, '--steps', '400',
      '--set', 'evalEvery=400', '--set', 'checkpointEvery=400', '--set', 'logEvery=1'], dir, 5, children);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain('stopping after this step');
    const ckpt = await decodeCheckpoint(bytesOf(join(dir, 'checkpoint.safetensors')));
    // The step being computed when the signal came finishes, and nothing after it.
    expect(ckpt.step).toBeGreaterThanOrEqual(r.linesAtSignal);
    expect(ckpt.step).toBeLessThanOrEqual(r.linesAtSignal + 2);
    expect(readMetrics(dir).map((m) => m.step)).toEqual(Array.from({ length: ckpt.step }, (_, i) => i + 1));
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ stopped: true, step: ckpt.step });
  });

  it('after a hard kill, --resume drops metrics past the last checkpoint and continues without duplicates', async () => {
    const dir = join(root, 'killed');
    // tiny checkpoints every 25 steps: wait until one is written and the log has run past it.
    const p = spawnKiln(['train', '--preset', 'tiny', '--steps', '100000', '--data', names, '--out', dir]);
    children.push(p.child);
    const metricsPath = join(dir, 'metrics.jsonl');
    const deadline = Date.now() + 60_000;
    let lines = 0;
    while (Date.now() < deadline && p.child.exitCode === null) {
      if (existsSync(metricsPath)) lines = readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l.trim()).length;
      if (lines >= 30) break;
      await sleep(20);
    }
    p.child.kill('SIGKILL');
    const { signal } = await p.exit;
    expect(signal).toBe('SIGKILL');
    const C = (await decodeCheckpoint(bytesOf(join(dir, 'checkpoint.safetensors')))).step;
    expect(C % 25).toBe(0);
    const logged = readMetrics(dir);
    expect(logged.length).toBeGreaterThan(C);

    const r = await runKiln(['train', '--resume', '--steps', String(C + 3), '--data', names, '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    const after = readMetrics(dir);
    expect(after.map((m) => m.step)).toEqual(Array.from({ length: C + 3 }, (_, i) => i + 1));
    const straight = join(root, 'never-killed');
    expect((await train(straight, '--steps', String(C + 3))).code).toBe(0);
    expect(after.map((m) => m.loss)).toEqual(readMetrics(straight).map((m) => m.loss));
  });
});
