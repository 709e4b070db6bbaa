/**
 * What the setuid tools that enter a jail (jk_chrootsh, jk_uchroot,
 * jk_procmailwrapper; jk_chrootlaunch for the step mapping) share around the
 * steps of src/privileged.ts:
 * - a refusal is an `Abort` carrying the documented exit code and the log
 *   line; a failed step becomes an `Abort` through the tool's table of
 *   jailkit exit codes (`stepRunner`);
 * - `runPrivileged` hardens the process, connects the host's log before
 *   anything else, runs the tool and turns any refusal into one syslog line,
 *   one stderr line and the exit code;
 * - what makes their config directory and file safe to trust
 *   (`configDirFindings`, `configFileFindings`);
 * - jailkit's reading of a home field `JAIL/./HOME` (`splitJailHome`) and of
 *   two directory names (`dirsEqual`);
 * - the caller's entries in the jail's own passwd and group files, which are
 *   read as files after the drop, never through NSS (`jailUser`, `jailGroup`).
 *
 * Loads no `node:` module: jk_chrootsh runs on every jailed login.
 *
 * @module
 */

import { errorText, JkError } from "./errors.ts";
import { checkAncestors, checkPath, type Finding } from "./jailsafety.ts";
import { type GroupEntry, parseGroup, parsePasswd, type PasswdEntry } from "./passwd.ts";
import { type Hardening, hardenProcess, PrivilegeError } from "./privileged.ts";
import { INSTALLED, logSocketPath } from "./site.ts";
import { HostLog, LOG_AUTH, LOG_ERR, type Severity } from "./syslog.ts";

/**
 * A refusal: the exit code, the log line and its syslog severity. A `JkError`,
 * so a tool run by `runMain` reports it as any other.
 */
export class Abort extends JkError {
  /**
   * @param exitCode the tool's documented exit code
   * @param message the log line (one line, naming the user, path or call)
   * @param severity syslog severity of the line
   * @example
   * ```ts
   * throw new Abort(EXIT.unsafe, `${jail} is not a safe jail, check ownership and permissions.`);
   * ```
   */
  constructor(exitCode: number, message: string, readonly severity: Severity = LOG_ERR) {
    super(message, exitCode);
    this.name = "Abort";
  }
}

/**
 * A tool's exit codes for the steps of src/privileged.ts, by the names
 * jailkit's tools give them. A step without a code here exits `internal`.
 */
export interface StepExits {
  /** Not setuid root nor the trampoline's capabilities; mixed ids (jailkit 11). */
  notPrivileged?: number;
  /** Started by root (jailkit 12). */
  rootCaller?: number;
  /** The caller's passwd or group entry is missing (jailkit 13). */
  identity?: number;
  /** The jail cannot be entered (jailkit 19). */
  chdirJail?: number;
  /** The jail is not the directory that was checked (jailkit 21). */
  jailMoved?: number;
  /** chroot failed (jailkit 33). */
  chroot?: number;
  /** setresgid failed (jailkit 34). */
  setgid?: number;
  /** setgroups failed (jailkit 35). */
  setgroups?: number;
  /** setresuid failed, or the drop could not be verified (jailkit 36). */
  setuid?: number;
  /** Capabilities could not be dropped (jailkit 101). */
  capabilities?: number;
  /** no_new_privs could not be set. */
  noNewPrivs?: number;
  /** Preparing the exec failed (jailkit 111). */
  exec?: number;
  /** Anything else. */
  internal: number;
}

/** Which of `StepExits` each `PrivilegeError.reason` is. */
const EXIT_OF_REASON: Readonly<Record<string, keyof StepExits>> = {
  "not-privileged": "notPrivileged",
  "unexpected-capabilities": "notPrivileged",
  "mixed-ids": "notPrivileged",
  "root-caller": "rootCaller",
  "no-user": "identity",
  "no-name": "identity",
  "no-group": "identity",
  "lookup": "identity",
  "chdir": "chdirJail",
  "moved": "jailMoved",
  "chroot": "chroot",
  "setresgid": "setgid",
  "setgroups": "setgroups",
  "setresuid": "setuid",
  "verify": "setuid",
  "capabilities": "capabilities",
  "no_new_privs": "noNewPrivs",
  "exec": "exec",
};

/**
 * The exit code of a failed step.
 *
 * @example
 * ```ts
 * stepExit({ chroot: 33, internal: 70 }, "chroot"); // 33
 * stepExit({ chroot: 33, internal: 70 }, "regained"); // 70
 * ```
 */
export function stepExit(exits: StepExits, reason: string): number {
  const name = Object.hasOwn(EXIT_OF_REASON, reason) ? EXIT_OF_REASON[reason] : undefined;
  return (name === undefined ? undefined : exits[name]) ?? exits.internal;
}

/**
 * How a failed step is worded: `"what"` gives `what: <detail>`; a function
 * words it from the error (e.g. jailkit's text by `reason`).
 */
export type StepLabel = string | ((error: PrivilegeError) => string);

/** Runs one privileged step; a `PrivilegeError` becomes an `Abort`. */
export type StepRunner = <T>(label: StepLabel, run: () => T) => T;

/**
 * The step runner of a tool: runs a step of src/privileged.ts and turns its
 * `PrivilegeError` into an `Abort` with the tool's exit code and wording.
 * Anything else thrown passes through.
 *
 * @example
 * ```ts
 * const step = stepRunner({ ...EXIT, jailMoved: EXIT.notAllowed });
 * step(`entering ${jail}`, () => enterJail(jail)); // Abort(33, "entering /srv/j: chroot ...")
 * ```
 */
