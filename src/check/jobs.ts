/**
 * Runs jk_check's two slow jobs — byte comparison of every file with the
 * host's and the library closure of every executable — beside the walk, on
 * every core.
 *
 * Why worker threads and not async I/O: with the narrow `--allow-read`
 * permission, Deno canonicalises every path it opens (a `readlink` per
 * component) on the calling thread, and its async file operations cost more
 * than the sync ones they wrap; measured on a 6,800-entry jail, async
 * comparison took about twice as long as sync. A worker runs the sync calls on
 * its own thread.
 *
 * Balancing: the walk cuts the jobs into batches and offers every batch to
 * every worker; each batch carries a shared flag, and the first thread to set
 * it (compare-and-swap) does the batch. Workers take batches from the front as
 * they arrive; the main thread, once its walk is done, takes comparisons from
 * the back. So no thread idles while another has a queue, whatever the load.
 *
 * An executable that is compared has its library closure resolved by the
 * thread that compared it, right after, from the bytes the comparison read:
 * one open per file instead of two (with `--allow-read`, each open costs a
 * `readlink` per path component). Executables that are not compared (no
 * host counterpart, another size, ignored) go in closure batches, which stay
 * with the workers.
 *
 * Workers are started as soon as there is a jail to check, so that loading
 * their modules overlaps the start of the walk. A worker that cannot start
 * or dies has its batches redone on the main thread, so the results never
 * depend on workers. The main thread
 * loads the comparison and resolver modules only for batches it does itself;
 * those dynamic imports are also what make `deno compile` embed them.
 *
 * @module
 */

import { EXECUTABLE, TRUSTED } from "./compare.ts";
import type { JailResults, JailWork, JobBatch, JobReply, JobRequest } from "./worker.ts";

/** Comparisons (or closure paths) per batch: small enough to balance, large enough to be cheap. */
const COMPARE_BATCH = 48;
const LIBS_BATCH = 24;

/** The main thread's claim mark; workers use 2, 3, ... */
const MAIN_MARK = 1;

/**
 * Claims a batch for the thread with `mark` (a compare-and-swap on its shared
 * flag); false when another thread already has it.
 *
 * @example
 * ```ts
 * if (claim(batch, 2)) work.run(root, batch);
 * ```
 */
export function claim(batch: JobBatch, mark: number): boolean {
  return Atomics.compareExchange(batch.claim, 0, 0, mark) === 0;
}

/** One worker thread; once it has failed, `finish` answers null and its batches are redone. */
class Lane {
  readonly mark: number;
  #worker: Worker | null;
  readonly #waiting = new Map<number, (r: JailResults | null) => void>();

  constructor(mark: number) {
    this.mark = mark;
    try {
      this.#worker = new Worker(new URL("./worker.ts", import.meta.url), {
        type: "module",
        name: `jk_check-${mark}`,
      });
      this.#worker.onmessage = (ev: MessageEvent<JobReply>) => {
        this.#waiting.get(ev.data.jail)?.(ev.data.results);
        this.#waiting.delete(ev.data.jail);
      };
      this.#worker.onerror = (ev) => {
        ev.preventDefault();
        this.#fail();
      };
      this.send({ type: "hello", mark });
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
      this.send({ type: "finish", jail });
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

/**
 * The jobs of one jail: queue them while walking, then await
 * {@link JailJobs.results}.
 */
export class JailJobs {
  readonly #pool: CheckJobs;
  readonly #id: number;
  readonly #root: string;
  readonly #batches: JobBatch[] = [];
  #compare: (string | number)[] = [];
  #compareUntrusted = false;
  #libs: string[] = [];

  constructor(pool: CheckJobs, id: number, root: string) {
    this.#pool = pool;
    this.#id = id;
    this.#root = root;
  }

  /**
   * Queues the comparison of two regular files of the same `size`. `trusted`:
   * both are in directories only root can change (a blocking open is safe);
   * `executable`: also resolve the library closure of `hostPath` in the jail.
   */
  compare(
    jailPath: string,
    hostPath: string,
    size: number,
    trusted: boolean,
    executable: boolean,
  ): void {
    this.#compare.push(
      jailPath,
      hostPath,
      size,
      (trusted ? TRUSTED : 0) | (executable ? EXECUTABLE : 0),
    );
    if (!trusted) this.#compareUntrusted = true;
    if (this.#compare.length >= COMPARE_BATCH * 4) this.#offer("compare");
  }

