// TensorBoard event files: CRC-32C against RFC 3720's vectors and TensorFlow's mask; a
// reader written here (its own framing, CRC check and the published protos' schema, not
// the writer's subset) reads back exactly the values written; a resumed log holds each
// step once; and end to end, `kiln train --tensorboard` stopped (Ctrl-C, or a hard kill
// past its last checkpoint) and resumed gives metrics.jsonl's scalars, as does
// `kiln tensorboard --from metrics.jsonl`.
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '@aws-crypto/crc32c';
import protobuf from 'protobufjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/core/config.ts';
import { decodeCheckpoint } from '../../src/core/checkpoint.ts';
import { configMarkdown, frameRecord, maskCrc, maskedCrc32c, openRunLog, readRecords, TensorBoardLog, type MetricsRow } from '../../src/cli/tensorboard.ts';
import { bytesOf, expectKilnError, interruptTrain, namesText, readMetrics, runKiln, spawnKiln, tempDir } from '../helpers/cli.ts';

// --- an independent reader ------------------------------------------------------------

/**
 * The published schema, copied from tensorflow/tensorboard's tensorboard/compat/proto/
 * event.proto, summary.proto, histogram.proto, tensor.proto, tensor_shape.proto and
 * types.proto (package tensorboard), with every field of the messages an event file
 * carries; only TensorProto's resource_handle_val (resource_handle.proto) is left out.
 */
const PUBLISHED_PROTO = `
syntax = "proto3";
package tensorboard;

message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    bytes graph_def = 4;
    Summary summary = 5;
    LogMessage log_message = 6 [deprecated = true];
    SessionLog session_log = 7;
    TaggedRunMetadata tagged_run_metadata = 8;
    bytes meta_graph_def = 9;
  }
  SourceMetadata source_metadata = 10;
}
message SourceMetadata { string writer = 1; }
message LogMessage {
  enum Level { UNKNOWN = 0; DEBUGGING = 10; INFO = 20; WARN = 30; ERROR = 40; FATAL = 50; }
  Level level = 1;
  string message = 2;
}
message SessionLog {
  enum SessionStatus { STATUS_UNSPECIFIED = 0; START = 1; STOP = 2; CHECKPOINT = 3; }
  SessionStatus status = 1;
  string checkpoint_path = 2;
  string msg = 3;
}
message TaggedRunMetadata { string tag = 1; bytes run_metadata = 2; }

message SummaryDescription { string type_hint = 1; }
message SummaryMetadata {
  message PluginData { string plugin_name = 1; bytes content = 2; }
  PluginData plugin_data = 1;
  string display_name = 2;
  string summary_description = 3;
  DataClass data_class = 4;
}
enum DataClass { DATA_CLASS_UNKNOWN = 0; DATA_CLASS_SCALAR = 1; DATA_CLASS_TENSOR = 2; DATA_CLASS_BLOB_SEQUENCE = 3; }
message HistogramProto {
  double min = 1; double max = 2; double num = 3; double sum = 4; double sum_squares = 5;
  repeated double bucket_limit = 6 [packed = true];
  repeated double bucket = 7 [packed = true];
}
message Summary {
  message Image { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
  message Audio { float sample_rate = 1; int64 num_channels = 2; int64 length_frames = 3; bytes encoded_audio_string = 4; string content_type = 5; }
  message Value {
    string node_name = 7;
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value {
      float simple_value = 2;
      bytes obsolete_old_style_histogram = 3;
      Image image = 4;
      HistogramProto histo = 5;
      Audio audio = 6;
      TensorProto tensor = 8;
    }
  }
  repeated Value value = 1;
}

enum DataType {
  DT_INVALID = 0; DT_FLOAT = 1; DT_DOUBLE = 2; DT_INT32 = 3; DT_UINT8 = 4; DT_INT16 = 5; DT_INT8 = 6;
  DT_STRING = 7; DT_COMPLEX64 = 8; DT_INT64 = 9; DT_BOOL = 10;
}
message TensorShapeProto {
  message Dim { int64 size = 1; string name = 2; }
  repeated Dim dim = 2;
  bool unknown_rank = 3;
}
message TensorProto {
  DataType dtype = 1;
  TensorShapeProto tensor_shape = 2;
  int32 version_number = 3;
  bytes tensor_content = 4;
  repeated int32 half_val = 13 [packed = true];
  repeated float float_val = 5 [packed = true];
  repeated double double_val = 6 [packed = true];
  repeated int32 int_val = 7 [packed = true];
  repeated bytes string_val = 8;
  repeated float scomplex_val = 9 [packed = true];
  repeated int64 int64_val = 10 [packed = true];
  repeated bool bool_val = 11 [packed = true];
  repeated double dcomplex_val = 12 [packed = true];
  repeated VariantTensorDataProto variant_val = 15;
  repeated uint32 uint32_val = 16 [packed = true];
  repeated uint64 uint64_val = 17 [packed = true];
  bytes float8_val = 18;
}
message VariantTensorDataProto { string type_name = 1; bytes metadata = 2; repeated TensorProto tensors = 3; }
`;

