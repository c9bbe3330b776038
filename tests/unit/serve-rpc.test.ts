// The LabApi over a WebSocket (src/serve/rpc.ts): the real server on a free port serving
// a fake LabApi that records calls, answers canned data and emits events. Calls, events,
// a streamed sample and bytes both ways work; bad messages get readable errors and the
// connection stays open; one tab controls, others watch; control passes on when the
// controlling tab goes, and training is never stopped by a page leaving.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { DEFAULT_CONFIG, type RunConfig } from '../../src/core/config.ts';
import { KilnError } from '../../src/core/errors.ts';
import { encodeBase64, encodeCall, parseServerMessage, type CallMethod, type ServerMessage } from '../../src/core/lab-protocol.ts';
import type { RunRecord, StorageUsage } from '../../src/core/run-record.ts';
import type { RunSpec } from '../../src/core/run-spec.ts';
import { startKilnServer, type KilnServer } from '../../src/serve/http-server.ts';
import { LabRpc } from '../../src/serve/rpc.ts';
import type {
  ConfigFit, DataFile, DataSource, DataSummary, ExtendOptions, LabApi, LabBackendKind, LabEnvironment, LabEvent, LabMetrics, RunInfo, RunStatus, SampleRequest,
} from '../../src/worker/api.ts';

const MAX_BYTES = 1024;

const STATUS: RunStatus = {
  phase: 'training', step: 3, stopAt: 10, decaySteps: 10, lastLoss: 2.5, lastValLoss: null, bestValLoss: null, valStep: null, tokensPerS: 100,
  elapsedS: 1, etaS: 2, recoverable: false, snapshotStep: null, savedStep: null, saving: false,
};

/** A LabApi that records each call, answers canned data, and emits events on demand. */
class FakeLab implements LabApi {
  calls: Array<[string, unknown[]]> = [];
  listeners = new Map<number, (e: LabEvent) => void>();
  private nextSub = 1;
  /** start() waits for this when set (to hold calls in flight). */
  gate: Promise<void> | null = null;

  private rec(method: string, args: unknown[]): void {
    this.calls.push([method, args]);
  }
  called(method: string): unknown[][] {
    return this.calls.filter(([m]) => m === method).map(([, a]) => a);
  }
  emit(e: LabEvent): void {
    for (const l of this.listeners.values()) l(e);
  }

