// The wire protocol of `kiln serve` (DESIGN.md, "The lab and the runner share one API"):
// the LabApi of src/worker/api.ts as JSON text messages over one WebSocket. Pure, so the
// server (src/serve/rpc.ts) and the page's client share it. Everything from the other
// side is untrusted: every call is checked here against its method's argument table,
// with sizes bounded, before the server touches it.
//
// Handshake: the page offers two subprotocols, `kiln.v1` and `kiln.v1.<token>` (so the
// token travels in a header, never in a URL); the server answers `kiln.v1`.
//
// Page -> server (text frames only):
//   {"t":"call","id":7,"method":"createRun","args":[spec,"cpu"]}
//   id: a whole number 0..2^53-1 the page picks; args: the LabApi method's arguments in
//   order (a trailing optional one may be left out or null). Two LabApi callbacks become
//   messages: subscribe() takes no argument (its events arrive as "event" messages), and
//   sample(req, stream?) takes `true` instead of onText (its text arrives as "text"
//   messages with the call's id). One method is the protocol's own: takeControl(force?).
// Server -> page:
//   {"t":"hello","protocol":"kiln.v1","controlling":true,"maxBytes":268435456}
//   {"t":"result","id":7,"result":...}
//   {"t":"error","id":7,"error":{"code":"config","message":"...","hint":"..."}}  (id null: no call to answer)
//   {"t":"event","sub":2,"event":LabEvent}   (per subscription)
//   {"t":"text","id":9,"text":"..."}        (a sample's streamed piece)
//   {"t":"control","controlling":false}      (this connection's control changed)
// Values that JSON cannot hold are tagged, in both directions: a Uint8Array (a data file,
// a checkpoint) is {"$b64":"<base64>"}, and NaN/Infinity/-Infinity are {"$num":"NaN"}
// etc. (a diverged run's loss). encodeMessage() writes them; parseServerMessage() and
// parseClientMessage() read them back (the server decodes bytes only where a method's
// table expects them, after checking their size).
import { nearestNames, validate } from './config.ts';
import { isKilnError, KilnError, type ErrorCode } from './errors.ts';
import { checkRelativePath } from './relative-path.ts';
import { describeValue, printable } from './text.ts';

export const PROTOCOL = 'kiln.v1';
/** The token's subprotocol is this prefix plus the token. */
export const TOKEN_PROTOCOL_PREFIX = `${PROTOCOL}.`;
/** Largest byte array one call carries (a data file, a checkpoint to import). */
export const MAX_BYTES = 256 * 1024 * 1024;
/** Characters of base64 for n bytes. */
export const base64Length = (n: number): number => Math.ceil(n / 3) * 4;
/** Largest message the server reads: MAX_BYTES as base64 plus room for the rest of the call. */
export const MAX_MESSAGE_BYTES = base64Length(MAX_BYTES) + (1 << 20);

/** A failure as it crosses the wire: LabApi's LabError. */
export interface WireError {
  code: ErrorCode | 'internal';
  message: string;
  hint: string;
}

export type ServerMessage =
  | { t: 'hello'; protocol: string; controlling: boolean; maxBytes: number }
  | { t: 'result'; id: number; result: unknown }
  | { t: 'error'; id: number | null; error: WireError }
  | { t: 'event'; sub: number; event: unknown }
  | { t: 'text'; id: number; text: string }
  | { t: 'control'; controlling: boolean };

export interface CallMessage {
  t: 'call';
  id: number;
  method: string;
  args: unknown[];
}

// ---- the argument table ----

type Schema =
  | { k: 'string'; max: number; min?: number; pattern?: RegExp; what?: string }
  | { k: 'int'; min: number; max: number }
  | { k: 'number'; min: number; max: number; above?: boolean }
  | { k: 'bool' }
  | { k: 'enum'; values: readonly string[] }
  | { k: 'bytes' }
  | { k: 'object'; fields: Fields }
  | { k: 'kind'; variants: Record<string, Fields> }
  | { k: 'nullable'; of: Schema }
  | { k: 'array'; of: Schema; max: number }
  | { k: 'tuple'; items: Schema[] }
  | { k: 'config' }
  /** A '/'-separated path relative to a folder of the server's (relative-path.ts's rules). */
  | { k: 'relpath' };
type Fields = Record<string, Schema | { optional: Schema }>;
type Arg = [name: string, schema: Schema, optional?: 'optional'];

const str = (max: number, pattern?: RegExp, what?: string, min = 1): Schema => ({ k: 'string', max, min, pattern, what });
const int = (min: number, max: number): Schema => ({ k: 'int', min, max });
const num = (min: number, max: number, above = false): Schema => ({ k: 'number', min, max, above });
const obj = (fields: Fields): Schema => ({ k: 'object', fields });
const opt = (s: Schema) => ({ optional: s });