const EventType = protobuf.parse(PUBLISHED_PROTO, { keepCase: true }).root.lookupType('tensorboard.Event');

/** TensorFlow's mask (tensorflow/core/lib/hash/crc32c.h), in BigInt so it shares no code with the writer's. */
function mask(crc: number): number {
  const c = BigInt(crc);
  const rot = ((c >> 15n) | (c << 17n)) & 0xffffffffn;
  return Number((rot + 0xa282ead8n) & 0xffffffffn);
}

function unmask(masked: number): number {
  const rot = (BigInt(masked) - 0xa282ead8n) & 0xffffffffn;
  return Number(((rot >> 17n) | (rot << 15n)) & 0xffffffffn);
}

interface ReadValue { tag: string; simple_value?: number; tensor?: { dtype: string; string_val?: Uint8Array[] }; metadata?: { plugin_data?: { plugin_name?: string } } }
interface ReadEvent { wall_time: number; step: number; file_version?: string; summary?: { value: ReadValue[] } }

/** Every event of one file; fails on a bad length CRC, a bad data CRC or bytes left over. */
function readEventFile(path: string): ReadEvent[] {
  const buf = readFileSync(path);
  const events: ReadEvent[] = [];
  let at = 0;
  while (at < buf.length) {
    expect(buf.length - at, `${path}: a record header at ${at}`).toBeGreaterThanOrEqual(12);
    const len = Number(buf.readBigUInt64LE(at));
    expect(buf.readUInt32LE(at + 8), `${path}: length CRC at ${at}`).toBe(mask(crc32c(buf.subarray(at, at + 8))));
    const data = buf.subarray(at + 12, at + 12 + len);
    expect(data.length, `${path}: the record at ${at} is cut short`).toBe(len);
    expect(buf.readUInt32LE(at + 12 + len), `${path}: data CRC at ${at}`).toBe(mask(crc32c(data)));
    // proto3 leaves zeros (step 0) off the wire: read them as the schema's defaults.
    const e = EventType.toObject(EventType.decode(data), { longs: Number, enums: String }) as Partial<ReadEvent>;
    events.push({ ...e, wall_time: e.wall_time ?? 0, step: e.step ?? 0 });
    at += 16 + len;
  }
  return events;
}

/** The event files of a folder in the order TensorBoard reads them (by name). */
function eventFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.includes('tfevents')).sort().map((n) => join(dir, n));
}

/** Each file's events in order, checking that each file starts with its version record. */
function readLog(dir: string): ReadEvent[] {
  const all: ReadEvent[] = [];
  for (const f of eventFiles(dir)) {
    const events = readEventFile(f);
    expect(events[0]?.file_version, f).toBe('brain.Event:2');
    all.push(...events.slice(1));
  }
  return all;
}

/** tag -> [step, value] of every simple_value, in the order read. */
function scalarsOf(events: ReadEvent[]): Map<string, Array<[number, number]>> {
  const out = new Map<string, Array<[number, number]>>();
  for (const e of events)
    for (const v of e.summary?.value ?? [])
      if (v.simple_value !== undefined) {
        if (!out.has(v.tag)) out.set(v.tag, []);
        out.get(v.tag)!.push([e.step, v.simple_value]);
      }
  return out;
}

const TAGS: Array<[keyof MetricsRow, string]> = [
  ['loss', 'loss/train'], ['val_loss', 'loss/val'], ['lr', 'lr'], ['grad_norm', 'grad_norm'], ['tokens_per_s', 'tokens_per_s'], ['mfu', 'mfu'],
];

/** What the log must hold for these rows: every value present, as float32, by step. */
function expectedScalars(rows: MetricsRow[]): Map<string, Array<[number, number]>> {
  const out = new Map<string, Array<[number, number]>>();
  for (const [k, tag] of TAGS) {
    const series = rows.filter((r) => typeof r[k] === 'number').map((r): [number, number] => [r.step, Math.fround(r[k] as number)]);
    if (series.length) out.set(tag, series);
  }
  return out;
}

