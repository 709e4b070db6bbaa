/**
 * Whole-file comparison of a jail file with its host counterpart.
 *
 * jailkit 2.23 compared the MD5 of one random 1 KiB window, so a change
 * anywhere else went unnoticed. Here every byte is compared: sizes first
 * (from the `lstat` the walk already has), then the contents, streamed in
 * fixed chunks through two reused buffers, stopping at the first difference.
 * No hashing: comparing the bytes directly is faster than any digest and
 * cannot collide.
 *
 * How a file is opened depends on who can change its directory. A path in a
 * directory that someone other than root can change could be swapped for a
 * FIFO after the walk looked at it, and a plain open(2) of a FIFO blocks
 * forever; such pairs are opened with `O_NONBLOCK` (src/check/nonblocking.ts,
 * which needs `node:fs`). When both directories, and every one above them,
 * are root's alone, nothing can be swapped in and Deno's own file API is
 * used: it saves loading `node:fs` (about 40 ms per thread without a code
 * cache), which most jails never need. The walk decides which is which
 * (src/check/tree.ts). (Deno resolves symlinks itself to check permissions
 * unless it runs with `--allow-all`, so a symlink swapped into a changeable
 * directory is followed. That can only make the answer wrong for a file that
 * is being changed during the audit; nothing is ever written.)
 *
 * The bytes are compared 64 at a time by a small WebAssembly SIMD function
 * (src/check/firstdiff.ts), into whose memory both files are read, not with
 * `node:buffer`'s memcmp, which costs more to load than it saves.
 *
 * @module
 */

import { errorText } from "../errors.ts";
import { DiffBuffers } from "./firstdiff.ts";

/** Bytes read per step; also the size below which a file takes one read. */
export const CHUNK = 256 * 1024;

/**
 * Largest file kept whole for {@link FileComparer.kept}. Beyond it, keeping
 * would cost more (a buffer that size, its page faults) than the second open
 * it saves.
 */
export const KEEP_MAX = 8 * 1024 * 1024;

/** Flag of a comparison job: both directories are root's alone, so a blocking open is safe. */
export const TRUSTED = 1;
/**
 * Flag of a comparison job: the file is an executable or library for the
 * closure test (its in-jail path is the host path), resolved right after the
 * comparison from the bytes it read (src/check/worker.ts).
 */
export const EXECUTABLE = 2;

/** An open file, read from the start; a `Deno.FsFile` is one. */
export interface ReadableFile {
  /** Reads into `into`; returns the count, null (or 0) at the end of the file. */
  readSync(into: Uint8Array): number | null;
  close(): void;
}

/** Opens a path for reading; throws on failure. */
export type ReadOpener = (path: string) => ReadableFile;

/**
 * Opens with Deno's file API: a plain, blocking open(2), read-only (Deno's
 * default; passing no options also skips their validation, once per file).
 * Only for paths in directories that root alone can change (see the module
 * comment).
 *
 * @example
 * ```ts
 * const f = openBlocking("/etc/hostname");
 * try { f.readSync(new Uint8Array(64)); } finally { f.close(); }
 * ```
 */
export function openBlocking(path: string): ReadableFile {
  return Deno.openSync(path);
}

/** Outcome of one comparison. */
export type CompareOutcome =
  | { kind: "same" }
  | { kind: "differs"; offset: number }
  | { kind: "unreadable"; path: string; reason: string };

/** A comparison that did not find the two files equal. */
export interface CompareResult {
  jailPath: string;
  hostPath: string;
  outcome: Exclude<CompareOutcome, { kind: "same" }>;
}

/** How one comparison is done. */
export interface CompareOptions {
  /**
   * Both paths are in directories only root can change, so a blocking open
   * cannot be made to hang (default false: open with `O_NONBLOCK`).
   */
  trusted?: boolean;
  /**
   * Keep the jail file's bytes when the files are equal, for
   * {@link FileComparer.kept} (used to parse an executable's ELF header
   * without opening it again). Ignored above {@link KEEP_MAX} bytes.
   */
  keep?: boolean;
}

/** A failure to open or read one of the two files. */
class ReadFailure {
  constructor(readonly path: string, readonly reason: string) {}
}

