// The security of `kiln serve` (issue 16): the real server on a free port, with a fake
// LabApi. A connection without the token, with a wrong one, from another Origin or
// through a foreign Host is refused at the upgrade (401/403) and logged as one line
// without the token; a message over the limit (or a frame announcing 1 GiB) closes only
// that socket; a path out of the lab's folder or out of --data is refused; and after
// each, the right client is still served.
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { KilnError } from '../../src/core/errors.ts';
import { encodeCall, parseServerMessage, type CallMethod, type ServerMessage } from '../../src/core/lab-protocol.ts';
import { startKilnServer, type KilnServer } from '../../src/serve/http-server.ts';
import { LabRpc } from '../../src/serve/rpc.ts';
import { checkRelativePath, listTextFiles, resolveInside } from '../../src/serve/safe-path.ts';
import type { LabApi } from '../../src/worker/api.ts';

const MAX_PAYLOAD = 64 * 1024;

/** A LabApi whose every method records its call and answers { method }. */
function fakeLab(calls: string[]): LabApi {
  return new Proxy({} as LabApi, {
    get: (_t, method) => async () => {
      calls.push(String(method));
      return method === 'subscribe' ? 1 : { method: String(method) };
    },
  });
}

interface Client {
  ws: WebSocket;
  messages: ServerMessage[];
  call(method: CallMethod, ...args: unknown[]): Promise<ServerMessage>;
  closed: Promise<number>;
}

let server: KilnServer;
let rpc: LabRpc;
const logs: string[] = [];
const calls: string[] = [];
let dir: string;
let root: string;
let data: string;
let good: Client;

interface ConnectOpts {
  protocols?: string[];
  origin?: string | null;
  host?: string;
}

/** Opens a WebSocket; resolves with the client, or rejects with the HTTP status of a refused upgrade. */
function connect(opts: ConnectOpts = {}): Promise<Client> {
  const port = server.port;
  const protocols = opts.protocols ?? ['kiln.v1', `kiln.v1.${server.token}`];
  const headers: Record<string, string> = {};
  if (opts.host) headers.Host = opts.host;
  const origin = opts.origin === null ? undefined : (opts.origin ?? `http://127.0.0.1:${port}`);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, protocols, { headers, ...(origin ? { origin } : {}) });
  const messages: ServerMessage[] = [];
  const waiting: Array<() => void> = [];
  let next = 1;
  ws.on('message', (d) => {
    messages.push(parseServerMessage(String(d)));
    for (const w of waiting.splice(0)) w();
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  const client: Client = {
    ws, messages, closed,
    call: (method, ...args) => {
      const id = next++;
      ws.send(encodeCall(id, method, args));
      return new Promise((resolve) => {
        const look = (): void => {
          const m = messages.find((x) => (x.t === 'result' || x.t === 'error') && x.id === id);
          if (m) resolve(m);
          else waiting.push(look);
        };
        look();
      });
    },
  };
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`refused: ${res.statusCode}`), { status: res.statusCode }));
      ws.terminate();
    });
    ws.on('error', reject);
    ws.on('open', () => resolve(client));
  });
}

async function refusedStatus(opts: ConnectOpts): Promise<number> {
  try {
    await connect(opts);
  } catch (e) {
    return (e as { status?: number }).status ?? -1;
  }
  throw new Error('the connection was accepted');
}

/** Runs a refusal and checks it added exactly one log line, without the token. */
async function oneLogLine<T>(f: () => Promise<T>): Promise<[T, string]> {
  const before = logs.length;
  const out = await f();
  await new Promise((r) => setTimeout(r, 50));
  expect(logs.length - before).toBe(1);
  const line = logs[logs.length - 1];
  expect(line).not.toContain(server.token);
  expect(line).not.toMatch(/[\r\n]/);
  return [out, line];
}

async function goodStillWorks(): Promise<void> {
  expect(await good.call('status')).toMatchObject({ t: 'result', result: { method: 'status' } });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'kiln-serve-'));
  root = path.join(dir, 'dist');
  data = path.join(dir, 'data');
  mkdirSync(path.join(root, 'assets'), { recursive: true });
  mkdirSync(path.join(root, 'sub'));
  mkdirSync(path.join(root, 'empty'));
  writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>Kiln</title>');
  writeFileSync(path.join(root, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(path.join(root, 'sub', 'index.html'), 'sub');
  writeFileSync(path.join(dir, 'secret.txt'), 'secret');
  symlinkSync(path.join(dir, 'secret.txt'), path.join(root, 'leak.txt'));
  mkdirSync(path.join(data, 'more'), { recursive: true });
  writeFileSync(path.join(data, 'names.txt'), 'emma\nolivia\n');
  writeFileSync(path.join(data, 'more', 'shake.txt'), 'To be');
  writeFileSync(path.join(data, 'image.png'), 'png');
  writeFileSync(path.join(data, '.hidden.txt'), 'x');
  symlinkSync(path.join(dir, 'secret.txt'), path.join(data, 'out.txt'));
  symlinkSync(path.join(data, 'names.txt'), path.join(data, 'alias.txt'));
  symlinkSync(path.join(dir, 'nowhere'), path.join(data, 'dangling'));
  mkdirSync(`${data}-other`);
  writeFileSync(path.join(`${data}-other`, 'x.txt'), 'x');

  rpc = new LabRpc(fakeLab(calls), { log: (l) => logs.push(l) });
  server = await startKilnServer({ root, port: 0, maxPayload: MAX_PAYLOAD, log: (l) => logs.push(l), onConnection: (ws) => rpc.attach(ws) });
  good = await connect();
});

