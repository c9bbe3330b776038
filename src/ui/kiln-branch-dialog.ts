// <kiln-branch-dialog>: a new run from one of a saved run's checkpoints, with other
// training settings. The person picks the checkpoint (the newest by default), edits the
// settings a branch may change (the learning-rate schedule, the end, regularisation, the
// batch, the cadence, the seed: never the model's shape, which the weights fix), checked
// with the core's parseField and validate() as the config panel checks them, and names it.
// A modal <dialog>: open while `run` is set; the parent sets it back to null on
// `branch-confirm` or `branch-cancel`.
import { LitElement, css, html, nothing, type PropertyValues } from 'lit';
import { customElement, property, query, state } from 'lit/decorators.js';
import { live } from 'lit/directives/live.js';
import { FIELD_BY_KEY, parseField, validate, type FieldKey, type RunConfig } from '../core/config.ts';
import type { RunRecord } from '../core/run-record.ts';
import { fieldText, numberStep } from './config-form.ts';
import { fmtLoss } from './format.ts';
import { hostStyles } from './host-styles.ts';

/** detail of `branch-confirm`: what LabApi.branchRun takes. */
export interface BranchConfirmDetail {
  id: string;
  step: number;
  config: RunConfig;
  name: string;
}

/** The settings a branch may change, in the order the dialog shows them. */
export const BRANCH_FIELDS: readonly FieldKey[] = [
  'lr', 'minLr', 'warmupSteps', 'decaySteps', 'steps', 'weightDecay', 'gradClip',
  'batchSize', 'gradAccum', 'dropout', 'evalEvery', 'checkpointEvery', 'seed',
];

/** Texts typed into the dialog's fields, by field. */
export type BranchDrafts = Partial<Record<FieldKey, string>>;

export interface BranchForm {
  config: RunConfig;
  /** One message per field with a problem. */
  issues: Partial<Record<FieldKey, string>>;
  /** BRANCH_FIELDS whose value differs from the parent's, in that order. */
  changed: FieldKey[];
  valid: boolean;
}

/**
 * Where a branch stops unless the person says otherwise: the parent's end when it lies
 * past the checkpoint, else half the parent's length again (at least 100 steps) past it.
 */
export function defaultEnd(parent: RunConfig, step: number): number {
  return parent.steps > step ? parent.steps : step + Math.max(100, Math.round(parent.steps / 2));
}

/**
 * The branch's config from the parent's, the checkpoint step and the texts typed: each
 * text that parses sets its field; then validate() judges the whole, and the end must lie
 * past the checkpoint. A text that does not parse keeps the parent's value and its message.
 */
export function branchForm(parent: RunConfig, step: number, drafts: BranchDrafts): BranchForm {
  const config: RunConfig = { ...parent, steps: defaultEnd(parent, step) };
  const issues: Partial<Record<FieldKey, string>> = {};
  for (const key of BRANCH_FIELDS) {
    const text = drafts[key];
    if (text === undefined) continue;
    const parsed = parseField(key, text);
    if ('error' in parsed) issues[key] = parsed.error;
    else (config as unknown as Record<string, unknown>)[key] = parsed.value;
  }
  for (const issue of validate(config)) issues[issue.field] ??= issue.message;
  if (!issues.steps && config.steps <= step)
    issues.steps = `steps ${config.steps} is not past the checkpoint's step ${step}: the branch trains from step ${step} to steps, so use at least ${step + 1}`;
  const changed = BRANCH_FIELDS.filter((k) => config[k] !== parent[k]);
  return { config, issues, changed, valid: Object.keys(issues).length === 0 };
}

/** A setting's value for a name: 1e-4 rather than 0.0001. */
function nameValue(v: RunConfig[FieldKey]): string {
  if (typeof v !== 'number') return String(v);
  if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential().replace('e+', 'e');
  return String(Number(v.toPrecision(6)));
}

/** "PARENT · lr 1e-4" after the first changed setting, or "PARENT · branch". */
export function defaultBranchName(parentName: string, form: Pick<BranchForm, 'config' | 'changed'>): string {
  const k = form.changed[0];
  return k ? `${parentName} · ${k} ${nameValue(form.config[k])}` : `${parentName} · branch`;
}

