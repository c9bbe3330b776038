// The `kiln` command as a new user meets it (issue 20): "did you mean" for every
// mistyped name, nanoGPT's setting names, our own words for a missing or negative
// value, a help page per command and for the settings, --version, kiln info, and
// error lines without a blank line before them.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCheckpoint } from '../../src/core/checkpoint.ts';
import { DEFAULT_CONFIG, FIELDS, type RunConfig } from '../../src/core/config.ts';
import { modelSpec, type ModelConfig } from '../../src/core/model-spec.ts';
import { findPreset } from '../../src/core/presets.ts';
import { resolveRunSpec } from '../../src/cli/config-source.ts';
import { COMMAND_DOCS } from '../../src/cli/help.ts';
import { nearestPreset } from '../../src/cli/info-command.ts';
import { COMMAND_NAMES } from '../../src/cli/main.ts';
import { expectKilnError, namesText, REPO_ROOT, runKiln, tempDir } from '../helpers/cli.ts';

let root: string;
let names: string;

beforeAll(() => {
  root = tempDir('kiln-usage-');
  names = join(root, 'names.txt');
  writeFileSync(names, namesText(400));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

const train = (...more: string[]) => runKiln(['train', '--data', names, '--out', join(root, 'never'), ...more]);

describe('did you mean', () => {
  it('a mistyped command', async () => {
    const e = expectKilnError(await runKiln(['trian']), 1, /unknown command "trian"/);
    expect(e.hint).toMatch(/^did you mean train\?/);
    expect(expectKilnError(await runKiln(['smaple', '--tokens', '5']), 1, /unknown command/).hint).toMatch(/did you mean sample\?/);
  });

  it('a mistyped flag, with the value that came with it', async () => {
    const e = expectKilnError(await train('--preset', 'tiny', '--step', '10'), 1, /kiln train has no flag --step$/);
    expect(e.hint).toMatch(/^did you mean --steps 10\?/);
    expect(e.hint).toContain('--help');
    const s = expectKilnError(await runKiln(['sample', '--checkpoint', 'x', '--top_k', '5']), 1, /no flag --top_k/);
    expect(s.hint).toContain('did you mean --top-k 5?');
    const r = expectKilnError(await train('--preset', 'tiny', '--resum'), 1, /no flag --resum/);
    expect(r.hint).toMatch(/^did you mean --resume\?/);
  });

  it('a setting given as a flag: --lr 1e-3 is --set lr=1e-3', async () => {
    expect(expectKilnError(await train('--preset', 'tiny', '--lr', '1e-3'), 1, /no flag --lr/).hint).toContain('--set lr=1e-3');
    expect(expectKilnError(await train('--preset', 'tiny', '--n_embd=64'), 1, /no flag --n_embd/).hint).toContain('--set nEmbd=64');
    expect(expectKilnError(await train('--preset', 'tiny', '--nembd', '64'), 1, /no flag --nembd/).hint).toContain('--set nEmbd=64');
    expect(expectKilnError(await train('--preset', 'tiny', '--batchsize', '8'), 1, /no flag/).hint).toContain('--set batchSize=8');
    // nanoGPT's max_iters is a flag of its own here.
    expect(expectKilnError(await train('--preset', 'tiny', '--max_iters', '100'), 1, /no flag --max_iters/).hint).toMatch(/^did you mean --steps 100\?/);
    // A command without --set lists its flags instead.
    const ev = expectKilnError(await runKiln(['eval', '--lr', '1']), 1, /kiln eval has no flag --lr/);
    expect(ev.hint).toContain('--checkpoint, --data, --split, --backend');
    expect(ev.hint).not.toContain('--set');
  });

  it('an unknown flag like nothing lists the flags', async () => {
    const e = expectKilnError(await train('--preset', 'tiny', '--frobnicate'), 1, /no flag --frobnicate/);
    expect(e.hint).toContain('--steps');
    expect(e.hint).toContain('kiln train --help');
    expect(expectKilnError(await train('-x'), 1, /no flag -x/).hint).toContain('--out');
  });

  it('presets: kiln train and kiln bench', async () => {
    const e = expectKilnError(await train('--preset', 'name'), 1, /unknown preset "name"/);
    expect(e.hint).toMatch(/^did you mean names\?/);
    expect(e.hint).toContain('gpt2-124m');
    expect(expectKilnError(await runKiln(['bench', '--preset', 'tiny,nmes']), 1, /unknown preset "nmes"/).hint).toMatch(/^did you mean names\?/);
  });

  it('backends: --backend gpu means webgpu', async () => {
    const e = expectKilnError(await train('--preset', 'tiny', '--backend', 'gpu'), 1, /unknown backend "gpu"/);
    expect(e.hint).toMatch(/^did you mean webgpu\?/);
    expect(expectKilnError(await runKiln(['sample', '--checkpoint', 'x', '--backend', 'cpuu']), 1, /unknown backend/).hint).toMatch(/^did you mean cpu\?/);
    expect(expectKilnError(await runKiln(['bench', '--backend', 'cpu,wbgpu']), 1, /unknown backend "wbgpu"/).hint).toMatch(/^did you mean webgpu\?/);
  });

  it('settings in --set: nembd is refused with nEmbd suggested', async () => {
    const e = expectKilnError(await train('--preset', 'tiny', '--set', 'nembd=32'), 1, /unknown setting "nembd"/);
    expect(e.hint).toMatch(/^did you mean nEmbd\?/);
    expect(expectKilnError(await train('--preset', 'tiny', '--set', 'learningRate=1'), 1, /unknown setting/).hint).toMatch(/^did you mean lr\?/);
    const none = expectKilnError(await train('--preset', 'tiny', '--set', 'zzzzzz=1'), 1, /unknown setting "zzzzzz"/);
    expect(none.hint).toContain('nEmbd');
    expect(none.hint).toContain('kiln help settings');
  });

  it('config-file keys: "nEmb" suggests nEmbd; a key like nothing lists them all', async () => {
    const c1 = join(root, 'c1.json');
    writeFileSync(c1, JSON.stringify({ preset: 'names', nEmb: 32 }));
    const e = expectKilnError(await train('--config', c1), 1, /config .*c1\.json has unknown setting "nEmb"/);
    expect(e.hint).toMatch(/^did you mean nEmbd\?/);
    const c2 = join(root, 'c2.json');
    writeFileSync(c2, JSON.stringify({ preset: 'names', wandb_log: true }));
    const all = expectKilnError(await train('--config', c2), 1, /unknown setting "wandb_log"/).hint;
    for (const f of FIELDS) expect(all).toContain(f.key);
    const c3 = join(root, 'c3.json');
    writeFileSync(c3, JSON.stringify({ preset: 'nmes' }));
    expect(expectKilnError(await train('--config', c3), 1, /unknown preset "nmes"/).hint).toMatch(/^did you mean names\?/);
  });

  it('link keys: nEmdb suggests nEmbd, nanoGPT names are suggested, not taken', async () => {
    expect(expectKilnError(await train('--link', 'v=1&preset=tiny&nEmdb=32'), 1, /unknown setting "nEmdb"/).hint).toMatch(/did you mean nEmbd\?/);
    expect(expectKilnError(await train('--link', 'v=1&preset=tiny&n_embd=32'), 1, /unknown setting "n_embd"/).hint).toMatch(/did you mean nEmbd\?/);
  });
});

describe("nanoGPT's names in --set and config files", () => {
  function withStderr<T>(f: () => T): { value: T; stderr: string } {
    const write = process.stderr.write;
    let stderr = '';
    process.stderr.write = ((chunk: string) => ((stderr += chunk), true)) as typeof process.stderr.write;
    try {
      return { value: f(), stderr };
    } finally {
      process.stderr.write = write;
    }
  }

  it('--set n_embd=32 sets nEmbd and says so in one line', () => {
    const sets = ['n_embd=32', 'n_layer=3', 'n_head=4', 'block_size=24', 'batch_size=8', 'learning_rate=2e-3', 'max_iters=70', 'min_lr=1e-4',
      'warmup_iters=7', 'lr_decay_iters=90', 'weight_decay=0.05', 'grad_clip=0.5', 'eval_interval=10', 'eval_iters=3', 'dropout=0.1',
      'gradient_accumulation_steps=2', 'beta1=0.8', 'beta2=0.98', 'vocab_size=0', 'bias=true', 'seed=9'];
    const { value: spec, stderr } = withStderr(() => resolveRunSpec({ preset: 'tiny', set: sets }));
    expect(spec.config).toEqual({
      ...findPreset('tiny')!.config, nEmbd: 32, nLayer: 3, nHead: 4, blockSize: 24, batchSize: 8, lr: 2e-3, steps: 70, minLr: 1e-4,
      warmupSteps: 7, decaySteps: 90, weightDecay: 0.05, gradClip: 0.5, evalEvery: 10, evalBatches: 3, dropout: 0.1, gradAccum: 2,
      beta1: 0.8, beta2: 0.98, vocabSize: 0, bias: true, seed: 9,
    });
    expect(stderr).toContain('kiln: note: n_embd is nEmbd in Kiln\n');
    expect(stderr).toContain('kiln: note: learning_rate is lr in Kiln\n');
    expect(stderr).toMatch(/kiln: note: gradient_accumulation_steps is gradAccum in Kiln: micro-batches per optimizer step/);
    // Kiln's own names and nanoGPT's shared ones say nothing.
    expect(stderr).not.toContain('dropout');
    expect(stderr.split('\n').filter(Boolean).every((l) => l.startsWith('kiln: note: '))).toBe(true);
  });

  it('a bad value under a nanoGPT name is named by the Kiln setting', () => {
    expect(() => withStderr(() => resolveRunSpec({ preset: 'tiny', set: ['n_layer=0'] }))).toThrow(/nLayer 0 is out of range/);
  });

  it('a config file may use them; the same setting under two names is refused', async () => {
    const ok = join(root, 'nano.json');
    writeFileSync(ok, JSON.stringify({ preset: 'tiny', n_embd: 16, batch_size: 2, max_iters: 3 }));
    const { value: spec, stderr } = withStderr(() => resolveRunSpec({ config: ok }));
    expect(spec.config).toMatchObject({ nEmbd: 16, batchSize: 2, steps: 3 });
    expect(stderr).toContain('kiln: note: batch_size is batchSize in Kiln');
    const twice = join(root, 'twice.json');
    writeFileSync(twice, JSON.stringify({ preset: 'tiny', n_embd: 16, nEmbd: 32 }));
    expectKilnError(await train('--config', twice), 1, /sets nEmbd twice \(as "n_embd" and as "nEmbd"\)/);
  });

  it('kiln train --set batch_size=2 --set learning_rate=... trains', async () => {
    const out = join(root, 'nano-run');
    const r = await runKiln(['train', '--preset', 'tiny', '--data', names, '--backend', 'cpu', '--steps', '2', '--out', out,
      '--set', 'batch_size=2', '--set', 'learning_rate=0.002', '--set', 'n_embd=16']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('kiln: note: batch_size is batchSize in Kiln');
    const info = JSON.parse((await runKiln(['info', out, '--json'])).stdout) as { config: RunConfig };
    expect(info.config).toMatchObject({ batchSize: 2, lr: 0.002, nEmbd: 16 });
  });
});

describe('missing and negative values, in our words', () => {
  it('--steps -5', async () => {
    const e = expectKilnError(await train('--preset', 'tiny', '--steps', '-5'), 1, /: --steps -5: steps must be a whole number of at least 1$/);
    expect(e.hint).toContain('--steps 500');
    expectKilnError(await train('--preset', 'tiny', '--steps=-5'), 1, /: --steps -5: steps must be a whole number of at least 1$/);
    expectKilnError(await train('--preset', 'tiny', '--seed', '-1'), 1, /: --seed -1: seed must be a whole number of at least 0$/);
    expectKilnError(await runKiln(['sample', '--checkpoint', 'x', '--temperature', '-0.5']), 1, /: --temperature -0\.5: temperature must be a number of at least 0$/);
    expectKilnError(await runKiln(['bench', '--steps', '-1']), 1, /: --steps -1: steps must be/);
  });

  it('a trailing --steps, and a flag where the value should be', async () => {
    const e = expectKilnError(await train('--preset', 'tiny', '--steps'), 1, /: --steps needs a value \(e\.g\. --steps 500\)$/);
    expect(e.hint).toContain('kiln train --help');
    expectKilnError(await runKiln(['train', '--preset', 'tiny', '--out', '--resume']), 1, /: --out needs a value \(e\.g\. --out runs\/names\)$/);
  });

  it('no Node parser wording leaks', async () => {
    for (const argv of [['train', '--steps', '-5'], ['train', '--steps'], ['sample', '--prompt'], ['train', '--resume=yes'], ['train', 'names.txt']]) {
      const r = await runKiln(argv);
      expect(r.code).toBe(1);
      expect(r.stderr).not.toMatch(/Option '|ambiguous|argument missing|Unexpected argument/);
    }
  });

  it('a value for a switch, a word where a flag belongs, a flag before the command', async () => {
    expectKilnError(await train('--preset', 'tiny', '--resume=yes'), 1, /--resume takes no value/);
    const e = expectKilnError(await runKiln(['sample', 'runs/x/best.safetensors']), 1, /unexpected argument "runs\/x\/best\.safetensors"/);
    expect(e.hint).toBe('write --checkpoint runs/x/best.safetensors');
    expect(expectKilnError(await runKiln(['--preset', 'names']), 1, /--preset comes before a command/).hint).toContain('kiln train --preset names');
  });

  it('--verbose sets KILN_VERBOSE for the run only', async () => {
    const before = process.env.KILN_VERBOSE;
    delete process.env.KILN_VERBOSE;
    try {
      expectKilnError(await runKiln(['eval', '--verbose', '--checkpoint', join(root, 'none.safetensors'), '--data', names]), 2, /cannot read/);
      expect(process.env.KILN_VERBOSE).toBeUndefined();
    } finally {
      if (before !== undefined) process.env.KILN_VERBOSE = before;
    }
  });

  it('a prompt that starts with "-" is a prompt', async () => {
    // The checkpoint is missing, so the run gets past the flags and stops at the file.
    expectKilnError(await runKiln(['sample', '--checkpoint', join(root, 'none.safetensors'), '--prompt', '-hello']), 2, /cannot read .*none\.safetensors/);
  });
});

describe('help', () => {
  it('kiln help CMD, kiln CMD --help and -h print the command\'s own page', async () => {
    for (const doc of COMMAND_DOCS) {
      const pages = await Promise.all([runKiln(['help', doc.name]), runKiln([doc.name, '--help']), runKiln([doc.name, '-h', '--bogus'])]);
      for (const r of pages) {
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe(pages[0].stdout);
      }
      const page = pages[0].stdout;
      expect(page).toMatch(new RegExp(`^kiln ${doc.name}: `));
      expect(page).toMatch(new RegExp(`usage: kiln ${doc.name} `));
      for (const f of doc.flags) expect(page, `${doc.name} --${f.name}`).toMatch(new RegExp(`^  --${f.name}\\b.* \\S+`, 'm'));
      expect(page).toMatch(/examples?:\n {2}kiln /);
    }
  });

  it('every command has a page and every page a command', () => {
    expect(COMMAND_DOCS.map((c) => c.name).sort()).toEqual([...COMMAND_NAMES].sort());
  });

  it("sample's usage line names --backend", async () => {
    const usage = (await runKiln(['help', 'sample'])).stdout.split('\n\n')[1];
    expect(usage).toContain('[--backend B]');
  });

  it('kiln help settings: every setting with its meaning, range and default, grouped', async () => {
    const r = await runKiln(['help', 'settings']);
    expect(r.code).toBe(0);
    const out = r.stdout;
    for (const f of FIELDS) {
      const at = out.indexOf(`\n  ${f.key} `);
      expect(at, f.key).toBeGreaterThan(0);
      const end = out.slice(at + 1).search(/\n {2}\S|\n\n/);
      const entry = out.slice(at, at + 1 + end);
      expect(entry.replace(/\s+/g, ' '), f.key).toContain(f.doc.split(' ').slice(0, 3).join(' '));
      expect(entry, f.key).toContain(`default ${String(DEFAULT_CONFIG[f.key])}`);
      if (f.min !== undefined) expect(entry, f.key).toContain(`from ${f.min} to ${f.max}`);
      if (f.values) expect(entry, f.key).toContain(f.values.join(', '));
    }
    for (const g of ['model:', 'tokenizer:', 'optimisation:', 'cadence', 'data:']) expect(out).toContain(`\n${g}`);
    expect(out).toContain('nanoGPT: n_embd');
    expect(Math.max(...out.split('\n').map((l) => l.length))).toBeLessThanOrEqual(80);
  });

  it('kiln --help stays a short overview that points to the rest', async () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      const r = await runKiln(argv);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('kiln help <command>');
      expect(r.stdout).toContain('kiln help settings');
      for (const name of COMMAND_NAMES) expect(r.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
      expect(r.stdout.split('\n').length).toBeLessThan(45);
    }
    expect((await runKiln(['--help', 'train'])).stdout).toMatch(/^kiln train: /);
  });

  it('kiln help of something unknown suggests', async () => {
    expect(expectKilnError(await runKiln(['help', 'setings']), 1, /no help on "setings"/).hint).toMatch(/^did you mean settings\?/);
  });

  it('kiln --version and kiln version print package.json\'s version', async () => {
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const argv of [['--version'], ['version'], ['-V']]) {
      const r = await runKiln(argv);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`kiln ${version}\n`);
    }
  });
});

describe('kiln info', () => {
  let run: string;

  beforeAll(async () => {
    run = join(root, 'info-run');
    const r = await runKiln(['train', '--preset', 'tiny', '--data', names, '--backend', 'cpu', '--steps', '2', '--set', 'evalEvery=1', '--out', run]);
    expect(r.code, r.stderr).toBe(0);
  });

  it('a run folder: step, shape, parameters, data, tokenizer, losses, time, optimizer, config', async () => {
    const r = await runKiln(['info', run]);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout;
    expect(out.split('\n')[0]).toBe(join(run, 'checkpoint.safetensors'));
    expect(out).toMatch(/^ {2}step {8}2, trained for [\d.]+ s on cpu$/m);
    expect(out).toMatch(/^ {2}model {7}2 layers, 2 heads, 32 wide, 16 tokens of context, \d+ vocabulary\s+rows: [\d,]+ parameters$/m);
    expect(out).toMatch(/^ {2}tokenizer {3}char, \d+ tokens$/m);
    expect(out).toMatch(/^ {2}data {8}names\.txt, [\d,]+ bytes\n {2}sha256 {6}[0-9a-f]{64}$/m);
    expect(out).toMatch(/^ {2}val loss {4}best \d\.\d{4}, last \d\.\d{4}$/m);
    expect(out).toMatch(/^ {2}optimizer {3}AdamW moments saved/m);
    expect(out).toMatch(/^ {2}config {6}as --preset tiny --set steps=2 --set evalEvery=1$/m);
    for (const f of FIELDS) expect(out).toContain(`${f.key}=`);
    expect(Math.max(...out.split('\n').map((l) => l.length))).toBeLessThanOrEqual(80);
  });

  it('--json: one object with the same facts', async () => {
    const r = await runKiln(['info', '--json', join(run, 'best.safetensors')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    const bytes = readFileSync(names);
    expect(info).toMatchObject({
      step: 2,
      model: { blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 32 },
      tokenizer: { kind: 'char' },
      dataset: { kind: 'file', name: 'names.txt', bytes: bytes.length },
      optimizerState: true,
      init: null,
      backend: 'cpu',
      asPreset: { preset: 'tiny', set: { steps: 2, evalEvery: 1 } },
    });
    const model = info.model as ModelConfig;
    expect(info.parameters).toBe(modelSpec(model).numParams);
    expect((info.tokenizer as { tokens: number }).tokens).toBe(model.vocabSize);
    expect(typeof info.bestValLoss).toBe('number');
    expect(typeof info.elapsedS).toBe('number');
    expect((info.config as RunConfig).steps).toBe(2);
    // --checkpoint works as well as the positional.
    expect((await runKiln(['info', '--checkpoint', join(run, 'best.safetensors'), '--json'])).stdout).toBe(r.stdout);
  });

  it('a weights-only checkpoint with a bundled dataset and a fine-tune origin', async () => {
    const config: RunConfig = { ...findPreset('names')!.config, nEmbd: 32, lr: 0.02 };
    const model: ModelConfig = { vocabSize: 3, blockSize: config.blockSize, nLayer: config.nLayer, nHead: config.nHead, nEmbd: config.nEmbd };
    const params = new Float32Array(modelSpec(model).numParams);
    const bytes = await encodeCheckpoint({
      config, model, tokenizer: { kind: 'char', chars: ['\n', 'a', 'b'] }, step: 0, rng: '{}',
      state: { params, m: null, v: null, step: 0 },
      extra: { 'kiln.dataset': JSON.stringify({ kind: 'bundled', id: 'names' }), 'kiln.init': JSON.stringify({ name: 'base.safetensors', step: 300 }) },
    });
    const path = join(root, 'weights.safetensors');
    writeFileSync(path, bytes);
    const out = (await runKiln(['info', path])).stdout;
    expect(out).toMatch(/^ {2}data {8}bundled names \(English first names\)$/m);
    expect(out).toMatch(/^ {2}optimizer {3}weights only/m);
    expect(out).toMatch(/^ {2}fine-tuned {2}from base\.safetensors at step 300$/m);
    expect(out).toMatch(/^ {2}val loss {4}not recorded$/m);
    expect(out).toMatch(/^ {2}config {6}as --preset names --set nEmbd=32 --set lr=0\.02$/m);
    expect(out).toMatch(/^ {2}tokenizer {3}char, 3 tokens$/m);
  });

  it('the nearest preset rebuilds the config', () => {
    for (const name of ['tiny', 'names', 'gpt2-124m']) expect(nearestPreset(findPreset(name)!.config)).toEqual({ preset: name, set: {} });
  });

  it('refusals: nothing given, two given, a missing file, a folder without a checkpoint', async () => {
    expectKilnError(await runKiln(['info']), 1, /no checkpoint given/);
    expectKilnError(await runKiln(['info', 'a', 'b']), 1, /one checkpoint, not 2/);
    expectKilnError(await runKiln(['info', join(root, 'missing.safetensors')]), 2, /cannot read .*missing\.safetensors: no such file/);
    const e = expectKilnError(await runKiln(['info', root]), 2, /is a folder without a checkpoint\.safetensors/);
    expect(e.hint).toContain('.safetensors');
  });
});

describe('error lines', () => {
  it('start at the first character of stderr, without a blank line before them', async () => {
    const r = await runKiln(['trian']);
    expect(r.stderr.startsWith('kiln: error: ')).toBe(true);
    const t = await train('--preset', 'tiny', '--set', 'nEmbd=100', '--set', 'nHead=3');
    expect(t.stderr).not.toMatch(/\n\nkiln: error:/);
    expect(t.stderr).toMatch(/^kiln: error: /m);
  });
});
