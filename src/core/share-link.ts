// RunSpec <-> URL fragment (DESIGN.md, Share links): readable key=value pairs such as
// `v=1&preset=names&nEmbd=128&lr=0.0003&seed=7&data=names`. The fragment holds the
// format version, the preset, only the config fields that differ from it, the dataset
// reference and optionally the results the sharer got (`r.train`, `r.val`,
// `r.steps`, `r.device`, and `r.curve=STEP:LOSS,...`, the val curve in at most 64
// points). A link is untrusted: every part is length-capped, free of control
// characters and parsed through the config schema (or, for results, a grammar as
// strict), and every failure is a KilnError('usage') with one line that names the bad part.
import { diffConfig, FIELD_BY_KEY, FIELDS, nearestNames, parseField, suggestSettings, validate, type RunConfig } from './config.ts';
import { KilnError } from './errors.ts';
import { printable } from './text.ts';
import { BUNDLED_DATASETS, findDataset } from './datasets.ts';
import { findPreset, PRESET_NAMES } from './presets.ts';
import type { DatasetRef, ResultSummary, RunSpec } from './run-spec.ts';

export const LINK_VERSION = 1;
/** Far above any real link (all fields set is ~600 characters), far below anything harmful. */
export const MAX_LINK_CHARS = 4096;
export const MAX_VALUE_CHARS = 256;
/** r.curve's own cap: 64 points of `123456789:0.0001234` fit with room to spare. */
export const MAX_CURVE_CHARS = 1500;
/** The most points a link's curve carries (encodeShareLink reduces a longer one). */
export const MAX_CURVE_POINTS = 64;
const MAX_DEVICE_CHARS = 100;
/** A loss in a link is a number >= 0 and below this (a char model starts near ln(vocab) < 12). */
const MAX_LOSS = 1e6;
const MAX_STEP = 999_999_999;

/**
 * What no part of a link may hold: C0 and C1 controls and DEL (a terminal's escapes),
 * the bidi and line-separator controls (text that reads other than it is), and lone
 * surrogates (not text at all).
 */
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSAFE_CHARS_G = new RegExp(UNSAFE_CHARS.source, 'g');

const HINT = 'ask for a new link, or fix the part named above';

function fail(message: string, hint = HINT): never {
  throw new KilnError('usage', message, hint);
}

/** Shortest text that parses back to the same double (JS's own number formatting). */
function num(x: number): string {
  return String(x);
}

function formatValue(v: RunConfig[keyof RunConfig]): string {
  return typeof v === 'number' ? num(v) : String(v);
}

/** A loss at 4 significant digits, in the shortest text for that value: 1.234, 0.5, 1.235e-7. */
function curveLoss(x: number): string {
  return num(Number(x.toPrecision(4)));
}

const isLoss = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0 && x < MAX_LOSS;
const isStep = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= MAX_STEP;

/**
 * At most `max` points of a curve: the first, the last and evenly spaced ones between
 * (by index, so the same input always gives the same points). A curve of `max` points
 * or fewer is returned as it is (copied).
 */
export function reduceCurve(points: Array<[number, number]>, max = MAX_CURVE_POINTS): Array<[number, number]> {
  const n = points.length;
  if (n <= max) return points.map(([s, l]) => [s, l]);
  if (max <= 0) return [];
  if (max === 1) return [[points[n - 1][0], points[n - 1][1]]];
  const out: Array<[number, number]> = [];
  for (let i = 0; i < max; i++) {
    const [s, l] = points[Math.round((i * (n - 1)) / (max - 1))];
    out.push([s, l]);
  }
  return out;
}

/**
 * The curve as a link carries it: points a decoder would refuse (a NaN loss from a
 * diverged run, a fractional or repeated step) are left out, the rest reduced to 64 and
 * rounded to 4 digits; ':' and ',' are legal in a fragment, so they stay unescaped.
 */
function encodeCurve(curve: ReadonlyArray<readonly [number, number]>): string {
  const kept: Array<[number, number]> = [];
  for (const [step, loss] of curve) {
    if (!isStep(step) || !isLoss(loss) || !isLoss(Number(loss.toPrecision(4)))) continue;
    if (kept.length && step <= kept[kept.length - 1][0]) continue;
    kept.push([step, loss]);
  }
  return reduceCurve(kept).map(([s, l]) => `${s}:${curveLoss(l)}`).join(',');
}

