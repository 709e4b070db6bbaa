/**
 * The opener for comparisons of files in directories that someone other than
 * root can change: `O_RDONLY | O_NONBLOCK | O_NOFOLLOW` through `node:fs`, so
 * a path swapped for a FIFO after the walk looked at it cannot hang the
 * audit (a FIFO opened so reads nothing, and the comparison reports a
 * difference). Deno's own API cannot open with `O_NONBLOCK`. Kept apart from
 * src/check/compare.ts because loading `node:fs` costs about 40 ms per thread
 * without a code cache: it is imported only by a thread that meets such a
 * pair.
 *
 * @module
 */

import * as fs from "node:fs";
import type { ReadableFile } from "./compare.ts";

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW;

/**
 * Opens `path` without blocking, whatever it is by now.
 *
 * @example
 * ```ts
 * const cmp = new FileComparer(openNonblocking);
 * cmp.compare("/srv/jail/home/u/.bashrc", "/home/u/.bashrc", 3526);
 * ```
 */
export function openNonblocking(path: string): ReadableFile {
  const fd = fs.openSync(path, OPEN_FLAGS);
  return {
    readSync: (into) => fs.readSync(fd, into, 0, into.length, null),
    close: () => fs.closeSync(fd),
  };
}
