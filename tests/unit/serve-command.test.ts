// `kiln serve` as a person runs it (issue 16): the real process (`--backend cpu --port 0`),
// its one URL read from stdout, a page's side of the protocol spoken over `ws`: prepare
// the bundled names, make a tiny run, train it to the end with metrics and samples
// streaming, its folder in --out read by `kiln eval`; a page that goes and comes back
// finds the curve; Ctrl-C mid-run saves a checkpoint that loads and exits 130. The token
// shows nowhere but in that URL. The lab served is a stand-in folder (KILN_LAB_DIR):
// what the page does with it is the e2e test's (tests/e2e/serve.test.ts).
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { LAB_DIR_ENV } from '../../src/cli/serve-command.ts';
import type { RunConfig } from '../../src/core/config.ts';
import { encodeCall, parseServerMessage, type CallMethod, type ServerMessage } from '../../src/core/lab-protocol.ts';
import { findPreset } from '../../src/core/presets.ts';
import type { RunRecord } from '../../src/core/run-record.ts';
import type { DataSummary, LabEvent, LabMetrics, RunInfo, RunStatus } from '../../src/worker/api.ts';
import { expectKilnError, readMetrics, runKiln, spawnKiln, tempDir } from '../helpers/cli.ts';

const INDEX = '<!doctype html><title>the kiln lab (test stand-in)</title>\n';
const URL_LINE = /^kiln serve: open (http:\/\/127\.0\.0\.1:(\d+)\/#kiln-token=([A-Za-z0-9_-]{43}))$/m;

/** A page's end of the protocol: calls answered in order of their ids, events kept. */
class Page {
  readonly events: LabEvent[] = [];
  readonly closed: Promise<void>;
  private next = 1;
  private readonly answers = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket, readonly hello: Promise<ServerMessage>) {
    this.closed = new Promise((resolve) => ws.on('close', () => resolve()));
  }

  static async open(port: number, token: string): Promise<Page> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, ['kiln.v1', `kiln.v1.${token}`], { origin: `http://127.0.0.1:${port}` });
    let gotHello!: (m: ServerMessage) => void;
    const page = new Page(ws, new Promise((r) => (gotHello = r)));
    ws.on('message', (data) => {
      const m = parseServerMessage(String(data));
      if (m.t === 'hello') gotHello(m);
      else if (m.t === 'event') page.events.push(m.event as LabEvent);
      else if (m.t === 'result' || m.t === 'error') {
        const a = page.answers.get(m.id!);
        page.answers.delete(m.id!);
        if (m.t === 'result') a?.resolve(m.result);
        else a?.reject(Object.assign(new Error(`${m.error.code}: ${m.error.message}`), { code: m.error.code }));
      }
      for (const w of page.waiters.splice(0)) w();
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await page.hello;
    return page;
  }

  call<T = unknown>(method: CallMethod, ...args: unknown[]): Promise<T> {
    const id = this.next++;
    this.ws.send(encodeCall(id, method, args));
    return new Promise<T>((resolve, reject) => this.answers.set(id, { resolve: resolve as (v: unknown) => void, reject }));
  }

  /** The newest status event, if any. */
  status(): RunStatus | null {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i];
      if (e.type === 'status') return e.status;
    }
    return null;
  }

  metrics(): LabMetrics[] {
    return this.events.flatMap((e) => (e.type === 'metrics' ? e.metrics : []));
  }

  /** Waits until `ok` holds over the events received (checked on each message). */
  until(what: string, ok: () => boolean, timeoutMs = 120_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; last status ${JSON.stringify(this.status())}`)), timeoutMs);
      const look = () => {
        if (this.status()?.phase === 'error') {
          clearTimeout(timer);
          reject(new Error(`the run failed while waiting for ${what}: ${JSON.stringify(this.status()?.error)}`));
        } else if (ok()) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(look);
      };
      look();
    });
  }

  async close(): Promise<void> {
    this.ws.close();
    await this.closed;
  }
}

interface Server {
  child: ChildProcess;
  url: string;
  port: number;
  token: string;
  output(): { stdout: string; stderr: string };
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startServe(lab: string, out: string): Promise<Server> {
  const before = process.env[LAB_DIR_ENV];
  process.env[LAB_DIR_ENV] = lab;
  let p: ReturnType<typeof spawnKiln>;
  try {
    p = spawnKiln(['serve', '--backend', 'cpu', '--out', out, '--port', '0']);
  } finally {
    if (before === undefined) delete process.env[LAB_DIR_ENV];
    else process.env[LAB_DIR_ENV] = before;
  }
  const deadline = Date.now() + 60_000;
  let m: RegExpExecArray | null = null;
  while (!(m = URL_LINE.exec(p.output().stdout))) {
    if (p.child.exitCode !== null || Date.now() > deadline) throw new Error(`kiln serve printed no URL:\n${p.output().stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child: p.child, url: m[1], port: Number(m[2]), token: m[3], output: p.output, exit: p.exit };
}

const tiny = (fields: Partial<RunConfig>): RunConfig => ({ ...findPreset('tiny')!.config, ...fields });

/** The run's folder in --out: the one whose name ends with the start of its id. */
function folderOf(out: string, id: string): string {
  const name = readdirSync(out).find((f) => f.endsWith(`-${id.slice(0, 8)}`));
  if (!name) throw new Error(`no folder for run ${id} in ${out}: ${readdirSync(out).join(', ')}`);
  return join(out, name);
}

