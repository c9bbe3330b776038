// The page's client of `kiln serve` (src/ui/remote-lab.ts) against the real server
// (http-server.ts + rpc.ts) on a free port, serving a fake LabApi: the page's calls come
// back as results, a KilnError as an Error with its code and hint, events reach the
// listener (one fired during subscribe too), a sample streams, bytes and NaN cross both
// ways, a second tab watches until it takes control, and a server that stops fails the
// calls still waiting with a sentence a person can act on. Node has no WebSocket of its
// own: the `ws` client stands in for the browser's, with the Origin a browser would send.
// Also: the token is taken out of the address and the rest of the fragment kept.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { WebSocket as WsClient } from 'ws';
import { DEFAULT_CONFIG, type RunConfig } from '../../src/core/config.ts';
import { KilnError } from '../../src/core/errors.ts';
import type { RunRecord, StorageUsage } from '../../src/core/run-record.ts';
import type { RunSpec } from '../../src/core/run-spec.ts';
import { startKilnServer, TOKEN_KEY, type KilnServer } from '../../src/serve/http-server.ts';
import { LabRpc } from '../../src/serve/rpc.ts';
import { labError, servedToken } from '../../src/ui/lab-controller.ts';
import { connectRemoteLab, SERVE_TOKEN_KEY, takeServeToken, type RemoteLab, type RemoteLabOptions, type WebSocketConstructor } from '../../src/ui/remote-lab.ts';
import type {
  ConfigFit, DataFile, DataSource, DataSummary, ExtendOptions, LabApi, LabBackendKind, LabEnvironment, LabEvent, LabMetrics, RunInfo, RunStatus, SampleRequest,
} from '../../src/worker/api.ts';

const MAX_BYTES = 1024;
const STATUS: RunStatus = {
  phase: 'training', step: 3, stopAt: 10, decaySteps: 10, lastLoss: NaN, lastValLoss: null, bestValLoss: null, valStep: null, tokensPerS: 100,
  elapsedS: 1, etaS: 2, recoverable: false, snapshotStep: null, savedStep: null, saving: false,
};
const ENV: LabEnvironment = { webgpu: true, device: 'SwiftShader (Dawn)', isSoftware: true, limits: { maxStorageBufferBindingSize: 1 << 27, maxBufferSize: 1 << 28 } };
const REQ: SampleRequest = { prompt: 'He', maxTokens: 5, temperature: 1, topK: 0, topP: 1, seed: 1 };

/** A LabApi that records its calls and answers canned data. */
class FakeLab implements LabApi {
  calls: Array<[string, unknown[]]> = [];
  listeners = new Map<number, (e: LabEvent) => void>();
  /** start() waits for this when set (a call held in flight). */
  gate: Promise<void> | null = null;
  private nextSub = 1;

  private rec(method: string, ...args: unknown[]): void {
    this.calls.push([method, args]);
  }
  called(method: string): unknown[][] {
    return this.calls.filter(([m]) => m === method).map(([, a]) => a);
  }
  emit(e: LabEvent): void {
    for (const l of this.listeners.values()) l(e);
  }

