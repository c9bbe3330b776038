// A small zip writer for folders the lab hands out as one download (the `kiln scale`
// folder, issue 21): the STORE method (the bytes as they are: safetensors and token ids
// hardly compress, and storing keeps the writer small and fast), a CRC-32 per file, UTF-8
// names, Unix mode bits in the external attributes (so `unzip` keeps run.sh executable),
// and ZIP64 records where a size or an offset passes 4 GiB (or always, for tests).
//
// The archive is returned as parts (headers between the files' own bytes, which are not
// copied), to hand to `new Blob(parts)`; zipBytes() joins them for tests and small uses.
// Format: PKWARE's APPNOTE.TXT 6.3.x, sections 4.3 (layout), 4.4 (fields) and 4.5.3 (ZIP64).

/** One file of the archive. */
export interface ZipEntry {
  /** '/'-separated path inside the archive (no leading '/', no '..'). */
  path: string;
  bytes: Uint8Array;
  /** Unix permission bits (default 0o644); 0o755 for scripts. */
  mode?: number;
}

export interface ZipOptions {
  /** The files' modification time (default: now). DOS time: local time, 2-second steps, 1980 to 2107. */
  date?: Date;
  /** 'auto' (default): ZIP64 records only where a size, an offset or the count needs them; 'always': every entry and the end (for tests). */
  zip64?: 'auto' | 'always';
  /** Called as the CRCs are computed: bytes done of all the files' bytes. */
  onProgress?(done: number, total: number): void;
}

// ---- CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), slicing by 8 ----

