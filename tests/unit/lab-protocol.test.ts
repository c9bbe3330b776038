// The wire protocol of `kiln serve` (src/core/lab-protocol.ts), without a socket: every
// LabApi method has a table row that accepts a good call; bad methods, arities, types,
// sizes and configs are refused with a readable error (never a throw); bytes and
// non-finite numbers survive the trip both ways.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type RunConfig } from '../../src/core/config.ts';
import { KilnError } from '../../src/core/errors.ts';
import {
  base64DecodedLength, CALL_METHODS, decodeBase64, encodeBase64, encodeCall, encodeMessage, MAX_BYTES, MAX_MESSAGE_BYTES,
  parseClientMessage, parseServerMessage, READ_ONLY_METHODS, toWireError, validateCall, type CallMethod,
} from '../../src/core/lab-protocol.ts';
import type { RunSpec } from '../../src/core/run-spec.ts';

const config: RunConfig = { ...DEFAULT_CONFIG };
const spec: RunSpec = { preset: 'tiny', config, data: { kind: 'file', name: 'a.txt', bytes: 12, sha256: 'ab'.repeat(32) } };
const req = { prompt: 'Hi', maxTokens: 20, temperature: 0.8, topK: 40, topP: 0.95, seed: 1 };
const b64 = (bytes: Uint8Array) => ({ $b64: encodeBase64(bytes) });

/** A good call for every method of the table (a new method without one fails the first test). */
const GOOD: Record<CallMethod, unknown[]> = {
  environment: [],
  checkConfig: [config, 65, 'cpu'],
  prepareData: [{ kind: 'file', name: 'a.txt', bytes: b64(new TextEncoder().encode('hello world\n')) }, config],
  createRun: [spec, 'webgpu'],
  subscribe: [],
  unsubscribe: [3],
  start: [],
  pause: [],
  resume: [],
  stop: [],
  extend: [100, { schedule: 'stretch' }],
  recover: [],
  sample: [req, true],
  history: [],
  status: [],
  current: [],
  dataFiles: [],
  dispose: [],
  listRuns: [],
  openRun: ['6f1c2a9e-1b1b-4c1c-9d9d-0123456789ab', 'cpu', 20],
  renameRun: ['run-1', 'names · better'],
  deleteRun: ['run-1'],
  exportCheckpoint: ['run-1'],
  importCheckpoint: ['ckpt.safetensors', b64(Uint8Array.of(1, 2, 3))],
  branchRun: ['run-1', 20, { ...config, lr: 1e-4 }, 'cpu', 'lower lr'],
  runMetrics: ['run-1'],
  save: [],
  storageUsage: [],
  takeControl: [true],
};

function refused(method: unknown, args: unknown, limits = {}) {
  const r = validateCall(method, args, limits);
  if (r.ok) throw new Error(`expected ${String(method)} to be refused`);
  expect(r.error.message).not.toMatch(/[\u0000-\u001f]/);
  return r.error;
}

describe('the argument table', () => {
  it('has a row for every method, and each accepts a good call', () => {
    expect(new Set(Object.keys(GOOD))).toEqual(new Set(CALL_METHODS));
    for (const m of CALL_METHODS) {
      const r = validateCall(m, JSON.parse(encodeMessage({ t: 'result', id: 0, result: GOOD[m] })).result);
      expect(r, m).toMatchObject({ ok: true, method: m });
    }
  });

  it('decodes bytes, and drops optional arguments left out or null', () => {
    const r = validateCall('importCheckpoint', GOOD.importCheckpoint);
    expect(r.ok && r.args[1]).toEqual(Uint8Array.of(1, 2, 3));
    expect(validateCall('openRun', ['run-1', 'cpu', null])).toEqual({ ok: true, method: 'openRun', args: ['run-1', 'cpu'] });
    expect(validateCall('extend', [5])).toEqual({ ok: true, method: 'extend', args: [5] });
    const src = validateCall('prepareData', GOOD.prepareData);
    expect(src.ok && new TextDecoder().decode((src.args[0] as { bytes: Uint8Array }).bytes)).toBe('hello world\n');
  });

  it('lets a watching tab only look', () => {
    for (const m of ['start', 'pause', 'sample', 'createRun', 'deleteRun', 'importCheckpoint', 'save', 'dispose'] as const) expect(READ_ONLY_METHODS.has(m)).toBe(false);
    for (const m of ['status', 'history', 'current', 'dataFiles', 'subscribe', 'listRuns', 'takeControl'] as const) expect(READ_ONLY_METHODS.has(m)).toBe(true);
  });
});