export function stepRunner(exits: StepExits): StepRunner {
  return <T>(label: StepLabel, run: () => T): T => {
    try {
      return run();
    } catch (e) {
      if (!(e instanceof PrivilegeError)) throw e;
      const text = typeof label === "string" ? `${label}: ${e.message}` : label(e);
      throw new Abort(stepExit(exits, e.reason), text);
    }
  };
}

/** A privileged tool, as `runPrivileged` runs it. */
export interface PrivilegedTool {
  /** Name: the syslog ident and the stderr prefix. */
  name: string;
  /** Exit code of an unexpected error. */
  internalExit: number;
  /** Syslog facility; default `LOG_AUTH`. */
  facility?: number;
  /**
   * Put before each refusal's message in the log and on stderr: jk_chrootsh's
   * messages leave jailkit's `abort, ` to the report. Default none.
   */
  abortPrefix?: string;
  /**
   * Reports a refusal itself instead (e.g. a usage text on stdout); returns
   * whether it did. The exit code is the refusal's either way.
   */
  report?: (abort: Abort) => boolean;
}

/**
 * A privileged tool's main: `hardenProcess` (on failure: stderr, exit
 * `internalExit`), the host's log connected (before any chroot), then `body`,
 * which ends in execve or throws. A thrown `Abort` is logged with its
 * severity, printed as `NAME: MESSAGE` on stderr and exits with its code;
 * anything else is `abort, internal error: ...`.
 *
 * @example
 * ```ts
 * if (import.meta.main) {
 *   await runPrivileged({ name: "jk_uchroot", internalExit: 70 }, (log, hardening) =>
 *     run(log, hardening, Deno.args));
 * }
 * ```
 */
export async function runPrivileged(
  tool: PrivilegedTool,
  body: (log: HostLog, hardening: Hardening) => never | Promise<never>,
): Promise<never> {
  let hardening: Hardening;
  try {
    hardening = hardenProcess();
  } catch (e) {
    console.error(`${tool.name}: abort, ${errorText(e)}`);
    Deno.exit(tool.internalExit);
  }
  const log = new HostLog(tool.name, tool.facility ?? LOG_AUTH, logSocketPath(INSTALLED));
  log.connect();
  try {
    return await body(log, hardening);
  } catch (e) {
    const abort = e instanceof Abort ? e : null;
    if (abort && tool.report?.(abort)) Deno.exit(abort.exitCode);
    const line = abort
      ? `${tool.abortPrefix ?? ""}${abort.message}`
      : `abort, internal error: ${errorText(e)}`;
    log.log(abort?.severity ?? LOG_ERR, line);
    console.error(`${tool.name}: ${line}`);
    Deno.exit(abort?.exitCode ?? tool.internalExit);
  }
}

/**
 * What is unsafe about a tool's config directory: the directory and every
 * ancestor must be root's and writable by nobody else. jailkit tolerates a
 * group-writable config directory itself; so do we.
 *
 * @example
 * ```ts
 * configDirFindings("/etc/jailkit"); // [] when /etc/jailkit and / are root's 0755
 * ```
 */
export function configDirFindings(dir: string): Finding[] {
  return [...checkAncestors(dir), ...checkPath(dir)]
    .filter((f) => f.path !== dir || f.problem !== "group-writable");
}

/**
 * What is unsafe about a tool's ini file: it must be root's and writable only
 * by root (any group owner). A missing file is not a finding: the tool
 * decides what no file means.
 *
 * @example
 * ```ts
 * configFileFindings("/etc/jailkit/jk_chrootsh.ini"); // [] when root's 0644
 * ```
 */
export function configFileFindings(file: string): Finding[] {
  return checkPath(file, { uid: 0, gid: 0 }, false)
    .filter((f) => f.problem !== "missing" && f.problem !== "group");
}

/**
 * Splits a home field at its last `/./` into the jail and the home inside it.
 * `null` when there is no separator or the jail part is not an absolute path
 * other than `/`.
 *
 * @example
 * ```ts
 * splitJailHome("/srv/jail/./home/alice"); // { jail: "/srv/jail", home: "/home/alice" }
 * splitJailHome("/srv/jail/./");           // { jail: "/srv/jail", home: "/" }
 * ```
 */
export function splitJailHome(field: string): { jail: string; home: string } | null {
  const at = field.lastIndexOf("/./");
  if (at <= 0) return null;
  const jail = field.slice(0, at);
  if (!jail.startsWith("/")) return null;
  return { jail, home: field.slice(at + 2) };
}

/**
 * jailkit's `dirs_equal`: equal strings, or equal but for one trailing `/`.
 *
 * @example
 * ```ts
 * dirsEqual("/home/a/", "/home/a"); // true
 * ```
 */
export function dirsEqual(a: string, b: string): boolean {
  return a === b || a === b + "/" || a + "/" === b;
}

/**
 * The user's entry in a jail's passwd text: the first line with the uid (as
 * getpwuid would find it).
 *
 * @example
 * ```ts
 * jailUser("alice:x:1000:1000::/home/alice:/usr/sbin/jk_lsh\n", 1000)?.shell;
 * ```
 */
export function jailUser(passwdText: string, uid: number): PasswdEntry | undefined {
  return parsePasswd(passwdText).entries.find((e) => e.uid === uid);
}

/**
 * The first entry of `gid` in a jail's group text.
 *
 * @example
 * ```ts
 * jailGroup("alice:x:1000:\n", 1000)?.name; // "alice"
 * ```
 */
export function jailGroup(groupText: string, gid: number): GroupEntry | undefined {
  return parseGroup(groupText).entries.find((e) => e.gid === gid);
}
