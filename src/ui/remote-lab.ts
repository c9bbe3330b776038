// The LabApi of a `kiln serve` process on this machine, over its WebSocket, in the
// protocol of src/core/lab-protocol.ts: the page's side of src/serve/rpc.ts. The
// controller uses it exactly as it uses the web worker (worker-lab.ts).
//
// The token rides in the second subprotocol (`kiln.v1.<token>`), never in the URL. Each
// call carries an id; its result, its error (an Error with the server's code and hint,
// the shape labError() reads) and a sample's streamed text come back under that id, and
// events under the subscription's. One tab controls the server; this one is told when
// control comes or goes (`control` messages). A closed socket fails every call still
// waiting with a sentence saying so; there is no reconnecting by itself: reloading the
// page connects again (the token is kept for this tab by the controller).
import {
  encodeCall, parseServerMessage, PROTOCOL, TOKEN_PROTOCOL_PREFIX, validateCall, type CallMethod, type ServerMessage, type WireError,
} from '../core/lab-protocol.ts';
import type { RunConfig } from '../core/config.ts';
import type { RunRecord, StorageUsage } from '../core/run-record.ts';
import type { RunSpec } from '../core/run-spec.ts';
import type {
  ConfigFit, DataFile, DataSource, DataSummary, ExtendOptions, LabApi, LabBackendKind, LabEnvironment, LabError, LabEvent, LabMetrics, RunInfo,
  RunStatus, SampleRequest,
} from '../worker/api.ts';

/**
 * The fragment key of the URL kiln serve prints (`http://127.0.0.1:PORT/#kiln-token=...`):
 * src/serve/http-server.ts's TOKEN_KEY, repeated here because the UI does not import the
 * server (tests/unit/remote-lab.test.ts checks that they agree).
 */
export const SERVE_TOKEN_KEY = 'kiln-token';

/** The characters of a token the server makes (base64url), and so of a valid subprotocol. */
const TOKEN = /^[A-Za-z0-9_-]+$/;

/**
 * Takes kiln serve's token out of a URL fragment ("#kiln-token=T&v=1&preset=..."): the
 * token (null when there is none), and the fragment's other parts in their order (a share
 * link), to put back in the address without it.
 */
export function takeServeToken(hash: string): { token: string | null; rest: string } {
  const fragment = hash.startsWith('#') ? hash.slice(1) : hash;
  let token: string | null = null;
  const rest: string[] = [];
  for (const part of fragment.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if ((eq < 0 ? part : part.slice(0, eq)) === SERVE_TOKEN_KEY) token ??= eq < 0 ? '' : part.slice(eq + 1);
    else rest.push(part);
  }
  return { token: token || null, rest: rest.join('&') };
}

/** A failed call: the server's LabError as an Error (labError() in lab-controller.ts reads code and hint). */
export class RemoteLabError extends Error implements LabError {
  readonly code: LabError['code'];
  readonly hint: string;

  constructor(e: WireError) {
    super(e.message);
    this.name = 'RemoteLabError';
    this.code = e.code;
    this.hint = e.hint;
  }
}

/** The part of the browser's WebSocket this client uses (Node's `ws` client has it too, for tests). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: { type: string; data?: unknown; code?: number; reason?: string }) => void): void;
}
export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

export interface RemoteLabOptions {
  /** The server's socket: `ws://${location.host}/ws`. */
  url: string;
  /** The token of the URL kiln serve printed. */
  token: string;
  /** This tab gained or lost control of the server (after connecting; `controlling` says how it started). */
  onControl?(controlling: boolean): void;
  /** The connection closed (not by close()): the sentence every later call fails with. */
  onClose?(why: string): void;
  /** Default: the browser's WebSocket (tests pass Node's `ws` client). */
  WebSocketImpl?: WebSocketConstructor;
  /** How long to wait for the server's hello (default 15 s). */
  helloTimeoutMs?: number;
}

export interface RemoteLab extends LabApi {
  /** This tab steers the server; when false it watches (the server refuses calls that change a run). */
  readonly controlling: boolean;
  /** Asks for control; `force` takes it from the tab that has it (that tab is told). */
  takeControl(force?: boolean): Promise<void>;
  /** Closes the connection; training on the server goes on. */
  close(): void;
}

const WS_OPEN = 1;
const RESTART_HINT = 'restart kiln serve if it stopped, then reload this page (it does not reconnect by itself)';

