// Serves a LabApi (in `kiln serve`, the Node LabSession) to pages over WebSockets, in
// the protocol of src/core/lab-protocol.ts. Every message is checked there before a
// method runs; a bad one gets a readable error back and the connection stays open.
//
// One connection controls at a time: the first one; later ones watch (status, curves,
// the run list) and are refused anything that changes the run, so two tabs never fight
// over one GPU. When the controlling page goes, the oldest remaining one takes over (or
// the next to connect); takeControl(true) moves control to the caller on purpose.
// Training never depends on a page being there: a closed tab only loses its
// subscriptions.
import type { WebSocket } from 'ws';
import {
  encodeMessage, MAX_BYTES, parseClientMessage, PROTOCOL, READ_ONLY_METHODS, toWireError,
  type CallMethod, type LabMethod, type ServerMessage, type WireBackend,
} from '../core/lab-protocol.ts';
import { KilnError } from '../core/errors.ts';
import { printable } from '../core/text.ts';
import type { LabApi, LabBackendKind, LabEvent } from '../worker/api.ts';

// The protocol's table must name every LabApi method, and nothing else: a method added to
// LabApi without a table row (or the other way round) fails to compile here.
type Missing = Exclude<keyof LabApi, LabMethod>;
type Extra = Exclude<LabMethod, keyof LabApi>;
const tableCoversLabApi: [Missing, Extra] extends [never, never] ? true : { missing: Missing; extra: Extra } = true;
void tableCoversLabApi;
const backendsAgree: [Exclude<LabBackendKind, WireBackend>, Exclude<WireBackend, LabBackendKind>] extends [never, never] ? true : false = true;
void backendsAgree;

export interface LabRpcOptions {
  /** One line per refusal or failure (never a token or a message's contents). */
  log?: (line: string) => void;
  /** Largest byte array in one call (default MAX_BYTES; keep maxPayload of the server above its base64). */
  maxBytes?: number;
  /** Calls one connection may have running at once (default 16). */
  maxInFlight?: number;
  /** A connection whose unsent output passes this is closed as too slow (default 1 GiB). */
  maxBufferedBytes?: number;
}

interface Connection {
  ws: WebSocket;
  /** For log lines: "connection 3". */
  name: string;
  subs: Set<number>;
  inFlight: number;
}

const WS_OPEN = 1;
/** Subscriptions one connection may hold (a page needs one). */
const MAX_SUBS = 8;
/** call() sent the result itself (subscribe: the id goes out before the first event). */
const ANSWERED = Symbol('answered');
const CLOSE_GOING_AWAY = 1001;
const CLOSE_TRY_AGAIN = 1013;

export class LabRpc {
  private readonly conns = new Map<WebSocket, Connection>();
  private controller: Connection | null = null;
  private next = 1;
  private readonly log: (line: string) => void;
  private readonly maxBytes: number;
  private readonly maxInFlight: number;
  private readonly maxBuffered: number;

  constructor(private readonly api: LabApi, opts: LabRpcOptions = {}) {
    this.log = opts.log ?? (() => {});
    this.maxBytes = opts.maxBytes ?? MAX_BYTES;
    this.maxInFlight = opts.maxInFlight ?? 16;
    this.maxBuffered = opts.maxBufferedBytes ?? 2 ** 30;
  }

  /** Connections open now. */
  get size(): number {
    return this.conns.size;
  }

  /** Serves an authenticated socket (http-server.ts's onConnection) until it closes. */
  attach(ws: WebSocket): void {
    const conn: Connection = { ws, name: `connection ${this.next++}`, subs: new Set(), inFlight: 0 };
    this.conns.set(ws, conn);
    if (!this.controller) this.controller = conn;
    this.send(conn, { t: 'hello', protocol: PROTOCOL, controlling: this.controller === conn, maxBytes: this.maxBytes });
    ws.on('message', (data, isBinary) => {
      void this.onMessage(conn, data, isBinary);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the socket itself after an error (1009 for a message over maxPayload).
      const why = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'a message over the size limit' : printable(err.message, 120);
      this.log(`kiln serve: closed ${conn.name}: ${why}`);
    });
    ws.on('close', () => this.detach(conn));
  }

  /** Moves control to `conn` (or takes it from `conn` with null), telling both sides. */
  private setController(conn: Connection | null): void {
    const old = this.controller;
    if (old === conn) return;
    this.controller = conn;
    if (old && this.conns.has(old.ws)) this.send(old, { t: 'control', controlling: false });
    if (conn) this.send(conn, { t: 'control', controlling: true });
  }

  private detach(conn: Connection): void {
    if (!this.conns.delete(conn.ws)) return;
    for (const id of conn.subs) this.api.unsubscribe(id).catch(() => {});
    conn.subs.clear();
    if (this.controller === conn) {
      this.controller = null;
      const oldest = this.conns.values().next();
      if (!oldest.done) this.setController(oldest.value);
    }
  }