@customElement('kiln-branch-dialog')
export class KilnBranchDialog extends LitElement {
  static override styles = [hostStyles, css`
    * { box-sizing: border-box; }
    button, input, select { font: inherit; color: inherit; }
    button:focus-visible, input:focus-visible, select:focus-visible { outline: 2px solid #1f6feb; outline-offset: 1px; }
    dialog {
      width: min(600px, calc(100vw - 20px)); max-width: none; max-height: calc(100dvh - 20px); overflow: auto; padding: 0;
      border: 1px solid #e3ded7; border-radius: 10px; background: #faf8f5; color: #222;
      box-shadow: 0 12px 40px rgba(40, 30, 20, 0.22);
    }
    dialog::backdrop { background: rgba(34, 30, 26, 0.38); }
    form { display: flex; flex-direction: column; gap: 12px; padding: 16px 18px; }
    h2 { margin: 0; font-size: 16px; font-weight: 600; overflow-wrap: anywhere; }
    .lead { margin: 3px 0 0; color: #6b6259; font-size: 12.5px; }
    label, .label { color: #4a443e; }
    .row { display: flex; flex-direction: column; gap: 3px; min-width: 0; }
    select, input {
      width: 100%; min-width: 0; height: 30px; padding: 3px 7px; border: 1px solid #cfc7bd; border-radius: 6px;
      background: #fff; font-variant-numeric: tabular-nums;
    }
    input[aria-invalid='true'] { border-color: #b3261e; background: #fff7f6; }
    fieldset { margin: 0; padding: 10px 12px 12px; border: 1px solid #e3ded7; border-radius: 8px; background: #fff; min-width: 0; }
    legend { padding: 0 4px; font-weight: 600; }
    .grid { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 8px 12px; }
    .field { display: flex; flex-direction: column; gap: 2px; min-width: 0; }
    .field > label { display: flex; align-items: center; gap: 4px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
    .field.changed > label { color: #222; font-weight: 600; }
    .dot { flex: none; width: 6px; height: 6px; border-radius: 50%; background: #c2571a; }
    .error { color: #b3261e; font-size: 12px; line-height: 1.3; overflow-wrap: anywhere; }
    .shape { margin: 8px 0 0; color: #6b6259; font-size: 12px; overflow-wrap: anywhere; }
    .buttons { display: flex; justify-content: flex-end; gap: 8px; flex-wrap: wrap; }
    .btn {
      padding: 5px 14px; min-height: 32px; border: 1px solid #cfc7bd; border-radius: 6px; background: #fff;
      cursor: pointer; white-space: nowrap;
    }
    .btn:hover:not(:disabled) { background: #f4efe9; }
    .btn:disabled { opacity: 0.45; cursor: default; }
    .btn.primary { background: #c2571a; border-color: #a9480f; color: #fff; font-weight: 600; }
    .btn.primary:hover:not(:disabled) { background: #a9480f; }
    .sr-only {
      position: absolute; width: 1px; height: 1px; overflow: hidden;
      clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap;
    }
    @media (max-width: 520px) {
      form { padding: 14px 14px; gap: 10px; }
      .grid { grid-template-columns: repeat(2, minmax(0, 1fr)); }
    }
  `];

  /** The run to branch from; the dialog is open while it is set. */
  @property({ attribute: false }) run: RunRecord | null = null;
  /** Its checkpoint steps (from run.checkpoints), any order. */
  @property({ attribute: false }) steps: readonly number[] = [];

  @state() private step = 0;
  @state() private drafts: BranchDrafts = {};
  /** The name typed; null while the default name (which follows the settings) stands. */
  @state() private name: string | null = null;

  @query('dialog') private dialog!: HTMLDialogElement;

  private sortedSteps(): number[] {
    return [...new Set(this.steps)].sort((a, b) => b - a);
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (changed.has('run')) {
      this.drafts = {};
      this.name = null;
    }
    if (changed.has('run') || changed.has('steps')) {
      const steps = this.sortedSteps();
      if (!steps.includes(this.step) || changed.has('run')) this.step = steps[0] ?? this.run?.step ?? 0;
    }
  }

  protected override updated(changed: PropertyValues<this>): void {
    if (!changed.has('run')) return;
    if (this.run && !this.dialog.open) this.dialog.showModal();
    else if (!this.run && this.dialog.open) this.dialog.close();
  }

  private form(): BranchForm | null {
    return this.run ? branchForm(this.run.spec.config, this.step, this.drafts) : null;
  }

  private fire<T>(name: string, detail: T): void {
    this.dispatchEvent(new CustomEvent<T>(name, { detail, bubbles: true, composed: true }));
  }

