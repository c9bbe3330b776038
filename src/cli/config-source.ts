// Where a CLI run's config comes from: a share link, a JSON file or a preset, then
// flag overrides (--steps, --seed, --set key=value), then validation. The result is
// a RunSpec, the same object the lab's share links carry.
import { readFileSync } from 'node:fs';
import { FIELD_BY_KEY, parseField, validate, type RunConfig } from '../core/config.ts';
import { KilnError } from '../core/errors.ts';
import { findPreset, PRESET_NAMES } from '../core/presets.ts';
import type { RunSpec } from '../core/run-spec.ts';
import { decodeShareLink } from '../core/share-link.ts';

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
  if (!p) throw new KilnError('config', `unknown preset "${name}"`, `use one of: ${PRESET_NAMES.join(', ')}`);
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
  return { preset: preset.name, config: { ...preset.config, ...(fields as Partial<RunConfig>) }, data: null };
}

function setField(config: RunConfig, key: string, text: string, flag: string): void {
  const parsed = parseField(key, text);
  if ('error' in parsed) {
    const hint = FIELD_BY_KEY.has(key) ? `fix the value given to ${flag}` : `settings are: ${[...FIELD_BY_KEY.keys()].join(', ')}`;
    throw new KilnError('config', parsed.error, hint);
  }
  (config as unknown as Record<string, unknown>)[key] = parsed.value;
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
