// The network side of `kiln serve`: one node:http server on 127.0.0.1 that serves the
// built lab (dist/) and upgrades /ws to a WebSocket (the `ws` package) for the LabApi.
//
// A local server that trains on files is an attack surface: any web page the person has
// open can try to reach it. So before a WebSocket handshake completes:
// - Host must be 127.0.0.1:PORT or localhost:PORT: a DNS-rebinding page (evil.example
//   resolving to 127.0.0.1) sends Host: evil.example.
// - Origin must be http://127.0.0.1:PORT or http://localhost:PORT: another site's page
//   cannot connect (browsers always send Origin on a WebSocket handshake).
// - The token (256 random bits, in the URL fragment the CLI prints, which browsers never
//   send) must come as the subprotocol `kiln.v1.<token>`, compared in constant time.
//   It is never in a query string and never in a log line.
// Each refusal answers 401/403 and logs one line. Messages are bounded by maxPayload
// (a larger one closes that socket with 1009), with no compression (no zip bombs).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import path from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { KilnError } from '../core/errors.ts';
import { MAX_MESSAGE_BYTES, PROTOCOL, TOKEN_PROTOCOL_PREFIX } from '../core/lab-protocol.ts';
import { printable } from '../core/text.ts';
import { isInside } from './safe-path.ts';

export const HOST = '127.0.0.1';
/** The WebSocket's path. */
export const WS_PATH = '/ws';
/** The fragment key of the printed URL: http://127.0.0.1:PORT/#kiln-token=... */
export const TOKEN_KEY = 'kiln-token';

export interface KilnServerOptions {
  /** The folder of static files to serve: the built lab (dist/). */
  root: string;
  /** 0 (default): a free port. */
  port?: number;
  /** Default: newToken(). */
  token?: string;
  /** Largest WebSocket message in bytes (default MAX_MESSAGE_BYTES). */
  maxPayload?: number;
  /** Open WebSockets at most (default 8); more are refused with 503. */
  maxConnections?: number;
  /** One line per refusal. Default: stderr. */
  log?: (line: string) => void;
  /** Each authenticated WebSocket (LabRpc.attach). */
  onConnection: (ws: WebSocket, req: IncomingMessage) => void;
}

export interface KilnServer {
  readonly port: number;
  readonly token: string;
  /** The one URL to print: the lab, with the token in its fragment. */
  readonly url: string;
  readonly http: Server;
  readonly wss: WebSocketServer;
  /** Closes every WebSocket (1001) and the listening socket. */
  close(): Promise<void>;
}

/** A fresh token: 32 random bytes, base64url (43 characters, valid in a subprotocol). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** The same for equal strings, without leaking where they differ (both hashed to 32 bytes first). */
export function tokensEqual(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(h(a), h(b));
}

export interface Refusal {
  status: 400 | 401 | 403 | 404 | 503;
  /** For the log: never the token. */
  reason: string;
}

/** Quoted, escaped and cut short: header values are the attacker's text. */
const show = (v: string | string[] | undefined): string => (v === undefined ? 'none' : JSON.stringify(printable(String(v), 80)));

export function hostAllowed(host: string | undefined, port: number): boolean {
  const h = host?.toLowerCase();
  return h === `127.0.0.1:${port}` || h === `localhost:${port}`;
}

export function originAllowed(origin: string | undefined, port: number): boolean {
  const o = origin?.toLowerCase();
  return o === `http://127.0.0.1:${port}` || o === `http://localhost:${port}`;
}

/** Why a WebSocket handshake is refused, or null to accept it. Host first, then Origin, then the token. */
export function checkHandshake(headers: IncomingHttpHeaders, port: number, token: string): Refusal | null {
  if (!hostAllowed(headers.host, port)) return { status: 403, reason: `Host ${show(headers.host)} is not 127.0.0.1:${port} or localhost:${port}` };
  const origin = headers.origin;
  if (!originAllowed(origin, port)) return { status: 403, reason: `Origin ${show(origin)} is not this server's` };
  const offered = (headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  const tokens = offered.filter((p) => p.startsWith(TOKEN_PROTOCOL_PREFIX));
  if (tokens.length === 0) return { status: 401, reason: 'no token' };
  if (tokens.length > 1) return { status: 401, reason: `${tokens.length} tokens offered` };
  if (!tokensEqual(tokens[0].slice(TOKEN_PROTOCOL_PREFIX.length), token)) return { status: 401, reason: 'wrong token' };
  if (!offered.includes(PROTOCOL)) return { status: 400, reason: `the ${PROTOCOL} subprotocol is not offered (a page of another Kiln version?)` };
  return null;
}

const STATUS_TEXT: Record<Refusal['status'], string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 503: 'Service Unavailable' };