  async environment(): Promise<LabEnvironment> {
    this.rec('environment', []);
    return { webgpu: false, webgpuWhy: 'Node', device: 'fake', isSoftware: false, limits: { maxStorageBufferBindingSize: 1, maxBufferSize: 2 } };
  }
  async checkConfig(config: RunConfig, vocabSize: number, backend: LabBackendKind): Promise<ConfigFit> {
    this.rec('checkConfig', [config, vocabSize, backend]);
    return { numParams: 1000, flopsPerToken: 6000, memoryBytes: 1, largestBinding: 1, largestName: 'wte', fits: true, problems: [] };
  }
  async prepareData(source: DataSource, config: RunConfig): Promise<DataSummary> {
    this.rec('prepareData', [source, config]);
    const bytes = source.kind === 'file' ? source.bytes.length : 0;
    return { ref: { kind: 'bundled', id: 'names' }, name: 'names', bytes, chars: 1, distinctChars: 1, tokenizer: 'char', vocabSize: 27, tokens: 1, trainTokens: 1, valTokens: 0 };
  }
  async createRun(spec: RunSpec, backend: LabBackendKind): Promise<RunInfo> {
    this.rec('createRun', [spec, backend]);
    return { id: 'run-1', name: 'tiny', spec, model: {} as RunInfo['model'], numParams: 1000, backend, device: 'fake', memoryBytes: 1, data: null };
  }
  async subscribe(listener: (e: LabEvent) => void): Promise<number> {
    this.rec('subscribe', []);
    const id = this.nextSub++;
    this.listeners.set(id, listener);
    // An event that fires before subscribe() answers (as a flush timer might).
    listener({ type: 'progress', what: 'compile', done: 0, total: 1 });
    return id;
  }
  async unsubscribe(id: number): Promise<void> {
    this.rec('unsubscribe', [id]);
    this.listeners.delete(id);
  }
  async start(): Promise<void> {
    this.rec('start', []);
    await this.gate;
  }
  async pause(): Promise<void> {
    this.rec('pause', []);
  }
  async resume(): Promise<void> {
    this.rec('resume', []);
  }
  async stop(): Promise<void> {
    this.rec('stop', []);
  }
  async extend(steps: number, opts?: ExtendOptions): Promise<void> {
    this.rec('extend', [steps, opts]);
  }
  async recover(): Promise<void> {
    throw new KilnError('usage', 'nothing to recover', 'the run has not failed');
  }
  async sample(req: SampleRequest, onText?: (text: string) => void): Promise<string> {
    this.rec('sample', [req, typeof onText]);
    onText?.('Hel');
    onText?.('lo');
    return 'Hello';
  }
  async history(): Promise<LabMetrics[]> {
    this.rec('history', []);
    return [{ step: 1, loss: 3, lr: 1e-3, grad_norm: 1, tokens_per_s: 10, elapsed_s: 0.1 }, { step: 2, loss: NaN, lr: 1e-3, grad_norm: Infinity, tokens_per_s: 10, elapsed_s: 0.2 }];
  }
  async status(): Promise<RunStatus> {
    this.rec('status', []);
    return STATUS;
  }
  async current(): Promise<RunInfo | null> {
    this.rec('current', []);
    return { id: 'run-1', name: 'tiny · names', spec: { preset: 'tiny', config: DEFAULT_CONFIG, data: { kind: 'bundled', id: 'names' } }, model: {} as RunInfo['model'], numParams: 1000, backend: 'cpu', device: 'fake', memoryBytes: 1, data: null };
  }
  async dataFiles(): Promise<DataFile[]> {
    this.rec('dataFiles', []);
    return [{ path: 'sub/b.txt', bytes: 12 }];
  }
  async dispose(): Promise<void> {
    this.rec('dispose', []);
  }
  async listRuns(): Promise<RunRecord[]> {
    this.rec('listRuns', []);
    return [];
  }
  async openRun(id: string, backend: LabBackendKind, step?: number): Promise<RunInfo> {
    this.rec('openRun', [id, backend, step]);
    return this.createRun({ preset: 'tiny', config: DEFAULT_CONFIG, data: null }, backend);
  }
  async renameRun(id: string, name: string): Promise<RunRecord> {
    this.rec('renameRun', [id, name]);
    throw new TypeError("Cannot read properties of undefined (reading 'name')");
  }
  async deleteRun(id: string): Promise<void> {
    this.rec('deleteRun', [id]);
  }
  async exportCheckpoint(id: string, step?: number): Promise<{ fileName: string; bytes: Uint8Array }> {
    this.rec('exportCheckpoint', [id, step]);
    // A Node Buffer, as a file store would give (its toJSON must not leak into the wire).
    return { fileName: 'tiny-step-20.safetensors', bytes: Buffer.from([0, 1, 2, 253, 254, 255]) };
  }
  async importCheckpoint(fileName: string, bytes: Uint8Array): Promise<RunRecord> {
    this.rec('importCheckpoint', [fileName, bytes]);
    return { id: 'run-2', name: fileName } as RunRecord;
  }
  async branchRun(id: string, step: number, config: RunConfig, backend: LabBackendKind, name?: string): Promise<RunInfo> {
    this.rec('branchRun', [id, step, config, backend, name]);
    return this.createRun({ preset: 'tiny', config, data: null }, backend);
  }
  async runMetrics(id: string): Promise<LabMetrics[]> {
    this.rec('runMetrics', [id]);
    return [];
  }
  async save(): Promise<void> {
    this.rec('save', []);
  }
  async storageUsage(): Promise<StorageUsage> {
    this.rec('storageUsage', []);
    return { runsBytes: 1, datasetsBytes: 2, usage: null, quota: null };
  }
}

