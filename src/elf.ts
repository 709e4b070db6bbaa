/**
 * ELF parsing for dependency discovery, written to read hostile files.
 *
 * Only what the dynamic loader itself looks at is parsed: the ELF header, the
 * program headers, `PT_INTERP` and the `PT_DYNAMIC` array (`DT_NEEDED`,
 * `DT_RPATH`, `DT_RUNPATH`, `DT_SONAME`, `DT_FLAGS_1`, filters, audit).
 * Section headers are ignored on purpose: the loader never reads them, so a
 * file can carry section headers that lie.
 *
 * Hardening: every offset and count is checked against the file size before
 * it is used, with plain `number` arithmetic on values proven to be below
 * 2^53; strings are bounded by `DT_STRSZ`, by the `PT_LOAD` segment that maps
 * them and by {@link MAX_STRING} ({@link MAX_SEARCH_PATH} for RPATH and
 * RUNPATH); the number of dynamic entries and
 * `DT_NEEDED` names is capped. Anything wrong throws an {@link ElfError}
 * naming the file and the problem; nothing else is thrown.
 *
 * Files are read by {@link readElfFileSync} a page at a time, on demand: a
 * 100 MB binary costs a handful of 16 KiB reads, never a whole-file read. The
 * path must `lstat` as a regular file (so a symlink or FIFO is never opened),
 * and the opened file must be that same inode, so a symlink or FIFO swapped in
 * between can neither redirect nor block the read. (Deno's own file API, not
 * `node:fs`: loading the Node compatibility layer costs a login ~25 ms.)
 *
 * @module
 */

import { decodeUtf8Strict } from "./text.ts";
import { errorText, JkError } from "./cli.ts";

/** A malformed, truncated or hostile ELF file (or one that cannot be read). */
export class ElfError extends JkError {
  /**
   * @param file the path or name the bytes came from
   * @param problem what is wrong, e.g. "program header 3 extends past end of file"
   */
  constructor(readonly file: string, readonly problem: string) {
    super(`${file}: ${problem}`);
    this.name = "ElfError";
  }
}

/** `e_ident[EI_CLASS]` values. */
export const ELFCLASS32 = 1;
/** `e_ident[EI_CLASS]` for 64-bit objects. */
export const ELFCLASS64 = 2;
/** `e_type` of a fixed-address executable. */
export const ET_EXEC = 2;
/** `e_type` of a shared object or PIE executable. */
export const ET_DYN = 3;
/** `e_machine` of i386. */
export const EM_386 = 3;
/** `e_machine` of 32-bit ARM. */
export const EM_ARM = 40;
/** `e_machine` of x86-64 (also x32). */
export const EM_X86_64 = 62;
/** `e_machine` of AArch64. */
export const EM_AARCH64 = 183;
/** `DT_FLAGS_1` bit: ignore the cache and default directories for this object's needs. */
export const DF_1_NODEFLIB = 0x800;

/** Longest string accepted from an ELF file (PATH_MAX). */
export const MAX_STRING = 4096;
/** Longest DT_RPATH/DT_RUNPATH accepted: glibc sets no limit, and long Nix-style lists exist. */
export const MAX_SEARCH_PATH = 65536;
/** Most dynamic-array entries read; real objects have well under 100. */
export const MAX_DYNAMIC_ENTRIES = 65536;
/** Most `DT_NEEDED` (plus filter) names accepted from one object. */
export const MAX_NEEDED = 4096;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const PN_XNUM = 0xffff;

const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
const DT_FLAGS_1 = 0x6ffffffb;
const DT_AUDIT = 0x6ffffefc;
const DT_DEPAUDIT = 0x6ffffefb;
const DT_AUXILIARY = 0x7ffffffd;
const DT_FILTER = 0x7fffffff;

/** One program header, with every field below 2^53. */
export interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
}

