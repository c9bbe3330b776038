// The run list's words: when a run last changed, how it stands, where it came from, and
// the storage line. Days are the local calendar's, so the dates are made in local time.
import { describe, expect, it } from 'vitest';
import { persistenceLine, phaseBadge, provenance, relativeTime, storageLine } from '../../src/ui/kiln-run-list.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('relativeTime', () => {
  const now = new Date(2025, 5, 18, 15, 30).getTime();

  it('says just now, minutes, hours today', () => {
    expect(relativeTime(now, now)).toBe('just now');
    expect(relativeTime(now - 59_000, now)).toBe('just now');
    expect(relativeTime(now + 5_000, now)).toBe('just now'); // a clock a little ahead
    expect(relativeTime(now - 5 * MIN, now)).toBe('5 min ago');
    expect(relativeTime(now - 59 * MIN, now)).toBe('59 min ago');
    expect(relativeTime(now - 3 * HOUR, now)).toBe('3 h ago');
    expect(relativeTime(new Date(2025, 5, 18, 0, 5).getTime(), now)).toBe('15 h ago');
  });

  it('says yesterday for the calendar day before, then a short date', () => {
    expect(relativeTime(new Date(2025, 5, 17, 23, 50).getTime(), now)).toBe('yesterday');
    expect(relativeTime(new Date(2025, 5, 17, 0, 10).getTime(), now)).toBe('yesterday');
    expect(relativeTime(new Date(2025, 5, 16, 23, 59).getTime(), now)).toBe('16 Jun');
    expect(relativeTime(new Date(2025, 0, 3, 9, 0).getTime(), now)).toBe('3 Jan');
    expect(relativeTime(new Date(2024, 11, 31, 9, 0).getTime(), now)).toBe('31 Dec 2024');
  });

  it('just after midnight, an hour ago is yesterday only when it was', () => {
    const early = new Date(2025, 5, 18, 0, 30).getTime();
    expect(relativeTime(early - 20 * MIN, early)).toBe('20 min ago');
    expect(relativeTime(early - 2 * HOUR, early)).toBe('yesterday');
  });
});

describe('phaseBadge', () => {
  it('a run saved while training is interrupted unless it is the open run', () => {
    expect(phaseBadge({ id: 'a', phase: 'training' }, null)).toBe('interrupted');
    expect(phaseBadge({ id: 'a', phase: 'training' }, 'b')).toBe('interrupted');
    expect(phaseBadge({ id: 'a', phase: 'training' }, 'a')).toBe('training');
    expect(phaseBadge({ id: 'a', phase: 'done' }, 'a')).toBe('done');
    expect(phaseBadge({ id: 'a', phase: 'paused' }, null)).toBe('paused');
  });
});

describe('provenance', () => {
  it('names the parent and step of a branch, the file of an import', () => {
    expect(provenance({ parent: { runId: 'p', name: 'names · names.txt', step: 1500 } })).toBe('branched from names · names.txt at step 1,500');
    expect(provenance({ imported: { fileName: 'model.safetensors' } })).toBe('imported from model.safetensors');
    expect(provenance({})).toBeNull();
  });
});

describe('storage lines', () => {
  it('says what the runs take and what the site uses of its quota', () => {
    const MiB = 1024 * 1024;
    expect(storageLine({ runsBytes: 12.3 * MiB, datasetsBytes: 0, usage: 45 * MiB, quota: 2.1 * 1024 * MiB })).toBe('Runs use 12 MiB · 45 MiB of 2.1 GiB used by this site');
    expect(storageLine({ runsBytes: 3 * MiB, datasetsBytes: 1.5 * MiB, usage: null, quota: null })).toBe('Runs use 3.0 MiB, your texts 1.5 MiB');
    expect(storageLine({ runsBytes: 0, datasetsBytes: 0, usage: 2048, quota: null })).toBe('Runs use 0 B · 2.0 KiB used by this site');
    expect(storageLine({ runsBytes: 3 * MiB, datasetsBytes: 0, usage: 3 * MiB, quota: 103 * MiB }, 'disk')).toBe('Runs use 3.0 MiB · 100 MiB free on this disk');
  });

  it('says whether the browser may clear the storage, or nothing when unknown', () => {
    expect(persistenceLine(true)).toBe('Storage is persistent');
    expect(persistenceLine(false)).toBe('The browser may clear this storage when space runs low');
    expect(persistenceLine(null)).toBe('');
  });
});