/** A device name a link can carry: control characters become spaces, cut to 100 characters. */
function cleanDevice(device: string): string {
  const cut = device.replace(UNSAFE_CHARS_G, ' ').trim().slice(0, MAX_DEVICE_CHARS);
  return cut.replace(/[\ud800-\udbff]$/, '').trim(); // not half of a pair at the cut
}

/** The fragment (without '#') for a RunSpec. */
export function encodeShareLink(spec: RunSpec): string {
  const preset = findPreset(spec.preset);
  if (!preset) fail(`unknown preset ${show(String(spec.preset))}`, `use one of ${PRESET_NAMES.join(', ')}`);
  const pairs: Array<[string, string]> = [['v', String(LINK_VERSION)], ['preset', preset.name]];
  const diff = diffConfig(spec.config, preset.config) as Record<string, RunConfig[keyof RunConfig]>;
  for (const f of FIELDS) if (f.key in diff) pairs.push([f.key, formatValue(diff[f.key])]);
  const d = spec.data;
  if (d?.kind === 'bundled') pairs.push(['data', d.id]);
  else if (d?.kind === 'file') pairs.push(['file', d.name], ['bytes', String(d.bytes)], ['sha256', d.sha256]);
  // Results a decoder would refuse (a NaN loss, a fractional step) are left out, not sent.
  const r = spec.results;
  if (isLoss(r?.trainLoss)) pairs.push(['r.train', num(r.trainLoss)]);
  if (isLoss(r?.valLoss)) pairs.push(['r.val', num(r.valLoss)]);
  if (isStep(r?.steps)) pairs.push(['r.steps', String(r.steps)]);
  const device = typeof r?.device === 'string' ? cleanDevice(r.device) : '';
  if (device) pairs.push(['r.device', device]);
  const text = pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
  const curve = r?.curve?.length ? encodeCurve(r.curve) : '';
  return curve ? `${text}&r.curve=${curve}` : text;
}

/** The fragment of a full URL, a '#fragment' or a bare fragment. */
function fragmentOf(input: string): string {
  const hash = input.indexOf('#');
  if (hash >= 0) return input.slice(hash + 1);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) fail('the link has no settings: nothing follows a "#" in it', 'copy the whole link, including the part after "#"');
  return input;
}

function show(s: string): string {
  // JSON.stringify escapes C0 controls; printable() also DEL and C1 (a raw CSI is 0x9b).
  return printable(JSON.stringify(s.length > 40 ? s.slice(0, 40) + '…' : s), 400);
}

/** A link's unknown key: the setting it most likely means (a typo, or nanoGPT's name), suggested, never taken. */
function unknownSetting(key: string): never {
  const near = key.length <= 40 ? suggestSettings(key) : [];
  fail(`the link has an unknown setting ${show(key)}`, near.length ? `did you mean ${near.join(' or ')}? Fix that part, or ask for a new link` : HINT);
}

/** key -> value from `a=1&b=2`, each percent-decoded; duplicates, empty, unsafe and malformed parts rejected. */
function splitPairs(fragment: string): Map<string, string> {
  const pairs = new Map<string, string>();
  for (const part of fragment.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) fail(`the link part ${show(part)} is not of the form key=value`);
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(part.slice(0, eq));
      value = decodeURIComponent(part.slice(eq + 1));
    } catch {
      fail(`the link part ${show(part)} has a broken %-escape`);
    }
    if (key === '') fail(`the link part ${show(part)} has no name before "="`);
    if (UNSAFE_CHARS.test(key)) fail(`the link has a setting name with a control character: ${show(key)}`);
    if (key.length > 40) unknownSetting(key);
    const max = key === 'r.curve' ? MAX_CURVE_CHARS : MAX_VALUE_CHARS;
    if (value.length > max) fail(`the link's ${printable(key, 40)} is ${value.length} characters long (at most ${max})`);
    if (pairs.has(key)) fail(`the link sets ${printable(key, 40)} twice`);
    if (value === '') fail(`the link's ${printable(key, 40)} is empty: give it a value, or leave it out`);
    if (UNSAFE_CHARS.test(value)) {
      fail(key === 'file' ? `the link's file name ${show(value)} is not a file name: it holds a control character`
        : `the link's ${printable(key, 40)} holds a control character: ${show(value)}`);
    }
    pairs.set(key, value);
  }
  return pairs;
}