function refuseUpgrade(socket: Duplex, r: Refusal): void {
  const body = `${STATUS_TEXT[r.status]}\n`;
  socket.end(`HTTP/1.1 ${r.status} ${STATUS_TEXT[r.status]}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.webmanifest': 'application/manifest+json',
  '.map': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.jpg': 'image/jpeg', '.ico': 'image/x-icon',
  '.webp': 'image/webp', '.woff2': 'font/woff2', '.wasm': 'application/wasm', '.txt': 'text/plain; charset=utf-8',
  '.wgsl': 'text/plain; charset=utf-8', '.bin': 'application/octet-stream',
};

export function contentType(file: string): string {
  return TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

const HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-cache',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/**
 * The file a request path names inside realRoot, or a refusal. The raw path is checked
 * before and after percent-decoding: no `..` segment, no backslash, no NUL; a folder
 * serves its index.html (never a listing); a symlink out of the folder is not found.
 */
export async function resolveStatic(realRoot: string, rawUrl: string): Promise<{ file: string; size: number } | Refusal> {
  if (!rawUrl.startsWith('/')) return { status: 400, reason: `request path ${show(rawUrl)} is not a path` };
  const rawPath = rawUrl.split(/[?#]/, 1)[0];
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return { status: 400, reason: `request path ${show(rawPath)} is not valid percent-encoding` };
  }
  const segments = decoded.split('/');
  if (/[\u0000-\u001f\\]/.test(decoded) || segments.includes('..'))
    return { status: 400, reason: `request path ${show(rawPath)} tries to leave the lab's folder` };
  const rel = segments.filter((s) => s !== '' && s !== '.');
  if (rel.some((s) => s.startsWith('.'))) return { status: 404, reason: 'hidden file' };
  let file = path.join(realRoot, ...rel);
  let st = await stat(file).catch(() => null);
  if (st?.isDirectory()) {
    file = path.join(file, 'index.html');
    st = await stat(file).catch(() => null);
  }
  if (!st?.isFile()) return { status: 404, reason: 'not found' };
  const real = await realpath(file).catch(() => null);
  if (!real || !isInside(realRoot, real)) return { status: 404, reason: `request path ${show(rawPath)} leads outside the lab's folder` };
  return { file: real, size: st.size };
}

function plain(res: ServerResponse, status: number, extra: Record<string, string> = {}): void {
  const body = `${status === 404 ? 'Not Found' : status === 405 ? 'Method Not Allowed' : status === 403 ? 'Forbidden' : 'Bad Request'}\n`;
  res.writeHead(status, { ...HEADERS, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(body.length), ...extra });
  res.end(body);
}

/** Starts the server on 127.0.0.1 (only) and resolves once it listens. */
export async function startKilnServer(opts: KilnServerOptions): Promise<KilnServer> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const token = opts.token ?? newToken();
  if (token.length < 22 || !/^[A-Za-z0-9_-]+$/.test(token)) throw new KilnError('usage', 'the kiln serve token must be at least 22 base64url characters (128 bits)', 'leave it out for a random one');
  const maxConnections = opts.maxConnections ?? 8;
  const realRoot = await realpath(opts.root).catch(() => {
    throw new KilnError('usage', `the lab's folder ${show(opts.root)} is not there`, 'build the lab first (npm run build)');
  });
  let port = opts.port ?? 0;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.maxPayload ?? MAX_MESSAGE_BYTES,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
  });
  const from = (req: IncomingMessage): string => req.socket.remoteAddress ?? 'an unknown address';

  const server = createServer((req, res) => {
    void (async () => {
      if (!hostAllowed(req.headers.host, port)) {
        log(`kiln serve: refused ${req.method} from ${from(req)}: Host ${show(req.headers.host)} is not 127.0.0.1:${port} or localhost:${port}`);
        return plain(res, 403);
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, { Allow: 'GET, HEAD' });
      const found = await resolveStatic(realRoot, req.url ?? '/');
      if ('status' in found) {
        if (found.status !== 404 || found.reason !== 'not found') log(`kiln serve: refused GET from ${from(req)}: ${found.reason}`);
        return plain(res, found.status);
      }
      res.writeHead(200, { ...HEADERS, 'Content-Type': contentType(found.file), 'Content-Length': String(found.size) });
      if (req.method === 'HEAD') return res.end();
      createReadStream(found.file).on('error', () => res.destroy()).pipe(res);
    })().catch(() => res.destroy());
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    const pathname = (req.url ?? '').split('?', 1)[0];
    const refusal: Refusal | null =
      checkHandshake(req.headers, port, token) ??
      (pathname !== WS_PATH ? { status: 404, reason: `WebSocket path ${show(pathname)} is not ${WS_PATH}` } : null) ??
      (wss.clients.size >= maxConnections ? { status: 503, reason: `${maxConnections} connections are open already` } : null);
    if (refusal) {
      log(`kiln serve: refused a WebSocket from ${from(req)}: ${refusal.reason}`);
      refuseUpgrade(socket, refusal);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => opts.onConnection(ws, req));
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      reject(e.code === 'EADDRINUSE'
        ? new KilnError('usage', `port ${opts.port} on ${HOST} is in use`, 'choose another --port, or leave it out for a free one')
        : new KilnError('usage', `kiln serve cannot listen on ${HOST}:${opts.port ?? 0}: ${e.code ?? e.message}`, 'choose another --port'));
    };
    server.once('error', onError);
    server.listen(port, HOST, () => {
      server.off('error', onError);
      resolve();
    });
  });
  port = (server.address() as { port: number }).port;

  return {
    port,
    token,
    url: `http://${HOST}:${port}/#${TOKEN_KEY}=${token}`,
    http: server,
    wss,
    close: async () => {
      for (const ws of wss.clients) ws.close(1001, 'kiln serve is stopping');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      // Sockets still closing (and keep-alive HTTP ones) are cut after a moment.
      const cut = setTimeout(() => {
        for (const ws of wss.clients) ws.terminate();
        server.closeAllConnections();
      }, 1000);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      clearTimeout(cut);
    },
  };
}