/** The identification bytes and the first header fields, enough to judge compatibility. */
export interface ElfIdent {
  /** 32 or 64 (`EI_CLASS`). */
  elfClass: 32 | 64;
  /** `EI_DATA` is ELFDATA2LSB. */
  littleEndian: boolean;
  /** `EI_VERSION`; 1 for any valid file. */
  identVersion: number;
  /** `EI_OSABI` (0 System V, 3 GNU/Linux). */
  osabi: number;
  /** `EI_ABIVERSION`. */
  abiVersion: number;
  /** Whether the `EI_PAD` bytes are all zero (glibc refuses the file otherwise). */
  paddingZero: boolean;
  /** `e_type`: {@link ET_EXEC}, {@link ET_DYN}, ... */
  type: number;
  /** `e_machine`: {@link EM_X86_64}, ... */
  machine: number;
  /** `e_version`; 1 for any valid file. */
  version: number;
}

/** What the dynamic loader needs to know about one ELF file. */
export interface ElfInfo extends ElfIdent {
  /** The name the bytes were read from (for messages). */
  file: string;
  /** `e_flags` (ARM float ABI and the like). */
  flags: number;
  /** Every program header, in file order. */
  programHeaders: ProgramHeader[];
  /** `PT_INTERP` as the kernel reads it (up to the first NUL), or null. */
  interpreter: string | null;
  /** Has a `PT_DYNAMIC` segment (false for static executables). */
  dynamic: boolean;
  /** `DT_NEEDED` names, in dynamic-array order. */
  needed: string[];
  /** `DT_FILTER` names (loaded like needed objects). */
  filters: string[];
  /** `DT_AUXILIARY` names (loaded when present). */
  auxiliary: string[];
  /** `DT_RPATH`, or null. The loader ignores it when `runpath` is set. */
  rpath: string | null;
  /** `DT_RUNPATH`, or null. */
  runpath: string | null;
  /** `DT_SONAME`, or null. */
  soname: string | null;
  /** `DT_AUDIT`, or null (audit modules run inside the process). */
  audit: string | null;
  /** `DT_DEPAUDIT`, or null. */
  depaudit: string | null;
  /** `DT_FLAGS_1`, 0 when absent. */
  flags1: number;
  /** `DT_FLAGS_1` has `DF_1_NODEFLIB`. */
  nodeflib: boolean;
}

/** A script's `#!` line as the kernel reads it. */
export interface Shebang {
  /** The interpreter path (may be relative, which the kernel resolves against the cwd). */
  interpreter: string;
  /** Everything after the interpreter, as one argument (the kernel does not split it). */
  argument: string | null;
}

/** Random access to the bytes of one file, bounds already checked by the caller. */
interface ByteSource {
  readonly size: number;
  /** Exactly `length` bytes at `offset`; the caller has checked `offset + length <= size`. */
  read(offset: number, length: number): Uint8Array;
}