  private send(conn: Connection, msg: ServerMessage): void {
    const ws = conn.ws;
    if (ws.readyState !== WS_OPEN) return;
    if (ws.bufferedAmount > this.maxBuffered) {
      this.log(`kiln serve: closed ${conn.name}: it reads too slowly (${ws.bufferedAmount} bytes unsent)`);
      ws.close(CLOSE_TRY_AGAIN, 'too slow');
      return;
    }
    let text: string;
    try {
      text = encodeMessage(msg);
    } catch (e) {
      // A result too large for one message (a string over V8's limit): say so instead.
      if (msg.t !== 'result') throw e;
      text = encodeMessage({ t: 'error', id: msg.id, error: toWireError(new KilnError('storage', `the result is too large to send to the page (${printable((e as Error).message, 120)})`, 'take the file from the --out folder instead')) });
    }
    ws.send(text);
  }

  private async onMessage(conn: Connection, data: unknown, isBinary: boolean): Promise<void> {
    if (isBinary) {
      this.send(conn, { t: 'error', id: null, error: { code: 'usage', message: 'kiln serve takes JSON text messages, not binary ones', hint: 'reload the page, or update Kiln' } });
      return;
    }
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data as Buffer[]).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    const parsed = parseClientMessage(text, { maxBytes: this.maxBytes });
    if (!parsed.ok) {
      this.send(conn, { t: 'error', id: parsed.id, error: parsed.error });
      return;
    }
    const { id, method, args } = parsed.call;
    if (conn.inFlight >= this.maxInFlight) {
      this.send(conn, { t: 'error', id, error: { code: 'usage', message: `${this.maxInFlight} calls are already running on this connection`, hint: 'wait for their answers before sending more' } });
      return;
    }
    if (this.controller !== conn && !READ_ONLY_METHODS.has(method)) {
      this.send(conn, { t: 'error', id, error: { code: 'usage', message: 'another tab controls this kiln serve', hint: 'close that tab, or take control here' } });
      return;
    }
    conn.inFlight++;
    try {
      const result = await this.call(conn, id, method, args);
      if (result !== ANSWERED) this.send(conn, { t: 'result', id, result });
    } catch (e) {
      const error = toWireError(e);
      if (error.code === 'internal') this.log(`kiln serve: ${method} failed for ${conn.name}: ${printable(e instanceof Error ? e.message : String(e), 200)}`);
      this.send(conn, { t: 'error', id, error });
    } finally {
      conn.inFlight--;
    }
  }

  private async call(conn: Connection, id: number, method: CallMethod, args: unknown[]): Promise<unknown> {
    switch (method) {
      case 'takeControl': {
        const force = args[0] === true;
        if (!this.controller || force) this.setController(conn);
        return { controlling: this.controller === conn };
      }
      case 'subscribe': {
        if (conn.subs.size >= MAX_SUBS) throw new KilnError('usage', `this connection has ${MAX_SUBS} subscriptions already`, 'unsubscribe one, or reload the page');
        // Events that arrive before subscribe() answers wait, so the page learns the id first.
        let sub: number | null = null;
        const early: LabEvent[] = [];
        const listener = (event: LabEvent): void => {
          if (sub === null) early.push(event);
          else this.send(conn, { t: 'event', sub, event });
        };
        const got = await this.api.subscribe(listener);
        if (!this.conns.has(conn.ws)) {
          await this.api.unsubscribe(got);
          return got;
        }
        conn.subs.add(got);
        this.send(conn, { t: 'result', id, result: got });
        sub = got;
        for (const event of early.splice(0)) this.send(conn, { t: 'event', sub, event });
        return ANSWERED;
      }
      case 'unsubscribe': {
        const sub = args[0] as number;
        // Only this connection's own: a watching tab must not silence the controlling one.
        if (!conn.subs.has(sub)) throw new KilnError('usage', `there is no subscription ${sub} on this connection`, 'unsubscribe with an id that subscribe returned here');
        conn.subs.delete(sub);
        return this.api.unsubscribe(sub);
      }
      case 'sample': {
        const [req, stream] = args as [Parameters<LabApi['sample']>[0], boolean | undefined];
        return this.api.sample(req, stream ? (text) => this.send(conn, { t: 'text', id, text }) : undefined);
      }
      default: {
        const fn = this.api[method] as (...a: unknown[]) => Promise<unknown>;
        return fn.apply(this.api, args);
      }
    }
  }

  /** Closes every connection (1001) and drops their subscriptions; the LabApi itself is left as it is. */
  close(): void {
    for (const conn of [...this.conns.values()]) {
      conn.ws.close(CLOSE_GOING_AWAY, 'kiln serve is stopping');
      this.detach(conn);
    }
  }
}
