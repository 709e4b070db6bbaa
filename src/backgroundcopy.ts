/**
 * Copies of regular files into a jail that run on a worker thread while the
 * copy engine (src/jailcopy.ts) goes on resolving libraries and creating
 * directories. Copying the bytes is a fifth of jk_cp's time, all of it in the
 * kernel; on a machine with two cores it can overlap with the engine's own
 * work instead of following it.
 *
 * Safety is that of a synchronous copy (src/jailfs.ts `placeFile`): the bytes
 * go into a file with no name (`O_TMPFILE`) in a directory opened under the
 * jail's symlink policy, and the file gets its owner, mode and then its name
 * only once complete, so nothing half-written ever has a name. Files are
 * named in the order they were queued, which keeps the engine's promise that
 * a program is named only after its libraries (a `kill -9` leaves no program
 * without them); unnamed files vanish with the process.
 *
 * The worker thread cannot report errno (it is that thread's), and its result
 * is delivered only when the event loop runs. So every copy that failed, or
 * that must be named before its result could be seen (`nameAllNow`, when the
 * queue is full in the middle of synchronous work), is redone synchronously
 * into a fresh unnamed file, with the read/write fallback and the errors a
 * synchronous copy reports. The queue is bounded ({@link MAX_QUEUED}), so the
 * descriptors it holds are too.
 *
 * @module
 */

import * as c from "./libc.ts";
import {
  copyFd,
  type Dir,
  discardUnnamed,
  type Jail,
  nameFile,
  type NodeMeta,
  siblingUnnamed,
  type UnnamedFile,
} from "./jailfs.ts";

/**
 * Files at least this big are copied on the worker thread; smaller ones are
 * copied at once (cheaper than a thread hop) and only queued to be named in order.
 */
export const BACKGROUND_MIN = 64 * 1024;

/** Most files queued at once (each holds three descriptors: source, unnamed file, directory). */
export const MAX_QUEUED = 32;

/** One queued file. */
interface Job {
  readonly name: string;
  readonly source: number;
  readonly meta: NodeMeta;
  readonly replace: boolean;
  /** Path for messages (the host path being copied). */
  readonly label: string;
  /** The unnamed file the worker writes (it holds its own descriptor of the directory). */
  readonly file: UnnamedFile;
  /** Settles when the worker thread is done with `source` and `file`: true when it copied all. */
  readonly copied: Promise<boolean>;
  /** What `copied` gave, once the event loop has delivered it. */
  outcome: boolean | null;
}

/**
 * The queue of one copy engine run.
 *
 * @example
 * ```ts
 * const copies = new BackgroundCopies(jail, (label, e) => console.error(label, e));
 * copies.add(dir, "perl", sourceFd, size, meta, false, "/usr/bin/perl"); // takes sourceFd
 * await copies.settle(); // every queued file named (or reported)
 * ```
 */
export class BackgroundCopies {
  readonly #jail: Jail;
  readonly #onError: (label: string, error: unknown) => void;
  #queue: Job[] = [];
  /** Copies redone here whose worker is still busy: `settle` waits for their release. */
  #abandoned: Promise<void>[] = [];

  /**
   * @param jail the open jail (not a dry run)
   * @param onError called once per file that could not be copied or named
   */
  constructor(jail: Jail, onError: (label: string, error: unknown) => void) {
    this.#jail = jail;
    this.#onError = onError;
  }

  /** Files queued and not yet named. */
  get size(): number {
    return this.#queue.length;
  }

  /**
   * Starts copying `size` bytes of `source` into a new unnamed file in `dir`;
   * the file is named `name` by `settle`, `nameFinished` or `nameAllNow`. Takes
   * ownership of `source`. When the queue is full, first names everything
   * queued (synchronously). Throws, having closed `source`, when the unnamed
   * file cannot be created.
   */
  add(
    dir: Dir,
    name: string,
    source: number,
    size: number,
    meta: NodeMeta,
    replace: boolean,
    label: string,
  ): void {
    if (this.#queue.length >= MAX_QUEUED) this.nameAllNow();
    let file: UnnamedFile;
    try {
      file = this.#jail.createUnnamed(dir);
    } catch (e) {
      c.close(source);
      throw e;
    }
    let copied: Promise<boolean>;
    if (size >= BACKGROUND_MIN) {
      copied = copyAll(source, file.fd, size);
    } else {
      // Cheaper here than a thread hop; queued only to be named in order.
      try {
        copyFd(source, file.fd);
      } catch (e) {
        discardUnnamed(file);
        c.close(source);
        throw e;
      }
      copied = Promise.resolve(true);
    }
    const job: Job = {
      name,
      source,
      meta,
      replace,
      label,
      file,
      copied,
      outcome: size >= BACKGROUND_MIN ? null : true,
    };
    copied.then((ok) => job.outcome = ok);
    this.#queue.push(job);
  }

  /**
   * Names the files at the head of the queue whose copies the event loop has
   * already reported done; stops at the first that is not.
   */
  nameFinished(): void {
    while (this.#queue.length > 0 && this.#queue[0].outcome !== null) {
      this.#nameOrReport(this.#queue.shift()!);
    }
  }

  /** Names a job the worker is done with (redone here if it failed), then closes its source. */
  #nameOrReport(job: Job): void {
    try {
      if (job.outcome) nameFile(job.file, job.name, job.meta, job.replace);
      else this.#redo(job); // the worker could not copy: again here, for the reason
    } catch (e) {
      this.#onError(job.label, e);
    } finally {
      c.close(job.source);
    }
  }

  /**
   * Names every queued file now, without the event loop: a copy whose result
   * has not been seen is redone synchronously into a fresh unnamed file; the
   * worker's file and the source are released once the worker is done.
   */
  nameAllNow(): void {
    this.nameFinished();
    const jobs = this.#queue;
    this.#queue = [];
    for (const job of jobs) {
      if (job.outcome === true) {
        this.#nameOrReport(job); // done, behind one that is not
        continue;
      }
      const release = () => {
        discardUnnamed(job.file);
        c.close(job.source);
      };
      this.#abandoned.push(job.copied.then(release, release));
      try {
        this.#redo(job, false);
      } catch (e) {
        this.#onError(job.label, e);
      }
    }
  }

  /**
   * Waits for every queued copy and names the files in queue order; then for
   * the workers of copies redone here, so that every descriptor is closed.
   *
   * @example
   * ```ts
   * await copies.settle();
   * ```
   */
  async settle(): Promise<void> {
    while (this.#queue.length > 0) {
      await this.#queue[0].copied;
      this.nameFinished();
    }
    const abandoned = this.#abandoned;
    this.#abandoned = [];
    await Promise.all(abandoned);
  }

  /**
   * Copies `job` on this thread into a new unnamed file beside the worker's
   * and names it; with `discard`, the worker's file is released first (the
   * worker is done with it). The source's own offset is still 0: the worker
   * used explicit offsets.
   */
  #redo(job: Job, discard = true): void {
    const fresh = siblingUnnamed(job.file);
    if (discard) discardUnnamed(job.file);
    try {
      copyFd(job.source, fresh.fd);
    } catch (e) {
      discardUnnamed(fresh);
      throw e;
    }
    nameFile(fresh, job.name, job.meta, job.replace);
  }
}

/** Copies `size` bytes on a worker thread; true when all arrived. */
async function copyAll(from: number, to: number, size: number): Promise<boolean> {
  let done = 0;
  while (done < size) {
    const n = await c.copyFileRangeInBackground(from, to, done, size - done);
    if (n <= 0) return false; // failed, or the file shrank: the synchronous redo decides
    done += n;
  }
  return true;
}