class BytesSource implements ByteSource {
  constructor(private readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  read(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
}

/** Page size of the on-demand file reader. */
const PAGE = 16384;
/** Pages kept per file; the cache is dropped when it grows past this. */
const MAX_PAGES = 256;

/**
 * An open regular file, as {@link inspectFileSync} reads it: its size and a
 * positional read. {@link openRegularFile} is the default; tools with FFI pass
 * one that opens with `O_NOFOLLOW | O_NONBLOCK` (src/jailfs.ts `openHostReader`).
 */
export interface OpenedFile {
  readonly size: number;
  /** Reads into `into` at `offset`; returns the count (0 at end of file). */
  pread(into: Uint8Array, offset: number): number;
  close(): void;
}

/** Opens `path` for {@link inspectFileSync}; throws if it is not a regular file. */
export type FileOpener = (path: string) => OpenedFile;

/** Reads a file with `pread`, one cached page at a time. */
class FileSource implements ByteSource {
  readonly #pages = new Map<number, Uint8Array>();
  constructor(
    private readonly file: OpenedFile,
    readonly size: number,
    private readonly name: string,
  ) {}

  read(offset: number, length: number): Uint8Array {
    if (length === 0) return new Uint8Array(0);
    const first = Math.floor(offset / PAGE);
    const last = Math.floor((offset + length - 1) / PAGE);
    if (first === last) {
      const start = offset - first * PAGE;
      return this.#page(first).subarray(start, start + length);
    }
    const out = new Uint8Array(length);
    let done = 0;
    for (let p = first; p <= last; p++) {
      const page = this.#page(p);
      const from = p === first ? offset - first * PAGE : 0;
      const take = Math.min(page.length - from, length - done);
      out.set(page.subarray(from, from + take), done);
      done += take;
    }
    return out;
  }

  #page(index: number): Uint8Array {
    const cached = this.#pages.get(index);
    if (cached) return cached;
    const start = index * PAGE;
    const want = Math.min(PAGE, this.size - start);
    const buf = new Uint8Array(want);
    let got = 0;
    while (got < want) {
      const n = this.file.pread(buf.subarray(got), start + got);
      // The size came from fstat; a short read means the file shrank under us.
      if (n <= 0) throw new ElfError(this.name, "file changed size while being read");
      got += n;
    }
    if (this.#pages.size >= MAX_PAGES) this.#pages.clear();
    this.#pages.set(index, buf);
    return buf;
  }
}

/** Field reader over one bounded chunk, in the file's byte order. */
class Fields {
  readonly #view: DataView;
  constructor(
    bytes: Uint8Array,
    private readonly le: boolean,
    private readonly file: string,
  ) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u16(at: number): number {
    return this.#view.getUint16(at, this.le);
  }
  u32(at: number): number {
    return this.#view.getUint32(at, this.le);
  }
  /** An unsigned 64-bit field; values of 2^53 and above are refused, naming `what`. */
  u64(at: number, what: string): number {
    const lo = this.#view.getUint32(at + (this.le ? 0 : 4), this.le);
    const hi = this.#view.getUint32(at + (this.le ? 4 : 0), this.le);
    if (hi >= 0x200000) throw new ElfError(this.file, `${what} is out of range`);
    return hi * 0x100000000 + lo;
  }
  /** A 64-bit field known only by its low 32 bits, and whether the high half is zero. */
  u64Low(at: number): { low: number; highZero: boolean } {
    const lo = this.#view.getUint32(at + (this.le ? 0 : 4), this.le);
    const hi = this.#view.getUint32(at + (this.le ? 4 : 0), this.le);
    return { low: lo, highZero: hi === 0 };
  }
}

/**
 * Whether `bytes` start with the ELF magic `\x7fELF`.
 *
 * @example
 * ```ts
 * isElf(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2])); // true
 * ```
 */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c &&
    bytes[3] === 0x46;
}

/**
 * Parses the identification bytes and `e_type`/`e_machine`/`e_version` (the
 * first 24 bytes), without looking further. This is what the loader checks
 * before deciding whether a candidate library is for another architecture
 * (skipped) or broken (an error).
 *
 * @example
 * ```ts
 * const id = readElfIdent(await Deno.readFile("/bin/ls"), "/bin/ls");
 * id.elfClass; // 64
 * ```
 */
export function readElfIdent(bytes: Uint8Array, name: string): ElfIdent {
  if (!isElf(bytes)) throw new ElfError(name, "not an ELF file (bad magic)");
  if (bytes.length < 24) throw new ElfError(name, "truncated ELF header");
  const cls = bytes[4];
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) {
    throw new ElfError(name, `unknown ELF class ${cls}`);
  }
  const data = bytes[5];
  if (data !== 1 && data !== 2) throw new ElfError(name, `unknown ELF data encoding ${data}`);
  const le = data === 1;
  const f = new Fields(bytes.subarray(0, 24), le, name);
  let paddingZero = true;
  for (let i = 9; i < 16; i++) if (bytes[i] !== 0) paddingZero = false;
  return {
    elfClass: cls === ELFCLASS64 ? 64 : 32,
    littleEndian: le,
    identVersion: bytes[6],
    osabi: bytes[7],
    abiVersion: bytes[8],
    paddingZero,
    type: f.u16(16),
    machine: f.u16(18),
    version: f.u32(20),
  };
}

/** Throws unless `[offset, offset+length)` lies inside the file. */
function need(src: ByteSource, file: string, offset: number, length: number, what: string) {
  if (offset < 0 || length < 0 || offset > src.size || length > src.size - offset) {
    throw new ElfError(file, `${what} extends past end of file`);
  }
}

