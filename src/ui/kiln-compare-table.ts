// <kiln-compare-table>: what sets compared runs apart. Only the settings whose values
// differ between the runs, in the FIELDS table's order, one row per setting and one column
// per run (with the run's chart colour); values that differ from the first run's are in
// bold. Runs alike in every setting get one sentence instead of an empty table.
import { LitElement, css, html, nothing } from 'lit';
import { customElement, property } from 'lit/decorators.js';
import { FIELDS, FIELD_BY_KEY, type FieldKey, type RunConfig } from '../core/config.ts';
import { hostStyles } from './host-styles.ts';

/** One compared run: the first is the reference (the open run, usually). */
export interface CompareTableRun {
  id: string;
  name: string;
  color: string;
  config: RunConfig;
}

/** The settings whose values are not the same in every config, in FIELDS order. */
export function differingFields(configs: readonly RunConfig[]): FieldKey[] {
  if (configs.length < 2) return [];
  const [first, ...rest] = configs;
  return FIELDS.filter((f) => rest.some((c) => !Object.is(c[f.key], first[f.key]))).map((f) => f.key);
}

/** The sentence for runs whose settings agree (`fields` from differingFields), or null when a table is due. */
export function sameSettingsNote(fields: readonly FieldKey[]): string | null {
  if (fields.some((k) => k !== 'seed')) return null;
  return fields.includes('seed') ? 'Same settings: the runs differ only in randomness (seed) or data.' : 'Same settings.';
}

/** A value as the table shows it: floats without binary noise (0.1 + 0.2 shows 0.3). */
function show(v: RunConfig[FieldKey]): string {
  return typeof v === 'number' && !Number.isInteger(v) ? String(Number(v.toPrecision(6))) : String(v);
}

@customElement('kiln-compare-table')
export class KilnCompareTable extends LitElement {
  static override styles = [hostStyles, css`
    * { box-sizing: border-box; }
    h2 { margin: 0 0 8px; font-size: 14px; font-weight: 600; }
    p { margin: 0; color: #6b6259; font-size: 12.5px; }
    .scroll { overflow-x: auto; max-width: 100%; }
    table { border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
    th, td { padding: 4px 10px 4px 0; text-align: left; vertical-align: baseline; white-space: nowrap; }
    thead th { font-weight: 600; border-bottom: 1px solid #e3ded7; }
    tbody tr + tr > * { border-top: 1px solid #f0ebe5; }
    tbody th { color: #5a534c; font-weight: 500; cursor: help; }
    td { color: #4a443e; }
    td.differs { color: #222; font-weight: 600; }
    thead th { white-space: normal; max-width: 16em; }
    /* The colour over the name, and long names in two lines, then an ellipsis: on a phone the columns share the width. */
    .run { display: block; }
    .run .n { display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 2; overflow: hidden; overflow-wrap: break-word; }
    .swatch { display: block; width: 16px; height: 4px; border-radius: 2px; margin: 0 0 3px; }
    .sr-only {
      position: absolute; width: 1px; height: 1px; overflow: hidden;
      clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap;
    }
  `];

  /** The runs to compare, the reference (the open run) first, each with its chart colour. */
  @property({ attribute: false }) runs: readonly CompareTableRun[] = [];

  override render() {
    const runs = this.runs;
    if (runs.length === 0) return nothing;
    if (runs.length === 1) return html`<h2>Settings</h2><p>Tick runs in the list to compare their settings with ${runs[0].name}.</p>`;
    const fields = differingFields(runs.map((r) => r.config));
    const note = sameSettingsNote(fields);
    if (note) return html`<h2>Settings</h2><p>${note}</p>`;
    const ref = runs[0].config;
    return html`<h2>Settings that differ</h2>
      <div class="scroll">
        <table>
          <thead><tr><th scope="col"><span class="sr-only">Setting</span></th>
            ${runs.map((r) => html`<th scope="col" title=${r.name}><span class="run"><span class="swatch" style="background: ${r.color}"></span><span class="n">${r.name}</span></span></th>`)}
          </tr></thead>
          <tbody>
            ${fields.map((k) => html`<tr>
              <th scope="row" title=${FIELD_BY_KEY.get(k)?.doc ?? ''}>${k}</th>
              ${runs.map((r, i) => html`<td class=${i > 0 && !Object.is(r.config[k], ref[k]) ? 'differs' : ''}>${show(r.config[k])}</td>`)}
            </tr>`)}
          </tbody>
        </table>
      </div>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-compare-table': KilnCompareTable;
  }
}