interface Client {
  ws: WebSocket;
  messages: ServerMessage[];
  send(text: string): void;
  call(method: CallMethod | string, ...args: unknown[]): Promise<ServerMessage>;
  callId(method: CallMethod | string, ...args: unknown[]): [number, Promise<ServerMessage>];
  until(ok: (m: ServerMessage) => boolean): Promise<ServerMessage>;
  close(): Promise<void>;
}

let server: KilnServer;
let rpc: LabRpc;
let lab: FakeLab;
const logs: string[] = [];
let dir: string;
const open: Client[] = [];

async function connect(): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`, ['kiln.v1', `kiln.v1.${server.token}`], { origin: `http://127.0.0.1:${server.port}` });
  const messages: ServerMessage[] = [];
  const waiting: Array<() => void> = [];
  let next = 1;
  ws.on('message', (d) => {
    messages.push(parseServerMessage(String(d)));
    for (const w of waiting.splice(0)) w();
  });
  const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
  const until = (ok: (m: ServerMessage) => boolean): Promise<ServerMessage> =>
    new Promise((resolve) => {
      const look = (): void => {
        const m = messages.find(ok);
        if (m) resolve(m);
        else waiting.push(look);
      };
      look();
    });
  const callId = (method: string, ...args: unknown[]): [number, Promise<ServerMessage>] => {
    const id = next++;
    ws.send(encodeCall(id, method as CallMethod, args));
    return [id, until((m) => (m.t === 'result' || m.t === 'error') && m.id === id)];
  };
  const client: Client = {
    ws, messages, until, callId,
    send: (text) => ws.send(text),
    call: (method, ...args) => callId(method, ...args)[1],
    close: async () => {
      ws.close();
      await closed;
      await new Promise((r) => setTimeout(r, 20));
    },
  };
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => resolve());
    ws.on('error', reject);
  });
  await until((m) => m.t === 'hello');
  open.push(client);
  return client;
}

const result = (m: ServerMessage): unknown => {
  if (m.t !== 'result') throw new Error(`expected a result, got ${JSON.stringify(m)}`);
  return m.result;
};
const error = (m: ServerMessage) => {
  if (m.t !== 'error') throw new Error(`expected an error, got ${JSON.stringify(m)}`);
  return m.error;
};

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'kiln-rpc-'));
  writeFileSync(path.join(dir, 'index.html'), 'lab');
});

beforeEach(async () => {
  lab = new FakeLab();
  rpc = new LabRpc(lab, { log: (l) => logs.push(l), maxBytes: MAX_BYTES, maxInFlight: 2 });
  server = await startKilnServer({ root: dir, log: (l) => logs.push(l), maxPayload: 64 * 1024, onConnection: (ws) => rpc.attach(ws) });
});

