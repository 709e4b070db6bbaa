/**
 * Host-wide checks of jk_check, and the checks its permissions keep out of
 * reach, which are reported as such instead of being skipped in silence.
 *
 * - `fs.protected_hardlinks` and `fs.protected_symlinks` must be 1: without
 *   them a jailed user can hard-link a setuid binary into a directory they
 *   own, and root tools working in jails can be redirected by symlinks.
 *   They live in /proc/sys, which Deno refuses to any program short of
 *   `--allow-all`, even with `--allow-read=/proc/sys/fs/...` (tested on Deno
 *   2.9.6). jk_check runs with `--allow-read` only, so it reports them as
 *   not checked unless it is run with more.
 * - `kernel.yama.ptrace_scope` must be 1 or more (or a jailed user can ptrace
 *   their own processes outside the jail); also in /proc/sys, so also
 *   reported as not checked under jk_check's permissions.
 * - File capabilities (`security.capability` extended attributes) in the
 *   jail need getxattr(2), which Deno only offers through `--allow-ffi`
 *   (documented as equivalent to `--allow-all`); reported as not checked.
 *
 * @module
 */

import type { FindingCode } from "./findings.ts";
import { errorText } from "../errors.ts";

/** Receives one host-wide finding. */
export type HostReport = (code: FindingCode, path: string, message: string) => void;

const SYSCTLS: [string, FindingCode][] = [
  ["fs.protected_hardlinks", "sysctl-protected-hardlinks"],
  ["fs.protected_symlinks", "sysctl-protected-symlinks"],
];

/**
 * Reads the protection sysctls, reporting a value other than 1 as a problem
 * and an unreadable one as not checked.
 *
 * @example
 * ```ts
 * checkSysctls((code, path, message) => console.log(code, message));
 * ```
 */
export function checkSysctls(report: HostReport): void {
  for (const [name, code] of SYSCTLS) {
    const path = `/proc/sys/${name.replaceAll(".", "/")}`;
    let value: string;
    try {
      value = Deno.readTextFileSync(path).trim();
    } catch (e) {
      const why = e instanceof Deno.errors.NotCapable
        ? "Deno allows /proc only with --allow-all, which jk_check does not have"
        : errorText(e);
      report("not-checked", path, `not checked: sysctl ${name} (${path}: ${why})`);
      continue;
    }
    if (value !== "1") {
      report(code, path, `sysctl ${name} is ${value}, should be 1`);
    }
  }
}

/** Yama's ptrace policy (0 classic, 1 descendants only, 2 admin only, 3 none). */
export const PTRACE_SCOPE = "/proc/sys/kernel/yama/ptrace_scope";

/**
 * Reports whether a jailed process can ptrace processes of its own uid
 * outside the jail (peers-and-threats §2.6). chroot does not separate
 * processes: under the classic rules a jailed user can attach to, read and
 * rewrite any of their processes running outside (a cron job, a service, a
 * login that is not jailed) and so run code outside the jail. Yama's
 * `kernel.yama.ptrace_scope` of 1 or more limits ptrace to descendants. A
 * missing file means a kernel without Yama, the same as 0. An unreadable one
 * is reported as not checked, naming the risk.
 *
 * @example
 * ```ts
 * checkPtraceScope((code, path, message) => console.log(code, message));
 * ```
 */
export function checkPtraceScope(report: HostReport): void {
  const risk = "a jailed user can ptrace their own processes outside the jail";
  let value: string;
  try {
    value = Deno.readTextFileSync(PTRACE_SCOPE).trim();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      report(
        "sysctl-ptrace-scope",
        PTRACE_SCOPE,
        `the kernel has no Yama (${PTRACE_SCOPE} is missing): ${risk}`,
      );
    } else {
      const why = e instanceof Deno.errors.NotCapable
        ? "Deno allows /proc only with --allow-all, which jk_check does not have"
        : errorText(e);
      report(
        "not-checked",
        PTRACE_SCOPE,
        `not checked: sysctl kernel.yama.ptrace_scope (${PTRACE_SCOPE}: ${why}); below 1, ${risk}`,
      );
    }
    return;
  }
  if (!/^[1-9]$/.test(value)) {
    report(
      "sysctl-ptrace-scope",
      PTRACE_SCOPE,
      `sysctl kernel.yama.ptrace_scope is ${value}, should be 1 or more: ${risk}`,
    );
  }
}

/**
 * The note that file capabilities were not looked for.
 *
 * @example
 * ```ts
 * reportCapabilitiesUnchecked(report);
 * ```
 */
export function reportCapabilitiesUnchecked(report: HostReport): void {
  report(
    "not-checked",
    "security.capability",
    "not checked: file capabilities (the security.capability attribute needs getxattr(2), " +
      "which Deno only offers through --allow-ffi)",
  );
}