/** Reads a NUL-terminated string within `limit` bytes, of at most `longest` bytes. */
function cString(
  src: ByteSource,
  file: string,
  offset: number,
  limit: number,
  what: string,
  longest = MAX_STRING,
): string {
  const max = Math.min(limit, longest + 1, src.size - offset);
  if (offset < 0 || max <= 0) throw new ElfError(file, `${what} lies outside the file`);
  // Read in small steps: most names are short, and the string table may be large.
  let step = Math.min(max, 256);
  for (;;) {
    const chunk = src.read(offset, step);
    const nul = chunk.indexOf(0);
    if (nul >= 0) {
      try {
        return decodeUtf8Strict(chunk.subarray(0, nul));
      } catch {
        throw new ElfError(file, `${what} is not valid UTF-8`);
      }
    }
    if (step >= max) {
      throw new ElfError(
        file,
        max > longest ? `${what} is longer than ${longest} bytes` : `${what} is unterminated`,
      );
    }
    step = Math.min(max, step * 4);
  }
}

function parseSource(src: ByteSource, file: string): ElfInfo {
  const head = src.read(0, Math.min(src.size, 64));
  const ident = readElfIdent(head, file);
  const is64 = ident.elfClass === 64;
  const ehsize = is64 ? 64 : 52;
  need(src, file, 0, ehsize, "ELF header");
  const h = new Fields(head, ident.littleEndian, file);
  const phoff = is64 ? h.u64(32, "e_phoff") : h.u32(28);
  const flags = h.u32(is64 ? 48 : 36);
  const phentsize = h.u16(is64 ? 54 : 42);
  const phnum = h.u16(is64 ? 56 : 44);

  const programHeaders: ProgramHeader[] = [];
  if (phnum > 0) {
    if (phnum === PN_XNUM) throw new ElfError(file, "extended program header count (PN_XNUM)");
    const expected = is64 ? 56 : 32;
    if (phentsize !== expected) {
      throw new ElfError(file, `e_phentsize is ${phentsize}, expected ${expected}`);
    }
    need(src, file, phoff, phnum * phentsize, "program header table");
    const table = new Fields(src.read(phoff, phnum * phentsize), ident.littleEndian, file);
    for (let i = 0; i < phnum; i++) {
      const b = i * phentsize;
      const what = (field: string) => `program header ${i} ${field}`;
      programHeaders.push(
        is64
          ? {
            type: table.u32(b),
            flags: table.u32(b + 4),
            offset: table.u64(b + 8, what("p_offset")),
            vaddr: table.u64(b + 16, what("p_vaddr")),
            filesz: table.u64(b + 32, what("p_filesz")),
            memsz: table.u64(b + 40, what("p_memsz")),
          }
          : {
            type: table.u32(b),
            offset: table.u32(b + 4),
            vaddr: table.u32(b + 8),
            filesz: table.u32(b + 16),
            memsz: table.u32(b + 20),
            flags: table.u32(b + 24),
          },
      );
    }
  }

  const interps = programHeaders.filter((p) => p.type === PT_INTERP);
  const dynamics = programHeaders.filter((p) => p.type === PT_DYNAMIC);
  // The kernel honours the first PT_INTERP and glibc the last PT_DYNAMIC; a
  // file where the two readings could differ is refused rather than guessed.
  if (interps.length > 1) throw new ElfError(file, "more than one PT_INTERP");
  if (dynamics.length > 1) throw new ElfError(file, "more than one PT_DYNAMIC");

  let interpreter: string | null = null;
  if (interps.length === 1) {
    const p = interps[0];
    // Same limits as the kernel's load_elf_binary: 2 <= size <= PATH_MAX, NUL at the end.
    if (p.filesz < 2 || p.filesz > MAX_STRING) {
      throw new ElfError(file, `PT_INTERP size ${p.filesz} is out of range`);
    }
    need(src, file, p.offset, p.filesz, "PT_INTERP");
    const raw = src.read(p.offset, p.filesz);
    if (raw[raw.length - 1] !== 0) throw new ElfError(file, "PT_INTERP is not NUL-terminated");
    interpreter = cString(src, file, p.offset, p.filesz, "PT_INTERP");
    if (interpreter === "") throw new ElfError(file, "PT_INTERP is empty");
  }

  const info: ElfInfo = {
    ...ident,
    file,
    flags,
    programHeaders,
    interpreter,
    dynamic: dynamics.length === 1,
    needed: [],
    filters: [],
    auxiliary: [],
    rpath: null,
    runpath: null,
    soname: null,
    audit: null,
    depaudit: null,
    flags1: 0,
    nodeflib: false,
  };
  if (dynamics.length === 1) readDynamic(src, file, info, dynamics[0], is64);
  return info;
}

