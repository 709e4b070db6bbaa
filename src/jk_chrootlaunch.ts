/**
 * jk_chrootlaunch — start a daemon inside a jail (root only).
 *
 * `jk_chrootlaunch -j JAIL -x EXEC [-u USER] [-g GROUP] [-p PIDFILE] [--allow-setuid]
 *                  [-- ARGS...]`
 *
 * Checks the jail, enters it (chdir, chroot, chdir, verified), checks the
 * executable, becomes USER/GROUP and execs EXEC with ARGS and the caller's
 * environment; the pid (written to PIDFILE first) stays the daemon's. EXEC is
 * a path inside the jail, or a host path starting with JAIL.
 *
 * Who the daemon runs as:
 * - `-u USER` (name, or a number as uid): the user's uid, their primary gid
 *   and their supplementary groups from the host's group database;
 * - `-u USER -g GROUP`: GROUP as the gid, and the user's groups with it;
 * - `-g GROUP` alone: stays uid 0 (root can leave a jail), with gid and the
 *   only group GROUP;
 * - neither: root, with no supplementary groups.
 *
 * Differences from jailkit 2.23, on purpose:
 * - with `-u` alone the gid and groups are the user's own (jailkit kept gid 0
 *   and root's supplementary groups); supplementary groups are always set;
 * - `no_new_privs` is set, so setuid programs and file capabilities inside
 *   the jail give the daemon nothing; `--allow-setuid` leaves it unset for the
 *   daemons that need them;
 * - the jail must be safe including every ancestor (src/jailsafety.ts),
 *   and be an absolute, canonical path;
 * - the executable is checked inside the jail after chroot, where execve will
 *   look it up, and every directory on its way must be root's and writable
 *   by no one else (jailkit checked the host path before chroot, where an
 *   absolute symlink in the jail points elsewhere);
 * - the drop is setgroups, setresgid, setresuid, verified and proven
 *   irreversible (src/privileged.ts); signals default, fds above 2 closed,
 *   fds 0-2 always open (on /dev/null if they were not);
 * - a pidfile that cannot be written is an error (jailkit only logged it),
 *   and it is removed again if the launch fails;
 * - "executing" is logged to the host's syslog, connected before chroot
 *   (jailkit logged after chroot, so without /dev/log in the jail it was lost);
 * - unknown options are errors.
 *
 * Exit codes: see `EXIT` (jailkit's numbers; 32 and 38 are new). `--help`
 * prints the usage and exits 1, as jailkit does.
 *
 * @module
 */

import { basename, dirname, normalize } from "node:path";
import { errorText, JkError, type OptionSpec, parseCommandLine, runMain } from "./cli.ts";
import { checkJail } from "./jailsafety.ts";
import {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  close,
  closeOnExec,
  dup3,
  fchmod,
  fstat,
  geteuid,
  getgrgid,
  getgrnam,
  getgrouplist,
  getpwnam,
  getpwuid,
  O_CREAT,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  open,
  openat,
  type PasswdEntry,
  setgroups,
  setresgid,
  statAt,
  unlinkat,
  write,
} from "./libc.ts";
import {
  dropTo,
  enterJail,
  execOrDie,
  prepareExec,
  PrivilegeError,
  setNoNewPrivs,
  type Target,
} from "./privileged.ts";
import { stepRunner } from "./privtool.ts";
import { INSTALLED, logSocketPath } from "./site.ts";
import { HostLog, LOG_DAEMON, LOG_ERR, LOG_NOTICE } from "./syslog.ts";

const TOOL = "jk_chrootlaunch";

/** Exit codes: jailkit's, plus 32 (pidfile), 38 (no_new_privs) and 70 (internal). */
export const EXIT = {
  /** Usage, `--help`, unknown user or group, not run as root. */
  usage: 1,
  /** No jail given. */
  noJail: 21,
  /** No executable given. */
  noExec: 23,
  /** The jail, a system directory in it or an ancestor is not safe. */
  unsafeJail: 25,
  /** The jail is not an absolute, canonical path. */
  jailPath: 27,
  /** The executable is missing, a symlink, setuid/setgid, writable or not root's. */
  executable: 29,
  /** execve failed. */
  exec: 31,
  /** The pidfile cannot be written. */
  pidfile: 32,
  /** The jail cannot be entered. */
  chdir: 33,
  /** chroot failed. */
  chroot: 35,
  /** setgroups or setresgid failed. */
  setgid: 37,
  /** no_new_privs could not be set. */
  noNewPrivs: 38,
  /** setresuid failed, or the drop could not be verified. */
  setuid: 39,
  /** Anything unexpected. */
  internal: 70,
} as const;

