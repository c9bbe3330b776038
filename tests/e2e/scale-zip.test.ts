// "Run on a cluster" in the lab (issue 21), in real Chromium against the dev server: a
// config that fits has no such button; one over this browser's limits (tiny at batch 4096
// and block 1024: small weights, huge activations) offers it next to the kiln command,
// and pressing it downloads the `kiln scale` folder as a zip that Python's zipfile reads
// (its files, spec.json's settings, run.sh executable). Screenshots of the panel go to
// test-results/scale/.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findPreset } from '../../src/core/presets.ts';
import { encodeShareLink } from '../../src/core/share-link.ts';
import { browserSkipReason, openBrowser, ROOT, screenshotBothSizes, startDevServer, type BrowserPage, type DevServer } from '../helpers/browser.ts';
import { tempDir } from '../helpers/cli.ts';

const skip = browserSkipReason();
const SHOTS = join(ROOT, 'test-results/scale');

const FILES = ['init/model.safetensors', 'init/config.json', 'init/kiln_tokenizer.json', 'tokens.bin', 'tokens.json', 'spec.json', 'train_ddp.py', 'run.sh', 'slurm.sbatch'];

describe.skipIf(skip !== null)(`"Run on a cluster" in the lab${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let server: DevServer | null = null;
  let b: BrowserPage | null = null;
  const dir = tempDir('kiln-e2e-scale-');

  afterAll(async () => {
    await b?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('downloads the kiln scale folder as a zip for a config too big for this browser', async () => {
    server = await startDevServer();
    b = await openBrowser();
    const { page, report } = b;
    const button = page.getByRole('button', { name: 'Run on a cluster (.zip)' });

    // A config that fits: no button.
    await page.goto(server.url);
    await page.getByText('parameters', { exact: false }).first().waitFor({ timeout: 60_000 });
    await page.getByText(/FLOPs per token/).waitFor({ timeout: 60_000 });
    expect(await button.count()).toBe(0);

    // Over the limits: the button beside the kiln command, with what the zip is.
    const spec = { preset: 'tiny', config: { ...findPreset('tiny')!.config, batchSize: 4096, blockSize: 1024 }, data: { kind: 'bundled' as const, id: 'names' } };
    await page.evaluate((h) => (location.hash = h), `#${encodeShareLink(spec)}`);
    await button.waitFor({ timeout: 30_000 });
    await expect.poll(() => button.isEnabled(), { timeout: 30_000 }).toBe(true);
    expect(await page.getByText('A folder for PyTorch torchrun on your own GPUs: unzip, then bash run.sh (bash run.sh --fsdp shards a model too big for one GPU).').count()).toBe(1);
    expect(await page.getByLabel('kiln command', { exact: true }).textContent()).toMatch(/^npx kiln train --link /);
    await button.evaluate((el) => el.scrollIntoView({ block: 'center' }));
    await screenshotBothSizes(page, SHOTS, 'cluster-button');

    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), button.click()]);
    expect(download.suggestedFilename()).toBe('kiln-scale-tiny.zip');
    const zip = join(dir, download.suggestedFilename());
    await download.saveAs(zip);
    await page.getByText(/^Downloaded kiln-scale-tiny\.zip \(/).waitFor({ timeout: 10_000 });
    await button.evaluate((el) => el.scrollIntoView({ block: 'center' }));
    await screenshotBothSizes(page, SHOTS, 'cluster-downloaded');

    // While it builds, the panel shows the stage and a bar (the controller's state, as the worker's progress sets it).
    await page.evaluate(() => {
      const app = document.querySelector('kiln-app') as unknown as { lab: { scale: unknown }; requestUpdate(): void };
      app.lab.scale = { building: true, progress: { stage: 'zip', done: 45, total: 100 }, error: null, done: null };
      app.requestUpdate();
    });
    await page.getByText('Packing the zip… 45%').waitFor({ timeout: 10_000 });
    expect(await button.isDisabled()).toBe(true);
    await button.evaluate((el) => el.scrollIntoView({ block: 'center' }));
    await screenshotBothSizes(page, SHOTS, 'cluster-building');

    // Weights too big to build in a tab (600M parameters): refused before anything is allocated, with the way out.
    const huge = { ...spec, config: { ...findPreset('tiny')!.config, nLayer: 48, nHead: 16, nEmbd: 1024 } };
    await page.evaluate((h) => (location.hash = h), `#${encodeShareLink(huge)}`);
    await expect.poll(() => page.getByLabel('kiln command', { exact: true }).textContent(), { timeout: 30_000 }).toMatch(/nLayer=48/);
    await page.evaluate(() => {
      const app = document.querySelector('kiln-app') as unknown as { lab: { scale: unknown }; requestUpdate(): void };
      app.lab.scale = { building: false, progress: null, error: null, done: null };
      app.requestUpdate();
    });
    await expect.poll(() => button.isEnabled(), { timeout: 30_000 }).toBe(true);
    await button.click();
    const alert = page.getByRole('alert').filter({ hasText: 'The zip could not be built' });
    await alert.waitFor({ timeout: 30_000 });
    expect(await alert.textContent()).toMatch(/building this folder in the browser needs about .* GiB .* more than the 4\.0 GiB a browser tab can count on\. kiln scale writes the same folder from Node/);
    await button.evaluate((el) => el.scrollIntoView({ block: 'center' }));
    await screenshotBothSizes(page, SHOTS, 'cluster-error');

    const script = [
      'import json, sys, zipfile',
      'z = zipfile.ZipFile(sys.argv[1])',
      'spec = json.loads(z.read("kiln-scale-tiny/spec.json"))',
      'print(json.dumps({"bad": z.testzip(), "names": z.namelist(), "spec": spec["spec"], "model": spec["model"],',
      '  "run_mode": z.getinfo("kiln-scale-tiny/run.sh").external_attr >> 16}))',
    ].join('\n');
    const r = spawnSync('python3', ['-c', script, zip], { encoding: 'utf8' });
    expect(r.status, r.stderr + report()).toBe(0);
    const got = JSON.parse(r.stdout) as { bad: string | null; names: string[]; spec: { preset: string; config: { batchSize: number; blockSize: number }; data: unknown }; model: { vocabSize: number }; run_mode: number };
    expect(got.bad).toBeNull();
    expect(got.names).toEqual(FILES.map((f) => `kiln-scale-tiny/${f}`));
    expect(got.spec).toMatchObject({ preset: 'tiny', config: { batchSize: 4096, blockSize: 1024 }, data: { kind: 'bundled', id: 'names' } });
    expect(got.model.vocabSize).toBeGreaterThan(20);
    expect(got.run_mode & 0o777).toBe(0o755);
    expect(b.problems, report()).toEqual([]);
  }, 90_000);
});
