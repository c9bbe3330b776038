// src/core/zip.ts: CRC-32 against published check values and zlib's, then archives read
// back by other implementations: Info-ZIP's `unzip` (the files, byte for byte, and the
// Unix mode bits, so run.sh stays executable) and Python's zipfile (names, CRCs, dates,
// modes), with ZIP64 records and without. Skipped, with the reason, where unzip or
// python3 is missing.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { crc32, zipBytes, zipParts, type ZipEntry } from '../../src/core/zip.ts';
import { tempDir } from '../helpers/cli.ts';

const enc = new TextEncoder();
const root = tempDir('kiln-zip-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

function has(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return !r.error;
}
const noUnzip = has('unzip', ['-v']) ? null : 'unzip is not installed (apt-get install -y unzip)';
const noPython = has('python3', ['--version']) ? null : 'python3 is not installed';
if (noUnzip) console.warn(`zip.test.ts: the unzip checks are skipped: ${noUnzip}`);
if (noPython) console.warn(`zip.test.ts: the zipfile checks are skipped: ${noPython}`);

/** Bitwise CRC-32, straight from the definition, to check the table-driven one against. */
function crcBitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return ~c >>> 0;
}

/** Deterministic pseudo-random bytes (xorshift32). */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

describe('crc32', () => {
  it('gives the published check values', () => {
    expect(crc32(enc.encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(enc.encode('a'))).toBe(0xe8b7be43);
    expect(crc32(enc.encode('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
    expect(crc32(new Uint8Array(32))).toBe(0x190a55ad);
    expect(crc32(new Uint8Array(32).fill(0xff))).toBe(0xff6cab0b);
  });

  it('agrees with the bitwise definition and with zlib at every length and alignment, and continues over pieces', () => {
    const data = noise(70_003, 7);
    for (let n = 0; n <= 40; n++) {
      for (const off of [0, 1, 3, 7]) {
        const s = data.subarray(off, off + n);
        expect(crc32(s), `length ${n} at ${off}`).toBe(crcBitwise(s));
      }
    }
    expect(crc32(data)).toBe(zlibCrc32(data));
    let c = 0;
    for (let at = 0; at < data.length; at += 4093) c = crc32(data.subarray(at, at + 4093), c);
    expect(c).toBe(zlibCrc32(data));
  });
});

// A folder like the ones the lab zips: nested paths, a script, an empty file, binary
// bytes across a buffer's offset, and a name outside ASCII.
const backing = noise(300_017, 3);
const ENTRIES: ZipEntry[] = [
  { path: 'kiln-scale-x/init/model.safetensors', bytes: backing.subarray(17) },
  { path: 'kiln-scale-x/init/config.json', bytes: enc.encode('{"n_layer": 2}\n') },
  { path: 'kiln-scale-x/tokens.bin', bytes: new Uint8Array(0) },
  { path: 'kiln-scale-x/run.sh', bytes: enc.encode('#!/usr/bin/env bash\necho ok\n'), mode: 0o755 },
  { path: 'kiln-scale-x/slurm.sbatch', bytes: enc.encode('#!/usr/bin/env bash\n'), mode: 0o750 },
  { path: 'kiln-scale-x/données/été.txt', bytes: enc.encode('ünïcödé\n') },
];
const DATE = new Date(2024, 4, 17, 13, 45, 58);

function writeZip(name: string, zip64: 'auto' | 'always'): string {
  const path = join(root, name);
  writeFileSync(path, zipBytes(ENTRIES, { date: DATE, zip64 }));
  return path;
}

describe('zip archives', () => {
  it('are headers between the files\' own bytes (not copied), and report CRC progress to the end', () => {
    const seen: Array<[number, number]> = [];
    const parts = zipParts(ENTRIES, { date: DATE, onProgress: (d, t) => seen.push([d, t]) });
    expect(parts[1]).toBe(ENTRIES[0].bytes);
    const total = ENTRIES.reduce((s, e) => s + e.bytes.length, 0);
    expect(seen.at(-1)).toEqual([total, total]);
  });

  it('refuses paths that are not relative file paths, and a path given twice', () => {
    const b = new Uint8Array(1);
    for (const path of ['', '/abs', 'a/../b', 'a//b', './a', 'a\\b', 'dir/']) {
      expect(() => zipBytes([{ path, bytes: b }]), path).toThrow(/not a relative/);
    }
    expect(() => zipBytes([{ path: 'a', bytes: b }, { path: 'a', bytes: b }])).toThrow(/twice/);
  });

  for (const zip64 of ['auto', 'always'] as const) {
    it.skipIf(noUnzip !== null)(`unzip (Info-ZIP) extracts every file and keeps run.sh executable (zip64 ${zip64})`, () => {
      const zip = writeZip(`unzip-${zip64}.zip`, zip64);
      const test = spawnSync('unzip', ['-t', zip], { encoding: 'utf8' });
      expect(test.status, test.stdout + test.stderr).toBe(0);
      expect(test.stdout).toMatch(/No errors detected/);
      const out = join(root, `out-${zip64}`);
      mkdirSync(out);
      const r = spawnSync('unzip', ['-q', zip, '-d', out], { encoding: 'utf8', env: { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' } });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      for (const e of ENTRIES) {
        const file = join(out, ...e.path.split('/'));
        expect(new Uint8Array(readFileSync(file)), e.path).toEqual(e.bytes);
        if (e.mode !== undefined) expect((statSync(file).mode & 0o777).toString(8), e.path).toBe(e.mode.toString(8));
      }
      expect(statSync(join(out, 'kiln-scale-x/run.sh')).mode & 0o111).toBe(0o111);
    });

    it.skipIf(noPython !== null)(`Python's zipfile reads the names, CRCs, sizes, dates and modes (zip64 ${zip64})`, () => {
      const zip = writeZip(`py-${zip64}.zip`, zip64);
      const script = [
        'import json, sys, zipfile',
        'z = zipfile.ZipFile(sys.argv[1])',
        'bad = z.testzip()',
        'print(json.dumps({"bad": bad, "files": [{"name": i.filename, "size": i.file_size, "crc": i.CRC, "mode": i.external_attr >> 16,',
        '  "system": i.create_system, "date": list(i.date_time), "method": i.compress_type, "len": len(z.read(i))} for i in z.infolist()]}))',
      ].join('\n');
      const r = spawnSync('python3', ['-c', script, zip], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const got = JSON.parse(r.stdout) as { bad: string | null; files: Array<{ name: string; size: number; crc: number; mode: number; system: number; date: number[]; method: number; len: number }> };
      expect(got.bad).toBeNull();
      expect(got.files.map((f) => f.name)).toEqual(ENTRIES.map((e) => e.path));
      got.files.forEach((f, i) => {
        const e = ENTRIES[i];
        expect(f.size).toBe(e.bytes.length);
        expect(f.len).toBe(e.bytes.length);
        expect(f.crc).toBe(zlibCrc32(e.bytes));
        expect(f.method).toBe(0);
        expect(f.system).toBe(3);
        expect(f.mode).toBe(0o100000 | (e.mode ?? 0o644));
        expect(f.date).toEqual([2024, 5, 17, 13, 45, 58]);
      });
    });
  }

  it('writes ZIP64 end records only where asked or needed', () => {
    const find = (bytes: Uint8Array, sig: number) => {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
      for (let i = 0; i + 4 <= bytes.length; i++) if (dv.getUint32(i, true) === sig) return true;
      return false;
    };
    const small = [{ path: 'a.txt', bytes: enc.encode('hello\n') }];
    expect(find(zipBytes(small), 0x06064b50)).toBe(false);
    expect(find(zipBytes(small, { zip64: 'always' }), 0x06064b50)).toBe(true);
    expect(find(zipBytes(small, { zip64: 'always' }), 0x07064b50)).toBe(true);
  });
});