const USAGE = `Usage: jk_chrootlaunch -j jail -x executable [-u user] [-g group] [-p pidfile]
                       [--allow-setuid] [-- executable options]

 -j, --jail DIR       the directory to jail the process in (absolute)
 -x, --exec PATH      the executable, inside the jail (or a host path below DIR)
 -u, --user USER      the name or uid to run as; also its gid and groups
 -g, --group GROUP    the name or gid to run with
 -p, --pidfile FILE   write the process id to FILE (absolute) before starting
     --allow-setuid   do not set no_new_privs: setuid programs in the jail keep working
 -h, --help           this text`;

const OPTIONS = {
  jail: { type: "string", short: "j" },
  exec: { type: "string", short: "x" },
  user: { type: "string", short: "u" },
  group: { type: "string", short: "g" },
  pidfile: { type: "string", short: "p" },
  "allow-setuid": { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
  v: { type: "boolean", short: "v" },
} satisfies OptionSpec;

/** What the command line asks for. */
export interface LaunchOptions {
  jail?: string;
  exec?: string;
  user?: string;
  group?: string;
  pidfile?: string;
  allowSetuid: boolean;
  /** The program's own arguments. */
  args: string[];
}

/**
 * Reads the command line; `null` for `--help`/`--version`. Arguments after
 * `--` (and any other non-option) are the program's.
 *
 * @example
 * ```ts
 * parseLaunchOptions(["-j", "/srv/j", "-x", "/usr/sbin/httpd", "--", "-DFOREGROUND"])?.args;
 * // ["-DFOREGROUND"]
 * ```
 */
export function parseLaunchOptions(args: string[]): LaunchOptions | null {
  const { values, positionals } = parseCommandLine(args, OPTIONS, { usageExit: EXIT.usage });
  if (values.help || values.version) return null;
  const text = (name: keyof typeof OPTIONS) => values[name] as string | undefined;
  return {
    jail: text("jail"),
    exec: text("exec"),
    user: text("user"),
    group: text("group"),
    pidfile: text("pidfile"),
    allowSetuid: values["allow-setuid"] === true,
    args: positionals,
  };
}

/**
 * The ids the daemon gets (see the module text). A value starting with a
 * digit is a number and must be all digits and exist, as a uid or gid; any
 * other value is a name. Looked up in the host's databases, before chroot.
 *
 * @example
 * ```ts
 * launchTarget("www-data", undefined); // { uid: 33, gid: 33, groups: [33] }
 * launchTarget(undefined, undefined); // { uid: 0, gid: 0, groups: [] }
 * ```
 */
export function launchTarget(user?: string, group?: string): Target {
  const pw = user === undefined ? null : lookupUser(user);
  const gid = group === undefined ? pw?.gid ?? 0 : lookupGroup(group);
  if (pw) return { uid: pw.uid, gid, groups: [...new Set([gid, ...getgrouplist(pw.name, gid)])] };
  return { uid: 0, gid, groups: group === undefined ? [] : [gid] };
}

function lookupUser(value: string): PasswdEntry {
  if (/^[0-9]/.test(value)) {
    if (!/^[0-9]{1,10}$/.test(value)) throw new JkError(`abort, '${value}' is not a valid uid`);
    const pw = getpwuid(Number(value));
    if (!pw) {
      throw new JkError(`abort, user '${value}' does not exist (interpreted as uid ${value})`);
    }
    return pw;
  }
  const pw = getpwnam(value);
  if (!pw) throw new JkError(`abort, user '${value}' does not exist`);
  return pw;
}

function lookupGroup(value: string): number {
  if (/^[0-9]/.test(value)) {
    if (!/^[0-9]{1,10}$/.test(value)) throw new JkError(`abort, '${value}' is not a valid gid`);
    const gr = getgrgid(Number(value));
    if (!gr) {
      throw new JkError(`abort, group '${value}' does not exist (interpreted as gid ${value})`);
    }
    return gr.gid;
  }
  const gr = getgrnam(value);
  if (!gr) throw new JkError(`abort, group '${value}' does not exist`);
  return gr.gid;
}

/**
 * The executable's path inside the jail: a host path below the jail loses the
 * jail prefix; a relative path is taken from the jail's root, as jailkit did.
 *
 * @example
 * ```ts
 * pathInJail("/srv/j", "/srv/j/usr/sbin/httpd"); // "/usr/sbin/httpd"
 * pathInJail("/srv/j", "usr/sbin/httpd"); // "/usr/sbin/httpd"
 * ```
 */
export function pathInJail(jail: string, exec: string): string {
  const inside = exec.startsWith(`${jail}/`) ? exec.slice(jail.length) : exec;
  return normalize(inside.startsWith("/") ? inside : `/${inside}`);
}

/**
 * Checks the executable from inside the jail (after chroot, as root) and
 * returns the path to execute, with its directory resolved. The file itself
 * must not be a symlink, must be a root-owned (0:0) regular file without
 * setuid/setgid bits, writable by no one but root; every directory on the
 * resolved way to it must be root's and writable by no one else, so nobody
 * can swap the file between this check and execve.
 *
 * @example
 * ```ts
 * checkedExecutable("/bin/sleep"); // "/usr/bin/sleep" in a merged-/usr jail
 * ```
 */
export function checkedExecutable(path: string): string {
  const bad = (why: string) => new JkError(`abort, executable ${path} ${why}`, EXIT.executable);
  let dir: string;
  try {
    dir = Deno.realPathSync(dirname(path));
  } catch (e) {
    throw bad(`cannot be found: ${errorText(e)}`);
  }
  for (let d = dir;; d = dirname(d)) {
    const st = statAt(AT_FDCWD, d, AT_SYMLINK_NOFOLLOW);
    if (!st || st.uid !== 0 || (st.mode & 0o022) !== 0) {
      throw bad(`is in ${d}, which is not root's or is writable by group or others`);
    }
    if (d === "/") break;
  }
  const resolved = `${dir === "/" ? "" : dir}/${basename(path)}`;
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(resolved);
  } catch (e) {
    throw bad(`does not exist: ${errorText(e)}`);
  }
  const mode = info.mode ?? 0;
  if (info.isSymlink) throw bad("is a symlink");
  if (!info.isFile) throw bad("is not a regular file");
  if (mode & 0o6000) throw bad("is setuid or setgid");
  if (mode & 0o022) throw bad("is writable by group or others");
  if (info.uid !== 0 || info.gid !== 0) throw bad("is not owned by root:root");
  return resolved;
}