  async environment(): Promise<LabEnvironment> {
    this.rec('environment');
    return ENV;
  }
  async checkConfig(config: RunConfig, vocabSize: number, backend: LabBackendKind): Promise<ConfigFit> {
    this.rec('checkConfig', config, vocabSize, backend);
    return { numParams: 1000, flopsPerToken: 6000, memoryBytes: 1, largestBinding: 1, largestName: 'wte', fits: true, problems: [] };
  }
  async prepareData(source: DataSource, config: RunConfig): Promise<DataSummary> {
    this.rec('prepareData', source, config);
    const bytes = source.kind === 'file' ? source.bytes.length : 0;
    return { ref: { kind: 'bundled', id: 'names' }, name: 'names', bytes, chars: 1, distinctChars: 1, tokenizer: 'char', vocabSize: 27, tokens: 1, trainTokens: 1, valTokens: 0 };
  }
  async createRun(spec: RunSpec, backend: LabBackendKind): Promise<RunInfo> {
    this.rec('createRun', spec, backend);
    return { id: 'run-1', name: 'tiny', spec, model: {} as RunInfo['model'], numParams: 1000, backend, device: 'fake', memoryBytes: 1, data: null };
  }
  async subscribe(listener: (e: LabEvent) => void): Promise<number> {
    this.rec('subscribe');
    const id = this.nextSub++;
    this.listeners.set(id, listener);
    // An event that fires before subscribe() answers: the server sends it right after the id.
    listener({ type: 'progress', what: 'compile', done: 0, total: 1 });
    return id;
  }
  async unsubscribe(id: number): Promise<void> {
    this.rec('unsubscribe', id);
    this.listeners.delete(id);
  }
  async start(): Promise<void> {
    this.rec('start');
    await this.gate;
  }
  async pause(): Promise<void> {
    this.rec('pause');
  }
  async resume(): Promise<void> {
    this.rec('resume');
  }
  async stop(): Promise<void> {
    this.rec('stop');
  }
  async extend(steps: number, opts?: ExtendOptions): Promise<void> {
    this.rec('extend', steps, opts);
  }
  async recover(): Promise<void> {
    throw new KilnError('usage', 'nothing to recover', 'the run has not failed');
  }
  async sample(req: SampleRequest, onText?: (text: string) => void): Promise<string> {
    this.rec('sample', req, typeof onText);
    onText?.('Hel');
    onText?.('lo');
    return 'Hello';
  }
  async history(): Promise<LabMetrics[]> {
    this.rec('history');
    return [{ step: 1, loss: 3, lr: 1e-3, grad_norm: 1, tokens_per_s: 10, elapsed_s: 0.1 }, { step: 2, loss: NaN, lr: 1e-3, grad_norm: Infinity, tokens_per_s: 10, elapsed_s: 0.2 }];
  }
  async status(): Promise<RunStatus> {
    this.rec('status');
    return STATUS;
  }
  async current(): Promise<RunInfo | null> {
    this.rec('current');
    return { id: 'run-1', name: 'tiny · names', spec: { preset: 'tiny', config: DEFAULT_CONFIG, data: { kind: 'bundled', id: 'names' } }, model: {} as RunInfo['model'], numParams: 1000, backend: 'cpu', device: 'fake', memoryBytes: 1, data: null };
  }
  async dataFiles(): Promise<DataFile[]> {
    this.rec('dataFiles');
    return [{ path: 'sub/b.txt', bytes: 12 }];
  }
  async dispose(): Promise<void> {
    this.rec('dispose');
  }
  async listRuns(): Promise<RunRecord[]> {
    this.rec('listRuns');
    return [];
  }
  async openRun(id: string, backend: LabBackendKind, step?: number): Promise<RunInfo> {
    this.rec('openRun', id, backend, step);
    return this.createRun({ preset: 'tiny', config: DEFAULT_CONFIG, data: null }, backend);
  }
  async renameRun(id: string, name: string): Promise<RunRecord> {
    this.rec('renameRun', id, name);
    return { id, name } as RunRecord;
  }
  async deleteRun(id: string): Promise<void> {
    this.rec('deleteRun', id);
  }
  async exportCheckpoint(id: string, step?: number): Promise<{ fileName: string; bytes: Uint8Array }> {
    this.rec('exportCheckpoint', id, step);
    return { fileName: 'tiny-step-20.safetensors', bytes: Buffer.from([0, 1, 2, 253, 254, 255]) };
  }
  async importCheckpoint(fileName: string, bytes: Uint8Array): Promise<RunRecord> {
    this.rec('importCheckpoint', fileName, bytes);
    return { id: 'run-2', name: fileName } as RunRecord;
  }
  async branchRun(id: string, step: number, config: RunConfig, backend: LabBackendKind, name?: string): Promise<RunInfo> {
    this.rec('branchRun', id, step, config, backend, name);
    return this.createRun({ preset: 'tiny', config, data: null }, backend);
  }
  async runMetrics(id: string): Promise<LabMetrics[]> {
    this.rec('runMetrics', id);
    return [];
  }
  async save(): Promise<void> {
    this.rec('save');
  }
  async storageUsage(): Promise<StorageUsage> {
    this.rec('storageUsage');
    return { runsBytes: 1, datasetsBytes: 2, usage: null, quota: null };
  }
}

/** Node's `ws` client shaped like the browser's constructor, sending the Origin a page of this server sends. */
function nodeWebSocket(origin: string): WebSocketConstructor {
  return class extends WsClient {
    constructor(url: string, protocols: string[]) {
      super(url, protocols, { origin });
    }
  };
}

let server: KilnServer;
let rpc: LabRpc;
let lab: FakeLab;
let dir: string;
const logs: string[] = [];
const clients: RemoteLab[] = [];

async function connect(extra: Partial<RemoteLabOptions> = {}): Promise<RemoteLab> {
  const c = await connectRemoteLab({
    url: `ws://127.0.0.1:${server.port}/ws`, token: server.token, WebSocketImpl: nodeWebSocket(`http://127.0.0.1:${server.port}`), ...extra,
  });
  clients.push(c);
  return c;
}

