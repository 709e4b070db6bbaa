/**
 * Readers for the dynamic loader's configuration: `/etc/ld.so.cache` (the
 * binary cache the loader consults) and `/etc/ld.so.conf` (the text file
 * ldconfig builds the cache from; the loader itself never reads it).
 *
 * Both may come from inside a jail, so both are parsed as hostile input:
 * every count and offset is checked against the file size, strings must be
 * NUL-terminated inside the file, the cache file size is capped, and
 * `include` recursion in ld.so.conf is bounded and cycle-checked. Problems
 * throw {@link LdCacheError} or {@link LdSoConfError}, never anything else.
 *
 * Cache layout (glibc `sysdeps/generic/dl-cache.h`): an optional old-format
 * table (`ld.so-1.7.0`, 12-byte entries), then the new header
 * `glibc-ld.so.cache1.1` (48 bytes), `nlibs` 24-byte entries
 * `{int32 flags; uint32 key, value, osversion; uint64 hwcap}` and the string
 * table. Entry strings are offsets from the new header; the extension
 * directory (glibc-hwcaps subdirectory names, generator) uses offsets from the
 * start of the file.
 *
 * @module
 */

import { normalize } from "./paths.ts";
import { errorText, JkError } from "./cli.ts";
import { decodeUtf8Strict } from "./text.ts";

/** A malformed or unreadable `ld.so.cache`. */
export class LdCacheError extends JkError {
  /**
   * @param file the cache path (or name of the bytes)
   * @param problem what is wrong
   */
  constructor(readonly file: string, readonly problem: string) {
    super(`${file}: ${problem}`);
    this.name = "LdCacheError";
  }
}

/** An unreadable `ld.so.conf`, or an include loop in it. */
export class LdSoConfError extends JkError {
  /**
   * @param file the file concerned
   * @param problem what is wrong
   */
  constructor(readonly file: string, readonly problem: string) {
    super(`${file}: ${problem}`);
    this.name = "LdSoConfError";
  }
}

/** Entry type: a glibc (libc6) ELF object. */
export const FLAG_ELF_LIBC6 = 0x0003;
/** Entry type: a generic ELF object. */
export const FLAG_ELF = 0x0001;
/** Mask of the type bits of an entry's flags. */
export const FLAG_TYPE_MASK = 0x00ff;
/** Mask of the ABI/architecture bits of an entry's flags. */
export const FLAG_REQUIRED_MASK = 0xff00;
/** `hwcap` bit meaning "the low 32 bits index the glibc-hwcaps subdirectory list". */
export const DL_CACHE_HWCAP_EXTENSION = 1n << 62n;

/** Largest cache file read; real ones are tens of KiB. */
export const MAX_CACHE_SIZE = 64 * 1024 * 1024;

const OLD_MAGIC = "ld.so-1.7.0";
const NEW_MAGIC = "glibc-ld.so.cache1.1";
const OLD_HEADER = 16; // magic[11] + pad + uint32 nlibs
const OLD_ENTRY = 12;
const NEW_HEADER = 48;
const NEW_ENTRY = 24;
const EXTENSION_MAGIC = 0xeaa42174;
const EXT_GENERATOR = 0;
const EXT_GLIBC_HWCAPS = 1;
const MAX_NAME = 4096;

/** One library entry of the cache. */
export interface LdCacheEntry {
  /** The key: a SONAME such as `libc.so.6`. */
  name: string;
  /** The full path the loader opens. */
  path: string;
  /** Type and ABI bits (`FLAG_*`). */
  flags: number;
  /** Required OS version (unused by modern glibc). */
  osVersion: number;
  /** Raw hwcap field (0 for the baseline entry). */
  hwcap: bigint;
  /** The glibc-hwcaps subdirectory (e.g. `x86-64-v3`) when the entry is a hwcaps variant. */
  hwcapsSubdir: string | null;
}

