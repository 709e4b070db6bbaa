/**
 * The worker side of jk_check's parallel jobs (see src/check/jobs.ts): byte
 * comparison of jail files with host files, and library closures. Started as
 * a worker, it serves job messages; imported, it only exports
 * {@link JailWork}, which the main thread uses when a worker is not
 * available.
 *
 * @module
 */

import { type CompareResult, EXECUTABLE, FileComparer, TRUSTED } from "./compare.ts";
import { claim } from "./jobs.ts";
import { DepResolver, type UnresolvedNeed } from "../deps.ts";
import { type OpenedFile, openRegularFile } from "../elf.ts";

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
  /**
   * `compare`: flat `jailPath, hostPath, size, flags` quads ({@link TRUSTED},
   * {@link EXECUTABLE}); `libs`: in-jail paths.
   */
  items: (string | number)[];
  /** Some comparison lacks {@link TRUSTED}: the thread needs the non-blocking opener. */
  untrusted: boolean;
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
 * work.compare("/srv/jail", ["/srv/jail/usr/bin/ls", "/usr/bin/ls", 151344, TRUSTED | EXECUTABLE]);
 * work.libs("/srv/jail", ["/usr/bin/ls"]);
 * work.results().unresolved; // []
 * ```
 */
export class JailWork {
  #resolver: DepResolver | null = null;
  /** The bytes of the executable being resolved, by host path, read by its comparison. */
  #held: { path: string; bytes: Uint8Array } | null = null;
  readonly #compared: CompareResult[] = [];
  readonly #unresolved = new Map<string, UnresolvedNeed>();
  readonly #warnings = new Set<string>();

  /**
   * `jobs` is a flat list of `jailPath, hostPath, size, flags` quads. Call
   * {@link JailWork.run} instead when some lack {@link TRUSTED}: it loads the
   * non-blocking opener first.
   */
  compare(root: string, jobs: readonly (string | number)[]): void {
    const cmp = comparer();
    for (let i = 0; i + 3 < jobs.length; i += 4) {
      const jailPath = jobs[i] as string, hostPath = jobs[i + 1] as string;
      const flags = jobs[i + 3] as number;
      const executable = (flags & EXECUTABLE) !== 0;
      const outcome = cmp.compare(jailPath, hostPath, jobs[i + 2] as number, {
        trusted: (flags & TRUSTED) !== 0,
        keep: executable,
      });
      if (outcome.kind !== "same") this.#compared.push({ jailPath, hostPath, outcome });
      if (executable) this.#closure(root, [hostPath], cmp.kept());
    }
  }

  /** Adds programs to the closure; one resolver per jail keeps its caches across batches. */
  libs(root: string, paths: string[]): void {
    this.#closure(root, paths, null);
  }

  /**
   * The closure of `paths`; `bytes` (when not null) are the contents of the
   * single path, just read by its comparison, so its header is parsed
   * without opening it again. Every other file is opened as usual.
   */
  #closure(root: string, paths: string[], bytes: Uint8Array | null): void {
    const resolver = this.#resolver ??= new DepResolver({
      root,
      opener: (path) => this.#open(path),
    });
    this.#held = bytes ? { path: resolver.paths.hostPath(paths[0]), bytes } : null;
    try {
      const closure = resolver.closure(paths);
      for (const u of closure.unresolved) {
        const key = `${u.name}\0${u.neededBy}`;
        if (!this.#unresolved.has(key)) this.#unresolved.set(key, u);
      }
      for (const w of closure.warnings) this.#warnings.add(w);
    } finally {
      this.#held = null;
    }
  }

  #open(path: string): OpenedFile {
    const held = this.#held;
    return held && held.path === path ? memoryFile(held.bytes) : openRegularFile(path);
  }

  /** Does one batch of either kind. */
  async run(root: string, batch: JobBatch): Promise<void> {
    if (batch.kind === "libs") return this.libs(root, batch.items as string[]);
    const cmp = comparer();
    if (batch.untrusted && !cmp.canCompareUntrusted) {
      cmp.untrustedOpener = (await import("./nonblocking.ts")).openNonblocking;
    }
    this.compare(root, batch.items);
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

/**
 * A file already in memory, as {@link DepResolver}'s opener returns it. The
 * bytes were read by a comparison that found them equal to the host's, from
 * a regular file (the walk's `lstat`) in a directory only root can change.
 */
function memoryFile(bytes: Uint8Array): OpenedFile {
  return {
    size: bytes.length,
    pread(into, offset) {
      const n = Math.max(0, Math.min(into.length, bytes.length - offset));
      into.set(bytes.subarray(offset, offset + n));
      return n;
    },
    close() {},
  };
}

/** The chunk buffers of this thread's comparisons (allocated on first use). */
let sharedComparer: FileComparer | undefined;

function comparer(): FileComparer {
  return sharedComparer ??= new FileComparer();
}

/** Serves job messages: claims and runs batches, answers "finish" with the jail's results. */
function serve(scope: { onmessage: unknown; postMessage(r: JobReply): void }): void {
  let mark = 0;
  const jails = new Map<number, JailWork>();
  const work = (jail: number) => {
    let w = jails.get(jail);
    if (!w) jails.set(jail, w = new JailWork());
    return w;
  };
  // Batches may wait for a module (the non-blocking opener), so requests are
  // handled one after the other, in the order they came.
  let queue = Promise.resolve();
  const handle = async (req: JobRequest) => {
    if (req.type === "hello") mark = req.mark;
    else if (req.type === "batch") {
      if (mark !== 0 && claim(req.batch, mark)) await work(req.jail).run(req.root, req.batch);
    } else {
      scope.postMessage({ type: "done", jail: req.jail, results: work(req.jail).results() });
      jails.delete(req.jail);
    }
  };
  scope.onmessage = (ev: MessageEvent<JobRequest>) => {
    queue = queue.then(() => handle(ev.data));
  };
}

// Started as a worker: serve. Imported by the main thread: nothing happens.
// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
if (import.meta.main && typeof scope.WorkerGlobalScope === "function") serve(scope);