afterAll(async () => {
  rpc?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the WebSocket upgrade', () => {
  it('listens on 127.0.0.1 only, and prints one URL with the token in its fragment', () => {
    expect(server.http.address()).toMatchObject({ address: '127.0.0.1' });
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/#kiln-token=${server.token}`);
    expect(Buffer.from(server.token, 'base64url').length).toBeGreaterThanOrEqual(16);
    expect(server.token).not.toBe(logs.join(''));
  });

  it('the right token, Host and Origin: a call is answered; the server answers kiln.v1, not the token', async () => {
    expect(good.ws.protocol).toBe('kiln.v1');
    expect(good.messages[0]).toMatchObject({ t: 'hello', protocol: 'kiln.v1', controlling: true });
    await goodStillWorks();
    const local = await connect({ host: `localhost:${server.port}`, origin: `http://localhost:${server.port}` });
    expect(await local.call('environment')).toMatchObject({ t: 'result', result: { method: 'environment' } });
    local.ws.close();
    await local.closed;
  });

  it('without the token: 401, one log line', async () => {
    const [status, line] = await oneLogLine(() => refusedStatus({ protocols: ['kiln.v1'] }));
    expect(status).toBe(401);
    expect(line).toMatch(/^kiln serve: refused a WebSocket from 127\.0\.0\.1: no token$/);
    await goodStillWorks();
  });

  it('with a wrong token (even one differing in the last character): 401', async () => {
    const wrong = server.token.slice(0, -1) + (server.token.endsWith('A') ? 'B' : 'A');
    const [status, line] = await oneLogLine(() => refusedStatus({ protocols: ['kiln.v1', `kiln.v1.${wrong}`] }));
    expect(status).toBe(401);
    expect(line).toContain('wrong token');
    expect(line).not.toContain(wrong);
    await goodStillWorks();
  });

  it("from another site's page (Origin http://evil.example), or with no Origin: 403", async () => {
    const [status, line] = await oneLogLine(() => refusedStatus({ origin: 'http://evil.example' }));
    expect(status).toBe(403);
    expect(line).toContain('Origin "http://evil.example" is not this server\'s');
    const [none] = await oneLogLine(() => refusedStatus({ origin: null }));
    expect(none).toBe(403);
    const [otherPort] = await oneLogLine(() => refusedStatus({ origin: `http://127.0.0.1:${server.port + 1}` }));
    expect(otherPort).toBe(403);
    await goodStillWorks();
  });

  it('through a foreign Host (DNS rebinding): 403, even with the right token and Origin', async () => {
    const [status, line] = await oneLogLine(() => refusedStatus({ host: `evil.example:${server.port}` }));
    expect(status).toBe(403);
    expect(line).toContain(`Host "evil.example:${server.port}" is not 127.0.0.1:${server.port}`);
    const [wrongPort] = await oneLogLine(() => refusedStatus({ host: '127.0.0.1:1' }));
    expect(wrongPort).toBe(403);
    await goodStillWorks();
  });

  it('a hostile header value is logged escaped and cut short, on one line', async () => {
    // Node refuses C0 controls in headers on both ends; C1 ones (a terminal's CSI, NEL) get through.
    const [, line] = await oneLogLine(() => refusedStatus({ origin: `http://x\u0085\u009b31m${'y'.repeat(5000)}` }));
    expect(line).not.toMatch(/[\u0080-\u009f]/);
    expect(line.length).toBeLessThan(300);
  });

  it('a message just over maxPayload closes only that socket (1009); the server keeps serving', async () => {
    const big = await connect();
    const [code, line] = await oneLogLine(async () => {
      big.ws.send('x'.repeat(MAX_PAYLOAD + 1));
      return big.closed;
    });
    expect(code).toBe(1009);
    expect(line).toMatch(/closed connection \d+: a message over the size limit/);
    await goodStillWorks();
  });

  it('a frame announcing 1 GiB is refused from its header, before any of it arrives', async () => {
    const liar = await connect();
    const header = Buffer.alloc(14);
    header[0] = 0x81; // FIN, text
    header[1] = 0x80 | 127; // masked, 64-bit length follows
    header.writeBigUInt64BE(2n ** 30n, 2);
    (liar.ws as unknown as { _socket: { write(b: Buffer): void } })._socket.write(header);
    expect(await liar.closed).toBe(1009);
    await goodStillWorks();
  });

  it('a path other than /ws: 404', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/other`, ['kiln.v1', `kiln.v1.${server.token}`], { origin: `http://127.0.0.1:${server.port}` });
    ws.on('error', () => {});
    const status = await new Promise<number>((resolve) => ws.on('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0)));
    ws.terminate();
    expect(status).toBe(404);
  });
});

/** A raw request with the path exactly as given (no URL normalisation). */
function get(rawPath: string, opts: { method?: string; host?: string } = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path: rawPath, method: opts.method ?? 'GET', headers: { Host: opts.host ?? `127.0.0.1:${server.port}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the static lab', () => {
  it('serves files with their types, a folder as its index.html, and never a listing', async () => {
    expect(await get('/')).toMatchObject({ status: 200, type: 'text/html; charset=utf-8', body: '<!doctype html><title>Kiln</title>' });
    expect(await get('/assets/app.js?v=1')).toMatchObject({ status: 200, type: 'text/javascript; charset=utf-8', body: 'console.log(1)' });
    expect(await get('/sub/')).toMatchObject({ status: 200, body: 'sub' });
    expect((await get('/empty/')).status).toBe(404);
    expect((await get('/missing.js')).status).toBe(404);
    expect(await get('/', { method: 'HEAD' })).toMatchObject({ status: 200, body: '' });
    expect((await get('/', { method: 'POST' })).status).toBe(405);
  });

  it('GET /../../etc/passwd and its encodings: refused, never outside the folder', async () => {
    for (const p of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2fetc%2fpasswd', '/assets/../../secret.txt', '/..\\..\\secret.txt', '/%00index.html', '/%zz']) {
      const before = logs.length;
      const r = await get(p);
      expect([400, 404], p).toContain(r.status);
      expect(r.body, p).not.toContain('root:');
      expect(r.body, p).not.toContain('secret');
      expect(logs.length - before, p).toBe(1);
      expect(logs[logs.length - 1]).not.toMatch(/[\r\n]/);
    }
    expect((await get('/etc/passwd')).status).toBe(404);
  });

  it('a symlink in the folder that points outside: 404', async () => {
    const r = await get('/leak.txt');
    expect(r.status).toBe(404);
    expect(r.body).not.toContain('secret');
  });

  it('a foreign Host: 403, logged', async () => {
    const [r] = await oneLogLine(() => get('/', { host: 'evil.example' }));
    expect(r.status).toBe(403);
    await goodStillWorks();
  });
});

async function refusal(p: Promise<unknown>): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a refusal');
}

describe('paths from the page (--data, --out)', () => {
  it('refuses ../x, /etc/passwd, a/../../x, a NUL byte, a backslash, a drive letter, nothing', async () => {
    for (const p of ['../x', '/etc/passwd', 'a/../../x', '..', 'names.txt\u0000.png', '..\\x', 'C:/x', 'c:x', '', './', 42, null]) {
      const e = await refusal(resolveInside(data, p));
      expect(e.code, String(p)).toBe('usage');
      expect(e.message).not.toMatch(/[\u0000-\u001f]/);
      expect(() => checkRelativePath(p)).toThrow(KilnError);
    }
  });

  it('refuses a symlink in the folder that points outside it, and a sibling folder with the same prefix', async () => {
    const e = await refusal(resolveInside(data, 'out.txt'));
    expect(e.message).toContain('leads outside the folder');
    // --data is DIR/data: DIR/data-other starts with the same characters but is not inside.
    await refusal(resolveInside(data, '../data-other/x.txt'));
    symlinkSync(`${data}-other`, path.join(data, 'sibling'));
    expect((await refusal(resolveInside(data, 'sibling/x.txt'))).message).toContain('leads outside');
    rmSync(path.join(data, 'sibling'));
  });

  it('resolves a normal file (and a link to one inside) to its real path', async () => {
    const real = (p: string) => path.join(path.resolve(data), p);
    expect(await resolveInside(data, 'names.txt')).toBe(real('names.txt'));
    expect(await resolveInside(data, 'more/./shake.txt')).toBe(real('more/shake.txt'));
    expect(await resolveInside(data, 'alias.txt')).toBe(real('names.txt'));
    expect((await refusal(resolveInside(data, 'absent.txt'))).code).toBe('data');
  });

  it('a new file for --out: inside, but never through a dangling or outward link', async () => {
    expect(await resolveInside(data, 'runs/new/checkpoint.safetensors', { mustExist: false })).toBe(path.join(path.resolve(data), 'runs/new/checkpoint.safetensors'));
    expect((await refusal(resolveInside(data, 'dangling', { mustExist: false }))).message).toContain('leads outside');
    expect((await refusal(resolveInside(data, 'dangling/x.txt', { mustExist: false }))).message).toContain('leads outside');
    await refusal(resolveInside(data, '../new.txt', { mustExist: false }));
  });

  it('lists the .txt files of --data for the page: no hidden ones, no links out, no other types', async () => {
    const files = await listTextFiles(data);
    expect(files.map((f) => f.path)).toEqual(['alias.txt', 'more/shake.txt', 'names.txt']);
    expect(files[2]).toMatchObject({ bytes: 12 });
  });
});