describe('kiln serve', () => {
  let dir: string;
  let lab: string;
  let out: string;
  let server: Server | null = null;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    dir = tempDir('kiln-serve-');
    lab = join(dir, 'lab');
    out = join(dir, 'runs');
    mkdirSync(lab);
    writeFileSync(join(lab, 'index.html'), INDEX);
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a bad --port, and a lab folder with no index.html, before listening', async () => {
    expectKilnError(await runKiln(['serve', '--port', '70000']), 1, /--port 70000: a port is a whole number from 0 to 65535/);
    const before = process.env[LAB_DIR_ENV];
    process.env[LAB_DIR_ENV] = join(dir, 'nothing-here');
    try {
      expectKilnError(await runKiln(['serve', '--backend', 'cpu', '--out', out]), 1, /holds no built lab \(no index\.html\)/);
    } finally {
      if (before === undefined) delete process.env[LAB_DIR_ENV];
      else process.env[LAB_DIR_ENV] = before;
    }
  });

  it('serves the lab, trains a run the page makes into a kiln train run folder, and keeps it for a page that comes back', async () => {
    server = await startServe(lab, out);
    children.push(server.child);
    const { port, token } = server;

    // GET / is the lab's index.html.
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(INDEX);

    const page = await Page.open(port, token);
    expect(await page.hello).toMatchObject({ t: 'hello', protocol: 'kiln.v1', controlling: true });
    await expect.poll(() => server!.output().stderr).toContain('kiln serve: page 1 connected');
    const env = await page.call<{ webgpu: boolean; webgpuWhy?: string }>('environment');
    expect(env.webgpu).toBe(false);
    expect(env.webgpuWhy).toMatch(/--backend cpu/);

    const config = tiny({ steps: 20, checkpointEvery: 10, evalEvery: 10 });
    await page.call('subscribe');
    const data = await page.call<DataSummary>('prepareData', { kind: 'bundled', id: 'names' }, config);
    expect(data).toMatchObject({ ref: { kind: 'bundled', id: 'names' }, name: 'English first names' });
    const info = await page.call<RunInfo>('createRun', { preset: 'tiny', config, data: data.ref }, 'cpu');
    expect(info).toMatchObject({ backend: 'cpu', name: 'tiny · English first names' });
    await page.call('start');
    await page.until('step 20 saved', () => {
      const s = page.status();
      return s?.phase === 'done' && s.savedStep === 20 && !s.saving;
    });
    expect(page.metrics().map((m) => m.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // The session samples every 10 steps for the page, as in the browser.
    expect(page.events.filter((e) => e.type === 'sample').map((e) => (e as { step: number }).step)).toEqual([10, 20]);

    const folder = folderOf(out, info.id);
    expect(readMetrics(folder).map((m) => m.step)).toEqual(page.metrics().map((m) => m.step));
    const scored = await runKiln(['eval', '--checkpoint', join(folder, 'checkpoint.safetensors'), '--backend', 'cpu']);
    expect(scored.code, scored.stderr).toBe(0);
    expect(JSON.parse(scored.stdout)).toMatchObject({ step: 20, split: 'val' });

    // The page goes; another comes: the run is listed with its curve, and the session still has it open.
    await page.close();
    await expect.poll(() => server!.output().stderr).toContain('kiln serve: page 1 disconnected');
    const again = await Page.open(port, token);
    expect(await again.hello).toMatchObject({ controlling: true });
    expect((await again.call<LabMetrics[]>('history')).map((m) => m.step)).toEqual(page.metrics().map((m) => m.step));
    expect(await again.call<RunStatus>('status')).toMatchObject({ phase: 'done', step: 20, savedStep: 20 });
    const runs = await again.call<RunRecord[]>('listRuns');
    expect(runs.map((r) => [r.id, r.step, r.phase])).toEqual([[info.id, 20, 'done']]);
    expect((await again.call<LabMetrics[]>('runMetrics', info.id)).map((m) => m.step)).toEqual(page.metrics().map((m) => m.step));
    await again.close();

    // The token is in the one URL on stdout, nowhere else.
    const { stdout, stderr } = server.output();
    expect(stdout.split(token)).toHaveLength(2);
    expect(stderr).not.toContain(token);
  });

  it('Ctrl-C mid-run saves the run where it is and exits 130; the checkpoint loads', async () => {
    if (!server) throw new Error('the previous test starts the server');
    const page = await Page.open(server.port, server.token);
    await page.call('subscribe');
    const config = tiny({ steps: 5000, decaySteps: 5000, checkpointEvery: 1000, evalEvery: 1000 });
    const data = await page.call<DataSummary>('prepareData', { kind: 'bundled', id: 'names' }, config);
    const info = await page.call<RunInfo>('createRun', { preset: 'tiny', config, data: data.ref }, 'cpu');
    await page.call('start');
    await page.until('a few steps', () => (page.metrics().at(-1)?.step ?? 0) >= 5);
    server.child.kill('SIGINT');
    const exit = await server.exit;
    const { stderr } = server.output();
    expect(exit.code, stderr).toBe(130);
    expect(stderr).toContain('kiln serve: stopping: saving the open run');
    const folder = folderOf(out, info.id);
    expect(stderr).toContain(`the last run saved is ${join(folder, 'checkpoint.safetensors')}`);
    const rec = (JSON.parse(readFileSync(join(folder, 'run.json'), 'utf8')) as { record: RunRecord }).record;
    expect(rec.phase).toBe('paused');
    expect(rec.step).toBeGreaterThanOrEqual(5);
    expect(rec.step).toBeLessThan(5000);
    expect(readMetrics(folder).at(-1)!.step).toBe(rec.step);
    // The lock is given back: the CLI may take the folder.
    expect(readdirSync(folder)).not.toContain('.kiln.lock');
    const scored = await runKiln(['eval', '--checkpoint', folder, '--backend', 'cpu']);
    expect(scored.code, scored.stderr).toBe(0);
    expect(JSON.parse(scored.stdout)).toMatchObject({ step: rec.step });
  });
});