/** Why a socket closed, from its close code and reason, in words. */
function closeWhy(code: number | undefined, reason: string | undefined): string {
  if (reason) return reason;
  switch (code) {
    case 1000: return 'it ended';
    case 1001: return 'kiln serve is stopping';
    case 1006: return 'the connection was lost';
    case 1009: return 'a message was over its size limit';
    default: return code ? `code ${code}` : 'the connection was lost';
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(e: Error): void;
  /** A streamed sample's pieces. */
  onText?(text: string): void;
}

class RemoteLabClient implements RemoteLab {
  controlling: boolean;
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<number, (e: LabEvent) => void>();
  private closed: RemoteLabError | null = null;
  private readonly maxBytes: number;

  constructor(private readonly ws: WebSocketLike, hello: Extract<ServerMessage, { t: 'hello' }>, private readonly opts: RemoteLabOptions) {
    this.controlling = hello.controlling;
    this.maxBytes = hello.maxBytes;
  }

  onMessage(data: unknown): void {
    let m: ServerMessage;
    try {
      m = parseServerMessage(String(data));
    } catch (e) {
      console.warn(`kiln serve sent a message the page cannot read: ${(e as Error).message}`);
      return;
    }
    switch (m.t) {
      case 'result':
        this.take(m.id)?.resolve(m.result);
        break;
      case 'error':
        // id null: a message the server could not read at all; this client sends none such.
        if (m.id === null) console.warn(`kiln serve: ${m.error.message} (${m.error.hint})`);
        else this.take(m.id)?.reject(new RemoteLabError(m.error));
        break;
      case 'event':
        this.listeners.get(m.sub)?.(m.event as LabEvent);
        break;
      case 'text':
        this.pending.get(m.id)?.onText?.(m.text);
        break;
      case 'control':
        this.setControlling(m.controlling);
        break;
      case 'hello':
        break;
    }
  }

  onClose(code: number | undefined, reason: string | undefined): void {
    if (this.closed) return;
    const message = `the connection to kiln serve closed: ${closeWhy(code, reason)}; is it still running?`;
    this.fail(new RemoteLabError({ code: 'internal', message, hint: RESTART_HINT }));
    this.opts.onClose?.(message);
  }

  private fail(e: RemoteLabError): void {
    this.closed = e;
    this.listeners.clear();
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private take(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    return p;
  }

  private setControlling(c: boolean): void {
    if (c === this.controlling) return;
    this.controlling = c;
    this.opts.onControl?.(c);
  }

  /** Sends a call; resolves with its result. `onResult` runs as the result arrives, before any later message is read. */
  private call<T>(method: CallMethod, args: unknown[], extra: { onText?(text: string): void; onResult?(value: unknown): void } = {}): Promise<T> {
    if (this.closed) return Promise.reject(this.closed);
    // The server's own check, here first: a file over its limit is refused with the same
    // sentence instead of a message so large that the server drops the connection.
    const checked = validateCall(method, args, { maxBytes: this.maxBytes });
    if (!checked.ok) return Promise.reject(new RemoteLabError(checked.error));
    const id = this.next++;
    const text = encodeCall(id, method, args);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, {
        resolve: (v) => {
          extra.onResult?.(v);
          resolve(v as T);
        },
        reject,
        onText: extra.onText,
      });
      if (this.ws.readyState === WS_OPEN) this.ws.send(text);
    });
  }

  async takeControl(force = false): Promise<void> {
    const r = await this.call<{ controlling: boolean }>('takeControl', force ? [true] : []);
    this.setControlling(r.controlling);
  }

  close(): void {
    if (this.closed) return;
    this.fail(new RemoteLabError({ code: 'internal', message: 'the connection to kiln serve was closed by this page', hint: 'reload the page' }));
    this.ws.close(1000, 'the page closed');
  }

  // ---- LabApi ----

  environment(): Promise<LabEnvironment> {
    return this.call('environment', []);
  }
  checkConfig(config: RunConfig, vocabSize: number, backend: LabBackendKind): Promise<ConfigFit> {
    return this.call('checkConfig', [config, vocabSize, backend]);
  }
  prepareData(source: DataSource, config: RunConfig): Promise<DataSummary> {
    return this.call('prepareData', [source, config]);
  }
  createRun(spec: RunSpec, backend: LabBackendKind): Promise<RunInfo> {
    return this.call('createRun', [spec, backend]);
  }
  subscribe(listener: (e: LabEvent) => void): Promise<number> {
    // Listening from the moment the id arrives: the server sends the first events right after it.
    return this.call('subscribe', [], { onResult: (id) => this.listeners.set(id as number, listener) });
  }
  unsubscribe(id: number): Promise<void> {
    this.listeners.delete(id);
    return this.call('unsubscribe', [id]);
  }
  start(): Promise<void> {
    return this.call('start', []);
  }
  pause(): Promise<void> {
    return this.call('pause', []);
  }
  resume(): Promise<void> {
    return this.call('resume', []);
  }
  stop(): Promise<void> {
    return this.call('stop', []);
  }
  extend(steps: number, opts?: ExtendOptions): Promise<void> {
    return this.call('extend', opts ? [steps, opts] : [steps]);
  }
  recover(): Promise<void> {
    return this.call('recover', []);
  }
  sample(req: SampleRequest, onText?: (text: string) => void): Promise<string> {
    return this.call('sample', onText ? [req, true] : [req], { onText });
  }
  history(): Promise<LabMetrics[]> {
    return this.call('history', []);
  }
  status(): Promise<RunStatus> {
    return this.call('status', []);
  }
  current(): Promise<RunInfo | null> {
    return this.call('current', []);
  }
  dataFiles(): Promise<DataFile[]> {
    return this.call('dataFiles', []);
  }
  dispose(): Promise<void> {
    return this.call('dispose', []);
  }
  listRuns(): Promise<RunRecord[]> {
    return this.call('listRuns', []);
  }
  openRun(id: string, backend: LabBackendKind, step?: number): Promise<RunInfo> {
    return this.call('openRun', step === undefined ? [id, backend] : [id, backend, step]);
  }
  renameRun(id: string, name: string): Promise<RunRecord> {
    return this.call('renameRun', [id, name]);
  }
  deleteRun(id: string): Promise<void> {
    return this.call('deleteRun', [id]);
  }
  exportCheckpoint(id: string, step?: number): Promise<{ fileName: string; bytes: Uint8Array }> {
    return this.call('exportCheckpoint', step === undefined ? [id] : [id, step]);
  }
  importCheckpoint(fileName: string, bytes: Uint8Array): Promise<RunRecord> {
    return this.call('importCheckpoint', [fileName, bytes]);
  }
  branchRun(id: string, step: number, config: RunConfig, backend: LabBackendKind, name?: string): Promise<RunInfo> {
    return this.call('branchRun', name === undefined ? [id, step, config, backend] : [id, step, config, backend, name]);
  }
  runMetrics(id: string): Promise<LabMetrics[]> {
    return this.call('runMetrics', [id]);
  }
  save(): Promise<void> {
    return this.call('save', []);
  }
  storageUsage(): Promise<StorageUsage> {
    return this.call('storageUsage', []);
  }
}

