// A page's end of the `kiln serve` protocol, spoken over `ws` by the tests that start the
// real process (serve-command.test.ts, serve-data.test.ts), and the process itself started
// as a person does (`--backend cpu --port 0`), its one URL read from stdout.
import type { ChildProcess } from 'node:child_process';
import { WebSocket } from 'ws';
import { LAB_DIR_ENV } from '../../src/cli/serve-command.ts';
import { encodeCall, parseServerMessage, type CallMethod, type ServerMessage } from '../../src/core/lab-protocol.ts';
import type { LabEvent, LabMetrics, RunStatus } from '../../src/worker/api.ts';
import { spawnKiln } from './cli.ts';

export const URL_LINE = /^kiln serve: open (http:\/\/127\.0\.0\.1:(\d+)\/#kiln-token=([A-Za-z0-9_-]{43}))$/m;

/** A page's end of the protocol: calls answered in order of their ids, events kept. */
export class Page {
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

export interface Server {
  child: ChildProcess;
  url: string;
  port: number;
  token: string;
  output(): { stdout: string; stderr: string };
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `kiln serve --backend cpu --out OUT --port 0` (and `extra`), serving the lab folder `lab`, once it has printed its URL. */
export async function startServe(lab: string, out: string, extra: string[] = []): Promise<Server> {
  const before = process.env[LAB_DIR_ENV];
  process.env[LAB_DIR_ENV] = lab;
  let p: ReturnType<typeof spawnKiln>;
  try {
    p = spawnKiln(['serve', '--backend', 'cpu', '--out', out, '--port', '0', ...extra]);
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
