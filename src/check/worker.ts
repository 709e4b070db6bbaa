/**
 * The worker side of jk_check's parallel jobs (see src/check/jobs.ts): byte
 * comparison of jail files with host files, and library closures. Started as
 * a worker, it serves job messages; imported, it only exports
 * {@link JailWork}, which the main thread uses when a worker is not
 * available.
 *
 * @module
 */

import { compareAll, type CompareResult, FileComparer } from "./compare.ts";
import { claim } from "./jobs.ts";
import { DepResolver, type UnresolvedNeed } from "../deps.ts";

/** What a jail's jobs produced. */
export interface JailResults {
  /** Comparisons that found a difference or could not read a file. */
  compared: CompareResult[];
  /** Library needs that cannot be met inside the jail (in-jail paths). */
  unresolved: UnresolvedNeed[];
  /** Remarks of the resolver (audit libraries, `#!/usr/bin/env` scripts). */
  warnings: string[];
}

/** A batch of jobs, claimed by whichever thread sets its flag first. */
export interface JobBatch {
  kind: "compare" | "libs";
  /** 0 while unclaimed; then the claiming thread's mark. Shared between threads. */
  claim: Int32Array;
  /** `compare`: flat `jailPath, hostPath, size` triples; `libs`: in-jail paths. */
  items: (string | number)[];
}

/** A message to a worker. */
export type JobRequest =
  | { type: "hello"; mark: number }
  | { type: "batch"; jail: number; root: string; batch: JobBatch }
  | { type: "finish"; jail: number };

/** A worker's answer to "finish". */
export interface JobReply {
  type: "done";
  jail: number;
  results: JailResults;
}

/**
 * One jail's jobs and results, wherever they run.
 *
 * @example
 * ```ts
 * const work = new JailWork();
 * work.compare(["/srv/jail/usr/bin/ls", "/usr/bin/ls", 151344]);
 * work.libs("/srv/jail", ["/usr/bin/ls"]);
 * work.results().unresolved; // []
 * ```
 */
export class JailWork {
  #resolver: DepResolver | null = null;
  readonly #compared: CompareResult[] = [];
  readonly #unresolved = new Map<string, UnresolvedNeed>();
  readonly #warnings = new Set<string>();

  /** `jobs` is a flat list of `jailPath, hostPath, size` triples. */
  compare(jobs: readonly (string | number)[]): void {
    this.#compared.push(...compareAll(sharedComparer ??= new FileComparer(), jobs));
  }

  /** Adds programs to the closure; one resolver per jail keeps its caches across batches. */
  libs(root: string, paths: string[]): void {
    this.#resolver ??= new DepResolver({ root });
    const closure = this.#resolver.closure(paths);
    for (const u of closure.unresolved) {
      const key = `${u.name}\0${u.neededBy}`;
      if (!this.#unresolved.has(key)) this.#unresolved.set(key, u);
    }
    for (const w of closure.warnings) this.#warnings.add(w);
  }

  /** Does one batch of either kind. */
  run(root: string, batch: JobBatch): void {
    if (batch.kind === "compare") this.compare(batch.items);
    else this.libs(root, batch.items as string[]);
  }

  /** Everything found so far. */
  results(): JailResults {
    return {
      compared: this.#compared,
      unresolved: [...this.#unresolved.values()],
      warnings: [...this.#warnings],
    };
  }
}

/** The chunk buffers of this thread's comparisons (allocated on first use). */
let sharedComparer: FileComparer | undefined;

/** Serves job messages: claims and runs batches, answers "finish" with the jail's results. */
function serve(scope: { onmessage: unknown; postMessage(r: JobReply): void }): void {
  let mark = 0;
  const jails = new Map<number, JailWork>();
  const work = (jail: number) => {
    let w = jails.get(jail);
    if (!w) jails.set(jail, w = new JailWork());
    return w;
  };
  scope.onmessage = (ev: MessageEvent<JobRequest>) => {
    const req = ev.data;
    if (req.type === "hello") mark = req.mark;
    else if (req.type === "batch") {
      if (mark !== 0 && claim(req.batch, mark)) work(req.jail).run(req.root, req.batch);
    } else {
      scope.postMessage({ type: "done", jail: req.jail, results: work(req.jail).results() });
      jails.delete(req.jail);
    }
  };
}

// Started as a worker: serve. Imported by the main thread: nothing happens.
// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
if (import.meta.main && typeof scope.WorkerGlobalScope === "function") serve(scope);