function take(pairs: Map<string, string>, key: string): string | undefined {
  const v = pairs.get(key);
  pairs.delete(key);
  return v;
}

function parseData(pairs: Map<string, string>): DatasetRef | null {
  const id = take(pairs, 'data');
  const name = take(pairs, 'file');
  const bytes = take(pairs, 'bytes');
  const sha = take(pairs, 'sha256');
  if (id !== undefined && name !== undefined) fail('the link names both a bundled dataset (data=) and a file (file=): keep one');
  if (id !== undefined) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id)) fail(`the link's dataset id ${show(id)} is not a dataset name`);
    if (bytes !== undefined || sha !== undefined) fail('the link gives bytes= or sha256= for a bundled dataset: those belong to file=');
    // Only a dataset Kiln bundles: the CLI must never take a link's id as a path on this machine.
    if (!findDataset(id)) {
      const ids = BUNDLED_DATASETS.map((d) => d.id);
      const near = nearestNames(id, ids);
      fail(`the link's dataset ${show(id)} is not one this Kiln bundles (${ids.join(', ')})`,
        near.length ? `did you mean ${near.join(' or ')}? Fix that part, or ask for a new link` : 'update Kiln, or ask for a link with one of those datasets');
    }
    return { kind: 'bundled', id };
  }
  if (name === undefined) {
    if (bytes !== undefined || sha !== undefined) fail('the link gives bytes= or sha256= but no file=');
    return null;
  }
  // A name, never a path (the lab and the CLI send only a file's base name); control
  // characters were refused with the rest of the link.
  if (name.trim() === '' || /[/\\]/.test(name)) fail(`the link's file name ${show(name)} is not a file name`);
  if (bytes === undefined || !/^[1-9]\d{0,14}$/.test(bytes)) fail(`the link's file needs bytes=<size in bytes>, not ${show(bytes ?? '')} (a whole number, at least 1)`);
  if (sha === undefined || !/^[0-9a-fA-F]{64}$/.test(sha)) fail(`the link's file needs sha256=<64 hex digits>, not ${show(sha ?? '')}`);
  return { kind: 'file', name, bytes: Number(bytes), sha256: sha.toLowerCase() };
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

function parseResults(pairs: Map<string, string>): ResultSummary | undefined {
  const r: ResultSummary = {};
  const loss = (key: string): number | undefined => {
    const t = take(pairs, key);
    if (t === undefined) return undefined;
    if (!NUMBER.test(t) || !isLoss(Number(t))) fail(`the link's ${key} must be a loss (a number >= 0 and below 1e6), not ${show(t)}`);
    return Number(t);
  };
  const train = loss('r.train');
  const val = loss('r.val');
  const steps = take(pairs, 'r.steps');
  const device = take(pairs, 'r.device');
  const curve = take(pairs, 'r.curve');
  if (train !== undefined) r.trainLoss = train;
  if (val !== undefined) r.valLoss = val;
  if (steps !== undefined) {
    if (!/^\d{1,9}$/.test(steps)) fail(`the link's r.steps must be a whole number of steps, not ${show(steps)}`);
    r.steps = Number(steps);
  }
  if (device !== undefined) {
    if (device.length > MAX_DEVICE_CHARS || device.trim() === '') fail(`the link's r.device ${show(device)} is not a device name (at most ${MAX_DEVICE_CHARS} characters)`);
    r.device = device;
  }
  if (curve !== undefined) r.curve = parseCurve(curve);
  return Object.keys(r).length ? r : undefined;
}

/** `STEP:LOSS,STEP:LOSS,...`: at most 64 points, whole steps strictly increasing, losses in [0, 1e6). */
function parseCurve(text: string): Array<[number, number]> {
  const parts = text.split(',');
  if (parts.length > MAX_CURVE_POINTS) fail(`the link's r.curve has ${parts.length} points (at most ${MAX_CURVE_POINTS})`);
  const out: Array<[number, number]> = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    const m = /^(\d{1,9}):([^:]*)$/.exec(p);
    const where = `the link's r.curve point ${i + 1} ${show(p)}`;
    if (!m) fail(`${where} is not STEP:LOSS (a whole step, ":", a loss)`);
    if (!NUMBER.test(m[2]) || !isLoss(Number(m[2]))) fail(`${where} has no loss (a number >= 0 and below 1e6)`);
    const step = Number(m[1]);
    if (out.length && step <= out[out.length - 1][0]) fail(`${where} does not come after step ${out[out.length - 1][0]}: steps must increase`);
    out.push([step, Number(m[2])]);
  }
  return out;
}

