/**
 * What jk_check reports: the catalogue of finding codes, the finding record,
 * and its two output forms (jailkit-style lines and JSON lines).
 *
 * Every finding has a stable `code` from {@link FINDING_CODES}; scripts match
 * on the code, never on the wording. The severity belongs to the code, so the
 * same problem is always reported the same way:
 * - `error` and `warning` are problems: they make jk_check exit 1;
 * - `notice` is information (a check that could not run, a missing config
 *   file): printed, but it never changes the exit code.
 *
 * Codes marked "jailkit" in their summary are the tests of jailkit 2.23's
 * jk_check, with its wording; the others are checks jailkit does not have.
 *
 * @module
 */

/** How bad a finding is. */
export type Severity = "error" | "warning" | "notice";

/** A code's fixed severity and one-line summary (the summary is documentation). */
export interface CodeInfo {
  severity: Severity;
  summary: string;
}

/**
 * Every finding code jk_check can emit. The keys are the stable interface.
 *
 * @example
 * ```ts
 * FINDING_CODES["setuid-file"].severity; // "warning"
 * ```
 */
export const FINDING_CODES = {
  // Configuration and discovery.
  "config-missing": { severity: "notice", summary: "the config file does not exist (jailkit)" },
  "config-invalid": { severity: "error", summary: "the config file cannot be read or parsed" },
  "config-unknown-key": { severity: "warning", summary: "a key jk_check does not know" },
  "config-bad-value": { severity: "warning", summary: "a value jk_check cannot use" },
  "passwd-unreadable": { severity: "error", summary: "the host /etc/passwd cannot be read" },
  "user-not-in-jail": {
    severity: "error",
    summary: "a host user with a /./ home is missing from the jail's etc/passwd (jailkit)",
  },
  "user-shell-not-chrootsh": {
    severity: "error",
    summary: "a host user with a /./ home does not have jk_chrootsh as shell (jailkit)",
  },
  // The jail directory and what lies above it.
  "jail-missing": { severity: "error", summary: "the jail does not exist (jailkit)" },
  "jail-invalid": { severity: "error", summary: "the jail is not an absolute directory path" },
  "basedir-unsafe": {
    severity: "error",
    summary: "the jail or a system subdirectory is not a root-owned real directory (jailkit)",
  },
  "ancestor-unsafe": {
    severity: "error",
    summary: "a directory above the jail, up to /, is not root-owned or is writable (jailkit up " +
      "to but not including /)",
  },
  // The walk.
  "walk-error": { severity: "error", summary: "a directory or entry cannot be read (jailkit)" },
  "dir-writable-others": {
    severity: "warning",
    summary: "directory writable for others (jailkit)",
  },
  "dir-writable-group": { severity: "warning", summary: "directory writable for group (jailkit)" },
  "setuid-file": { severity: "warning", summary: "executable with the setuid bit (jailkit)" },
  "setgid-file": { severity: "warning", summary: "executable with the setgid bit (jailkit)" },
  "system-file-writable": {
    severity: "error",
    summary: "a file in bin, etc, lib*, sbin or usr is writable by group or others",
  },
  "system-path-not-root": {
    severity: "error",
    summary: "a file or directory in bin, etc, lib*, sbin or usr is not owned by root",
  },
  "jail-ini-not-root": {
    severity: "error",
    summary: "the jail's etc/jailkit or a file in it is not owned by root",
  },
  "device-node": {
    severity: "error",
    summary: "a block device, or a character device other than null, zero, full, random, " +
      "urandom, tty, ptmx",
  },
  "socket": { severity: "warning", summary: "a unix socket (other than the jail's dev/log)" },
  "fifo": { severity: "warning", summary: "a named pipe" },
  "hardlink-outside": {
    severity: "warning",
    summary: "a regular file with hard links outside the jail",
  },
  "proc-mounted": { severity: "error", summary: "a procfs is mounted in the jail" },
  "sysfs-mounted": { severity: "error", summary: "a sysfs is mounted in the jail" },
  "ld-so-preload": { severity: "error", summary: "the jail has an etc/ld.so.preload" },
  // Comparison with the host.
  "file-differs": { severity: "error", summary: "content differs from the host file (jailkit)" },
  "file-size-differs": { severity: "error", summary: "size differs from the host file (jailkit)" },
  "symlink-differs": {
    severity: "error",
    summary: "symlink target differs from the host symlink (jailkit)",
  },
  "file-type-differs": {
    severity: "error",
    summary: "a regular file in the jail where the host has something else",
  },
  "host-file-missing": {
    severity: "error",
    summary: "a regular file in the jail that the host does not have (jailkit: cannot read)",
  },
  "compare-unreadable": {
    severity: "error",
    summary: "the jail or host file cannot be read for the comparison (jailkit)",
  },
  // Libraries.
  "dependency-missing": {
    severity: "error",
    summary: "a DT_NEEDED library, loader or #! interpreter not resolvable inside the jail",
  },
  "elf-unusable": {
    severity: "warning",
    summary: "an executable or library that cannot be read, or is not a loadable ELF file",
  },
  // Users.
  "user-changed": {
    severity: "error",
    summary: "a jail user's uid or gid differs from the host (jailkit)",
  },
  "user-home-mismatch": {
    severity: "error",
    summary: "a jailed user's host home is not JAIL/./HOME (jailkit)",
  },
  "user-not-on-host": {
    severity: "error",
    summary: "a user of the jail's etc/passwd does not exist on the host (jailkit)",
  },
  "jail-passwd-malformed": {
    severity: "warning",
    summary: "a line of the jail's etc/passwd that does not parse",
  },
  "jail-passwd-unreadable": {
    severity: "error",
    summary: "the jail's etc/passwd exists but cannot be read",
  },
  // The host.
  "sysctl-protected-hardlinks": {
    severity: "error",
    summary: "fs.protected_hardlinks is not 1",
  },
  "sysctl-protected-symlinks": {
    severity: "error",
    summary: "fs.protected_symlinks is not 1",
  },
  "sysctl-ptrace-scope": {
    severity: "warning",
    summary: "kernel.yama.ptrace_scope is 0 or the kernel has no Yama: a jailed process can " +
      "ptrace processes of its own uid outside the jail",
  },
  "not-checked": {
    severity: "notice",
    summary: "a check that jk_check's permissions keep out of reach",
  },
} as const satisfies Record<string, CodeInfo>;