/** Maps a virtual address to a file offset through the PT_LOAD segment containing it. */
function vaddrToOffset(
  loads: ProgramHeader[],
  addr: number,
): { offset: number; available: number } | null {
  for (const p of loads) {
    if (addr >= p.vaddr && addr - p.vaddr < p.filesz) {
      return { offset: p.offset + (addr - p.vaddr), available: p.filesz - (addr - p.vaddr) };
    }
  }
  return null;
}

function readDynamic(
  src: ByteSource,
  file: string,
  info: ElfInfo,
  dyn: ProgramHeader,
  is64: boolean,
): void {
  const loads = info.programHeaders.filter((p) => p.type === PT_LOAD);
  // The loader reads the dynamic array at p_vaddr, through the PT_LOAD mapping;
  // readelf reads it at p_offset. Refuse files where the two disagree.
  let offset = dyn.offset;
  if (loads.length > 0) {
    const mapped = vaddrToOffset(loads, dyn.vaddr);
    if (!mapped || mapped.offset !== dyn.offset) {
      throw new ElfError(file, "PT_DYNAMIC offset does not match its PT_LOAD mapping");
    }
  }
  const entsize = is64 ? 16 : 8;
  const count = Math.floor(dyn.filesz / entsize);
  if (count > MAX_DYNAMIC_ENTRIES) {
    throw new ElfError(file, `PT_DYNAMIC has ${count} entries (limit ${MAX_DYNAMIC_ENTRIES})`);
  }
  need(src, file, offset, count * entsize, "PT_DYNAMIC");
  const table = new Fields(src.read(offset, count * entsize), info.littleEndian, file);
  offset = 0;

  const neededAt: number[] = [];
  const filterAt: number[] = [];
  const auxAt: number[] = [];
  let strtab: number | null = null;
  let strsz: number | null = null;
  let soname: number | null = null;
  let rpath: number | null = null;
  let runpath: number | null = null;
  let audit: number | null = null;
  let depaudit: number | null = null;
  for (let i = 0; i < count; i++) {
    const b = i * entsize;
    let tag: number;
    if (is64) {
      const t = table.u64Low(b);
      // Every tag this parser knows fits in 32 bits; skip the others unread.
      if (!t.highZero) continue;
      tag = t.low;
    } else {
      tag = table.u32(b);
    }
    if (tag === DT_NULL) break;
    const val = () => (is64 ? table.u64(b + 8, `dynamic entry ${i} value`) : table.u32(b + 4));
    switch (tag) {
      case DT_NEEDED:
        neededAt.push(val());
        break;
      case DT_FILTER:
        filterAt.push(val());
        break;
      case DT_AUXILIARY:
        auxAt.push(val());
        break;
      // Single-valued tags: the last one wins, as in glibc's get-dynamic-info.
      case DT_STRTAB:
        strtab = val();
        break;
      case DT_STRSZ:
        strsz = val();
        break;
      case DT_SONAME:
        soname = val();
        break;
      case DT_RPATH:
        rpath = val();
        break;
      case DT_RUNPATH:
        runpath = val();
        break;
      case DT_AUDIT:
        audit = val();
        break;
      case DT_DEPAUDIT:
        depaudit = val();
        break;
      case DT_FLAGS_1: {
        // Only the low bits carry defined flags.
        info.flags1 = is64 ? table.u64Low(b + 8).low : table.u32(b + 4);
        break;
      }
    }
    if (neededAt.length + filterAt.length + auxAt.length > MAX_NEEDED) {
      throw new ElfError(file, `more than ${MAX_NEEDED} DT_NEEDED/filter entries`);
    }
  }
  info.nodeflib = (info.flags1 & DF_1_NODEFLIB) !== 0;

  const anyString = neededAt.length + filterAt.length + auxAt.length > 0 || soname !== null ||
    rpath !== null || runpath !== null || audit !== null || depaudit !== null;
  if (!anyString) return;
  if (strtab === null) throw new ElfError(file, "dynamic section has strings but no DT_STRTAB");
  const table0 = loads.length > 0 ? vaddrToOffset(loads, strtab) : {
    offset: strtab,
    available: src.size - Math.min(strtab, src.size),
  };
  if (!table0) throw new ElfError(file, "DT_STRTAB is not inside any PT_LOAD segment");
  let limit = Math.min(table0.available, src.size - Math.min(table0.offset, src.size));
  if (strsz !== null) limit = Math.min(limit, strsz);
  const str = (at: number, what: string, longest = MAX_STRING) => {
    if (at >= limit) throw new ElfError(file, `${what} string offset ${at} is outside DT_STRTAB`);
    return cString(src, file, table0.offset + at, limit - at, what, longest);
  };
  info.needed = neededAt.map((o) => str(o, "DT_NEEDED"));
  info.filters = filterAt.map((o) => str(o, "DT_FILTER"));
  info.auxiliary = auxAt.map((o) => str(o, "DT_AUXILIARY"));
  if (soname !== null) info.soname = str(soname, "DT_SONAME");
  if (rpath !== null) info.rpath = str(rpath, "DT_RPATH", MAX_SEARCH_PATH);
  if (runpath !== null) info.runpath = str(runpath, "DT_RUNPATH", MAX_SEARCH_PATH);
  // glibc: "If both RUNPATH and RPATH are given, the latter is ignored." Both
  // are still reported here; the resolver applies the rule.
  if (audit !== null) info.audit = str(audit, "DT_AUDIT");
  if (depaudit !== null) info.depaudit = str(depaudit, "DT_DEPAUDIT");
}

