// `kiln serve --data DIR` (issue 16): the real process offers the .txt files of the folder
// (not a binary file, not a link that points out of it), a page trains on one by its path
// (recorded as the user's file, by name and SHA-256), and every path that would reach
// outside (`..`, an absolute path, the link, a NUL) is refused with a sentence while the
// connection stays up. A page that reconnects mid-run finds the run (current()).
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunConfig } from '../../src/core/config.ts';
import { findPreset } from '../../src/core/presets.ts';
import type { DataFile, DataSummary, RunInfo, RunStatus } from '../../src/worker/api.ts';
import { namesText, tempDir } from '../helpers/cli.ts';
import { Page, startServe, type Server } from '../helpers/serve-page.ts';

const tiny = (fields: Partial<RunConfig>): RunConfig => ({ ...findPreset('tiny')!.config, ...fields });

describe('kiln serve --data', () => {
  let dir: string;
  let data: string;
  let out: string;
  let server: Server;
  const children: ChildProcess[] = [];
  const text = namesText(400);

  beforeAll(async () => {
    dir = tempDir('kiln-serve-data-');
    const lab = join(dir, 'lab');
    data = join(dir, 'data');
    out = join(dir, 'runs');
    mkdirSync(lab);
    writeFileSync(join(lab, 'index.html'), '<!doctype html><title>stand-in</title>\n');
    mkdirSync(join(data, 'sub'), { recursive: true });
    writeFileSync(join(data, 'a.txt'), text);
    writeFileSync(join(data, 'sub', 'b.txt'), 'hello there\n'.repeat(50));
    writeFileSync(join(data, 'blob.bin'), Uint8Array.of(0, 1, 2, 255, 0, 7));
    writeFileSync(join(dir, 'secret.txt'), 'not for the page\n');
    symlinkSync(join(dir, 'secret.txt'), join(data, 'out.txt'));
    server = await startServe(lab, out, ['--data', data]);
    children.push(server.child);
  });

  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists the .txt files inside; refuses every path out of the folder, readably, and the connection stays up', async () => {
    const page = await Page.open(server.port, server.token);
    expect(await page.call<DataFile[]>('dataFiles')).toEqual([{ path: 'a.txt', bytes: text.length }, { path: 'sub/b.txt', bytes: 600 }]);
    const config = tiny({});
    const refusals: Array<[string, RegExp]> = [
      ['../secret.txt', /^usage: prepareData: source\.path "\.\.\/secret\.txt" goes up a folder/],
      ['/etc/passwd', /^usage: prepareData: source\.path "\/etc\/passwd" is absolute/],
      ['out.txt', /^usage: the data file "out\.txt" leads outside the folder \(through a symbolic link\)/],
      ['a.txt\u0000.png', /^usage: prepareData: source\.path .* has a control character/],
      ['blob.bin', /^usage: the data file "blob\.bin" is not a \.txt file/],
      ['nope.txt', /^data: the data file "nope\.txt" is not in the folder/],
      ['sub', /is not a \.txt file/],
    ];
    for (const [path, why] of refusals) {
      await expect(page.call('prepareData', { kind: 'server', path }, config), path).rejects.toThrow(why);
    }
    // Still connected, still answering.
    expect(await page.call<RunStatus>('status')).toMatchObject({ phase: 'preparing' });
    expect(server.output().stderr).not.toContain('not for the page');
    await page.close();
  });

  it('trains on a file picked by its path (the user\'s file, by SHA-256); a page that reconnects finds the run', async () => {
    const page = await Page.open(server.port, server.token);
    await page.call('subscribe');
    const config = tiny({ steps: 5000, decaySteps: 5000, checkpointEvery: 1000, evalEvery: 1000 });
    const summary = await page.call<DataSummary>('prepareData', { kind: 'server', path: 'a.txt' }, config);
    const sha256 = createHash('sha256').update(readFileSync(join(data, 'a.txt'))).digest('hex');
    expect(summary).toMatchObject({ name: 'a.txt', bytes: text.length, ref: { kind: 'file', name: 'a.txt', bytes: text.length, sha256 } });
    const info = await page.call<RunInfo>('createRun', { preset: 'tiny', config, data: summary.ref }, 'cpu');
    expect(info.name).toBe('tiny · a.txt');
    await page.call('start');
    await page.until('a few steps', () => (page.metrics().at(-1)?.step ?? 0) >= 3);

    await page.close();
    const again = await Page.open(server.port, server.token);
    const current = await again.call<RunInfo | null>('current');
    expect(current).toMatchObject({ id: info.id, name: info.name, spec: { data: summary.ref }, data: { name: 'a.txt' } });
    expect(await again.call<RunStatus>('status')).toMatchObject({ phase: 'training' });
    await again.call('stop');
    await again.close();
  });
});