/**
 * A pidfile written by us, removed again if the launch fails. Its directory
 * is held open (close-on-exec): after chroot its path means nothing.
 */
interface Pidfile {
  dirFd: number;
  name: string;
  dev: bigint;
  ino: bigint;
}

/** Writes our pid (which execve keeps) to a new or truncated file, not through a symlink. */
function writePidfile(path: string): Pidfile {
  const failed = (why: string) =>
    new JkError(`abort, failed to write pid to ${path}: ${why}`, EXIT.pidfile);
  if (!path.startsWith("/") || path.endsWith("/")) throw failed("not an absolute path to a file");
  let dirFd: number;
  try {
    dirFd = open(dirname(path), O_PATH | O_DIRECTORY);
  } catch (e) {
    throw failed(errorText(e));
  }
  let fd: number;
  try {
    fd = openat(dirFd, basename(path), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o644);
  } catch (e) {
    close(dirFd);
    throw failed(errorText(e));
  }
  try {
    fchmod(fd, 0o644);
    write(fd, new TextEncoder().encode(`${Deno.pid}\n`));
    const { dev, ino } = fstat(fd);
    return { dirFd, name: basename(path), dev, ino };
  } finally {
    close(fd);
  }
}

function removePidfile(pidfile: Pidfile): void {
  try {
    const st = statAt(pidfile.dirFd, pidfile.name, AT_SYMLINK_NOFOLLOW);
    if (st && st.dev === pidfile.dev && st.ino === pidfile.ino) {
      unlinkat(pidfile.dirFd, pidfile.name, 0);
    }
  } catch {
    // it is only a stale pidfile
  }
}

/**
 * Becomes `target` for good. A non-root target goes through `dropTo`
 * (verified, irreversible); root keeps uid 0 and gets exactly the groups and
 * gid asked for.
 */