/** A finding code. */
export type FindingCode = keyof typeof FINDING_CODES;

/** One thing found. */
export interface Finding {
  /** Stable identifier, a key of {@link FINDING_CODES}. */
  code: FindingCode;
  /** The code's severity. */
  severity: Severity;
  /** The path concerned (a file, a config file, /etc/passwd, a /proc/sys entry). */
  path: string;
  /** One line in jailkit's words where jailkit has the test. */
  message: string;
  /** The jail being checked, or null for host-wide findings. */
  jail: string | null;
}

/**
 * Makes a finding with its code's severity.
 *
 * @example
 * ```ts
 * finding("fifo", "/srv/jail/tmp/p", "/srv/jail/tmp/p is a named pipe", "/srv/jail");
 * ```
 */
export function finding(
  code: FindingCode,
  path: string,
  message: string,
  jail: string | null,
): Finding {
  return { code, severity: FINDING_CODES[code].severity, path, message, jail };
}

/** Whether a finding is a problem (counts for the exit code). */
export function isProblem(f: Finding): boolean {
  return f.severity !== "notice";
}

/** C0, DEL and C1 controls: a file name holding them could forge or hide output lines. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x1f\x7f-\x9f]/g;

/** The text with control characters shown as `\xNN`. */
function printable(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/**
 * The jailkit-style line: `ERROR: message [code]`, `WARNING: ...` or
 * `NOTICE: ...`. Control characters in names are escaped so a hostile file
 * name cannot fake a line.
 *
 * @example
 * ```ts
 * formatText(finding("fifo", "/j/p", "/j/p is a named pipe", "/j"));
 * // "WARNING: /j/p is a named pipe [fifo]"
 * ```
 */
export function formatText(f: Finding): string {
  return `${f.severity.toUpperCase()}: ${printable(f.message)} [${f.code}]`;
}

/**
 * One JSON object on one line: `code`, `severity`, `path`, `message`, `jail`.
 *
 * @example
 * ```ts
 * formatJson(finding("fifo", "/j/p", "/j/p is a named pipe", "/j"));
 * // {"code":"fifo","severity":"warning","path":"/j/p","message":"/j/p is a named pipe","jail":"/j"}
 * ```
 */
export function formatJson(f: Finding): string {
  return JSON.stringify({
    code: f.code,
    severity: f.severity,
    path: f.path,
    message: f.message,
    jail: f.jail,
  });
}