const CRC_TABLES: Uint32Array = (() => {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  // Table k: the CRC of byte n followed by k zero bytes, so 8 bytes are folded per turn.
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/**
 * The CRC-32 of `bytes` (zip's, zlib's, PNG's): crc32("123456789") is 0xCBF43926. Pass the
 * CRC of the bytes before to continue it over a file read in pieces.
 */
export function crc32(bytes: Uint8Array, crc = 0): number {
  const t = CRC_TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  const n = bytes.length;
  const end8 = n - (n % 8);
  while (i < end8) {
    c ^= bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    c = t[1792 + (c & 0xff)] ^ t[1536 + ((c >>> 8) & 0xff)] ^ t[1280 + ((c >>> 16) & 0xff)] ^ t[1024 + (c >>> 24)]
      ^ t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^ t[256 + bytes[i + 6]] ^ t[bytes[i + 7]];
    i += 8;
  }
  while (i < n) c = t[(c ^ bytes[i++]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// ---- the archive ----

const U32 = 0xffffffff;
const U16 = 0xffff;
/** Version 2.0 (STORE, folders), 4.5 (ZIP64). */
const V20 = 20;
const V45 = 45;
/** "Version made by": high byte 3 = Unix, so readers take the external attributes' high half as st_mode. */
const MADE_BY_UNIX = 3 << 8;
/** General purpose flag bit 11: the name is UTF-8. */
const UTF8_FLAG = 0x0800;
const S_IFREG = 0o100000;
/** CRC progress is reported about this often (bytes). */
const PROGRESS_STEP = 16 * 1024 * 1024;

/** A path a zip may hold: relative, '/'-separated, no empty, '.' or '..' parts. */
function checkPath(path: string): void {
  const parts = path.split('/');
  if (!path || path.startsWith('/') || path.includes('\\') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new Error(`zip: ${JSON.stringify(path.slice(0, 80))} is not a relative '/'-separated file path`);
  }
}

/** DOS date and time (local): [time, date]. */
function dosDateTime(d: Date): [number, number] {
  const year = Math.min(2107, Math.max(1980, d.getFullYear()));
  if (year !== d.getFullYear()) return [0, (year - 1980) << 9 | 1 << 5 | 1];
  const time = (d.getHours() << 11) | (d.getMinutes() << 5) | (d.getSeconds() >> 1);
  const date = ((year - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate();
  return [time, date];
}

/** A little-endian byte writer over a fresh buffer. */
class Writer {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;
  private at = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer);
  }

  u16(v: number): this {
    this.dv.setUint16(this.at, v, true);
    this.at += 2;
    return this;
  }

  u32(v: number): this {
    this.dv.setUint32(this.at, v >>> 0, true);
    this.at += 4;
    return this;
  }

  /** A whole number below 2^53 as 8 bytes. */
  u64(v: number): this {
    this.dv.setUint32(this.at, v % 2 ** 32, true);
    this.dv.setUint32(this.at + 4, Math.floor(v / 2 ** 32), true);
    this.at += 8;
    return this;
  }

  raw(b: Uint8Array): this {
    this.bytes.set(b, this.at);
    this.at += b.length;
    return this;
  }

  done(): Uint8Array {
    if (this.at !== this.bytes.length) throw new Error(`zip: wrote ${this.at} of ${this.bytes.length} header bytes`);
    return this.bytes;
  }
}

interface Planned {
  name: Uint8Array;
  bytes: Uint8Array;
  mode: number;
  crc: number;
  offset: number;
  /** The sizes need ZIP64 (or zip64 'always'). */
  bigSize: boolean;
  /** The local header's offset needs ZIP64 (or zip64 'always'). */
  bigOffset: boolean;
}

/**
 * The zip archive of `entries` as parts to concatenate (new Blob(parts) in a browser):
 * each file's local header, its bytes (the entry's own array, not a copy), then the
 * central directory and its end records.
 */
export function zipParts(entries: readonly ZipEntry[], opts: ZipOptions = {}): Uint8Array[] {
  const always = opts.zip64 === 'always';
  const [time, date] = dosDateTime(opts.date ?? new Date());
  const enc = new TextEncoder();
  const seen = new Set<string>();
  const total = entries.reduce((s, e) => s + e.bytes.length, 0);
  let done = 0;
  let reported = 0;
  const parts: Uint8Array[] = [];
  const planned: Planned[] = [];
  let offset = 0;

  for (const e of entries) {
    checkPath(e.path);
    if (seen.has(e.path)) throw new Error(`zip: ${JSON.stringify(e.path.slice(0, 80))} is given twice`);
    seen.add(e.path);
    const name = enc.encode(e.path);
    if (name.length > U16) throw new Error(`zip: the path ${JSON.stringify(e.path.slice(0, 80))}… is over 65535 bytes`);
    // The CRC in pieces, so a large file reports progress as it goes.
    let crc = 0;
    for (let at = 0; at < e.bytes.length; at += PROGRESS_STEP) {
      const piece = e.bytes.subarray(at, Math.min(e.bytes.length, at + PROGRESS_STEP));
      crc = crc32(piece, crc);
      done += piece.length;
      if (opts.onProgress && done - reported >= PROGRESS_STEP) {
        reported = done;
        opts.onProgress(done, total);
      }
    }
    const p: Planned = {
      name, bytes: e.bytes, mode: (e.mode ?? 0o644) & 0o7777, crc, offset,
      bigSize: always || e.bytes.length >= U32, bigOffset: always || offset >= U32,
    };
    planned.push(p);
    // Local header: sizes in a ZIP64 extra field (both of them, as 4.5.3 asks of a local header) when they need it.
    const extra = p.bigSize ? 20 : 0;
    const local = new Writer(30 + name.length + extra)
      .u32(0x04034b50).u16(p.bigSize ? V45 : V20).u16(UTF8_FLAG).u16(0).u16(time).u16(date).u32(crc)
      .u32(p.bigSize ? U32 : e.bytes.length).u32(p.bigSize ? U32 : e.bytes.length).u16(name.length).u16(extra)
      .raw(name);
    if (p.bigSize) local.u16(0x0001).u16(16).u64(e.bytes.length).u64(e.bytes.length);
    parts.push(local.done(), e.bytes);
    offset += 30 + name.length + extra + e.bytes.length;
  }
  opts.onProgress?.(total, total);

  // The central directory: a ZIP64 extra holds, in this order, only the fields set to 0xFFFFFFFF.
  const cdStart = offset;
  let cdSize = 0;
  for (const p of planned) {
    const fields = (p.bigSize ? 2 : 0) + (p.bigOffset ? 1 : 0);
    const extra = fields ? 4 + 8 * fields : 0;
    const w = new Writer(46 + p.name.length + extra)
      .u32(0x02014b50).u16(MADE_BY_UNIX | (fields ? V45 : V20)).u16(fields ? V45 : V20).u16(UTF8_FLAG).u16(0).u16(time).u16(date).u32(p.crc)
      .u32(p.bigSize ? U32 : p.bytes.length).u32(p.bigSize ? U32 : p.bytes.length).u16(p.name.length).u16(extra).u16(0)
      .u16(0).u16(0).u32(((S_IFREG | p.mode) << 16) >>> 0).u32(p.bigOffset ? U32 : p.offset)
      .raw(p.name);
    if (fields) {
      w.u16(0x0001).u16(8 * fields);
      if (p.bigSize) w.u64(p.bytes.length).u64(p.bytes.length);
      if (p.bigOffset) w.u64(p.offset);
    }
    const bytes = w.done();
    parts.push(bytes);
    cdSize += bytes.length;
  }

  const count = planned.length;
  const big = always || count >= U16 || cdStart >= U32 || cdSize >= U32 || planned.some((p) => p.bigSize || p.bigOffset);
  if (big) {
    const eocd64At = cdStart + cdSize;
    parts.push(
      new Writer(56).u32(0x06064b50).u64(44).u16(MADE_BY_UNIX | V45).u16(V45).u32(0).u32(0).u64(count).u64(count).u64(cdSize).u64(cdStart).done(),
      new Writer(20).u32(0x07064b50).u32(0).u64(eocd64At).u32(1).done(),
    );
  }
  // The classic end record: a field too small for its value says 0xFFFF(FFFF), and the ZIP64 record holds it.
  const n16 = always || count >= U16 ? U16 : count;
  parts.push(
    new Writer(22).u32(0x06054b50).u16(0).u16(0).u16(n16).u16(n16)
      .u32(always || cdSize >= U32 ? U32 : cdSize).u32(always || cdStart >= U32 ? U32 : cdStart).u16(0).done(),
  );
  return parts;
}

/** The archive as one array (tests, small folders). */
export function zipBytes(entries: readonly ZipEntry[], opts: ZipOptions = {}): Uint8Array {
  const parts = zipParts(entries, opts);
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