/**
 * Parses an ELF file held in memory. Throws {@link ElfError} for anything
 * malformed; never anything else.
 *
 * @example
 * ```ts
 * const info = parseElf(await Deno.readFile("/bin/ls"), "/bin/ls");
 * info.interpreter; // "/lib64/ld-linux-x86-64.so.2"
 * info.needed;      // ["libselinux.so.1", "libc.so.6"]
 * ```
 */
export function parseElf(bytes: Uint8Array, name: string): ElfInfo {
  return parseSource(new BytesSource(bytes), name);
}

/** Result of {@link inspectFileSync}: the first bytes, and the ELF parse when it is one. */
export interface FileInspection {
  /** File size from `fstat`. */
  size: number;
  /** The first up to 256 bytes (enough for a `#!` line and the ELF identification). */
  head: Uint8Array;
  /** The parsed ELF, when the file starts with the ELF magic and parses. */
  elf: ElfInfo | null;
  /** Why an ELF-magic file did not parse. */
  elfError: ElfError | null;
}

export function inspectFileSync(
  path: string,
  open: FileOpener = openRegularFile,
): FileInspection {
  let file: OpenedFile;
  try {
    file = open(path);
  } catch (e) {
    if (e instanceof ElfError) throw e;
    throw new ElfError(path, errorText(e));
  }
  const size = file.size;
  try {
    const src = new FileSource(file, size, path);
    const head = src.read(0, Math.min(size, 256)).slice();
    if (!isElf(head)) return { size, head, elf: null, elfError: null };
    try {
      return { size, head, elf: parseSource(src, path), elfError: null };
    } catch (e) {
      if (e instanceof ElfError) return { size, head, elf: null, elfError: e };
      throw e;
    }
  } catch (e) {
    if (e instanceof ElfError) throw e;
    throw new ElfError(path, errorText(e));
  } finally {
    file.close();
  }
}

/**
 * The default {@link FileOpener}, with Deno's file API (no FFI needed): the
 * path must `lstat` as a regular file and the opened file must be that inode,
 * so a symlink swapped in is caught, not read. Deno cannot open with
 * `O_NONBLOCK`: a FIFO swapped in between `lstat` and open would block it, so
 * tools that read paths others can write use an FFI opener instead.
 *
 * @example
 * ```ts
 * const f = openRegularFile("/usr/bin/ls");
 * try { console.log(f.size); } finally { f.close(); }
 * ```
 */