  private submit(e: Event): void {
    e.preventDefault();
    const run = this.run;
    const form = this.form();
    if (!run || !form || !form.valid || this.steps.length === 0) return;
    const name = (this.name ?? defaultBranchName(run.name, form)).trim();
    if (!name) return;
    this.dialog.close();
    this.fire<BranchConfirmDetail>('branch-confirm', { id: run.id, step: this.step, config: form.config, name });
  }

  private cancel(): void {
    if (this.dialog.open) this.dialog.close();
    this.fire('branch-cancel', undefined);
  }

  private renderField(key: FieldKey, form: BranchForm, parent: RunConfig) {
    const f = FIELD_BY_KEY.get(key)!;
    const value = form.config[key] as number;
    const issue = form.issues[key];
    const changed = form.changed.includes(key);
    return html`<div class="field ${changed ? 'changed' : ''}">
      <label for="b-${key}" title=${f.doc}>${key === 'steps' ? 'steps (end)' : key}${changed
        ? html`<span class="dot" title="the parent has ${fieldText(parent[key])}"></span><span class="sr-only">(changed)</span>`
        : nothing}</label>
      <input id="b-${key}" type="number" inputmode=${f.kind === 'int' ? 'numeric' : 'decimal'} min=${f.min ?? nothing} max=${f.max ?? nothing}
        step=${numberStep(f, value)} .value=${live(this.drafts[key] ?? fieldText(value))} title=${f.doc}
        aria-invalid=${issue ? 'true' : 'false'} aria-describedby=${issue ? `be-${key}` : nothing}
        @input=${(e: Event) => (this.drafts = { ...this.drafts, [key]: (e.target as HTMLInputElement).value })} />
      ${issue ? html`<div id="be-${key}" class="error">${issue}</div>` : nothing}
    </div>`;
  }

  private renderBody(run: RunRecord) {
    const form = this.form()!;
    const parent = run.spec.config;
    const steps = this.sortedSteps();
    const defaultName = defaultBranchName(run.name, form);
    const name = this.name ?? defaultName;
    const nameBad = !name.trim();
    const val = (s: number) => run.checkpoints.find((c) => c.step === s)?.valLoss ?? null;
    const c = parent;
    return html`
      <div>
        <h2 id="branch-title">Branch from ${run.name}</h2>
        <p class="lead">A new run that starts from one of its checkpoints with other training settings; ${run.name} stays as it is.</p>
      </div>
      <div class="row">
        <label for="b-step">Start from checkpoint</label>
        ${steps.length
          ? html`<select id="b-step" @change=${(e: Event) => (this.step = Number((e.target as HTMLSelectElement).value))}>
              ${steps.map((s, i) => html`<option value=${s} ?selected=${s === this.step}>step ${s.toLocaleString('en-US')}${i === 0 ? ' (newest)' : ''}${val(s) === null ? '' : ` · val ${fmtLoss(val(s))}`}</option>`)}
            </select>`
          : html`<div class="error">This run has no saved checkpoint to branch from yet.</div>`}
      </div>
      <fieldset>
        <legend>Training settings</legend>
        <div class="grid">${BRANCH_FIELDS.map((k) => this.renderField(k, form, parent))}</div>
        ${Object.entries(form.issues)
          .filter(([k]) => !BRANCH_FIELDS.includes(k as FieldKey))
          .map(([, m]) => html`<div class="error">${m}</div>`)}
        <p class="shape">The model's shape stays: nLayer ${c.nLayer} · nHead ${c.nHead} · nEmbd ${c.nEmbd} · blockSize ${c.blockSize} · ${c.tokenizer} tokenizer${c.vocabSize ? ` · vocabSize ${c.vocabSize}` : ''}</p>
      </fieldset>
      <div class="row">
        <label for="b-name">Name</label>
        <input id="b-name" type="text" maxlength="120" .value=${live(name)} aria-invalid=${nameBad ? 'true' : 'false'}
          @input=${(e: Event) => (this.name = (e.target as HTMLInputElement).value)} />
        ${nameBad ? html`<div class="error">Give the branch a name.</div>` : nothing}
      </div>
      <div class="buttons">
        <button type="button" class="btn" @click=${this.cancel}>Cancel</button>
        <button type="submit" class="btn primary" ?disabled=${!form.valid || nameBad || steps.length === 0}>Branch</button>
      </div>`;
  }

  override render() {
    return html`<dialog aria-labelledby="branch-title" @cancel=${(e: Event) => { e.preventDefault(); this.cancel(); }}>
      <form @submit=${this.submit}>${this.run ? this.renderBody(this.run) : nothing}</form>
    </dialog>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'kiln-branch-dialog': KilnBranchDialog;
  }
}
