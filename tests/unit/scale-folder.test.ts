// The `kiln scale` folder as src/core/scale-folder.ts builds it, three ways that must
// agree byte for byte: the CLI's folder on disk, the pure function called here, and the
// lab worker's zip (LabSession.scaleFolder, the "Run on a cluster" download) unzipped.
// The trainer script reaches the browser through Vite's ?raw import: the same text as
// the file the CLI reads.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainerScriptPath } from '../../src/cli/scale-command.ts';
import { findDataset } from '../../src/core/datasets.ts';
import { KilnError } from '../../src/core/errors.ts';
import { exportHF } from '../../src/core/hf.ts';
import { findPreset } from '../../src/core/presets.ts';
import { EXEC_MODE, scaleFolder, tokenBytes } from '../../src/core/scale-folder.ts';
import { initialState, prepareData } from '../../src/train/prepare.ts';
import type { ScaleProgress } from '../../src/worker/api.ts';
import { LabSession, type LabSessionDeps } from '../../src/worker/lab-session.ts';
import { buildScaleZip, scaleFolderName } from '../../src/worker/scale-zip.ts';
import rawTrainer from '../../scale/train_ddp.py?raw';
import { REPO_ROOT, runKiln, tempDir } from '../helpers/cli.ts';

const root = tempDir('kiln-scale-folder-');
afterAll(() => rmSync(root, { recursive: true, force: true }));
const cliDir = join(root, 'cli');
const config = { ...findPreset('tiny')!.config, steps: 20 };
const namesText = () => readFileSync(join(REPO_ROOT, 'public/datasets', findDataset('names')!.file), 'utf8');

const noUnzip = spawnSync('unzip', ['-v']).error ? 'unzip is not installed (apt-get install -y unzip)' : null;
if (noUnzip) console.warn(`scale-folder.test.ts: the zip check is skipped: ${noUnzip}`);

/** Every file under dir, '/'-separated relative paths, sorted. */
function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)).split('\\').join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

function deps(trainerScript?: string): LabSessionDeps {
  return {
    environment: async () => ({ webgpu: false, webgpuWhy: 'Node test', device: '', isSoftware: false, limits: { maxStorageBufferBindingSize: 0, maxBufferSize: 0 } }),
    createBackend: async () => {
      throw new Error('no backend in this test');
    },
    loadBundled: async (file) => new Uint8Array(readFileSync(join(REPO_ROOT, 'public/datasets', file))),
    sha256: async () => '0'.repeat(64),
    ...(trainerScript !== undefined ? { trainerScript } : {}),
  };
}

beforeAll(async () => {
  const r = await runKiln(['scale', '--preset', 'tiny', '--set', 'steps=20', '--data', 'names', '--out', cliDir]);
  expect(r.code, r.stderr).toBe(0);
}, 120_000);