afterEach(async () => {
  for (const c of open.splice(0)) c.ws.terminate();
  rpc.close();
  await server.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('calls, events and samples', () => {
  it('a call is answered with its result; the first connection controls', async () => {
    const c = await connect();
    expect(c.messages[0]).toEqual({ t: 'hello', protocol: 'kiln.v1', controlling: true, maxBytes: MAX_BYTES });
    expect(result(await c.call('status'))).toEqual(STATUS);
    const spec: RunSpec = { preset: 'tiny', config: DEFAULT_CONFIG, data: { kind: 'bundled', id: 'names' } };
    expect(result(await c.call('createRun', spec, 'cpu'))).toMatchObject({ id: 'run-1', backend: 'cpu' });
    expect(lab.called('createRun')).toEqual([[spec, 'cpu']]);
    result(await c.call('extend', 50, null));
    expect(lab.called('extend')).toEqual([[50, undefined]]);
  });

  it('subscribe: its id first, then every event (one fired during subscribe too) to every subscribed connection', async () => {
    const a = await connect();
    const b = await connect();
    const subA = result(await a.call('subscribe'));
    const subB = result(await b.call('subscribe'));
    const firstA = a.messages.findIndex((m) => m.t === 'event');
    expect(firstA).toBeGreaterThan(a.messages.findIndex((m) => m.t === 'result' && m.result === subA));
    lab.emit({ type: 'status', status: STATUS });
    expect(await a.until((m) => m.t === 'event' && (m.event as LabEvent).type === 'status')).toEqual({ t: 'event', sub: subA, event: { type: 'status', status: STATUS } });
    expect(await b.until((m) => m.t === 'event' && (m.event as LabEvent).type === 'status')).toMatchObject({ sub: subB });
    // A watching tab cannot unsubscribe the controlling one's events.
    expect(error(await b.call('unsubscribe', subA))).toMatchObject({ code: 'usage', message: `there is no subscription ${subA} on this connection` });
    result(await b.call('unsubscribe', subB));
    expect([...lab.listeners.keys()]).toEqual([subA]);
  });

  it('sample streams its text to the caller only, and answers the whole text', async () => {
    const c = await connect();
    const req = { prompt: 'He', maxTokens: 5, temperature: 1, topK: 0, topP: 1, seed: 1 };
    const [id, done] = c.callId('sample', req, true);
    expect(result(await done)).toBe('Hello');
    expect(c.messages.filter((m) => m.t === 'text')).toEqual([{ t: 'text', id, text: 'Hel' }, { t: 'text', id, text: 'lo' }]);
    expect(result(await c.call('sample', req))).toBe('Hello');
    expect(lab.called('sample').map((a) => a[1])).toEqual(['function', 'undefined']);
    expect(c.messages.filter((m) => m.t === 'text')).toHaveLength(2);
  });

  it('bytes both ways (a checkpoint out as base64, a file in), and NaN/Infinity in metrics', async () => {
    const c = await connect();
    const out = result(await c.call('exportCheckpoint', 'run-1', 20)) as { fileName: string; bytes: Uint8Array };
    expect(out.fileName).toBe('tiny-step-20.safetensors');
    expect(out.bytes).toEqual(Uint8Array.of(0, 1, 2, 253, 254, 255));
    result(await c.call('importCheckpoint', 'a.safetensors', Uint8Array.of(9, 8, 7)));
    expect(lab.called('importCheckpoint')[0][1]).toEqual(Uint8Array.of(9, 8, 7));
    const rows = result(await c.call('history')) as LabMetrics[];
    expect(rows[1].loss).toBeNaN();
    expect(rows[1].grad_norm).toBe(Infinity);
  });

  it('a KilnError keeps code, message and hint; any other failure is internal, without a stack, and logged', async () => {
    const c = await connect();
    expect(error(await c.call('recover'))).toEqual({ code: 'usage', message: 'nothing to recover', hint: 'the run has not failed' });
    const before = logs.length;
    const e = error(await c.call('renameRun', 'run-1', 'x'));
    expect(e.code).toBe('internal');
    expect(e.message).toContain("Cannot read properties of undefined");
    expect(e.message).not.toMatch(/\n\s+at /);
    expect(logs.slice(before)).toEqual([expect.stringMatching(/^kiln serve: renameRun failed for connection \d+: Cannot read/)]);
  });
});

describe('bad messages get readable errors, and the connection stays open', () => {
  it('an unknown method, wrong argument types, a config with NaN, bytes over the limit, not JSON, binary', async () => {
    const c = await connect();
    expect(error(await c.call('strat'))).toMatchObject({ code: 'usage', message: 'kiln serve has no method "strat"', hint: 'did you mean start?' });
    expect(error(await c.call('checkConfig', DEFAULT_CONFIG, 'many', 'cpu'))).toMatchObject({ code: 'usage', message: 'checkConfig: vocabSize must be a number, not "many"' });
    expect(error(await c.call('checkConfig', { ...DEFAULT_CONFIG, lr: NaN }, 65, 'cpu'))).toMatchObject({ code: 'config', message: 'checkConfig: config: lr must be a number, not NaN' });
    const tooBig = new Uint8Array(MAX_BYTES + 1);
    expect(error(await c.call('prepareData', { kind: 'file', name: 'a.txt', bytes: tooBig }, DEFAULT_CONFIG))).toMatchObject({
      code: 'data', message: `prepareData: source.bytes is ${MAX_BYTES + 1} bytes; kiln serve takes at most ${MAX_BYTES} bytes in one call`,
    });
    expect(error(await c.call('importCheckpoint', 'x.safetensors', { $b64: encodeBase64(new Uint8Array(MAX_BYTES)) + 'AAAA' }))).toMatchObject({ code: 'data' });
    c.send('{"t":"call","id":'); // cut short
    expect(await c.until((m) => m.t === 'error' && m.id === null)).toMatchObject({ error: { code: 'usage', message: expect.stringContaining('not JSON') } });
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await c.until((m) => m.t === 'error' && m.error.message.includes('binary'))).toBeTruthy();
    // None of it reached the lab, and the connection still works.
    expect(lab.calls.filter(([m]) => m !== 'status')).toEqual([]);
    expect(result(await c.call('status'))).toEqual(STATUS);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('too many calls in flight on one connection: refused until some answer', async () => {
    const c = await connect();
    let open!: () => void;
    lab.gate = new Promise((r) => (open = r));
    const first = c.call('start');
    const second = c.call('start');
    await new Promise((r) => setTimeout(r, 30));
    expect(error(await c.call('status'))).toMatchObject({ message: '2 calls are already running on this connection' });
    open();
    result(await first);
    result(await second);
    expect(result(await c.call('status'))).toEqual(STATUS);
  });
});

describe('one controlling connection', () => {
  it('a second connection watches: it may look and subscribe, not steer', async () => {
    const a = await connect();
    const b = await connect();
    expect(b.messages[0]).toMatchObject({ t: 'hello', controlling: false });
    expect(result(await b.call('status'))).toEqual(STATUS);
    for (const m of ['environment', 'history', 'listRuns', 'storageUsage'] as const) expect((await b.call(m)).t, m).toBe('result');
    expect(result(await b.call('runMetrics', 'run-1'))).toEqual([]);
    expect((await b.call('checkConfig', DEFAULT_CONFIG, 65, 'cpu')).t).toBe('result');
    const refusals: Array<[CallMethod, unknown[]]> = [
      ['start', []], ['pause', []], ['stop', []], ['extend', [10]], ['sample', [{ prompt: '', maxTokens: 1, temperature: 1, topK: 0, topP: 1, seed: 0 }]],
      ['deleteRun', ['run-1']], ['save', []], ['dispose', []], ['exportCheckpoint', ['run-1']],
    ];
    for (const [m, args] of refusals) {
      expect(error(await b.call(m, ...args)), m).toEqual({ code: 'usage', message: 'another tab controls this kiln serve', hint: 'close that tab, or take control here' });
    }
    expect(lab.calls.map(([m]) => m)).not.toContain('start');
    result(await a.call('start'));
    expect(lab.called('start')).toHaveLength(1);
  });

  it('when the controlling tab closes, the next one takes over; training goes on; its subscriptions end', async () => {
    const a = await connect();
    const b = await connect();
    result(await a.call('start'));
    result(await a.call('subscribe'));
    expect(lab.listeners.size).toBe(1);
    await a.close();
    expect(await b.until((m) => m.t === 'control')).toEqual({ t: 'control', controlling: true });
    expect(lab.listeners.size).toBe(0);
    for (const m of ['pause', 'stop', 'dispose']) expect(lab.called(m), m).toEqual([]);
    result(await b.call('pause'));
    // With nobody left, the next connection controls.
    await b.close();
    const c = await connect();
    expect(c.messages[0]).toMatchObject({ controlling: true });
    result(await c.call('resume'));
  });

  it('takeControl: asks politely (no) or takes it (force); the old tab is told', async () => {
    const a = await connect();
    const b = await connect();
    expect(result(await b.call('takeControl'))).toEqual({ controlling: false });
    expect(result(await b.call('takeControl', true))).toEqual({ controlling: true });
    expect(await a.until((m) => m.t === 'control')).toEqual({ t: 'control', controlling: false });
    expect(error(await a.call('start')).message).toBe('another tab controls this kiln serve');
    result(await b.call('start'));
  });
});