/**
 * Compares two files byte by byte. Reuse one comparer for many files: it owns
 * the chunk buffers.
 *
 * @example
 * ```ts
 * import { openNonblocking } from "./nonblocking.ts";
 * const cmp = new FileComparer(openNonblocking);
 * cmp.compare("/srv/jail/usr/bin/ls", "/usr/bin/ls", 151344); // { kind: "same" }
 * cmp.compare("/srv/jail/usr/bin/ls", "/usr/bin/ls", 151344, { trusted: true, keep: true });
 * cmp.kept()?.length; // 151344
 * ```
 */
export class FileComparer {
  /**
   * `host`: a chunk of the host file; `jail`: a chunk of the jail file, or the
   * whole of it in a `keep` comparison (it grows to the largest one).
   */
  readonly #bufs = new DiffBuffers(CHUNK);
  #kept: Uint8Array | null = null;
  #untrusted: ReadOpener | null;

  /** @param untrusted how to open paths that are not `trusted` (src/check/nonblocking.ts) */
  constructor(untrusted: ReadOpener | null = null) {
    this.#untrusted = untrusted;
  }

  /** Whether paths that are not `trusted` can be compared yet. */
  get canCompareUntrusted(): boolean {
    return this.#untrusted !== null;
  }

  /** Sets the opener for paths that are not `trusted` (loaded when first needed). */
  set untrustedOpener(open: ReadOpener) {
    this.#untrusted = open;
  }

  /**
   * The jail file's bytes from the last comparison, if it had `keep` (and at
   * most {@link KEEP_MAX} bytes) and found the files equal; valid until the
   * next comparison, which reads over it (or, growing the buffer, detaches
   * it: it then reads as empty).
   */
  kept(): Uint8Array | null {
    return this.#kept;
  }

  /**
   * Compares the first `size` bytes of `jailPath` and `hostPath`, the size
   * both had when the caller `lstat`ed them (same size, regular files). A
   * file that is shorter now differs; one that grew since is compared up to
   * `size`, which is what the size check saw.
   *
   * @throws Error if the pair is not `trusted` and no untrusted opener was given
   */
  compare(
    jailPath: string,
    hostPath: string,
    size: number,
    opts: CompareOptions = {},
  ): CompareOutcome {
    const open = opts.trusted ? openBlocking : this.#untrusted;
    if (open === null) throw new Error("FileComparer: no opener for an untrusted comparison");
    this.#kept = null;
    const bufs = this.#bufs;
    const whole = opts.keep === true && size <= KEEP_MAX;
    const jail = bufs.jail(whole ? size : CHUNK);
    const host = bufs.host;
    let fa: ReadableFile | undefined;
    let fb: ReadableFile | undefined;
    try {
      fa = opened(open, jailPath);
      fb = opened(open, hostPath);
      for (let offset = 0; offset < size;) {
        const want = Math.min(CHUNK, size - offset);
        const start = whole ? offset : 0;
        const a = jail.subarray(start, start + want);
        const b = host.subarray(0, want);
        const na = fill(fa, a, jailPath);
        const nb = fill(fb, b, hostPath);
        const n = Math.min(na, nb);
        const at = bufs.firstDifference(a, b, n);
        if (at < n) return { kind: "differs", offset: offset + at };
        if (na !== nb || na < want) return { kind: "differs", offset: offset + n };
        offset += na;
      }
      if (whole) this.#kept = jail.subarray(0, size);
      return { kind: "same" };
    } catch (e) {
      if (e instanceof ReadFailure) return { kind: "unreadable", path: e.path, reason: e.reason };
      throw e;
    } finally {
      fa?.close();
      fb?.close();
    }
  }
}

/** Opens `path` with `open`; a failure becomes a {@link ReadFailure}. */
function opened(open: ReadOpener, path: string): ReadableFile {
  try {
    return open(path);
  } catch (e) {
    throw new ReadFailure(path, cleanError(e));
  }
}

/** Reads up to `buf.length` bytes, looping over short reads; returns the count. */
function fill(file: ReadableFile, buf: Uint8Array, path: string): number {
  let n = 0;
  try {
    while (n < buf.length) {
      const got = file.readSync(n === 0 ? buf : buf.subarray(n));
      if (!got) break;
      n += got;
    }
  } catch (e) {
    throw new ReadFailure(path, cleanError(e));
  }
  return n;
}

/** "EISDIR: illegal operation on a directory, read" → "illegal operation on a directory". */
function cleanError(e: unknown): string {
  return errorText(e).replace(/^E[A-Z]+: /, "").replace(/, (open|read) .*$|, (open|read)$/, "");
}