function become(target: Target): void {
  if (target.uid !== 0) {
    dropTo(target);
    return;
  }
  try {
    setgroups(target.groups);
    setresgid(target.gid, target.gid, target.gid);
  } catch (e) {
    throw new PrivilegeError("drop", "setresgid", errorText(e));
  }
}

/** Runs a step of src/privileged.ts; its failure becomes an `Abort` with jailkit's exit code. */
const step = stepRunner({
  chdirJail: EXIT.chdir,
  jailMoved: EXIT.unsafeJail,
  chroot: EXIT.chroot,
  setgid: EXIT.setgid,
  setgroups: EXIT.setgid,
  setuid: EXIT.setuid,
  capabilities: EXIT.setuid,
  noNewPrivs: EXIT.noNewPrivs,
  exec: EXIT.exec,
  internal: EXIT.internal,
});

/**
 * fds 0-2 open and not close-on-exec for the daemon: one that is closed or
 * that the runtime reused for itself gets /dev/null. Call right before execve
 * (it may replace a runtime descriptor).
 */
function ensureStandardFds(): void {
  for (const fd of [0, 1, 2]) {
    if (closeOnExec(fd) !== false) {
      const devNull = open("/dev/null", O_RDWR);
      if (devNull !== fd) {
        dup3(devNull, fd, false);
        close(devNull);
      }
    }
  }
}

/** The launch; returns only by throwing. */
function launch(options: LaunchOptions, log: HostLog): never {
  if (geteuid() !== 0) throw new JkError(`abort, ${TOOL} must be run as root`, EXIT.usage);
  const target = launchTarget(options.user, options.group);
  const jailArg = options.jail;
  if (!jailArg) throw new JkError("abort, no jail directory specified (-j)", EXIT.noJail);
  if (!options.exec) throw new JkError("abort, no executable specified (-x)", EXIT.noExec);
  const jail = jailArg === "/" ? jailArg : jailArg.replace(/\/+$/, "");
  if (!jail.startsWith("/") || normalize(jail) !== jail || jail === "/") {
    throw new JkError(
      `abort, jail ${jailArg} must be an absolute, canonical path other than /`,
      EXIT.jailPath,
    );
  }
  const findings = checkJail(jail);
  if (findings.length > 0) {
    throw new JkError(
      `abort, ${jail} is not a safe jail: ${findings.map((f) => f.message).join("; ")}`,
      EXIT.unsafeJail,
    );
  }
  const inside = pathInJail(jail, options.exec);
  const pidfile = options.pidfile === undefined ? null : writePidfile(options.pidfile);
  try {
    step(`abort, entering ${jail}`, () => enterJail(jail));
    log.pin();
    const program = checkedExecutable(inside);
    step("abort, changing ids", () => become(target));
    if (!options.allowSetuid) step("abort, no_new_privs", setNoNewPrivs);
    log.log(
      LOG_NOTICE,
      `executing ${inside} in jail ${jail} as ${target.uid}:${target.gid} ` +
        `(groups ${target.groups.join(",") || "none"})`,
    );
    const env = Object.entries(Deno.env.toObject()).map(([k, v]) => `${k}=${v}`);
    step("abort, preparing to execute", () => prepareExec());
    ensureStandardFds();
    return execOrDie(program, [inside, ...options.args], env, {
      exitCode: EXIT.exec,
      onFailure: (e) => {
        log.log(LOG_ERR, `failed to execute ${inside} in jail ${jail}: ${e.code}`);
        if (pidfile) removePidfile(pidfile);
      },
    });
  } catch (e) {
    if (pidfile) removePidfile(pidfile);
    throw e;
  }
}

/** Entry point. */
export function main(args: string[]): number {
  const options = parseLaunchOptions(args);
  if (!options) {
    console.log(USAGE);
    return EXIT.usage;
  }
  // Connected now, to the host's log socket: after chroot the path would be the jail's.
  const log = new HostLog(TOOL, LOG_DAEMON, logSocketPath(INSTALLED));
  log.connect();
  try {
    return launch(options, log);
  } catch (e) {
    const message = e instanceof JkError ? e.message : `abort, internal error: ${errorText(e)}`;
    log.log(LOG_ERR, message);
    throw e instanceof JkError ? e : new JkError(message, EXIT.internal);
  }
}

if (import.meta.main) await runMain(TOOL, () => main(Deno.args));