const MAX_STEP = 999_999_999;
/** Text a person types: no control characters. */
const PLAIN = /^[^\u0000-\u001f\u007f]*$/;
/** A file's base name: no separators, not `.` or `..`. */
const BASENAME = /^(?!\.\.?$)[^/\\\u0000-\u001f\u007f]+$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** LabBackendKind's values (rpc.ts checks at compile time that they agree). */
export const LAB_BACKENDS = ['webgpu', 'cpu'] as const;
export type WireBackend = (typeof LAB_BACKENDS)[number];
const backend: Schema = { k: 'enum', values: LAB_BACKENDS };
const runId = str(200, /^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'a run id');
const runName = str(200, PLAIN, 'a name without control characters');
const sha256 = str(64, SHA256, '64 lowercase hex digits');
const bundled = { kind: { k: 'enum', values: ['bundled'] } as Schema, id: str(64, /^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a dataset id') };
const fileName = str(255, BASENAME, 'a file name (no folders)');
const datasetRef: Schema = {
  k: 'kind',
  variants: { bundled, file: { kind: { k: 'enum', values: ['file'] }, name: fileName, bytes: int(1, Number.MAX_SAFE_INTEGER), sha256 } },
};
const dataSource: Schema = {
  k: 'kind',
  variants: {
    bundled,
    file: { kind: { k: 'enum', values: ['file'] }, name: fileName, bytes: { k: 'bytes' }, expect: opt(obj({ sha256, bytes: int(1, Number.MAX_SAFE_INTEGER) })) },
    stored: { kind: { k: 'enum', values: ['stored'] }, sha256 },
    server: { kind: { k: 'enum', values: ['server'] }, path: { k: 'relpath' } },
  },
};
const loss = num(0, 1e6);
const runSpec = obj({
  preset: str(64, PLAIN, 'a preset name', 0),
  config: { k: 'config' },
  data: { k: 'nullable', of: datasetRef },
  results: opt(obj({
    trainLoss: opt(loss), valLoss: opt(loss), steps: opt(int(0, MAX_STEP)), device: opt(str(100, PLAIN, 'a device name')),
    curve: opt({ k: 'array', max: 64, of: { k: 'tuple', items: [int(0, MAX_STEP), loss] } }),
  })),
});
// The bounds of sample-text.ts's checkSampleRequest, so a bad request fails here with the same limits.
const sampleRequest = obj({
  prompt: str(100_000, undefined, undefined, 0), maxTokens: int(1, 4096), temperature: num(0, 10), topK: int(0, 1 << 20),
  topP: num(0, 1, true), seed: int(0, 0xffffffff),
});
const config: Schema = { k: 'config' };

/** Every LabApi method, and the protocol's own takeControl: its arguments in order. */
const CALLS = {
  environment: [],
  checkConfig: [['config', config], ['vocabSize', int(0, 1 << 20)], ['backend', backend]],
  prepareData: [['source', dataSource], ['config', config]],
  createRun: [['spec', runSpec], ['backend', backend]],
  subscribe: [],
  unsubscribe: [['id', int(0, 2 ** 31)]],
  start: [],
  pause: [],
  resume: [],
  stop: [],
  extend: [['steps', int(1, 10_000_000)], ['opts', obj({ schedule: opt({ k: 'enum', values: ['keep', 'stretch'] }) }), 'optional']],
  recover: [],
  sample: [['req', sampleRequest], ['stream', { k: 'bool' }, 'optional']],
  history: [],
  status: [],
  current: [],
  dataFiles: [],
  dispose: [],
  listRuns: [],
  openRun: [['id', runId], ['backend', backend], ['step', int(0, MAX_STEP), 'optional']],
  renameRun: [['id', runId], ['name', runName]],
  deleteRun: [['id', runId]],
  exportCheckpoint: [['id', runId], ['step', int(0, MAX_STEP), 'optional']],
  importCheckpoint: [['fileName', fileName], ['bytes', { k: 'bytes' }]],
  branchRun: [['id', runId], ['step', int(0, MAX_STEP)], ['config', config], ['backend', backend], ['name', runName, 'optional']],
  runMetrics: [['id', runId]],
  save: [],
  storageUsage: [],
  takeControl: [['force', { k: 'bool' }, 'optional']],
} satisfies Record<string, Arg[]>;

export type CallMethod = keyof typeof CALLS;
/** The LabApi's methods (src/serve/rpc.ts checks at compile time that this is all of them). */
export type LabMethod = Exclude<CallMethod, 'takeControl'>;
export const CALL_METHODS = Object.keys(CALLS) as CallMethod[];
/** What a connection that does not control the server may call: it watches, it does not steer. */
export const READ_ONLY_METHODS: ReadonlySet<CallMethod> = new Set<CallMethod>([
  'environment', 'status', 'history', 'current', 'dataFiles', 'listRuns', 'runMetrics', 'storageUsage', 'checkConfig', 'subscribe', 'unsubscribe', 'takeControl',
]);

export const isCallMethod = (m: unknown): m is CallMethod => typeof m === 'string' && Object.hasOwn(CALLS, m);

export interface CallLimits {
  /** Largest byte array in one call (MAX_BYTES unless a test or the server says less). */
  maxBytes?: number;
}

const HINT = 'the page and kiln serve disagree: reload the page, or update Kiln';
const fail = (message: string, code: ErrorCode = 'usage', hint = HINT): never => {
  throw new KilnError(code, message, hint);
};

function mib(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${n} bytes`;
}

function check(s: Schema, v: unknown, where: string, limits: Required<CallLimits>): unknown {
  const not = (what: string): never => fail(`${where} must be ${what}, not ${describeValue(v)}`);
  switch (s.k) {
    case 'string':
      if (typeof v !== 'string') return not('text');
      if (v.length > s.max) fail(`${where} is ${v.length} characters long (at most ${s.max})`);
      if (v.length < (s.min ?? 1)) fail(`${where} is empty`);
      if (s.pattern && !s.pattern.test(v)) not(s.what ?? 'other text');
      return v;
    case 'int':
    case 'number':
      if (typeof v !== 'number') return not('a number');
      if (!Number.isFinite(v)) return not('a finite number');
      if (s.k === 'int' && !Number.isInteger(v)) return not('a whole number');
      if (v < s.min || v > s.max || (s.k === 'number' && s.above && v === s.min))
        fail(`${where} ${v} is out of range: use ${s.k === 'number' && s.above ? 'above ' : ''}${s.min} to ${s.max}`);
      return v;
    case 'bool':
      return typeof v === 'boolean' ? v : not('true or false');
    case 'enum':
      return typeof v === 'string' && s.values.includes(v) ? v : not(`one of ${s.values.join(', ')}`);
    case 'bytes':
      return checkBytes(v, where, limits.maxBytes);
    case 'nullable':
      return v === null ? null : check(s.of, v, where, limits);
    case 'array':
      if (!Array.isArray(v)) return not('an array');
      if (v.length > s.max) fail(`${where} has ${v.length} items (at most ${s.max})`);
      return v.map((x, i) => check(s.of, x, `${where}[${i}]`, limits));
    case 'tuple':
      if (!Array.isArray(v) || v.length !== s.items.length) return not(`an array of ${s.items.length}`);
      return s.items.map((item, i) => check(item, v[i], `${where}[${i}]`, limits));
    case 'object':
      return checkFields(s.fields, plainObject(v, where), where, limits);
    case 'kind': {
      const o = plainObject(v, where);
      const kinds = Object.keys(s.variants);
      if (typeof o.kind !== 'string' || !Object.hasOwn(s.variants, o.kind)) fail(`${where}.kind must be one of ${kinds.join(', ')}, not ${describeValue(o.kind)}`);
      return checkFields(s.variants[o.kind as string], o, where, limits);
    }
    case 'relpath':
      checkRelativePath(v, where);
      return v;
    case 'config': {
      const o = plainObject(v, where);
      const issues = validate(o as never);
      if (issues.length) fail(`${where}: ${issues.map((i) => i.message).join('; ')}`, 'config', 'fix the setting named');
      return { ...o };
    }
  }
}

function plainObject(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) fail(`${where} must be an object, not ${describeValue(v)}`);
  return v as Record<string, unknown>;
}

function checkFields(fields: Fields, o: Record<string, unknown>, where: string, limits: Required<CallLimits>): Record<string, unknown> {
  for (const k of Object.keys(o)) if (!Object.hasOwn(fields, k)) fail(`${where} has an unknown field ${describeValue(k)}`);
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(fields)) {
    const optional = 'optional' in f;
    const v = o[k];
    if (v === undefined || (optional && v === null)) {
      if (!optional) fail(`${where}.${k} is missing`);
      continue;
    }
    out[k] = check(optional ? f.optional : f, v, `${where}.${k}`, limits);
  }
  return out;
}

function checkBytes(v: unknown, where: string, max: number): Uint8Array {
  if (v instanceof Uint8Array) {
    if (v.length > max) fail(`${where} is ${mib(v.length)}; kiln serve takes at most ${mib(max)} in one call`, 'data', BYTES_HINT);
    return v;
  }
  const o = typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  if (!o || Object.keys(o).length !== 1 || typeof o.$b64 !== 'string') return fail(`${where} must be bytes ({"$b64": base64}), not ${describeValue(v)}`);
  const n = base64DecodedLength(o.$b64);
  if (n === null) return fail(`${where} is not base64 (its length ${o.$b64.length} is not a multiple of 4)`);
  if (n > max) fail(`${where} is ${mib(n)}; kiln serve takes at most ${mib(max)} in one call`, 'data', BYTES_HINT);
  return decodeBase64(o.$b64, where);
}
const BYTES_HINT = 'put the file in the --data folder and pick it there, or use a smaller file';

/**
 * Checks a call's method and arguments against the table. Returns the decoded
 * arguments (bytes as Uint8Array, optional ones left out as undefined, objects copied
 * with only their known fields) or a readable error; never throws.
 */
export function validateCall(method: unknown, args: unknown, limits: CallLimits = {}): { ok: true; method: CallMethod; args: unknown[] } | { ok: false; error: WireError } {
  try {
    if (!isCallMethod(method)) {
      if (typeof method !== 'string') return { ok: false, error: { code: 'usage', message: `a call's method must be a method's name, not ${describeValue(method)}`, hint: HINT } };
      const near = method.length <= 64 ? nearestNames(method, CALL_METHODS) : [];
      return { ok: false, error: { code: 'usage', message: `kiln serve has no method ${describeValue(method, 60)}`, hint: near.length ? `did you mean ${near.join(' or ')}?` : HINT } };
    }
    const table: readonly Arg[] = CALLS[method];
    if (!Array.isArray(args)) fail(`${method}'s arguments must be an array, not ${describeValue(args)}`);
    const list = args as unknown[];
    const names = table.map(([n, , o]) => (o ? `${n}?` : n)).join(', ');
    const required = table.filter(([, , o]) => !o).length;
    if (list.length > table.length || list.length < required)
      fail(`${method}(${names}) takes ${required === table.length ? table.length : `${required} to ${table.length}`} argument${table.length === 1 ? '' : 's'}, not ${list.length}`);
    const full = { maxBytes: limits.maxBytes ?? MAX_BYTES };
    const out = table.map(([name, s, o], i) => {
      const v = list[i];
      if (o && (v === undefined || v === null)) return undefined;
      return check(s, v, `${method}: ${name}`, full);
    });
    while (out.length && out[out.length - 1] === undefined) out.pop();
    return { ok: true, method, args: out };
  } catch (e) {
    return { ok: false, error: toWireError(e) };
  }
}

/** A thrown value as the page shows it: a KilnError keeps code, message and hint; anything else is 'internal', without its stack. */
export function toWireError(e: unknown): WireError {
  if (isKilnError(e)) return { code: e.code, message: e.message, hint: e.hint };
  const msg = e instanceof Error ? e.message : String(e);
  return { code: 'internal', message: `kiln serve failed: ${printable(msg, 300)}`, hint: 'the terminal running kiln serve may say more; this is a bug worth reporting' };
}

// ---- messages ----

function replacer(this: unknown, key: string, value: unknown): unknown {
  // The holder's own value: a Node Buffer's toJSON has already run by the time `value` arrives.
  const raw = (this as Record<string, unknown>)[key];
  if (raw instanceof Uint8Array) return { $b64: encodeBase64(raw) };
  if (typeof value === 'number' && !Number.isFinite(value)) return { $num: String(value) };
  return value;
}

/** A message as JSON text, with Uint8Arrays and non-finite numbers tagged. */
export function encodeMessage(msg: ServerMessage | CallMessage): string {
  return JSON.stringify(msg, replacer);
}

export const encodeCall = (id: number, method: CallMethod, args: unknown[]): string => encodeMessage({ t: 'call', id, method, args });

const NUMS: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

function tagOf(v: unknown): [string, unknown] | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const keys = Object.keys(v);
  return keys.length === 1 && (keys[0] === '$num' || keys[0] === '$b64') ? [keys[0], (v as Record<string, unknown>)[keys[0]]] : null;
}