  /** Queues an in-jail path for the library closure. */
  executable(path: string): void {
    this.#libs.push(path);
    if (this.#libs.length >= LIBS_BATCH) this.#offer("libs");
  }

  #offer(kind: JobBatch["kind"]): void {
    const items = kind === "compare" ? this.#compare : this.#libs;
    if (items.length === 0) return;
    const untrusted = kind === "compare" && this.#compareUntrusted;
    if (kind === "compare") {
      this.#compare = [];
      this.#compareUntrusted = false;
    } else this.#libs = [];
    const claimFlag = new Int32Array(new SharedArrayBuffer(4));
    const batch: JobBatch = { kind, claim: claimFlag, items, untrusted };
    this.#batches.push(batch);
    for (const lane of this.#pool.started()) {
      lane.send({ type: "batch", jail: this.#id, root: this.#root, batch });
    }
  }

  /**
   * Does the comparisons no worker has taken yet (from the back), then
   * collects the workers' results. Closure batches stay with the workers;
   * with no worker, or for the batches of a failed one, the main thread does
   * them.
   */
  async results(): Promise<JailResults> {
    this.#offer("compare");
    this.#offer("libs");
    const lanes = this.#pool.started();
    const local = new LocalWork(this.#root);

    for (let i = this.#batches.length - 1; i >= 0; i--) {
      const batch = this.#batches[i];
      if ((batch.kind === "compare" || lanes.length === 0) && claim(batch, MAIN_MARK)) {
        await local.run(batch);
      }
    }
    const replies = await Promise.all(lanes.map((l) => l.finish(this.#id)));
    const failed = new Set(lanes.filter((_, i) => replies[i] === null).map((l) => l.mark));
    for (const batch of this.#batches) {
      const owner = Atomics.load(batch.claim, 0);
      // Unclaimed: every worker failed before reaching it.
      if (failed.has(owner) || (owner === 0 && claim(batch, MAIN_MARK))) await local.run(batch);
    }
    return merge([...replies.filter((r) => r !== null), ...local.results()]);
  }
}

/** The main thread's share; the job modules are loaded only if it does some. */
class LocalWork {
  #work: JailWork | null = null;

  constructor(readonly root: string) {}

  async run(batch: JobBatch): Promise<void> {
    this.#work ??= new (await import("./worker.ts")).JailWork();
    await this.#work.run(this.root, batch);
  }

  results(): JailResults[] {
    return this.#work ? [this.#work.results()] : [];
  }
}

/** Joins the results of several threads; closure needs found twice are kept once. */
function merge(parts: JailResults[]): JailResults {
  const unresolved = new Map<string, JailResults["unresolved"][number]>();
  const warnings = new Set<string>();
  const compared: JailResults["compared"] = [];
  for (const r of parts) {
    compared.push(...r.compared);
    for (const u of r.unresolved) unresolved.set(`${u.name}\0${u.neededBy}`, u);
    for (const w of r.warnings) warnings.add(w);
  }
  return { compared, unresolved: [...unresolved.values()], warnings: [...warnings] };
}

/**
 * The worker threads of one jk_check run.
 *
 * @example
 * ```ts
 * const pool = new CheckJobs();
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
  readonly #count: number;
  #lanes: Lane[] | null = null;
  #next = 0;

  /** @param workers worker threads besides the main thread; default one per further core, at most 3 */
  constructor(workers = Math.min(3, Math.max(1, navigator.hardwareConcurrency - 1))) {
    this.#count = workers;
  }

  /** Starts the workers (once); call it as soon as there is work coming. */
  start(): void {
    this.#lanes ??= Array.from({ length: this.#count }, (_, i) => new Lane(MAIN_MARK + 1 + i));
  }

  /** The workers if any were started. */
  started(): Lane[] {
    return this.#lanes ?? [];
  }

  /** Starts the jobs of one jail (`root` is the jail directory), and the workers. */
  jail(root: string): JailJobs {
    this.start();
    return new JailJobs(this, this.#next++, root);
  }

  /** Stops the workers. */
  close(): void {
    for (const l of this.#lanes ?? []) l.close();
  }
}