describe('the kiln scale folder', () => {
  it("Vite's ?raw import of scale/train_ddp.py is the text the CLI reads", () => {
    expect(rawTrainer).toBe(readFileSync(trainerScriptPath(), 'utf8'));
    expect(rawTrainer.length).toBeGreaterThan(1000);
  });

  it("scaleFolder() gives the CLI's files, byte for byte, with the scripts executable", async () => {
    const { tokenizer, model, split } = await prepareData(config, namesText());
    const tok = tokenizer.toJSON();
    const files = scaleFolder({
      spec: { preset: 'tiny', config, data: null }, data: { kind: 'bundled', id: 'names' }, model, split, tokenizer: tok,
      hf: exportHF(model, initialState(model, config.seed).params, tok), trainerScript: rawTrainer,
    });
    expect(files.map((f) => f.path).sort()).toEqual(listFiles(cliDir));
    for (const f of files) {
      expect(Buffer.compare(Buffer.from(f.bytes), readFileSync(join(cliDir, f.path))), f.path).toBe(0);
      const exec = (statSync(join(cliDir, f.path)).mode & 0o111) !== 0;
      expect(exec, `${f.path} executable on disk`).toBe(f.mode === EXEC_MODE);
    }
    expect(files.filter((f) => f.mode === EXEC_MODE).map((f) => f.path).sort()).toEqual(['run.sh', 'slurm.sbatch', 'train_ddp.py']);
    // tokens.bin: uint32 little-endian, train then val.
    const tb = tokenBytes(Int32Array.from([1, 258]), Int32Array.from([65536]));
    expect([...tb]).toEqual([1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 1, 0]);
  });

  it.skipIf(noUnzip !== null)("the lab worker's zip unzips to the CLI's folder, byte for byte, run.sh executable", async () => {
    const s = new LabSession(deps(rawTrainer));
    // The data panel's tokens are reused when they are for the same text and settings.
    await s.prepareData({ kind: 'bundled', id: 'names' }, config);
    const progress: ScaleProgress[] = [];
    const zip = await s.scaleFolder({ preset: 'tiny', config, data: null }, { kind: 'bundled', id: 'names' }, (p) => progress.push(p));
    const dir = scaleFolderName('tiny');
    expect(dir).toBe('kiln-scale-tiny');
    expect(zip.fileName).toBe('kiln-scale-tiny.zip');
    expect(zip.blob.type).toBe('application/zip');
    expect([...zip.files].sort()).toEqual(listFiles(cliDir).map((f) => `${dir}/${f}`));
    expect(new Set(progress.map((p) => p.stage))).toEqual(new Set(['data', 'weights', 'zip']));
    expect(progress.at(-1)).toMatchObject({ stage: 'zip' });

    const zipPath = join(root, zip.fileName);
    writeFileSync(zipPath, new Uint8Array(await zip.blob.arrayBuffer()));
    const out = join(root, 'unzipped');
    const r = spawnSync('unzip', ['-q', zipPath, '-d', out], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(readdirSync(out)).toEqual([dir]);
    const got = join(out, dir);
    expect(listFiles(got)).toEqual(listFiles(cliDir));
    for (const f of listFiles(cliDir)) expect(Buffer.compare(readFileSync(join(got, f)), readFileSync(join(cliDir, f))), f).toBe(0);
    for (const f of ['run.sh', 'slurm.sbatch', 'train_ddp.py']) expect((statSync(join(got, f)).mode & 0o777).toString(8), f).toBe('755');
  });

  it('a text read again (no data prepared) gives the same zip; a session without the trainer, or too little memory, is refused with a way out', async () => {
    const fresh = await new LabSession(deps(rawTrainer)).scaleFolder({ preset: 'tiny', config, data: null }, { kind: 'bundled', id: 'names' });
    const spec = JSON.parse(await zipEntryText(fresh.blob, 'kiln-scale-tiny/spec.json')) as { spec: { data: unknown; config: { steps: number } } };
    expect(spec.spec.data).toEqual({ kind: 'bundled', id: 'names' });
    expect(spec.spec.config.steps).toBe(20);
    expect(await zipEntryText(fresh.blob, 'kiln-scale-tiny/spec.json')).toBe(readFileSync(join(cliDir, 'spec.json'), 'utf8'));

    await expect(new LabSession(deps()).scaleFolder({ preset: 'tiny', config, data: null }, { kind: 'bundled', id: 'names' }))
      .rejects.toMatchObject({ code: 'usage', hint: expect.stringMatching(/kiln scale/) });

    const prepared = await prepareData(config, namesText());
    let thrown: unknown;
    try {
      buildScaleZip({ spec: { preset: 'tiny', config, data: null }, data: { kind: 'bundled', id: 'names' }, prepared, trainerScript: rawTrainer, memoryBytes: 1 << 20 });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(KilnError);
    expect((thrown as KilnError).message).toMatch(/needs about .* more than the 1\.0 MiB a browser tab can count on/);
    expect((thrown as KilnError).hint).toMatch(/kiln scale writes the same folder/);
  });
});

/** One stored entry's text, read from the zip's central directory (STORE: the bytes follow the local header). */
async function zipEntryText(blob: Blob, path: string): Promise<string> {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const dv = new DataView(bytes.buffer);
  const name = new TextEncoder().encode(path);
  for (let i = 0; i + 30 <= bytes.length; ) {
    if (dv.getUint32(i, true) !== 0x04034b50) break;
    const size = dv.getUint32(i + 18, true);
    const nameLen = dv.getUint16(i + 26, true);
    const extraLen = dv.getUint16(i + 28, true);
    const start = i + 30 + nameLen + extraLen;
    if (Buffer.compare(Buffer.from(bytes.subarray(i + 30, i + 30 + nameLen)), Buffer.from(name)) === 0) return new TextDecoder().decode(bytes.subarray(start, start + size));
    i = start + size;
  }
  throw new Error(`${path} is not in the zip`);
}
