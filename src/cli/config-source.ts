// Where a CLI run's config comes from: a share link, a JSON file or a preset, then
// flag overrides (--steps, --seed, --set key=value), then validation. The result is
// a RunSpec, the same object the lab's share links carry.
import { readFileSync } from 'node:fs';
import { parseField, suggestSettings, validate, type RunConfig } from '../core/config.ts';
import { KilnError } from '../core/errors.ts';
import { findPreset, PRESET_NAMES } from '../core/presets.ts';
import type { RunSpec } from '../core/run-spec.ts';
import { decodeShareLink } from '../core/share-link.ts';
import { oneOfHint, settingHint, settingName } from './suggest.ts';

export interface ConfigFlags {
  link?: string;
  config?: string;
  preset?: string;
  steps?: string;
  seed?: string;
  set?: string[];
}

function presetOrFail(name: string) {
  const p = findPreset(name);
  if (!p) throw new KilnError('config', `unknown preset "${name}"`, oneOfHint(name, PRESET_NAMES));
  return p;
}

function fromFile(path: string): RunSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new KilnError('config', `cannot read config ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`,
      'give a JSON file like {"preset": "names", "nEmbd": 128}');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new KilnError('config', `config ${path} is not a JSON object`, 'give a JSON file like {"preset": "names", "nEmbd": 128}');
  const { preset: presetName = 'tiny', ...fields } = raw as Record<string, unknown>;
  if (typeof presetName !== 'string') throw new KilnError('config', `config ${path}: "preset" must be a name`, `use one of: ${PRESET_NAMES.join(', ')}`);
  const preset = presetOrFail(presetName);
  return { preset: preset.name, config: { ...preset.config, ...fileFields(path, fields) }, data: null };
}

/**
 * A config file's settings under Kiln's names: nanoGPT's names are taken (with a note
 * naming Kiln's), unknown keys refused with the name they most likely meant.
 */
function fileFields(path: string, fields: Record<string, unknown>): Partial<RunConfig> {
  const out: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    const name = settingName(k);
    if (!name) {
      unknown.push(k);
      continue;
    }
    if (from[name.key] !== undefined)
      throw new KilnError('config', `config ${path} sets ${name.key} twice (as "${from[name.key]}" and as "${k}")`, 'keep one of them');
    from[name.key] = k;
    if (name.note) note(name.note);
    out[name.key] = v;
  }
  if (unknown.length) {
    const shown = unknown.slice(0, 5).map((k) => JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}…` : k));
    const message = `config ${path} has unknown setting${unknown.length > 1 ? 's' : ''} ${shown.join(', ')}${unknown.length > 5 ? ', …' : ''}`;
    const near = unknown.slice(0, 5).map((k) => suggestSettings(k));
    const hint =
      unknown.length === 1 || near.every((n) => n.length === 0)
        ? settingHint(unknown[0])
        : `${shown.map((k, i) => `${k}: ${near[i].length ? `did you mean ${near[i].join(' or ')}?` : 'no such setting'}`).join('; ')} (kiln help settings lists every setting)`;
    throw new KilnError('config', message, hint);
  }
  return out as Partial<RunConfig>;
}

function note(text: string): void {
  process.stderr.write(`kiln: note: ${text}\n`);
}

function setField(config: RunConfig, key: string, text: string, flag: string): void {
  const name = settingName(key);
  if (name?.note) note(name.note);
  const parsed = parseField(name?.key ?? key, text);
  if ('error' in parsed) {
    const hint = name ? `fix the value given to ${flag}` : settingHint(key);
    throw new KilnError('config', parsed.error, hint);
  }
  (config as unknown as Record<string, unknown>)[name!.key] = parsed.value;
}

/** `base` is the config when no --link, --config or --preset is given (a fine-tune's checkpoint). */
export function resolveRunSpec(flags: ConfigFlags, base?: RunSpec): RunSpec {
  const sources = [flags.link, flags.config, flags.preset].filter((x) => x !== undefined).length;
  if (sources > 1) throw new KilnError('usage', 'give only one of --link, --config and --preset', 'choose where the config comes from');
  let spec: RunSpec;
  if (flags.link !== undefined) spec = decodeShareLink(flags.link);
  else if (flags.config !== undefined) spec = fromFile(flags.config);
  else if (flags.preset !== undefined) {
    const p = presetOrFail(flags.preset);
    spec = { preset: p.name, config: { ...p.config }, data: null };
  } else if (base) {
    spec = { ...base, config: { ...base.config } };
  } else {
    throw new KilnError('usage', 'no config given', `add --preset NAME (${PRESET_NAMES.join(', ')}), --config FILE or --link URL`);
  }
  for (const kv of flags.set ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new KilnError('usage', `--set ${JSON.stringify(kv.slice(0, 40))}: expected key=value`, 'e.g. --set nEmbd=128');
    setField(spec.config, kv.slice(0, eq), kv.slice(eq + 1), `--set ${kv.slice(0, eq).replace(/[^\w.-]/g, '?').slice(0, 40)}=`);
  }
  if (flags.steps !== undefined) setField(spec.config, 'steps', flags.steps, '--steps');
  if (flags.seed !== undefined) setField(spec.config, 'seed', flags.seed, '--seed');
  const issues = validate(spec.config);
  if (issues.length) {
    throw new KilnError('config', `invalid config: ${issues.map((i) => i.message).join('; ')}`, 'fix the settings named above');
  }
  return spec;
}