/** Parses an untrusted share link (full URL, '#fragment' or bare fragment) into a valid RunSpec. */
export function decodeShareLink(input: string): RunSpec {
  if (typeof input !== 'string') fail('the link is not text');
  if (input.length > MAX_LINK_CHARS) fail(`the link is ${input.length} characters long; Kiln links are at most ${MAX_LINK_CHARS}`);
  const fragment = fragmentOf(input.trim());
  if (fragment.trim() === '') fail('the link is empty: it has no settings');
  const pairs = splitPairs(fragment);

  const v = take(pairs, 'v');
  if (v === undefined) fail('the link has no version (v=1): it is not a Kiln link, or it was cut short');
  if (v !== String(LINK_VERSION))
    fail(`the link is version ${show(v)}, and this Kiln reads version ${LINK_VERSION}`, 'update Kiln, or ask for a link made by this version');
  const presetName = take(pairs, 'preset');
  if (presetName === undefined) fail(`the link names no preset (preset=): use one of ${PRESET_NAMES.join(', ')}`);
  const preset = findPreset(presetName);
  if (!preset) {
    const near = nearestNames(presetName, PRESET_NAMES);
    fail(`the link's preset ${show(presetName)} is unknown: Kiln has ${PRESET_NAMES.join(', ')}`, near.length ? `did you mean ${near.join(' or ')}? Fix that part, or ask for a new link` : HINT);
  }

  const data = parseData(pairs);
  const results = parseResults(pairs);
  const config: RunConfig = { ...preset.config };
  const rec = config as unknown as Record<string, unknown>;
  for (const [key, text] of pairs) {
    if (!FIELD_BY_KEY.has(key)) unknownSetting(key);
    const parsed = parseField(key, text);
    if ('error' in parsed) fail(`the link's ${key} is bad: ${parsed.error}`);
    rec[key] = parsed.value;
  }
  const issues = validate(config);
  if (issues.length) fail(`the link's settings do not fit together: ${issues.map((i) => i.message).join('; ')}`);

  const spec: RunSpec = { preset: preset.name, config, data };
  if (results) spec.results = results;
  return spec;
}

/** A loss as people read it: 4 significant digits. */
function lossShown(x: number): string {
  return x.toPrecision(4);
}

/**
 * One line on the results a link carries, for the person comparing their run with the
 * sharer's: "the link's run: val 1.234 (train 1.100) at step 500 on NVIDIA H100, curve of
 * 40 points". Null when it carries none. The device is escaped for a terminal.
 */
export function describeResults(r: ResultSummary | undefined): string | null {
  if (!r) return null;
  const train = r.trainLoss !== undefined ? `train ${lossShown(r.trainLoss)}` : '';
  let text = r.valLoss !== undefined ? `val ${lossShown(r.valLoss)}${train ? ` (${train})` : ''}` : train;
  if (r.steps !== undefined) text += `${text ? ' ' : ''}at step ${r.steps}`;
  if (r.device !== undefined) text += `${text ? ' ' : ''}on ${printable(r.device, MAX_DEVICE_CHARS)}`;
  if (r.curve?.length) text += `${text ? ', ' : ''}curve of ${r.curve.length} point${r.curve.length === 1 ? '' : 's'}`;
  return text ? `the link's run: ${text}` : null;
}

/** Single-quotes a word for a POSIX shell: everything literal, ' written as '\''. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command line the lab shows to run the same experiment with the `kiln` CLI
 * (Squoosh's habit: the UI's state becomes a command in one pure function). A bundled
 * dataset travels in the link; a user's own file is not in it, so the command passes
 * it with --data.
 */
export function cliCommand(spec: RunSpec, link: string): string {
  const words = ['kiln', 'train', '--link', shellQuote(link)];
  if (spec.data?.kind === 'file') words.push('--data', shellQuote(spec.data.name));
  words.push('--out', shellQuote(`runs/${spec.preset}`));
  return words.join(' ');
}