/** Steps of the summary events, in the order read (each must appear once). */
function stepsOf(events: ReadEvent[], without = 'config'): number[] {
  return events.filter((e) => e.summary?.value.some((v) => v.tag !== without)).map((e) => e.step);
}

function configText(events: ReadEvent[]): string[] {
  return events.flatMap((e) => (e.summary?.value ?? []).filter((v) => v.tag === 'config').map((v) => {
    expect(v.tensor?.dtype).toBe('DT_STRING');
    expect(v.metadata?.plugin_data?.plugin_name).toBe('text');
    expect(e.step).toBe(0);
    return new TextDecoder().decode(v.tensor!.string_val![0]);
  }));
}

// --- tests ----------------------------------------------------------------------------

let root: string;
beforeAll(() => {
  root = tempDir('kiln-tb-');
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('CRC-32C (RFC 3720 B.4) and the TFRecord mask', () => {
  const vectors: Array<[string, Uint8Array, number]> = [
    ['32 bytes of zeros', new Uint8Array(32), 0x8a9136aa],
    ['32 bytes of 0xff', new Uint8Array(32).fill(0xff), 0x62a8ab43],
    ['32 ascending bytes 0..31', Uint8Array.from({ length: 32 }, (_, i) => i), 0x46dd794e],
    ['32 descending bytes 31..0', Uint8Array.from({ length: 32 }, (_, i) => 31 - i), 0x113fdb5c],
  ];

  it.each(vectors)('%s', (_, bytes, crc) => {
    expect(crc32c(bytes) >>> 0).toBe(crc);
    expect(maskCrc(crc)).toBe(mask(crc));
    expect(maskedCrc32c(bytes)).toBe(mask(crc));
    expect(unmask(maskedCrc32c(bytes))).toBe(crc);
  });

  it('masks as ((crc >>> 15) | (crc << 17)) + 0xa282ead8 modulo 2^32', () => {
    for (const crc of [0, 1, 0x7fff, 0x8000, 0xffffffff, 0x8a9136aa, 0x80000000]) {
      expect(maskCrc(crc)).toBe(mask(crc));
      expect(unmask(maskCrc(crc))).toBe(crc);
    }
    expect(maskCrc(0)).toBe(0xa282ead8);
  });

  it('frames a record: length, masked CRC of the length, data, masked CRC of the data', () => {
    const data = new Uint8Array(32);
    const r = Buffer.from(frameRecord(data));
    expect(r.length).toBe(48);
    expect(r.readBigUInt64LE(0)).toBe(32n);
    expect(r.readUInt32LE(8)).toBe(mask(crc32c(r.subarray(0, 8))));
    expect(r.readUInt32LE(44)).toBe(mask(0x8a9136aa));
    const two = new Uint8Array([...r, ...frameRecord(new Uint8Array([1, 2, 3]))]);
    expect(readRecords(two).records.map((x) => [...x])).toEqual([[...data], [1, 2, 3]]);
    // A record cut short, or one whose data CRC is wrong, ends what can be read.
    expect(readRecords(two.subarray(0, two.length - 1))).toMatchObject({ end: 48 });
    const bad = two.slice();
    bad[bad.length - 5] ^= 1;
    expect(readRecords(bad).records).toHaveLength(1);
  });
});

const rows: MetricsRow[] = [
  { step: 1, loss: 4.17, lr: 0, grad_norm: 2.5, tokens_per_s: 12345.678 },
  { step: 2, loss: 3.9, lr: 1e-4, grad_norm: 0, tokens_per_s: 13000.5, mfu: 0.0123 },
  { step: 3, loss: 3.5, val_loss: 3.6, lr: 2e-4, grad_norm: 1.25, tokens_per_s: 12999, mfu: 0.013 },
  { step: 4, loss: 1 / 3, lr: 3e-4, grad_norm: Math.PI, tokens_per_s: 1e6 },
];

describe('TensorBoardLog: what is written reads back through the published schema', () => {
  it('a version record first, the config as text at step 0, each row as float32 scalars by step', () => {
    const dir = join(root, 'writer');
    const log = openRunLog(dir, { config: DEFAULT_CONFIG, resumeStep: null, metricsPath: join(dir, 'none.jsonl') });
    for (const r of rows) log.scalars(r);
    log.close();
    const files = eventFiles(dir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/events\.out\.tfevents\.\d{10}\.[^/]+\.\d+\.\d+$/);
    const events = readLog(dir);
    expect(configText(events)).toEqual([configMarkdown(DEFAULT_CONFIG)]);
    expect(configMarkdown(DEFAULT_CONFIG)).toContain(`| nEmbd | ${DEFAULT_CONFIG.nEmbd} |`);
    expect(stepsOf(events)).toEqual([1, 2, 3, 4]);
    // Zeros are written (simple_value sits in a oneof), absent fields are not.
    expect(scalarsOf(events)).toEqual(expectedScalars(rows));
    for (const e of events) expect(Math.abs(e.wall_time - Date.now() / 1000)).toBeLessThan(60);
  });

  it('a new log refuses a folder holding event files, and --force replaces them', () => {
    const dir = join(root, 'writer');
    expect(() => TensorBoardLog.open(dir, { resumeStep: null })).toThrow(/already holds TensorBoard event files/);
    const log = TensorBoardLog.open(dir, { resumeStep: null, force: true });
    log.scalars(rows[0]);
    log.close();
    expect(eventFiles(dir)).toHaveLength(1);
    expect(stepsOf(readLog(dir))).toEqual([1]);
  });

  it('resuming at step 12 cuts later steps from the old file, adds a file after it, and each step is logged once', () => {
    const dir = join(root, 'resume');
    const metrics = join(root, 'resume-metrics.jsonl');
    const row = (step: number): MetricsRow => ({ step, loss: 5 - step / 10, lr: step * 1e-5, grad_norm: 1 + step / 7, tokens_per_s: 1000 + step, ...(step % 5 === 0 ? { val_loss: 5 - step / 9 } : {}) });
    const first = openRunLog(dir, { config: DEFAULT_CONFIG, resumeStep: null, metricsPath: metrics });
    for (let s = 1; s <= 20; s++) first.scalars(row(s));
    first.close();
    // A crash mid-write leaves a torn record at the end: it goes too.
    appendFileSync(eventFiles(dir)[0], Buffer.from([7, 0, 0, 0, 0, 0]));
    writeFileSync(metrics, Array.from({ length: 12 }, (_, i) => JSON.stringify(row(i + 1))).join('\n') + '\n');
    const second = openRunLog(dir, { config: DEFAULT_CONFIG, resumeStep: 12, metricsPath: metrics });
    expect(second.lastStep).toBe(12);
    for (let s = 13; s <= 15; s++) second.scalars(row(s));
    second.close();
    const files = eventFiles(dir);
    expect(files).toHaveLength(2);
    expect(files[1]).toBe(second.file);
    const events = readLog(dir);
    expect(configText(events)).toHaveLength(1);
    expect(stepsOf(events)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(scalarsOf(events)).toEqual(expectedScalars(Array.from({ length: 15 }, (_, i) => row(i + 1))));
  });

  it('a log first asked for on resume is caught up from metrics.jsonl up to the resume step', () => {
    const dir = join(root, 'late');
    const metrics = join(root, 'late-metrics.jsonl');
    // Rows past the resume step (metrics.jsonl is cut there too) are not copied.
    writeFileSync(metrics, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const log = openRunLog(dir, { config: DEFAULT_CONFIG, resumeStep: 3, metricsPath: metrics });
    log.scalars(rows[3]);
    log.close();
    const events = readLog(dir);
    expect(configText(events)).toHaveLength(1);
    expect(stepsOf(events)).toEqual([1, 2, 3, 4]);
    expect(scalarsOf(events)).toEqual(expectedScalars(rows));
  });
});

describe('kiln train --tensorboard, kiln tensorboard (end to end, cpu)', () => {
  let names: string;
  const children: Array<ReturnType<typeof spawnKiln>['child']> = [];
  beforeAll(() => {
    names = join(root, 'names.txt');
    writeFileSync(names, namesText(3000));
  });
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  /** The log in `tb` against the run's metrics.jsonl: steps 1..n once each, the same values, the config once. */
  function expectLogMatchesMetrics(tb: string, out: string, n: number): void {
    const metrics = readMetrics(out);
    expect(metrics.map((m) => m.step)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const events = readLog(tb);
    expect(stepsOf(events)).toEqual(metrics.map((m) => m.step));
    const scalars = scalarsOf(events);
    expect(scalars).toEqual(expectedScalars(metrics));
    for (const tag of ['loss/train', 'loss/val', 'lr', 'grad_norm', 'tokens_per_s']) expect(scalars.has(tag), tag).toBe(true);
    expect(configText(events)).toHaveLength(1);
  }

  // tiny at batch 64 takes ~0.1 s a step on the CPU: time for the signal to land mid-run.
  const args = (tb: string) => ['--preset', 'tiny', '--steps', '30', '--backend', 'cpu', '--data', names, '--tensorboard', tb,
    '--set', 'batchSize=64', '--set', 'evalEvery=7', '--set', 'logEvery=1'];

  it('Ctrl-C then --resume: one continuous log whose scalars equal metrics.jsonl\'s', async () => {
    const out = join(root, 'run');
    const tb = join(root, 'run-tb');
    const r = await interruptTrain([...args(tb), '--set', 'checkpointEvery=1000'], out, 8, children);
    expect(r.code, r.stderr).toBe(130);
    const stopped = (await decodeCheckpoint(bytesOf(join(out, 'checkpoint.safetensors')))).step;
    expect(stopped).toBeLessThan(30);
    expectLogMatchesMetrics(tb, out, stopped);
    const resumed = await runKiln(['train', ...args(tb), '--out', out, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(eventFiles(tb)).toHaveLength(2);
    expectLogMatchesMetrics(tb, out, 30);

    // The converter gives the same scalars from metrics.jsonl, with the config from the checkpoint.
    const tb2 = join(root, 'converted');
    const c = await runKiln(['tensorboard', '--from', join(out, 'metrics.jsonl'), '--out', tb2]);
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout)).toMatchObject({ steps: 30, first_step: 1, last_step: 30, config: true });
    expect(eventFiles(tb2)).toHaveLength(1);
    expectLogMatchesMetrics(tb2, out, 30);
    expect(configText(readLog(tb2))).toEqual(configText(readLog(tb)));
  });

  it('a hard kill past the last checkpoint: --resume cuts the log back to it, as metrics.jsonl', async () => {
    const out = join(root, 'killed');
    const tb = join(root, 'killed-tb');
    const p = spawnKiln(['train', ...args(tb), '--set', 'checkpointEvery=10', '--out', out]);
    children.push(p.child);
    const metricsPath = join(out, 'metrics.jsonl');
    const deadline = Date.now() + 60_000;
    let lines = 0;
    while (Date.now() < deadline && p.child.exitCode === null) {
      if (existsSync(metricsPath)) lines = readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l.trim()).length;
      if (lines >= 13) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    p.child.kill('SIGKILL');
    expect((await p.exit).signal).toBe('SIGKILL');
    const saved = (await decodeCheckpoint(bytesOf(join(out, 'checkpoint.safetensors')))).step;
    const logged = stepsOf(readLog(tb));
    expect(Math.max(...logged), 'the log ran past the checkpoint').toBeGreaterThan(saved);
    const resumed = await runKiln(['train', ...args(tb), '--out', out, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expectLogMatchesMetrics(tb, out, 30);
  });

  it('bad input is one line and an exit code', async () => {
    expectKilnError(await runKiln(['tensorboard', '--from', join(root, 'nope.jsonl'), '--out', join(root, 'x')]), 2, /cannot read .*nope\.jsonl: no such file/);
    const notMetrics = join(root, 'not-metrics.jsonl');
    writeFileSync(notMetrics, `${JSON.stringify(rows[0])}\n{"name":"bob"}\n`);
    expectKilnError(await runKiln(['tensorboard', '--from', notMetrics, '--out', join(root, 'x')]), 2, /not-metrics\.jsonl line 2 is not a metrics row: its "step" is nothing/);
    writeFileSync(notMetrics, 'step,loss\n1,2.5\n');
    expectKilnError(await runKiln(['tensorboard', '--from', notMetrics, '--out', join(root, 'x')]), 2, /line 1 is not a metrics row: not JSON/);
    expectKilnError(await runKiln(['tensorboard', '--out', join(root, 'x')]), 1, /no metrics file given/);
    // A folder that already holds another run's events is refused, by train and by the converter.
    const used = join(root, 'used-tb');
    mkdirSync(used);
    writeFileSync(join(used, 'events.out.tfevents.1.host.1.0'), frameRecord(new Uint8Array(0)));
    const good = join(root, 'good.jsonl');
    writeFileSync(good, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    expectKilnError(await runKiln(['tensorboard', '--from', good, '--out', used]), 1, /already holds TensorBoard event files/);
    expectKilnError(await runKiln(['train', '--preset', 'tiny', '--steps', '2', '--data', names, '--out', join(root, 'new-run'), '--tensorboard', used]), 1,
      /already holds TensorBoard event files/);
    const forced = await runKiln(['tensorboard', '--from', good, '--out', used, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(scalarsOf(readLog(used))).toEqual(expectedScalars(rows));
  });
});
