// The config panel's logic without the DOM: which sections hold which fields, how the
// texts a person typed become a RunConfig plus the core's messages by field, and which
// fields differ from the preset. Everything reads the core's FIELDS table, parseField
// and validate(), so the form says exactly what a link or the CLI would say.
import { DEFAULT_CONFIG, FIELDS, parseField, validate, type FieldKey, type FieldSpec, type RunConfig } from '../core/config.ts';
import { findPreset } from '../core/presets.ts';

export type FieldGroup = FieldSpec['group'];

export interface FormSection {
  group: FieldGroup;
  title: string;
  fields: readonly FieldSpec[];
}

const TITLES: Record<FieldGroup, string> = {
  model: 'Model',
  tokenizer: 'Tokenizer',
  optim: 'Optimisation',
  cadence: 'Schedule & evaluation',
  data: 'Data',
};

/** The form's sections in display order, each with its fields in table order. */
export const FORM_SECTIONS: readonly FormSection[] = (Object.keys(TITLES) as FieldGroup[]).map((group) => ({
  group,
  title: TITLES[group],
  fields: FIELDS.filter((f) => f.group === group),
}));

/** The config a preset name stands for; an unknown name (a custom config) compares with the defaults. */
export function presetBase(name: string): RunConfig {
  return findPreset(name)?.config ?? { ...DEFAULT_CONFIG };
}

/**
 * The texts typed into fields since the config last came from outside, as typed. Kept so
 * that an input is never rewritten under the cursor ("0.50" is not turned into "0.5")
 * and so that a text that does not parse keeps showing, with its message.
 */
export type Drafts = Partial<Record<FieldKey, string>>;

/** Problems by field (the core's messages) and in total. */
export interface FormState {
  config: RunConfig;
  issues: Partial<Record<FieldKey, string[]>>;
  /** Every message, in table order, for the summary. */
  list: Array<{ field: FieldKey; message: string }>;
  valid: boolean;
}

/** One edit: the text is kept as a draft; the config takes its value when it parses. */
export function editField(config: RunConfig, drafts: Drafts, key: FieldKey, text: string): { config: RunConfig; drafts: Drafts } {
  const parsed = parseField(key, text);
  const next = 'value' in parsed ? ({ ...config, [key]: parsed.value } as RunConfig) : config;
  return { config: next, drafts: { ...drafts, [key]: text } };
}

/**
 * The form's problems: a draft that does not parse gives parseField's message (the config
 * keeps the field's last good value); then validate() judges the whole config, and its
 * messages go to the fields without a parse error.
 */
export function formState(config: RunConfig, drafts: Drafts): FormState {
  const issues: Partial<Record<FieldKey, string[]>> = {};
  const add = (field: FieldKey, message: string) => (issues[field] ??= []).push(message);
  for (const [key, text] of Object.entries(drafts) as Array<[FieldKey, string]>) {
    const parsed = parseField(key, text);
    if ('error' in parsed) add(key, parsed.error);
  }
  const unparsed = new Set(Object.keys(issues));
  for (const issue of validate(config)) if (!unparsed.has(issue.field)) add(issue.field, issue.message);
  const order = new Map<string, number>(FIELDS.map((f, i) => [f.key, i]));
  const list = (Object.entries(issues) as Array<[FieldKey, string[]]>)
    .sort(([a], [b]) => (order.get(a) ?? FIELDS.length) - (order.get(b) ?? FIELDS.length))
    .flatMap(([field, messages]) => messages.map((message) => ({ field, message })));
  return { config, issues, list, valid: list.length === 0 };
}

/**
 * Drafts that still hold after the config changed from outside (the parent set a new
 * config object): a draft survives when it still says the field's value, or, for a text
 * that does not parse, when the field's value did not change under it.
 */
export function reconcileDrafts(drafts: Drafts, before: RunConfig | undefined, after: RunConfig): Drafts {
  const out: Drafts = {};
  for (const [key, text] of Object.entries(drafts) as Array<[FieldKey, string]>) {
    const parsed = parseField(key, text);
    const keep = 'value' in parsed ? parsed.value === after[key] : before !== undefined && before[key] === after[key];
    if (keep) out[key] = text;
  }
  return out;
}

/** The fields whose value differs from the base (the preset's config), in table order. */
export function changedFields(config: RunConfig, base: RunConfig): Set<FieldKey> {
  return new Set(FIELDS.filter((f) => config[f.key] !== base[f.key]).map((f) => f.key));
}

/** A value as an input shows it. */
export function fieldText(value: RunConfig[FieldKey]): string {
  return String(value);
}

/**
 * The `step` of a number input: 1 for whole numbers; for real numbers a tenth of the
 * value's order of magnitude (lr 0.001 steps by 0.0001, beta2 0.95 by 0.01), so the
 * arrow keys and spinners make useful moves.
 */
export function numberStep(f: FieldSpec, value: number): string {
  if (f.kind === 'int') return '1';
  const a = Math.abs(value);
  const exp = a > 0 && Number.isFinite(a) ? Math.floor(Math.log10(a)) - 1 : Math.min(-1, Math.floor(Math.log10(f.max ?? 1)) - 1);
  return String(Number((10 ** exp).toPrecision(1)));
}

/** A count in three figures: 27.0k, 1.21M, 124M, 1.56B. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const units: Array<[number, string]> = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'k']];
  for (let i = 0; i < units.length; i++) {
    const [size, unit] = units[i];
    if (Math.abs(n) < size) continue;
    const v = Number((n / size).toPrecision(3));
    // 999,999 rounds to 1000k: say 1.00M instead.
    if (v >= 1000 && i > 0) return `${(v / 1000).toPrecision(3)}${units[i - 1][1]}`;
    return `${v >= 100 ? v.toFixed(0) : v.toPrecision(3)}${unit}`;
  }
  return Math.round(n).toLocaleString('en-US');
}
