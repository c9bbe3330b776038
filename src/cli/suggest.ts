// "Did you mean": the names a user most likely meant when a command, flag, preset,
// backend or setting is not one of Kiln's. The distance itself lives in core
// (config.ts's nameDistance and nearestNames) because share links, in core, suggest
// too; this file phrases suggestions for the CLI's hints and maps nanoGPT's names.
import { FIELD_BY_KEY, FIELDS, nanoGptName, nearestNames, suggestSettings, type FieldKey } from '../core/config.ts';

export { nameDistance, nearestNames } from '../core/config.ts';

/** "did you mean X?", "did you mean X or Y?", or '' when nothing is close. `show` formats each name (e.g. as a flag). */
export function didYouMean(word: string, candidates: readonly string[], show: (name: string) => string = (s) => s): string {
  const near = nearestNames(word, candidates);
  return near.length ? `did you mean ${near.map(show).join(' or ')}?` : '';
}

/**
 * The hint for an unknown name from a short, closed list (presets, backends, commands):
 * the suggestion, if any, then the whole list, e.g.
 * 'did you mean webgpu? (use one of: auto, cpu, webgpu, cuda)'.
 */
export function oneOfHint(word: string, candidates: readonly string[]): string {
  const mean = didYouMean(word, candidates);
  const list = `use one of: ${candidates.join(', ')}`;
  return mean ? `${mean} (${list})` : list;
}

/** The hint for an unknown setting name (--set, a config file): its likely meaning, else every name. */
export function settingHint(word: string): string {
  const near = suggestSettings(word);
  if (near.length) return `did you mean ${near.join(' or ')}? (kiln help settings lists every setting)`;
  return `settings are: ${FIELDS.map((f) => f.key).join(', ')} (kiln help settings says what each does)`;
}

/** A name the CLI takes for a setting: Kiln's own, or nanoGPT's with the line that says the Kiln name. */
export interface SettingName {
  key: FieldKey;
  /** Set when `word` was nanoGPT's name: what to print on stderr (without "kiln: note: "). */
  note?: string;
}

/** Kiln's key for `word` (exact, or nanoGPT's name), or null when it is neither. */
export function settingName(word: string): SettingName | null {
  if (FIELD_BY_KEY.has(word)) return { key: word as FieldKey };
  const key = nanoGptName(word);
  if (!key) return null;
  const note =
    key === 'gradAccum'
      ? `${word} is gradAccum in Kiln: micro-batches per optimizer step on this one device (nanoGPT divides its count among its GPUs)`
      : `${word} is ${key} in Kiln`;
  return { key, note };
}