/** The rejection of a call, for its fields. */
async function rejection(p: Promise<unknown>): Promise<Error & { code?: string; hint?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string; hint?: string };
  }
  throw new Error('expected the call to fail');
}

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'kiln-remote-lab-'));
  writeFileSync(path.join(dir, 'index.html'), 'lab');
});

beforeEach(async () => {
  lab = new FakeLab();
  rpc = new LabRpc(lab, { log: (l) => logs.push(l), maxBytes: MAX_BYTES });
  server = await startKilnServer({ root: dir, log: (l) => logs.push(l), maxPayload: 64 * 1024, onConnection: (ws) => rpc.attach(ws) });
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  rpc.close();
  await server.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('connectRemoteLab: the LabApi of kiln serve', () => {
  it('calls answer with their results; arguments reach the LabApi as sent; the first tab controls', async () => {
    const c = await connect();
    expect(c.controlling).toBe(true);
    expect(await c.environment()).toEqual(ENV);
    const status = await c.status();
    expect(status.lastLoss).toBeNaN();
    expect({ ...status, lastLoss: 0 }).toEqual({ ...STATUS, lastLoss: 0 });
    const spec: RunSpec = { preset: 'tiny', config: DEFAULT_CONFIG, data: { kind: 'bundled', id: 'names' } };
    expect(await c.createRun(spec, 'webgpu')).toMatchObject({ id: 'run-1', backend: 'webgpu', spec });
    expect(lab.called('createRun')).toEqual([[spec, 'webgpu']]);
    await c.extend(50, { schedule: 'stretch' });
    await c.extend(10);
    expect(lab.called('extend')).toEqual([[50, { schedule: 'stretch' }], [10, undefined]]);
    await c.openRun('run-1', 'cpu');
    await c.openRun('run-1', 'cpu', 40);
    expect(lab.called('openRun')).toEqual([['run-1', 'cpu', undefined], ['run-1', 'cpu', 40]]);
    expect(await c.storageUsage()).toEqual({ runsBytes: 1, datasetsBytes: 2, usage: null, quota: null });
  });

  it("current() and dataFiles() pass through, for a watching tab too; a --data file is named by its path", async () => {
    const a = await connect();
    const b = await connect();
    expect(b.controlling).toBe(false);
    for (const c of [a, b]) {
      expect(await c.current()).toMatchObject({ id: 'run-1', name: 'tiny · names', backend: 'cpu' });
      expect(await c.dataFiles()).toEqual([{ path: 'sub/b.txt', bytes: 12 }]);
    }
    expect(lab.called('current')).toHaveLength(2);
    await a.prepareData({ kind: 'server', path: 'sub/b.txt' }, DEFAULT_CONFIG);
    expect(lab.called('prepareData')).toEqual([[{ kind: 'server', path: 'sub/b.txt' }, DEFAULT_CONFIG]]);
    // A path out of the folder is refused by the page's own check, before it is sent.
    expect((await rejection(a.prepareData({ kind: 'server', path: '../x.txt' }, DEFAULT_CONFIG))).message).toMatch(/goes up a folder/);
    expect(lab.called('prepareData')).toHaveLength(1);
  });

  it("a KilnError arrives as an Error with its code and hint (what the controller's labError reads)", async () => {
    const c = await connect();
    const e = await rejection(c.recover());
    expect(e).toBeInstanceOf(Error);
    expect({ code: e.code, message: e.message, hint: e.hint }).toEqual({ code: 'usage', message: 'nothing to recover', hint: 'the run has not failed' });
    expect(labError(e)).toEqual({ code: 'usage', message: 'nothing to recover', hint: 'the run has not failed' });
    // The connection goes on.
    expect(await c.environment()).toEqual(ENV);
  });

  it('subscribe: the event fired during subscribe and later ones reach the listener; unsubscribe ends them', async () => {
    const c = await connect();
    const events: LabEvent[] = [];
    const id = await c.subscribe((e) => events.push(e));
    await tick();
    expect(events).toEqual([{ type: 'progress', what: 'compile', done: 0, total: 1 }]);
    lab.emit({ type: 'metrics', metrics: [{ step: 4, loss: NaN, lr: 1, grad_norm: 1, tokens_per_s: 1, elapsed_s: 1 }] });
    lab.emit({ type: 'sample', step: 4, text: 'Anna' });
    await tick();
    expect(events.slice(1).map((e) => e.type)).toEqual(['metrics', 'sample']);
    expect((events[1] as Extract<LabEvent, { type: 'metrics' }>).metrics[0].loss).toBeNaN();
    await c.unsubscribe(id);
    expect(lab.called('unsubscribe')).toEqual([[id]]);
    lab.emit({ type: 'sample', step: 5, text: 'Bob' });
    await tick();
    expect(events).toHaveLength(3);
  });

  it('sample streams its text to onText and resolves with the whole; without onText nothing streams', async () => {
    const c = await connect();
    const pieces: string[] = [];
    expect(await c.sample(REQ, (t) => pieces.push(t))).toBe('Hello');
    expect(pieces).toEqual(['Hel', 'lo']);
    expect(await c.sample(REQ)).toBe('Hello');
    expect(lab.called('sample').map((a) => a[1])).toEqual(['function', 'undefined']);
  });

  it('bytes both ways: a checkpoint out, one in; NaN and Infinity in metrics', async () => {
    const c = await connect();
    const out = await c.exportCheckpoint('run-1', 20);
    expect(out.fileName).toBe('tiny-step-20.safetensors');
    expect(out.bytes).toBeInstanceOf(Uint8Array);
    expect([...out.bytes]).toEqual([0, 1, 2, 253, 254, 255]);
    expect(await c.importCheckpoint('a.safetensors', out.bytes)).toEqual({ id: 'run-2', name: 'a.safetensors' });
    expect([...(lab.called('importCheckpoint')[0][1] as Uint8Array)]).toEqual([0, 1, 2, 253, 254, 255]);
    const rows = await c.history();
    expect(rows[1].loss).toBeNaN();
    expect(rows[1].grad_norm).toBe(Infinity);
  });

  it("a file over the server's limit is refused here with the server's sentence, and the connection stays open", async () => {
    const c = await connect();
    const e = await rejection(c.importCheckpoint('big.safetensors', new Uint8Array(MAX_BYTES + 1)));
    expect(e.code).toBe('data');
    expect(e.message).toBe(`importCheckpoint: bytes is ${MAX_BYTES + 1} bytes; kiln serve takes at most ${MAX_BYTES} bytes in one call`);
    expect(lab.called('importCheckpoint')).toEqual([]);
    expect(await c.environment()).toEqual(ENV);
  });
});

describe('one tab controls, the others watch', () => {
  it('a second tab is read-only until it takes control; the first is told', async () => {
    const aControl: boolean[] = [];
    const a = await connect({ onControl: (c) => aControl.push(c) });
    const bControl: boolean[] = [];
    const b = await connect({ onControl: (c) => bControl.push(c) });
    expect([a.controlling, b.controlling]).toEqual([true, false]);
    // Watching: looking works, steering does not.
    expect(await b.status()).toMatchObject({ step: 3 });
    const e = await rejection(b.start());
    expect({ code: e.code, message: e.message, hint: e.hint }).toEqual({ code: 'usage', message: 'another tab controls this kiln serve', hint: 'close that tab, or take control here' });
    expect(lab.called('start')).toEqual([]);
    // Asking politely leaves control where it is; force moves it.
    await b.takeControl();
    expect(b.controlling).toBe(false);
    await b.takeControl(true);
    expect(b.controlling).toBe(true);
    expect(bControl).toEqual([true]);
    await tick();
    expect(a.controlling).toBe(false);
    expect(aControl).toEqual([false]);
    await b.start();
    expect(lab.called('start')).toHaveLength(1);
    expect((await rejection(a.pause())).message).toBe('another tab controls this kiln serve');
  });

  it('when the controlling tab closes, the watching one is told it controls now', async () => {
    const a = await connect();
    const told: boolean[] = [];
    const b = await connect({ onControl: (c) => told.push(c) });
    a.close();
    await vi.waitFor(() => expect(told).toEqual([true]));
    expect(b.controlling).toBe(true);
    await b.pause();
  });
});

describe('a closed connection', () => {
  it('kiln serve stopping fails the calls still waiting, and every later one, with a readable sentence', async () => {
    const closed: string[] = [];
    const c = await connect({ onClose: (why) => closed.push(why) });
    lab.gate = new Promise(() => {});
    const pending = rejection(c.start());
    await tick();
    await server.close();
    const e = await pending;
    const sentence = 'the connection to kiln serve closed: kiln serve is stopping; is it still running?';
    expect(e.message).toBe(sentence);
    expect(e.hint).toMatch(/reload this page/);
    expect(labError(e)).toMatchObject({ message: sentence });
    expect(closed).toEqual([sentence]);
    expect((await rejection(c.status())).message).toBe(sentence);
    server = await startKilnServer({ root: dir, log: () => {}, onConnection: (ws) => rpc.attach(ws) });
  });

  it('a server that goes away without a word: "the connection was lost"', async () => {
    const c = await connect();
    const pending = rejection(new Promise((_, reject) => setTimeout(() => c.status().then(() => reject(new Error('answered')), reject), 50)));
    for (const ws of server.wss.clients) ws.terminate();
    expect((await pending).message).toBe('the connection to kiln serve closed: the connection was lost; is it still running?');
  });

  it('a wrong token (kiln serve restarted) or no server: refused with what to do', async () => {
    const e = await rejection(connect({ token: 'A'.repeat(43) }));
    expect(e.message).toBe(`could not connect to kiln serve at ws://127.0.0.1:${server.port}/ws: it refused the connection, or is not running`);
    expect(e.hint).toMatch(/new token each time it starts: open the URL it printed/);
    expect(logs.at(-1)).toMatch(/refused a WebSocket .*wrong token/);
    const junk = await rejection(connect({ token: 'not a token' }));
    expect(junk.message).toMatch(/the token in this page's address is not one kiln serve makes/);
  });

  it('close() by the page: calls fail at once, onClose is not called, training is not stopped', async () => {
    const closed: string[] = [];
    const c = await connect({ onClose: (why) => closed.push(why) });
    c.close();
    expect((await rejection(c.status())).message).toBe('the connection to kiln serve was closed by this page');
    await tick();
    expect(closed).toEqual([]);
    expect(lab.called('stop')).toEqual([]);
    expect(lab.called('dispose')).toEqual([]);
  });
});

describe("the token in the page's address", () => {
  it('is the key kiln serve prints, and comes out of its URL whole', () => {
    expect(SERVE_TOKEN_KEY).toBe(TOKEN_KEY);
    const hash = new URL(server.url).hash;
    expect(takeServeToken(hash)).toEqual({ token: server.token, rest: '' });
  });

  it('is taken out of the fragment; the other parts (a share link) stay, in order', () => {
    expect(takeServeToken('#kiln-token=abc_DEF-12&v=1&preset=tiny&lr=0.001')).toEqual({ token: 'abc_DEF-12', rest: 'v=1&preset=tiny&lr=0.001' });
    expect(takeServeToken('v=1&kiln-token=abc&preset=tiny')).toEqual({ token: 'abc', rest: 'v=1&preset=tiny' });
    expect(takeServeToken('#v=1&preset=tiny')).toEqual({ token: null, rest: 'v=1&preset=tiny' });
    expect(takeServeToken('')).toEqual({ token: null, rest: '' });
    expect(takeServeToken('#kiln-token=&v=1')).toEqual({ token: null, rest: 'v=1' });
    // A key that only starts the same is another part.
    expect(takeServeToken('#kiln-tokens=x&kiln-token=y')).toEqual({ token: 'y', rest: 'kiln-tokens=x' });
  });

  describe('servedToken(): the controller reads it once, out of the address bar, and keeps it for reloads of this tab', () => {
    let replaced: string[];
    let store: Map<string, string>;
    const page = (hash: string) => {
      vi.stubGlobal('location', { origin: 'http://127.0.0.1:4321', pathname: '/', search: '', hash });
      vi.stubGlobal('history', { state: null, replaceState: (_s: unknown, _t: string, url: string) => replaced.push(url) });
      vi.stubGlobal('sessionStorage', { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) });
    };
    beforeEach(() => {
      replaced = [];
      store = new Map();
    });
    afterEach(() => vi.unstubAllGlobals());

    it('from the printed URL: the address keeps only the share link; a reload finds the token again', () => {
      page('#kiln-token=tok_123&v=1&preset=tiny');
      expect(servedToken()).toBe('tok_123');
      expect(replaced).toEqual(['/#v=1&preset=tiny']);
      page('#kiln-token=tok_123');
      expect(servedToken()).toBe('tok_123');
      expect(replaced.at(-1)).toBe('/');
      // The reload: nothing in the address, the tab's storage has it.
      page('');
      expect(servedToken()).toBe('tok_123');
      expect(replaced).toHaveLength(2);
      expect([...store.keys()]).toEqual(['kiln-token@http://127.0.0.1:4321']);
    });

    it('the static lab: no token, the address untouched', () => {
      page('#v=1&preset=tiny');
      expect(servedToken()).toBeNull();
      expect(replaced).toEqual([]);
    });
  });
});
