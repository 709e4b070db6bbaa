/**
 * Runs jk_check's two slow jobs — byte comparison of every file with the
 * host's and the library closure of every executable — beside the walk, in
 * worker threads (src/check_worker.ts), so a run uses more than one core.
 *
 * Why workers and not async I/O: with the narrow `--allow-read` permission,
 * Deno canonicalises every path it opens (a `readlink` per component) on the
 * calling thread, and its async file operations cost more than the sync ones
 * they wrap; measured on a 6,800-entry jail, async comparison took about
 * twice as long as sync. A worker runs the sync calls on its own thread.
 *
 * The main thread never loads the worker module unless it must: a worker
 * that cannot start or dies has its jobs redone on the main thread, from the
 * copy kept here, so results never depend on workers. (That dynamic import
 * also makes `deno compile` embed the worker module.)
 *
 * @module
 */

import type { JailResults, JobReply, JobRequest } from "./check_worker.ts";

/** Pairs (or paths) sent to a worker per message. */
const BATCH = 64;

/** The worker module, loaded on the main thread only for jobs a worker could not do. */
function localWork() {
  return import("./check_worker.ts");
}

/** One worker thread; after a failure, `null` answers tell the caller to redo its jobs. */
class Lane {
  #worker: Worker | null;
  readonly #waiting = new Map<number, (r: JailResults | null) => void>();

  constructor() {
    try {
      this.#worker = new Worker(new URL("./check_worker.ts", import.meta.url), {
        type: "module",
        name: "jk_check",
      });
      this.#worker.onmessage = (ev: MessageEvent<JobReply>) => {
        this.#waiting.get(ev.data.jail)?.(ev.data.results);
        this.#waiting.delete(ev.data.jail);
      };
      this.#worker.onerror = (ev) => {
        ev.preventDefault();
        this.#fail();
      };
    } catch {
      this.#worker = null;
    }
  }

  send(req: JobRequest): void {
    this.#worker?.postMessage(req);
  }

  /** The worker's results for a jail, or null when it failed. */
  finish(jail: number): Promise<JailResults | null> {
    if (!this.#worker) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.#waiting.set(jail, resolve);
      this.#worker!.postMessage({ type: "finish", jail } satisfies JobRequest);
    });
  }

  #fail(): void {
    this.#worker?.terminate();
    this.#worker = null;
    for (const resolve of this.#waiting.values()) resolve(null);
    this.#waiting.clear();
  }

  close(): void {
    this.#worker?.terminate();
    this.#worker = null;
  }
}

/** How the jobs are spread over threads. */
export interface JobLayout {
  /** Worker threads for comparisons; 0 compares on the main thread after the walk. */
  compareWorkers: number;
  /** Library closures in a worker of their own (else on the main thread after the walk). */
  libsWorker: boolean;
}

/**
 * The jobs of one jail: queue them while walking, then await
 * {@link JailJobs.results}.
 */
export class JailJobs {
  readonly #pool: CheckJobs;
  readonly #id: number;
  readonly #root: string;
  #compareBatch: (string | number)[] = [];
  #libsBatch: string[] = [];
  /** Every comparison sent, per lane, to redo here if the lane fails. */
  readonly #sentCompare: (string | number)[][];
  /** Every closure batch, sent or kept for the main thread. */
  readonly #libs: string[][] = [];
  #next = 0;

  constructor(pool: CheckJobs, id: number, root: string) {
    this.#pool = pool;
    this.#id = id;
    this.#root = root;
    this.#sentCompare = [[], ...pool.compareLanes.map(() => [])];
  }

  /** Queues the comparison of two regular files of the same `size`. */
  compare(jailPath: string, hostPath: string, size: number): void {
    this.#compareBatch.push(jailPath, hostPath, size);
    if (this.#compareBatch.length >= BATCH * 3) this.#flushCompare();
  }

  /** Queues an in-jail path for the library closure. */
  executable(path: string): void {
    this.#libsBatch.push(path);
    if (this.#libsBatch.length >= BATCH) this.#flushLibs();
  }

  #flushCompare(): void {
    if (this.#compareBatch.length === 0) return;
    const lanes = this.#pool.compareLanes;
    // Slot 0 is the main thread, used when there are no compare workers.
    const slot = lanes.length === 0 ? 0 : 1 + this.#next++ % lanes.length;
    if (slot > 0) {
      lanes[slot - 1].send({ type: "compare", jail: this.#id, jobs: this.#compareBatch });
    }
    this.#sentCompare[slot].push(...this.#compareBatch);
    this.#compareBatch = [];
  }

  #flushLibs(): void {
    if (this.#libsBatch.length === 0) return;
    this.#pool.libsLane?.send({
      type: "libs",
      jail: this.#id,
      root: this.#root,
      paths: this.#libsBatch,
    });
    this.#libs.push(this.#libsBatch);
    this.#libsBatch = [];
  }

  /** Waits for every job; work no worker did is done here. */
  async results(): Promise<JailResults> {
    this.#flushCompare();
    this.#flushLibs();
    const { compareLanes, libsLane } = this.#pool;
    const libsAsked = libsLane?.finish(this.#id) ?? Promise.resolve(null);
    const comparesAsked = compareLanes.map((l) => l.finish(this.#id));
    const all: JailResults = { compared: [], unresolved: [], warnings: [] };

    // Main-thread share, done while the workers finish theirs.
    const local = new (await localWork()).JailWork();
    local.compare(this.#sentCompare[0]);
    if (!libsLane) for (const batch of this.#libs) local.libs(this.#root, batch);

    const libs = await libsAsked;
    if (libsLane && !libs) for (const batch of this.#libs) local.libs(this.#root, batch);
    (await Promise.all(comparesAsked)).forEach((r, i) => {
      if (r) all.compared.push(...r.compared);
      else local.compare(this.#sentCompare[i + 1]);
    });
    const mine = local.results();
    all.compared.push(...mine.compared);
    all.unresolved = libs ? libs.unresolved : mine.unresolved;
    all.warnings = libs ? libs.warnings : mine.warnings;
    return all;
  }
}

/**
 * The worker threads of one jk_check run.
 *
 * @example
 * ```ts
 * const pool = new CheckJobs({ compareWorkers: 1, libsWorker: false });
 * try {
 *   const jobs = pool.jail("/srv/jail");
 *   jobs.compare("/srv/jail/usr/bin/ls", "/usr/bin/ls", 151344);
 *   jobs.executable("/usr/bin/ls");
 *   const { compared, unresolved } = await jobs.results();
 * } finally {
 *   pool.close();
 * }
 * ```
 */
export class CheckJobs {
  readonly compareLanes: Lane[];
  readonly libsLane: Lane | null;
  #next = 0;

  /** @param layout how many workers do what */
  constructor(layout: JobLayout) {
    this.compareLanes = Array.from({ length: layout.compareWorkers }, () => new Lane());
    this.libsLane = layout.libsWorker ? new Lane() : null;
  }

  /** Starts the jobs of one jail (`root` is the jail directory). */
  jail(root: string): JailJobs {
    return new JailJobs(this, this.#next++, root);
  }

  /** Stops the workers. */
  close(): void {
    this.libsLane?.close();
    for (const l of this.compareLanes) l.close();
  }
}