describe('refusals are readable, never thrown', () => {
  it('an unknown method, with a suggestion; inherited names are not methods', () => {
    expect(refused('strat', [])).toMatchObject({ code: 'usage', message: 'kiln serve has no method "strat"', hint: expect.stringContaining('start') });
    for (const m of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) expect(refused(m, []).message).toContain('no method');
    expect(refused(42, []).message).toBe("a call's method must be a method's name, not 42");
    expect(refused('x'.repeat(10_000), []).message.length).toBeLessThan(200);
  });

  it('the wrong number of arguments, or arguments that are not an array', () => {
    expect(refused('start', [1]).message).toBe('start() takes 0 arguments, not 1');
    expect(refused('checkConfig', [config]).message).toBe('checkConfig(config, vocabSize, backend) takes 3 arguments, not 1');
    expect(refused('openRun', ['a']).message).toBe('openRun(id, backend, step?) takes 2 to 3 arguments, not 1');
    expect(refused('status', { length: 0 }).message).toContain("status's arguments must be an array");
  });

  it('wrong types and out-of-range numbers', () => {
    expect(refused('checkConfig', [config, '65', 'cpu']).message).toBe('checkConfig: vocabSize must be a number, not "65"');
    expect(refused('checkConfig', [config, 65, 'cuda']).message).toBe('checkConfig: backend must be one of webgpu, cpu, not "cuda"');
    expect(refused('extend', [1.5]).message).toBe('extend: steps must be a whole number, not 1.5');
    expect(refused('extend', [0]).message).toBe('extend: steps 0 is out of range: use 1 to 10000000');
    expect(refused('extend', [5, { schedule: 'sideways' }]).message).toContain('extend: opts.schedule must be one of keep, stretch');
    expect(refused('sample', [{ ...req, topP: 0 }]).message).toBe('sample: req.topP 0 is out of range: use above 0 to 1');
    expect(refused('sample', [{ ...req, prompt: 'x'.repeat(100_001) }]).message).toContain('at most 100000');
    expect(refused('sample', [{ ...req, evil: 1 }]).message).toBe('sample: req has an unknown field "evil"');
    expect(refused('sample', [{ prompt: 'x' }]).message).toBe('sample: req.maxTokens is missing');
    const inf = parseClientMessage(encodeCall(2, 'unsubscribe', [Infinity]));
    expect(inf).toMatchObject({ ok: false, id: 2, error: { message: 'unsubscribe: id must be a finite number, not Infinity' } });
  });

  it('names and ids that could be paths', () => {
    expect(refused('deleteRun', ['../etc']).message).toContain('must be a run id');
    expect(refused('importCheckpoint', ['../x.safetensors', b64(Uint8Array.of(1))]).message).toContain('must be a file name (no folders)');
    expect(refused('importCheckpoint', ['..', b64(Uint8Array.of(1))]).message).toContain('no folders');
    expect(refused('createRun', [{ ...spec, data: { kind: 'file', name: 'a/b.txt', bytes: 1, sha256: 'ab'.repeat(32) } }, 'cpu']).message).toContain('spec.data.name');
    expect(refused('renameRun', ['run-1', 'a\u0000b']).message).toContain('without control characters');
  });

  it('a stored dataset by a sha256 of 64 lowercase hex digits only', () => {
    expect(validateCall('prepareData', [{ kind: 'stored', sha256: 'ab'.repeat(32) }, config]).ok).toBe(true);
    expect(refused('prepareData', [{ kind: 'stored', sha256: 'AB'.repeat(32) }, config]).message).toContain('64 lowercase hex digits');
    expect(refused('prepareData', [{ kind: 'stored', sha256: '../../etc/passwd' }, config]).message).toContain('64 lowercase hex digits');
    expect(refused('prepareData', [{ kind: 'url', href: 'http://x' }, config]).message).toBe('prepareData: source.kind must be one of bundled, file, stored, server, not "url"');
  });

  it("a file of kiln serve's --data folder by a relative path only: no .., no absolute path, no NUL, bounded", () => {
    for (const path of ['a.txt', 'sub/b.txt', './sub//b.txt']) expect(validateCall('prepareData', [{ kind: 'server', path }, config]).ok, path).toBe(true);
    const cases: Array<[unknown, RegExp]> = [
      ['../x', /source\.path "\.\.\/x" goes up a folder/],
      ['sub/../../x', /goes up a folder/],
      ['/etc/passwd', /source\.path "\/etc\/passwd" is absolute/],
      ['C:/x.txt', /is absolute/],
      ['a\u0000.txt', /has a control character/],
      ['a\\b.txt', /has a backslash/],
      ['', /is empty/],
      ['x'.repeat(1025), /at most 1024/],
      [7, /is not text/],
    ];
    for (const [path, why] of cases) {
      const e = refused('prepareData', [{ kind: 'server', path }, config]);
      expect(e.message, String(path).slice(0, 20)).toMatch(why);
      expect(e.hint).toBe('pick a file inside the folder kiln serve was given');
    }
    expect(refused('prepareData', [{ kind: 'server', path: 'a.txt', bytes: b64(Uint8Array.of(1)) }, config]).message).toContain('unknown field "bytes"');
  });

  it('a config with NaN (sent tagged, as JSON cannot hold it), or an unknown setting: the config validator says which', () => {
    const text = encodeCall(1, 'checkConfig', [{ ...config, lr: NaN }, 65, 'cpu']);
    const r = parseClientMessage(text);
    expect(r).toMatchObject({ ok: false, id: 1, error: { code: 'config', message: 'checkConfig: config: lr must be a number, not NaN' } });
    const e = refused('createRun', [{ ...spec, config: { ...config, learningRate: 1 } }, 'cpu']);
    expect(e).toMatchObject({ code: 'config', message: 'createRun: spec.config: unknown setting "learningRate"' });
    expect(refused('createRun', [{ ...spec, config: { ...config, nHead: 5 } }, 'cpu']).message).toContain('not divisible by nHead 5');
    expect(refused('createRun', [{ ...spec, config: 'tiny' }, 'cpu']).message).toBe('createRun: spec.config must be an object, not "tiny"');
  });

  it('bytes over the limit are refused by their length before any decoding', () => {
    const big = { $b64: 'AAAA'.repeat(1000) }; // 3000 bytes
    expect(refused('importCheckpoint', ['a.safetensors', big], { maxBytes: 2048 })).toMatchObject({ code: 'data', message: expect.stringContaining('at most 2048 bytes') });
    expect(refused('importCheckpoint', ['a.safetensors', { $b64: { length: 0 } }]).message).toContain('must be bytes');
    expect(refused('importCheckpoint', ['a.safetensors', { $b64: 'AAA' }]).message).toContain('not base64');
    expect(refused('importCheckpoint', ['a.safetensors', { $b64: 'AA*A' }]).message).toContain('not base64');
    expect(refused('importCheckpoint', ['a.safetensors', { $b64: 'AAAA', extra: 1 }]).message).toContain('must be bytes');
    expect(MAX_MESSAGE_BYTES).toBeGreaterThan((MAX_BYTES * 4) / 3);
  });
});

