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
 * Files are opened read-only with `O_NONBLOCK`, so a path swapped for a FIFO
 * after the walk looked at it cannot hang the audit. (`O_NOFOLLOW` is asked
 * for too, but Deno resolves symlinks itself to check permissions unless it
 * runs with `--allow-all`, so a symlink swapped in is followed. That can only
 * make the answer wrong for a file that is being changed during the audit; it
 * never writes anything.)
 *
 * @module
 */

import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import { errorText } from "../errors.ts";

/** Bytes read per step; also the size below which a file takes one read. */
export const CHUNK = 256 * 1024;

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW;

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

/**
 * Compares each `jailPath, hostPath, size` triple of a flat list and returns
 * the pairs that are not equal.
 *
 * @example
 * ```ts
 * compareAll(new FileComparer(), ["/srv/jail/usr/bin/ls", "/usr/bin/ls", 151344]); // []
 * ```
 */
export function compareAll(
  comparer: FileComparer,
  items: readonly (string | number)[],
): CompareResult[] {
  const out: CompareResult[] = [];
  for (let i = 0; i + 2 < items.length; i += 3) {
    const jailPath = items[i] as string, hostPath = items[i + 1] as string;
    const outcome = comparer.compare(jailPath, hostPath, items[i + 2] as number);
    if (outcome.kind !== "same") out.push({ jailPath, hostPath, outcome });
  }
  return out;
}

/** A failure to open or read one of the two files. */
class ReadFailure {
  constructor(readonly path: string, readonly reason: string) {}
}

/** Reads up to `buf.length` bytes, looping over short reads; returns the count. */
function fill(fd: number, buf: Uint8Array): number {
  let n = 0;
  while (n < buf.length) {
    const got = fs.readSync(fd, buf, n, buf.length - n, null);
    if (got === 0) break;
    n += got;
  }
  return n;
}

/**
 * Compares two files byte by byte. Reuse one comparer for many files: it owns
 * the two chunk buffers.
 *
 * @example
 * ```ts
 * const cmp = new FileComparer();
 * cmp.compare("/srv/jail/usr/bin/ls", "/usr/bin/ls", 151344); // { kind: "same" }
 * ```
 */
export class FileComparer {
  readonly #a = Buffer.alloc(CHUNK);
  readonly #b = Buffer.alloc(CHUNK);

  /**
   * Compares the first `size` bytes of `jailPath` and `hostPath`, the size
   * both had when the caller `lstat`ed them (same size, regular files). A
   * file that is shorter now differs; one that grew since is compared up to
   * `size`, which is what the size check saw.
   */
  compare(jailPath: string, hostPath: string, size: number): CompareOutcome {
    let fa: number | undefined;
    let fb: number | undefined;
    const opened = (path: string) => {
      try {
        return fs.openSync(path, OPEN_FLAGS);
      } catch (e) {
        throw new ReadFailure(path, cleanError(e));
      }
    };
    try {
      fa = opened(jailPath);
      fb = opened(hostPath);
      for (let offset = 0; offset < size;) {
        const want = Math.min(CHUNK, size - offset);
        const na = this.#read(fa, this.#a.subarray(0, want), jailPath);
        const nb = this.#read(fb, this.#b.subarray(0, want), hostPath);
        if (
          Buffer.compare(
            this.#a.subarray(0, Math.min(na, nb)),
            this.#b.subarray(0, Math.min(na, nb)),
          ) !== 0
        ) {
          return {
            kind: "differs",
            offset: offset + firstDifference(this.#a, this.#b, Math.min(na, nb)),
          };
        }
        if (na !== nb || na < want) return { kind: "differs", offset: offset + Math.min(na, nb) };
        offset += na;
      }
      return { kind: "same" };
    } catch (e) {
      if (e instanceof ReadFailure) return { kind: "unreadable", path: e.path, reason: e.reason };
      throw e;
    } finally {
      if (fa !== undefined) fs.closeSync(fa);
      if (fb !== undefined) fs.closeSync(fb);
    }
  }

  #read(fd: number, buf: Uint8Array, path: string): number {
    try {
      return fill(fd, buf);
    } catch (e) {
      throw new ReadFailure(path, cleanError(e));
    }
  }
}

/** Index of the first differing byte of two buffers known to differ within `n`. */
function firstDifference(a: Uint8Array, b: Uint8Array, n: number): number {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** "EISDIR: illegal operation on a directory, read" → "illegal operation on a directory". */
function cleanError(e: unknown): string {
  return errorText(e).replace(/^E[A-Z]+: /, "").replace(/, (open|read) .*$|, (open|read)$/, "");
}
