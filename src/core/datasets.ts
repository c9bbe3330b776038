// The texts the lab and the CLI bundle (public/datasets/, sources in SOURCES.md there),
// by the id a share link and `kiln train --data NAME` use.

export interface BundledDataset {
  id: string;
  title: string;
  /** File name under public/datasets/. */
  file: string;
  bytes: number;
  description: string;
}

export const BUNDLED_DATASETS: readonly BundledDataset[] = [
  { id: 'names', title: 'English first names', file: 'names.txt', bytes: 228_145, description: '32,033 first names, one per line (makemore)' },
  { id: 'shakespeare', title: 'Tiny Shakespeare', file: 'shakespeare.txt', bytes: 1_115_394, description: "1.1 MB of Shakespeare's plays (char-rnn, nanoGPT)" },
];

export function findDataset(id: string): BundledDataset | undefined {
  return BUNDLED_DATASETS.find((d) => d.id === id);
}

/** The bundled dataset a preset trains on when none is given. */
export const PRESET_DATASETS: Readonly<Record<string, string>> = { tiny: 'names', names: 'names', 'craft-1m': 'shakespeare', 'char-shakespeare': 'shakespeare', 'bpe-small': 'shakespeare', 'gpt2-124m': 'shakespeare' };
