// The data picker's logic without the DOM: what the element itself refuses (a file too
// big to read into the page, a drop of several files) and the summary's lines. Whether a
// file is text at all is the worker's call (core/text.ts), with the core's message.
import { formatBytes } from '../core/model-spec.ts';
import type { DataSummary } from '../worker/api.ts';

/** Largest file the page reads into memory; bigger texts train with the kiln command. */
export const MAX_FILE_BYTES = 200 * 1024 * 1024;

/** A choice refused before it reaches the worker: what happened and what to do. */
export interface Refusal {
  message: string;
  hint: string;
}

export function refuseFile(name: string, bytes: number): Refusal | null {
  if (bytes > MAX_FILE_BYTES)
    return {
      message: `${name} is ${formatBytes(bytes)}: the lab reads text files up to ${formatBytes(MAX_FILE_BYTES)}`,
      hint: 'choose a smaller part of the text, or train on the whole file with the kiln command in Node (kiln train --data FILE)',
    };
  return null;
}

/** A drop must carry exactly one file. */
export function refuseDrop(files: number): Refusal | null {
  if (files === 1) return null;
  return files === 0
    ? { message: 'Nothing to read was dropped', hint: 'drop a text file (.txt) from your files, not text or a link' }
    : { message: `${files} files were dropped: the lab trains on one text at a time`, hint: 'drop one file, or join the texts into one file first' };
}

const count = (n: number) => n.toLocaleString('en-US');

/** The summary's lines, label and value, as the element shows them. */
export function summaryRows(s: DataSummary): Array<[label: string, value: string]> {
  const share = s.tokens > 0 ? ` (${Math.round((100 * s.valTokens) / s.tokens)}% held out)` : '';
  return [
    ['Text', s.name],
    ['Size', `${formatBytes(s.bytes)} · ${count(s.chars)} characters`],
    ['Characters', `${count(s.distinctChars)} distinct`],
    ['Tokens', `${count(s.tokens)}: ${count(s.trainTokens)} train / ${count(s.valTokens)} val${share}`],
    ['Tokenizer', `${s.tokenizer} · vocabulary ${count(s.vocabSize)}`],
  ];
}

/** A hint ("give a UTF-8 text file (.txt)") as a sentence: capital first, full stop last. */
export function asSentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  return `${t.charAt(0).toUpperCase()}${t.slice(1)}${/[.!?]$/.test(t) ? '' : '.'}`;
}