/** A parsed `ld.so.cache`. */
export interface LdCache {
  /** Name given to the parser. */
  file: string;
  /** Entries in file order (ldconfig sorts them for binary search). */
  entries: LdCacheEntry[];
  /** glibc-hwcaps subdirectory names from the extension section. */
  hwcapsSubdirs: string[];
  /** Generator string (e.g. "ldconfig (GNU libc) stable release version 2.36"), if present. */
  generator: string | null;
  /** Which tables were present. */
  format: "new" | "old+new" | "old";
}

function asciiAt(bytes: Uint8Array, at: number, text: string): boolean {
  if (at + text.length > bytes.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** NUL-terminated string at `at` within `[0, end)`. */
function cString(bytes: Uint8Array, at: number, end: number, file: string, what: string): string {
  if (at < 0 || at >= end) throw new LdCacheError(file, `${what} offset ${at} is out of range`);
  const stop = Math.min(end, at + MAX_NAME + 1);
  const nul = bytes.subarray(at, stop).indexOf(0);
  if (nul < 0) throw new LdCacheError(file, `${what} at offset ${at} is unterminated`);
  try {
    return decodeUtf8Strict(bytes.subarray(at, at + nul));
  } catch {
    throw new LdCacheError(file, `${what} at offset ${at} is not valid UTF-8`);
  }
}

/**
 * Parses the bytes of an `ld.so.cache` (new format, optionally preceded by the
 * old table; old-only caches are read too). The byte order comes from the
 * header's endianness flag, so a big-endian cache is read correctly too.
 * Throws {@link LdCacheError} on any inconsistency.
 *
 * @example
 * ```ts
 * const cache = parseLdCache(await Deno.readFile("/etc/ld.so.cache"), "/etc/ld.so.cache");
 * cache.entries.find((e) => e.name === "libc.so.6")?.path;
 * // "/lib/x86_64-linux-gnu/libc.so.6"
 * ```
 */
export function parseLdCache(bytes: Uint8Array, name: string): LdCache {
  if (bytes.length > MAX_CACHE_SIZE) throw new LdCacheError(name, "cache file is too large");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let base = 0;
  let format: LdCache["format"] = "new";
  if (asciiAt(bytes, 0, OLD_MAGIC)) {
    if (bytes.length < OLD_HEADER) throw new LdCacheError(name, "truncated old-format header");
    const oldCount = view.getUint32(12, true);
    if (oldCount > (bytes.length - OLD_HEADER) / OLD_ENTRY) {
      throw new LdCacheError(name, `old-format entry count ${oldCount} exceeds the file`);
    }
    // The new table follows the old one, aligned to 8 (ALIGN_CACHE).
    const end = OLD_HEADER + oldCount * OLD_ENTRY;
    base = Math.ceil(end / 8) * 8;
    if (!asciiAt(bytes, base, NEW_MAGIC)) return parseOld(bytes, view, name, oldCount, end);
    format = "old+new";
  } else if (!asciiAt(bytes, 0, NEW_MAGIC)) {
    throw new LdCacheError(name, "not an ld.so.cache (bad magic)");
  }
  if (bytes.length - base < NEW_HEADER) throw new LdCacheError(name, "truncated header");
  const endian = bytes[base + 28] & 3;
  if (endian === 1) throw new LdCacheError(name, "cache is marked invalid");
  // 0 means "written by an ldconfig without endianness support": native order.
  const le = endian !== 3;
  const nlibs = view.getUint32(base + 20, le);
  const extensionOffset = view.getUint32(base + 32, le);
  if (nlibs > (bytes.length - base - NEW_HEADER) / NEW_ENTRY) {
    throw new LdCacheError(name, `entry count ${nlibs} exceeds the file`);
  }

  const { hwcapsSubdirs, generator } = readExtensions(bytes, view, le, extensionOffset, name);
  const strings = bytes.length - base; // string offsets are relative to the new header
  const entries: LdCacheEntry[] = [];
  for (let i = 0; i < nlibs; i++) {
    const at = base + NEW_HEADER + i * NEW_ENTRY;
    const flags = view.getInt32(at, le);
    const key = view.getUint32(at + 4, le);
    const value = view.getUint32(at + 8, le);
    const osVersion = view.getUint32(at + 12, le);
    const hwcap = view.getBigUint64(at + 16, le);
    const what = `entry ${i}`;
    let hwcapsSubdir: string | null = null;
    if (isHwcapExtension(hwcap)) {
      const index = Number(hwcap & 0xffffffffn);
      hwcapsSubdir = index < hwcapsSubdirs.length ? hwcapsSubdirs[index] : null;
      // An index past the list names no usable directory; glibc skips the entry.
      if (hwcapsSubdir === null) continue;
    }
    entries.push({
      name: base + key < bytes.length
        ? cString(bytes, base + key, bytes.length, name, `${what} name`)
        : badOffset(name, what, key, strings),
      path: base + value < bytes.length
        ? cString(bytes, base + value, bytes.length, name, `${what} path`)
        : badOffset(name, what, value, strings),
      flags,
      osVersion,
      hwcap,
      hwcapsSubdir,
    });
  }
  return { file: name, entries, hwcapsSubdirs, generator, format };
}

function badOffset(file: string, what: string, offset: number, size: number): never {
  throw new LdCacheError(file, `${what} string offset ${offset} is outside the ${size}-byte table`);
}

/** glibc's dl_cache_hwcap_extension: only bit 62 set in the high half, ISA-level bits aside. */
function isHwcapExtension(hwcap: bigint): boolean {
  return ((hwcap >> 32n) & ~0x3ffn) === DL_CACHE_HWCAP_EXTENSION >> 32n;
}

function parseOld(
  bytes: Uint8Array,
  view: DataView,
  name: string,
  count: number,
  tableEnd: number,
): LdCache {
  // Old format: string offsets are relative to the end of the entry table.
  const entries: LdCacheEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = OLD_HEADER + i * OLD_ENTRY;
    const key = view.getUint32(at + 4, true);
    const value = view.getUint32(at + 8, true);
    const what = `old entry ${i}`;
    if (key >= bytes.length - tableEnd) badOffset(name, what, key, bytes.length - tableEnd);
    if (value >= bytes.length - tableEnd) badOffset(name, what, value, bytes.length - tableEnd);
    entries.push({
      name: cString(bytes, tableEnd + key, bytes.length, name, `${what} name`),
      path: cString(bytes, tableEnd + value, bytes.length, name, `${what} path`),
      flags: view.getInt32(at, true),
      osVersion: 0,
      hwcap: 0n,
      hwcapsSubdir: null,
    });
  }
  return { file: name, entries, hwcapsSubdirs: [], generator: null, format: "old" };
}

function readExtensions(
  bytes: Uint8Array,
  view: DataView,
  le: boolean,
  offset: number,
  name: string,
): { hwcapsSubdirs: string[]; generator: string | null } {
  const none = { hwcapsSubdirs: [], generator: null };
  if (offset === 0) return none;
  if (offset % 4 !== 0) throw new LdCacheError(name, "misaligned extension offset");
  if (offset > bytes.length - 8) throw new LdCacheError(name, "extension header past end of file");
  if (view.getUint32(offset, le) !== EXTENSION_MAGIC) {
    throw new LdCacheError(name, "bad extension magic");
  }
  const count = view.getUint32(offset + 4, le);
  if (count > (bytes.length - offset - 8) / 16) {
    throw new LdCacheError(name, `extension count ${count} exceeds the file`);
  }
  const hwcapsSubdirs: string[] = [];
  let generator: string | null = null;
  for (let i = 0; i < count; i++) {
    const at = offset + 8 + i * 16;
    const tag = view.getUint32(at, le);
    const start = view.getUint32(at + 8, le);
    const size = view.getUint32(at + 12, le);
    if (start > bytes.length || size > bytes.length - start) {
      throw new LdCacheError(name, `extension section ${i} extends past end of file`);
    }
    if (tag === EXT_GENERATOR) {
      const raw = bytes.subarray(start, start + Math.min(size, MAX_NAME));
      const nul = raw.indexOf(0);
      try {
        generator = decodeUtf8Strict(nul < 0 ? raw : raw.subarray(0, nul));
      } catch {
        throw new LdCacheError(name, "generator string is not valid UTF-8");
      }
    } else if (tag === EXT_GLIBC_HWCAPS) {
      // glibc ignores a hwcaps section that is empty or misaligned.
      if (size === 0 || start % 4 !== 0 || size % 4 !== 0) continue;
      for (let j = 0; j < size / 4; j++) {
        const str = view.getUint32(start + j * 4, le);
        hwcapsSubdirs.push(cString(bytes, str, bytes.length, name, `hwcaps name ${j}`));
      }
    }
  }
  return { hwcapsSubdirs, generator };
}

/**
 * Reads and parses a cache file. Throws {@link LdCacheError} if it cannot be
 * read or does not parse.
 *
 * @example
 * ```ts
 * const cache = readLdCacheSync("/etc/ld.so.cache");
 * console.log(cache.entries.length);
 * ```
 */
export function readLdCacheSync(path: string): LdCache {
  let bytes: Uint8Array;
  try {
    const st = Deno.statSync(path);
    if (!st.isFile) throw new LdCacheError(path, "not a regular file");
    if (st.size > MAX_CACHE_SIZE) throw new LdCacheError(path, "cache file is too large");
    bytes = Deno.readFileSync(path);
  } catch (e) {
    if (e instanceof LdCacheError) throw e;
    throw new LdCacheError(path, errorText(e));
  }
  return parseLdCache(bytes, path);
}

/**
 * Promise form of {@link readLdCacheSync}.
 *
 * @example
 * ```ts
 * const cache = await readLdCache("/etc/ld.so.cache");
 * ```
 */
export function readLdCache(path: string): Promise<LdCache> {
  try {
    return Promise.resolve(readLdCacheSync(path));
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * glibc's `_dl_cache_libcmp`: compares names with embedded numbers compared
 * numerically, so `libfoo.so.01` equals `libfoo.so.1`. Used for the key match.
 */
export function cacheNameCompare(a: string, b: string): number {
  let i = 0;
  let j = 0;
  const digit = (s: string, k: number) =>
    k < s.length && s.charCodeAt(k) >= 48 && s.charCodeAt(k) <= 57;
  while (i < a.length) {
    if (digit(a, i)) {
      if (!digit(b, j)) return 1;
      let va = 0;
      let vb = 0;
      while (digit(a, i)) va = va * 10 + a.charCodeAt(i++) - 48;
      while (digit(b, j)) vb = vb * 10 + b.charCodeAt(j++) - 48;
      if (va !== vb) return va - vb;
    } else if (digit(b, j)) {
      return -1;
    } else if (j >= b.length || a[i] !== b[j]) {
      return j >= b.length ? 1 : a.charCodeAt(i) - b.charCodeAt(j);
    } else {
      i++;
      j++;
    }
  }
  return j < b.length ? -1 : 0;
}

/** ABI facts about one architecture that the loader's search depends on. */
export interface ArchAbi {
  /** The loader's `_DL_CACHE_DEFAULT_ID`: flags of an exactly matching cache entry. */
  cacheId: number;
  /** Other flags values that glibc's `_dl_cache_check_flags` also accepts. */
  cacheAlso: number[];
  /** Debian multiarch triplet, e.g. `x86_64-linux-gnu`. */
  triplet: string | null;
  /** Library directory name on non-multiarch systems: `lib64`, `lib`, `libx32`. */
  libdir: string;
  /** Value of `$PLATFORM` (AT_PLATFORM), when fixed for the architecture. */
  platform: string | null;
}

/**
 * The cache flags, multiarch triplet, lib directory and platform string for
 * an ELF class/machine/e_flags combination, or null for architectures this
 * module does not know (the resolver then accepts only generic cache entries).
 *
 * @example
 * ```ts
 * archAbi(62, 64, 0)?.cacheId; // 0x303 (FLAG_X8664_LIB64 | FLAG_ELF_LIBC6)
 * ```
 */
export function archAbi(machine: number, elfClass: 32 | 64, eFlags: number): ArchAbi | null {
  const abi = (
    required: number,
    triplet: string | null,
    libdir: string,
    platform: string | null,
    generic = false,
  ): ArchAbi => ({
    cacheId: required | FLAG_ELF_LIBC6,
    // The generic dl-cache.h also accepts FLAG_ELF; x86-64 and AArch64 accept only the exact id.
    cacheAlso: generic ? [FLAG_ELF] : [],
    triplet,
    libdir,
    platform,
  });
  switch (machine) {
    case 62: // EM_X86_64
      return elfClass === 64
        ? abi(0x0300, "x86_64-linux-gnu", "lib64", "x86_64")
        : abi(0x0800, "x86_64-linux-gnux32", "libx32", "x86_64");
    case 3: // EM_386
      return abi(0, "i386-linux-gnu", "lib", "i686", true);
    case 183: // EM_AARCH64
      return elfClass === 64 ? abi(0x0a00, "aarch64-linux-gnu", "lib64", "aarch64") : null;
    case 40: { // EM_ARM: hard-float (EF_ARM_ABI_FLOAT_HARD) or soft-float
      const hard = (eFlags & 0x400) !== 0;
      const a = hard
        ? abi(0x0900, "arm-linux-gnueabihf", "lib", null)
        : abi(0x0b00, "arm-linux-gnueabi", "lib", null);
      a.cacheAlso = [FLAG_ELF_LIBC6];
      return a;
    }
    case 21: // EM_PPC64
      return elfClass === 64 ? abi(0x0500, "powerpc64le-linux-gnu", "lib64", null) : null;
    case 22: // EM_S390
      return elfClass === 64 ? abi(0x0400, "s390x-linux-gnu", "lib64", null) : null;
    case 243: // EM_RISCV, double-float ABI
      return elfClass === 64 ? abi(0x1000, "riscv64-linux-gnu", "lib64", null) : null;
    default:
      return null;
  }
}

/** Result of a cache lookup. */
export interface CacheLookup {
  /** The baseline (non-hwcaps) path the loader would open, or null. */
  path: string | null;
  /** glibc-hwcaps variants of the same name (used instead on CPUs that support them). */
  hwcapsVariants: string[];
}

/**
 * Looks a SONAME up the way glibc's `search_cache` does for a CPU without
 * glibc-hwcaps support: the first entry whose key matches, whose flags the
 * loader accepts and whose hwcap is 0. hwcaps variants are listed separately
 * so that a jail built here still works on a CPU that lacks them. The entries
 * are indexed by name on a cache's first lookup: they must not change after it.
 *
 * @example
 * ```ts
 * const abi = archAbi(62, 64, 0)!;
 * lookupLdCache(readLdCacheSync("/etc/ld.so.cache"), "libc.so.6", abi).path;
 * // "/lib/x86_64-linux-gnu/libc.so.6"
 * ```
 */
export function lookupLdCache(
  cache: LdCache,
  soname: string,
  abi: Pick<ArchAbi, "cacheId" | "cacheAlso"> | null,
): CacheLookup {
  const accepted = (flags: number) =>
    abi ? flags === abi.cacheId || abi.cacheAlso.includes(flags) : flags === FLAG_ELF_LIBC6;
  let path: string | null = null;
  const hwcapsVariants: string[] = [];
  for (const e of nameIndex(cache).get(nameShape(soname)) ?? []) {
    if (cacheNameCompare(soname, e.name) !== 0 || !accepted(e.flags)) continue;
    if (e.hwcapsSubdir !== null || e.hwcap !== 0n) {
      // glibc-hwcaps entries, and legacy hwcap entries (tls, platform dirs).
      hwcapsVariants.push(e.path);
    } else if (path === null) {
      path = e.path;
    }
  }
  return { path, hwcapsVariants };
}

/**
 * The shape of a name for {@link cacheNameCompare}: every run of digits
 * replaced by `#`. Names that compare equal have the same shape, so a lookup
 * needs to compare only the entries of its shape (a linear scan comparing
 * every entry cost jk_cp several milliseconds on a 500-entry cache).
 */
function nameShape(name: string): string {
  return name.replace(/[0-9]+/g, "#");
}

/** Entries of each cache by name shape, in file order; built on a cache's first lookup. */
const nameIndexes = new WeakMap<LdCache, Map<string, LdCacheEntry[]>>();

function nameIndex(cache: LdCache): Map<string, LdCacheEntry[]> {
  let index = nameIndexes.get(cache);
  if (index === undefined) {
    index = new Map();
    for (const e of cache.entries) {
      const shape = nameShape(e.name);
      const list = index.get(shape);
      if (list) list.push(e);
      else index.set(shape, [e]);
    }
    nameIndexes.set(cache, index);
  }
  return index;
}

/** File access used by {@link readLdSoConf}, so a caller can confine it to a jail root. */
export interface ConfFileAccess {
  /** Text of a file, or null if it does not exist. Throws for other failures. */
  readText(path: string): string | null;
  /** Names in a directory, or null if it does not exist or is not a directory. */
  listDir(path: string): string[] | null;
}

/** {@link ConfFileAccess} on the host file system. */
export const HOST_FILES: ConfFileAccess = {
  readText(path) {
    try {
      const st = Deno.statSync(path);
      if (!st.isFile) return null;
      if (st.size > 1024 * 1024) throw new LdSoConfError(path, "file is too large");
      return Deno.readTextFileSync(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
      throw e;
    }
  },
  listDir(path) {
    try {
      return [...Deno.readDirSync(path)].map((e) => e.name);
    } catch {
      return null;
    }
  },
};

/** The directories an `ld.so.conf` names, and what was read to find them. */
export interface LdSoConf {
  /** Library directories in order, duplicates removed, trailing slashes stripped. */
  dirs: string[];
  /** Every file read, in order (the top file first). */
  files: string[];
  /** Problems that did not stop the parse (e.g. an unreadable included file). */
  warnings: string[];
}

const MAX_INCLUDE_DEPTH = 16;
const MAX_CONF_FILES = 1024;

/**
 * Parses an `ld.so.conf` like ldconfig: `#` comments, one directory per line
 * (a `=TYPE` suffix is dropped), `include PATTERN...` lines whose relative
 * patterns are relative to the including file's directory, and `hwcap` lines
 * (ignored). Globs support `*`, `?` and `[...]` in any component and are
 * expanded in sorted order like glob(3). Throws {@link LdSoConfError} if the
 * top file cannot be read; include loops and unreadable included files
 * become warnings.
 *
 * @example
 * ```ts
 * readLdSoConf("/etc/ld.so.conf").dirs;
 * // ["/usr/local/lib", "/usr/local/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", ...]
 * ```
 */
export function readLdSoConf(path: string, files: ConfFileAccess = HOST_FILES): LdSoConf {
  const out: LdSoConf = { dirs: [], files: [], warnings: [] };
  const seen = new Set<string>();
  const active = new Set<string>();
  let text: string | null;
  try {
    text = files.readText(path);
  } catch (e) {
    throw e instanceof LdSoConfError ? e : new LdSoConfError(path, errorText(e));
  }
  if (text === null) throw new LdSoConfError(path, "no such file");
  parseConf(path, text, 0);
  return out;

  function parseConf(file: string, body: string, depth: number): void {
    out.files.push(file);
    active.add(file);
    const lines = body.split("\n");
    for (let n = 0; n < lines.length; n++) {
      const line = lines[n].replace(/#.*$/, "").trim();
      if (line === "") continue;
      const words = line.split(/[ \t]+/);
      if (words[0] === "include" && words.length > 1) {
        for (const pattern of words.slice(1)) include(file, n + 1, pattern, depth);
      } else if (words[0].toLowerCase() === "hwcap" && words.length > 1) {
        continue; // legacy hwcap lines: ldconfig ignores them
      } else {
        let dir = line.replace(/=.*$/, "").trim();
        while (dir.length > 1 && dir.endsWith("/")) dir = dir.slice(0, -1);
        if (dir !== "" && !seen.has(dir)) {
          seen.add(dir);
          out.dirs.push(dir);
        }
      }
    }
    active.delete(file);
  }

  function include(from: string, line: number, pattern: string, depth: number): void {
    if (depth >= MAX_INCLUDE_DEPTH) {
      out.warnings.push(`${from}:${line}: includes nested more than ${MAX_INCLUDE_DEPTH} deep`);
      return;
    }
    // Normalised lexically so that "sub/../x.conf" and "x.conf" are seen as one
    // file by the loop check (ld.so.conf trees do not rely on symlinked "..").
    const full = normalize(
      pattern.startsWith("/") || !from.includes("/")
        ? pattern
        : `${from.slice(0, from.lastIndexOf("/") + 1)}${pattern}`,
    );
    for (const match of expandGlob(full, files)) {
      if (active.has(match)) {
        out.warnings.push(`${from}:${line}: include loop through ${match}`);
        continue;
      }
      if (out.files.length >= MAX_CONF_FILES) {
        out.warnings.push(`${from}:${line}: more than ${MAX_CONF_FILES} files included`);
        return;
      }
      let body: string | null;
      try {
        body = files.readText(match);
      } catch (e) {
        out.warnings.push(`${match}: ${errorText(e)}`);
        continue;
      }
      if (body !== null) parseConf(match, body, depth + 1);
    }
  }
}

function hasMagic(s: string): boolean {
  return /[*?[]/.test(s);
}

/** Converts one glob component to a RegExp (fnmatch without FNM_PERIOD subtleties beyond `.`). */
function componentRegExp(glob: string): RegExp {
  let re = "^";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const close = glob.indexOf("]", i + 2);
      if (close < 0) {
        re += "\\[";
        continue;
      }
      let body = glob.slice(i + 1, close);
      const negate = body.startsWith("!") || body.startsWith("^");
      if (negate) body = body.slice(1);
      re += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
      i = close;
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(re + "$");
}

/** Expands an absolute (or relative) glob pattern to existing paths, sorted per component. */
function expandGlob(pattern: string, files: ConfFileAccess): string[] {
  if (!hasMagic(pattern)) return [pattern];
  const absolute = pattern.startsWith("/");
  let current = [absolute ? "/" : ""];
  const parts = pattern.split("/").filter((p) => p !== "");
  for (const part of parts) {
    const next: string[] = [];
    for (const dir of current) {
      const join = (name: string) =>
        dir === "/" ? `/${name}` : dir === "" ? name : `${dir}/${name}`;
      if (!hasMagic(part)) {
        next.push(join(part));
        continue;
      }
      const names = files.listDir(dir === "" ? "." : dir);
      if (!names) continue;
      const re = componentRegExp(part);
      // A leading "." must be matched explicitly, as in glob(3).
      const matches = names.filter((n) =>
        re.test(n) && (!n.startsWith(".") || part.startsWith("."))
      )
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      for (const n of matches) next.push(join(n));
    }
    current = next;
    if (current.length > MAX_CONF_FILES) current = current.slice(0, MAX_CONF_FILES);
  }
  return current;
}
