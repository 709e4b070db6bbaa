/**
 * The library closure test of jk_check, as findings: every executable and
 * shared library in the jail must find its loader, its `DT_NEEDED` libraries
 * and its `#!` interpreter inside the jail, searched exactly as glibc's
 * loader would search them after chroot (the jail's ld.so.cache,
 * RPATH/RUNPATH with `$ORIGIN`, the default directories). The resolution is
 * the one that builds jails (src/deps.ts, run with the jail as its root, in
 * a worker: see src/check/worker.ts), so nothing outside the jail is ever
 * consulted and nothing is run.
 *
 * @module
 */

import type { FindingCode } from "./findings.ts";
import type { UnresolvedNeed } from "../deps.ts";

/** Receives one finding. */
export type LibReport = (code: FindingCode, path: string, message: string) => void;

/**
 * Reports each need of the closure that cannot be met. In-jail paths are
 * turned into host paths below `jail`.
 *
 * @example
 * ```ts
 * reportUnresolved("/srv/jail", [{ name: "libfoo.so.1", neededBy: "/usr/bin/foo", reason: "not found" }],
 *   (code, path, msg) => console.log(code, msg));
 * // dependency-missing /srv/jail/usr/bin/foo needs libfoo.so.1, which is not usable inside ...
 * ```
 */
export function reportUnresolved(
  jail: string,
  unresolved: readonly UnresolvedNeed[],
  report: LibReport,
): void {
  const prefix = jail === "/" ? "" : jail;
  for (const u of unresolved) {
    if (u.neededBy === null) {
      report("elf-unusable", prefix + u.name, `${prefix}${u.name}: ${u.reason}`);
    } else {
      const by = prefix + u.neededBy;
      report(
        "dependency-missing",
        by,
        `${by} needs ${u.name}, which is not usable inside the jail: ${u.reason}`,
      );
    }
  }
}
