// RunSpec <-> URL fragment (DESIGN.md, Share links): readable key=value pairs such as
// `v=1&preset=names&nEmbd=128&lr=0.0003&seed=7&data=names`. The fragment holds the
// format version, the preset, only the config fields that differ from it, the dataset
// reference and optionally the results the sharer got (`r.train`, `r.val`,
// `r.steps`, `r.device`). A link is untrusted: every part is length-capped and
// parsed through the config schema, and every failure is a KilnError('usage') that
// names the bad part.
import { diffConfig, FIELD_BY_KEY, FIELDS, nearestNames, parseField, suggestSettings, validate, type RunConfig } from './config.ts';
import { KilnError } from './errors.ts';
import { printable } from './text.ts';
import { findPreset, PRESET_NAMES } from './presets.ts';
import type { DatasetRef, ResultSummary, RunSpec } from './run-spec.ts';

export const LINK_VERSION = 1;
/** Far above any real link (all fields set is ~600 characters), far below anything harmful. */
export const MAX_LINK_CHARS = 4096;
export const MAX_VALUE_CHARS = 256;
const MAX_DEVICE_CHARS = 100;

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
  const r = spec.results;
  if (r?.trainLoss !== undefined) pairs.push(['r.train', num(r.trainLoss)]);
  if (r?.valLoss !== undefined) pairs.push(['r.val', num(r.valLoss)]);
  if (r?.steps !== undefined) pairs.push(['r.steps', String(r.steps)]);
  if (r?.device !== undefined) pairs.push(['r.device', r.device]);
  return pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
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

/** key -> value from `a=1&b=2`, each percent-decoded; duplicates and malformed parts rejected. */
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
    if (key.length > 40) unknownSetting(key);
    if (value.length > MAX_VALUE_CHARS) fail(`the link's ${printable(key, 40)} is ${value.length} characters long (at most ${MAX_VALUE_CHARS})`);
    if (pairs.has(key)) fail(`the link sets ${printable(key, 40)} twice`);
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
    return { kind: 'bundled', id };
  }
  if (name === undefined) {
    if (bytes !== undefined || sha !== undefined) fail('the link gives bytes= or sha256= but no file=');
    return null;
  }
  // Control characters would be a way to garble the lab's page or a terminal.
  if (name.trim() === '' || /[\u0000-\u001f\u007f]/.test(name)) fail(`the link's file name ${show(name)} is not a file name`);
  if (bytes === undefined || !/^\d{1,15}$/.test(bytes)) fail(`the link's file needs bytes=<size in bytes>, not ${show(bytes ?? '')}`);
  if (sha === undefined || !/^[0-9a-fA-F]{64}$/.test(sha)) fail(`the link's file needs sha256=<64 hex digits>, not ${show(sha ?? '')}`);
  return { kind: 'file', name, bytes: Number(bytes), sha256: sha.toLowerCase() };
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

function parseResults(pairs: Map<string, string>): ResultSummary | undefined {
  const r: ResultSummary = {};
  const loss = (key: string): number | undefined => {
    const t = take(pairs, key);
    if (t === undefined) return undefined;
    const x = Number(t);
    if (!NUMBER.test(t) || !Number.isFinite(x) || x < 0) fail(`the link's ${key} must be a loss (a number >= 0), not ${show(t)}`);
    return x;
  };
  const train = loss('r.train');
  const val = loss('r.val');
  const steps = take(pairs, 'r.steps');
  const device = take(pairs, 'r.device');
  if (train !== undefined) r.trainLoss = train;
  if (val !== undefined) r.valLoss = val;
  if (steps !== undefined) {
    if (!/^\d{1,9}$/.test(steps)) fail(`the link's r.steps must be a whole number of steps, not ${show(steps)}`);
    r.steps = Number(steps);
  }
  if (device !== undefined) {
    if (device.length > MAX_DEVICE_CHARS || /[\u0000-\u001f\u007f]/.test(device)) fail(`the link's r.device ${show(device)} is not a device name`);
    r.device = device;
  }
  return Object.keys(r).length ? r : undefined;
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