describe('messages', () => {
  it('a page message that is not JSON, not a call, or has no id: an error to send back', () => {
    expect(parseClientMessage('{nope')).toMatchObject({ ok: false, id: null, error: { code: 'usage', message: expect.stringContaining('not JSON') } });
    expect(parseClientMessage('[1,2]')).toMatchObject({ ok: false, id: null });
    expect(parseClientMessage('{"t":"call","id":-1,"method":"status","args":[]}')).toMatchObject({ ok: false, id: null, error: { message: expect.stringContaining("a call's id") } });
    expect(parseClientMessage('{"t":"hello","id":4}')).toMatchObject({ ok: false, id: 4 });
    expect(parseClientMessage('{"t":"call","id":4,"method":"status"}')).toMatchObject({ ok: true, call: { id: 4, method: 'status', args: [] } });
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    expect(parseClientMessage(deep)).toMatchObject({ ok: false });
  });

  it('bytes (a Node Buffer too) and non-finite numbers survive a result', () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const text = encodeMessage({ t: 'result', id: 3, result: { fileName: 'x.safetensors', bytes, loss: NaN, up: Infinity, down: -Infinity, n: null } });
    expect(text).toContain('"$b64":"AAEC+v8="');
    const back = parseServerMessage(text);
    expect(back).toEqual({ t: 'result', id: 3, result: { fileName: 'x.safetensors', bytes: Uint8Array.from(bytes), loss: NaN, up: Infinity, down: -Infinity, n: null } });
    expect(((back as { result: { bytes: unknown } }).result.bytes)).toBeInstanceOf(Uint8Array);
  });

  it('base64 agrees with Node for every tail length', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 97 + n * 31) & 255);
      const ours = encodeBase64(bytes);
      expect(ours).toBe(Buffer.from(bytes).toString('base64'));
      expect(decodeBase64(ours)).toEqual(bytes);
      expect(base64DecodedLength(ours)).toBe(n);
    }
    expect(() => decodeBase64('A===')).toThrow(KilnError);
    expect(() => decodeBase64('AA=A')).toThrow(KilnError);
    expect(() => decodeBase64('AAAA\u00ff\u00ff\u00ff\u00ff')).toThrow(KilnError);
  });

  it('errors: a KilnError keeps its code and hint; anything else is internal, without a stack', () => {
    expect(toWireError(new KilnError('data', 'the file is empty', 'give text'))).toEqual({ code: 'data', message: 'the file is empty', hint: 'give text' });
    const e = toWireError(new TypeError('x is undefined\n    at secret (/home/me/kiln/src/a.ts:1:1)'));
    expect(e.code).toBe('internal');
    expect(e.message).not.toContain('\n');
    expect(e.message).not.toMatch(/^\s+at /m);
  });
});