export function openRegularFile(path: string): OpenedFile {
  const before = Deno.lstatSync(path);
  if (before.isSymlink) throw new ElfError(path, "is a symlink");
  if (!before.isFile) throw new ElfError(path, "not a regular file");
  const file = Deno.openSync(path, { read: true });
  const after = file.statSync();
  if (after.dev !== before.dev || after.ino !== before.ino) {
    file.close();
    throw new ElfError(path, "file changed while being opened");
  }
  return {
    size: after.size,
    pread(into, offset) {
      file.seekSync(offset, Deno.SeekMode.Start);
      return file.readSync(into) ?? 0;
    },
    close: () => file.close(),
  };
}

/**
 * Reads and parses the ELF file at `path` (see {@link inspectFileSync} for how
 * it is opened). Throws {@link ElfError} if it cannot be read, is not ELF, or
 * is malformed.
 *
 * @example
 * ```ts
 * readElfFileSync("/usr/bin/ssh").needed.includes("libc.so.6"); // true
 * ```
 */
export function readElfFileSync(path: string): ElfInfo {
  const r = inspectFileSync(path);
  if (r.elfError) throw r.elfError;
  if (!r.elf) throw new ElfError(path, "not an ELF file (bad magic)");
  return r.elf;
}

/**
 * Promise form of {@link readElfFileSync}, for callers in async code.
 *
 * @example
 * ```ts
 * const info = await readElfFile("/bin/ls");
 * console.log(info.machine === EM_X86_64);
 * ```
 */
export function readElfFile(path: string): Promise<ElfInfo> {
  try {
    return Promise.resolve(readElfFileSync(path));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Linux reads at most this many bytes of a script to find its `#!` line. */
const BINPRM_BUF_SIZE = 256;

/**
 * Parses a script's `#!` line the way Linux's binfmt_script does: the
 * interpreter is the first word, and the rest of the line (trimmed) is passed
 * as a single optional argument. Returns null when there is no `#!`, no
 * interpreter, or the interpreter name does not end inside the first 256
 * bytes (the kernel refuses such a script).
 *
 * @example
 * ```ts
 * readShebang(new TextEncoder().encode("#!/usr/bin/perl -w\nprint 1;\n"));
 * // { interpreter: "/usr/bin/perl", argument: "-w" }
 * ```
 */
export function readShebang(bytes: Uint8Array): Shebang | null {
  if (bytes.length < 2 || bytes[0] !== 0x23 || bytes[1] !== 0x21) return null;
  // The kernel reads 256 bytes into a zeroed buffer and keeps the last byte for a NUL.
  const buf = new Uint8Array(BINPRM_BUF_SIZE);
  buf.set(bytes.subarray(0, BINPRM_BUF_SIZE));
  const last = BINPRM_BUF_SIZE - 1;
  const spacetab = (c: number) => c === 0x20 || c === 0x09;
  const terminator = (c: number) => spacetab(c) || c === 0;
  const nonSpacetab = (from: number, to: number) => {
    for (let i = from; i < to; i++) if (!spacetab(buf[i])) return i;
    return -1;
  };
  const nextTerminator = (from: number, to: number) => {
    for (let i = from; i < to; i++) if (terminator(buf[i])) return i;
    return -1;
  };
  let end = buf.indexOf(0x0a);
  if (end < 0) {
    const first = nonSpacetab(2, last);
    // Without a newline the interpreter name must visibly end inside the buffer.
    if (first < 0 || nextTerminator(first, last) < 0) return null;
    end = last;
  }
  while (end > 2 && spacetab(buf[end - 1])) end--;
  const name = nonSpacetab(2, end);
  if (name < 0) return null;
  const sep = nextTerminator(name, end);
  const nameEnd = sep < 0 ? end : sep;
  if (nameEnd === name) return null;
  const decode = (from: number, to: number) => new TextDecoder().decode(buf.subarray(from, to));
  let argument: string | null = null;
  if (sep >= 0 && buf[sep] !== 0) {
    const arg = nonSpacetab(sep, end);
    if (arg >= 0) {
      // The argument is a C string: it stops at a NUL.
      const nul = buf.subarray(arg, end).indexOf(0);
      const argEnd = nul < 0 ? end : arg + nul;
      if (argEnd > arg) argument = decode(arg, argEnd);
    }
  }
  return { interpreter: decode(name, nameEnd), argument };
}