/** A server's message read by the page: tags revived. Throws on text that is not one. */
export function parseServerMessage(text: string): ServerMessage {
  const msg = JSON.parse(text, (_k, v) => {
    const tag = tagOf(v);
    if (tag?.[0] === '$num' && typeof tag[1] === 'string' && Object.hasOwn(NUMS, tag[1])) return NUMS[tag[1]];
    if (tag?.[0] === '$b64' && typeof tag[1] === 'string') return decodeBase64(tag[1], 'a result');
    return v;
  });
  if (typeof msg !== 'object' || msg === null || typeof msg.t !== 'string') throw new KilnError('usage', 'kiln serve sent a message the page does not understand', HINT);
  return msg as ServerMessage;
}

/**
 * A page's message read by the server: JSON, a call with an id and a known method,
 * arguments checked against its table. Never throws: a bad message gives an error to
 * send back (with the call's id where one could be read).
 */
export function parseClientMessage(text: string, limits: CallLimits = {}): { ok: true; call: CallMessage & { method: CallMethod } } | { ok: false; id: number | null; error: WireError } {
  let msg: unknown;
  try {
    // Only non-finite numbers are revived here: bytes are decoded by the table, after their size is checked.
    msg = JSON.parse(text, (_k, v) => {
      const tag = tagOf(v);
      return tag?.[0] === '$num' && typeof tag[1] === 'string' && Object.hasOwn(NUMS, tag[1]) ? NUMS[tag[1]] : v;
    });
  } catch {
    return { ok: false, id: null, error: { code: 'usage', message: `a message to kiln serve is not JSON (${text.length} characters)`, hint: HINT } };
  }
  const m = typeof msg === 'object' && msg !== null && !Array.isArray(msg) ? (msg as Record<string, unknown>) : null;
  const id = m && typeof m.id === 'number' && Number.isSafeInteger(m.id) && m.id >= 0 ? m.id : null;
  if (!m || m.t !== 'call') return { ok: false, id, error: { code: 'usage', message: `a message to kiln serve must be {"t":"call",...}, not ${describeValue(m?.t ?? msg)}`, hint: HINT } };
  if (id === null) return { ok: false, id, error: { code: 'usage', message: `a call's id must be a whole number from 0, not ${describeValue(m.id)}`, hint: HINT } };
  const v = validateCall(m.method, m.args ?? [], limits);
  if (!v.ok) return { ok: false, id, error: v.error };
  return { ok: true, call: { t: 'call', id, method: v.method, args: v.args } };
}