/**
 * Connects to kiln serve and resolves once it has said hello (so `controlling` is known).
 * Rejects with a RemoteLabError saying what to do when the server refuses the connection
 * (a stale token, after a restart), is not there, or never answers.
 */
export function connectRemoteLab(opts: RemoteLabOptions): Promise<RemoteLab> {
  const unreachable = (why: string): RemoteLabError => new RemoteLabError({
    code: 'internal',
    message: `could not connect to kiln serve at ${opts.url}: ${why}`,
    hint: 'is kiln serve still running? It makes a new token each time it starts: open the URL it printed (the one with #kiln-token=…)',
  });
  return new Promise<RemoteLab>((resolve, reject) => {
    if (!TOKEN.test(opts.token)) {
      reject(unreachable('the token in this page\'s address is not one kiln serve makes'));
      return;
    }
    const Impl: WebSocketConstructor | undefined = opts.WebSocketImpl ?? globalThis.WebSocket;
    if (!Impl) {
      reject(unreachable('this browser has no WebSocket'));
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new Impl(opts.url, [PROTOCOL, `${TOKEN_PROTOCOL_PREFIX}${opts.token}`]);
    } catch (e) {
      reject(unreachable((e as Error).message));
      return;
    }
    let client: RemoteLabClient | null = null;
    let settled = false;
    const fail = (e: RemoteLabError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(e);
      ws.close();
    };
    const timer = setTimeout(() => fail(unreachable('it did not answer')), opts.helloTimeoutMs ?? 15_000);
    ws.addEventListener('message', (e) => {
      if (client) return client.onMessage(e.data);
      if (settled) return;
      let hello: ServerMessage | null = null;
      try {
        hello = parseServerMessage(String(e.data));
      } catch {
        // Said below.
      }
      if (hello?.t !== 'hello' || hello.protocol !== PROTOCOL) {
        fail(new RemoteLabError({
          code: 'usage',
          message: `kiln serve at ${opts.url} does not speak this page's protocol (${PROTOCOL})`,
          hint: 'the page and kiln serve disagree: reload the page, or update Kiln',
        }));
        return;
      }
      settled = true;
      clearTimeout(timer);
      client = new RemoteLabClient(ws, hello, opts);
      resolve(client);
    });
    // The browser says nothing about a refused handshake (401, 403): only that it closed.
    ws.addEventListener('error', () => {});
    ws.addEventListener('close', (e) => {
      if (client) client.onClose(e.code, e.reason);
      else fail(unreachable(e.code === 1006 || !e.code ? 'it refused the connection, or is not running' : closeWhy(e.code, e.reason)));
    });
  });
}
