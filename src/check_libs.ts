/**
 * The library closure test of jk_check: every executable and shared library
 * in the jail must find its loader, its `DT_NEEDED` libraries and its `#!`
 * interpreter inside the jail, searched exactly as glibc's loader would
 * search them after chroot (the jail's ld.so.cache, RPATH/RUNPATH with
 * `$ORIGIN`, the default directories). This reuses the resolver that builds
 * jails (src/deps.ts) with the jail as its root, so nothing outside the jail
 * is ever consulted and nothing is run.
 *
 * @module
 */

import type { FindingCode } from "./check_findings.ts";
import { DepResolver } from "./deps.ts";

/** Receives one finding. */
export type LibReport = (code: FindingCode, path: string, message: string) => void;

/**
 * Resolves the closure of `executables` (in-jail paths) inside `jail` and
 * reports each need that cannot be met. Resolver remarks (audit libraries,
 * `#!/usr/bin/env` scripts) go to `note`.
 *
 * @example
 * ```ts
 * checkLibraries("/srv/jail", ["/usr/bin/bash"], (code, path, msg) => console.log(code, msg));
 * ```
 */
export function checkLibraries(
  jail: string,
  executables: readonly string[],
  report: LibReport,
  note: (line: string) => void = () => {},
): void {
  if (executables.length === 0) return;
  const prefix = jail === "/" ? "" : jail;
  const closure = new DepResolver({ root: jail }).closure([...executables]);
  for (const u of closure.unresolved) {
    if (u.neededBy === null) {
      report("elf-invalid", prefix + u.name, `${prefix}${u.name}: ${u.reason}`);
    } else {
      const by = prefix + u.neededBy;
      report(
        "dependency-missing",
        by,
        `${by} needs ${u.name}, which is not usable inside the jail: ${u.reason}`,
      );
    }
  }
  for (const w of closure.warnings) note(`${jail}: ${w}`);
}