// ---- base64 (no Buffer or atob here: core runs in the browser and in Node alike) ----

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const ENC = Uint8Array.from(ALPHABET, (c) => c.charCodeAt(0));
const DEC = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) DEC[ALPHABET.charCodeAt(i)] = i;
const PAD = 61; // '='

export function encodeBase64(bytes: Uint8Array): string {
  const n = bytes.length;
  const out = new Uint8Array(base64Length(n));
  let o = 0;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out[o++] = ENC[v >> 18];
    out[o++] = ENC[(v >> 12) & 63];
    out[o++] = ENC[(v >> 6) & 63];
    out[o++] = ENC[v & 63];
  }
  if (i < n) {
    const two = i + 1 < n;
    const v = (bytes[i] << 16) | ((two ? bytes[i + 1] : 0) << 8);
    out[o++] = ENC[v >> 18];
    out[o++] = ENC[(v >> 12) & 63];
    out[o++] = two ? ENC[(v >> 6) & 63] : PAD;
    out[o++] = PAD;
  }
  return new TextDecoder().decode(out);
}

/** Bytes that a base64 text decodes to (null: its length is not a multiple of 4), without decoding it. */
export function base64DecodedLength(s: string): number | null {
  if (s.length % 4 !== 0) return null;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  return (s.length / 4) * 3 - pad;
}

export function decodeBase64(s: string, what = 'the bytes'): Uint8Array {
  const n = base64DecodedLength(s);
  if (n === null) fail(`${what} is not base64 (its length ${s.length} is not a multiple of 4)`);
  const out = new Uint8Array(n!);
  const d = (i: number): number => {
    const c = s.charCodeAt(i);
    return c < 128 ? DEC[c] : -1;
  };
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const a = d(i), b = d(i + 1), c = d(i + 2), e = d(i + 3);
    const last = i + 4 === s.length;
    if (a < 0 || b < 0 || (c < 0 && !(last && s.charCodeAt(i + 2) === PAD && s.charCodeAt(i + 3) === PAD)) || (e < 0 && !(last && s.charCodeAt(i + 3) === PAD)))
      fail(`${what} is not base64 (a character other than A-Z, a-z, 0-9, +, / near offset ${i})`);
    out[o++] = (a << 2) | (b >> 4);
    if (c >= 0) out[o++] = ((b & 15) << 4) | (c >> 2);
    if (e >= 0) out[o++] = ((c & 3) << 6) | e;
  }
  return out;
}
