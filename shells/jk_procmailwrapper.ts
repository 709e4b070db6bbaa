/**
 * jk_procmailwrapper — run procmail as the mail's recipient, inside their jail
 * if they have one.
 *
 * Configured as the MTA's delivery command in place of procmail (e.g.
 * Postfix `mailbox_command = /usr/sbin/jk_procmailwrapper -a "$EXTENSION"`);
 * the MTA runs it as the recipient. Installed behind the setuid-root (or
 * `--caps`) trampoline, which hands over the MTA's environment on fd 3.
 * Arguments are passed to procmail unchanged.
 *
 * - A user whose home has no `/./` gets the host's procmail ({@link PROCMAIL})
 *   as themselves: their host groups, a clean environment. The host's
 *   procmail keeps its own setuid/setgid bits (it needs group mail to lock
 *   /var/mail).
 * - A user whose home is `JAIL/./HOME` gets procmail inside the jail: jail
 *   checked (with every ancestor), home checked, jail entered, ids dropped for
 *   good, no_new_privs, the user checked against the jail's /etc/passwd and
 *   /etc/group (name, group, home), working directory HOME, and
 *   `JAIL/usr/bin/procmail` run with HOME, so it reads the jailed
 *   `~/.procmailrc`.
 *
 * Clean environment: only PATH=/usr/bin:/bin, HOME, USER, LOGNAME and SHELL
 * from the user's entry, plus the delivery variables MTAs set (see
 * `MTA_VARIABLES`) when their values are short, one-line text.
 *
 * The procmail path is fixed when jailkit is built: it is this module's
 * constant, never taken from the environment or a config file.
 *
 * Differences from jailkit 2.23, on purpose:
 * - a user without a passwd entry gets exit 13 (jailkit crashed);
 * - the non-jailed path also cleans the environment (jailkit passed it on);
 * - supplementary groups come from the host's group database before chroot
 *   (jailkit called initgroups after chroot, reading the jail's /etc/group);
 * - the jail's system directories and ancestors are checked, as are the
 *   directories between the jail and the home; the jail's files are read as
 *   files after the drop (jailkit used NSS inside the jail);
 * - no_new_privs in the jail; capabilities cleared; the drop is verified;
 * - procmail in the jail must be a root-owned file writable only by root
 *   (jailkit only logged it), exit 40 otherwise;
 * - fd 3 does not leak into procmail (jailkit's loop stopped at 4).
 *
 * Exit codes: see `EXIT` (jailkit's numbers; 38, 40 and 70 are new).
 *
 * @module
 */

import process from "node:process";
import { basename, normalize } from "node:path";
import { errorText } from "../src/cli.ts";
import { checkJail, checkPath } from "../src/jailsafety.ts";
import { chdir } from "../src/libc.ts";
import {
  callerEnvironment,
  dropTo,
  enterJail,
  execOrDie,
  type Hardening,
  type HostIdentity,
  prepareExec,
  privilegeMode,
  resolveHostIdentity,
  setNoNewPrivs,
} from "../src/privileged.ts";
import {
  Abort,
  dirsEqual,
  jailGroup,
  jailUser,
  runPrivileged,
  splitJailHome,
  stepRunner,
} from "../src/privtool.ts";
import { type HostLog, LOG_ERR, LOG_INFO } from "../src/syslog.ts";

const TOOL = "jk_procmailwrapper";

/** The procmail this build runs, on the host and (at the same path) in a jail. */
export const PROCMAIL = "/usr/bin/procmail";

/** Exit codes, jailkit's numbers where jailkit has the step. */
export const EXIT = {
  /** Called under another name; the host's procmail could not be executed. */
  name: 1,
  /** Neither setuid root nor the trampoline's capabilities, or started by root. */
  notPrivileged: 11,
  /** No passwd or group entry for the caller. */
  identity: 13,
  /** The passwd gid is not the gid we were started with. */
  gidMismatch: 15,
  /** The home does not split into JAIL/./HOME. */
  noSeparator: 17,
  /** The jail cannot be entered. */
  chdirJail: 19,
  /** The jail is not a canonical path, or moved while being entered. */
  jailMoved: 21,
  /** chroot failed. */
  chroot: 33,
  /** setresgid failed. */
  setgid: 34,
  /** setgroups failed, or the user or group is missing from the jail's files. */
  setgroups: 35,
  /** setresuid failed, or the drop could not be verified. */
  setuid: 36,
  /** User or group name in the jail differs from the host's. */
  names: 37,
  /** no_new_privs could not be set. */
  noNewPrivs: 38,
  /** The home in the jail's passwd differs from the host's. */
  jailHome: 39,
  /** procmail in the jail is not a root-owned file writable only by root. */
  unsafeProcmail: 40,
  /** chdir to the home inside the jail failed. */
  chdirHome: 41,
  /** The jail or the home failed a safety check. */
  unsafe: 53,
  /** Capabilities could not be dropped (jailkit: 101–105). */
  capabilities: 101,
  /** procmail in the jail could not be executed. */
  exec: 111,
  /** Anything unexpected. */
  internal: 70,
} as const;

/**
 * Variables an MTA sets for its delivery agent (Postfix local(8), Exim,
 * sendmail) that a .procmailrc may use; everything else is dropped.
 */
export const MTA_VARIABLES: readonly string[] = [
  "SENDER",
  "RECIPIENT",
  "ORIGINAL_RECIPIENT",
  "EXTENSION",
  "DOMAIN",
  "LOCAL",
  "LOCAL_PART",
  "LOCAL_PART_PREFIX",
  "LOCAL_PART_SUFFIX",
  "SENDER_ADDRESS",
  "CLIENT_ADDRESS",
  "CLIENT_HELO",
  "CLIENT_HOSTNAME",
  "CLIENT_PROTOCOL",
];

/**
 * procmail's environment: PATH, the user's HOME, USER, LOGNAME and SHELL,
 * then the MTA's delivery variables whose values are at most 1024 characters
 * of text without control characters.
 *
 * @example
 * ```ts
 * deliveryEnvironment(new Map([["SENDER", "a@b"], ["LD_PRELOAD", "/x"]]),
 *   { home: "/home/u", user: "u", shell: "/bin/sh" });
 * // ["PATH=/usr/bin:/bin", "HOME=/home/u", "USER=u", "LOGNAME=u", "SHELL=/bin/sh", "SENDER=a@b"]
 * ```
 */
export function deliveryEnvironment(
  caller: ReadonlyMap<string, string>,
  user: { home: string; user: string; shell: string },
): string[] {
  const env = [
    "PATH=/usr/bin:/bin",
    `HOME=${user.home}`,
    `USER=${user.user}`,
    `LOGNAME=${user.user}`,
    `SHELL=${user.shell}`,
  ];
  for (const name of MTA_VARIABLES) {
    const value = caller.get(name);
    // deno-lint-ignore no-control-regex -- refusing control characters is the point
    if (value !== undefined && value.length <= 1024 && !/[\x00-\x1f\x7f]/.test(value)) {
      env.push(`${name}=${value}`);
    }
  }
  return env;
}

/** Runs a step of src/privileged.ts; a root caller is refused as not privileged (11). */
const step = stepRunner({ ...EXIT, rootCaller: EXIT.notPrivileged });

function who(me: HostIdentity): string {
  return `${me.name} (${me.uid})`;
}

/** A user without a jail: the host's procmail, as them. */
function deliverOnHost(me: HostIdentity, hardening: Hardening, args: string[]): never {
  const env = deliveryEnvironment(callerEnvironment(), {
    home: me.home,
    user: me.name,
    shell: me.shell,
  });
  step("dropping privileges", () => dropTo(me));
  step("preparing to execute procmail", () => prepareExec(hardening));
  return execOrDie(PROCMAIL, ["procmail", ...args], env, { exitCode: EXIT.name });
}

/** The directories strictly between the jail and the home, and the home itself. */
function checkHome(jail: string, home: string, me: HostIdentity): void {
  const parts = home.split("/").filter((p) => p !== "");
  let path = jail;
  for (const part of parts.slice(0, -1)) {
    path = `${path}/${part}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(path);
    } catch (e) {
      throw new Abort(EXIT.unsafe, `abort, path ${path} cannot be checked: ${errorText(e)}`);
    }
    if (info.isSymlink || !info.isDirectory) {
      throw new Abort(EXIT.unsafe, `abort, path ${path} is not a directory`);
    }
    if ((info.uid !== 0 && info.uid !== me.uid) || (info.mode ?? 0) & 0o022) {
      throw new Abort(
        EXIT.unsafe,
        `abort, path ${path} is not owned by 0 or ${me.uid}, or is writable by group or others`,
      );
    }
  }
  const full = home === "/" ? jail : `${jail}${home.replace(/\/+$/, "")}`;
  const findings = checkPath(full, { uid: me.uid, gid: me.gid });
  const fatal = findings.find((f) => ["missing", "symlink", "not-directory"].includes(f.problem));
  if (fatal) throw new Abort(EXIT.unsafe, `abort, home ${full} is not a directory`);
  if (findings.some((f) => f.problem === "owner")) {
    throw new Abort(EXIT.unsafe, `abort, home ${full} is not owned by ${me.uid}`);
  }
}

/** After the drop: the user in the jail's /etc/passwd and /etc/group, read as files. */
function checkInJailIdentity(jail: string, home: string, me: HostIdentity): string {
  const read = (path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (e) {
      throw new Abort(EXIT.setgroups, `abort, failed to read ${jail}${path}: ${errorText(e)}`);
    }
  };
  const user = jailUser(read("/etc/passwd"), me.uid);
  const group = jailGroup(read("/etc/group"), me.gid);
  if (!user || !group) {
    throw new Abort(
      EXIT.setgroups,
      `abort, user ${who(me)} or group ${me.gid} is missing from ${jail}/etc/passwd or ` +
        `${jail}/etc/group`,
    );
  }
  if (user.name !== me.name || group.name !== me.groupName) {
    throw new Abort(
      EXIT.names,
      `abort, user ${who(me)} or group ${me.groupName} has another name in the jail ${jail}`,
    );
  }
  if (!dirsEqual(user.home, home)) {
    throw new Abort(
      EXIT.jailHome,
      `abort, home directory ${home} differs from jail home directory ${user.home} for user ` +
        `${who(me)}`,
    );
  }
  return user.shell;
}

/** procmail in the jail must be root's and writable only by root (checked inside the jail). */
function checkProcmail(jail: string): void {
  const problems = checkPath(PROCMAIL, { uid: 0, gid: 0 }, false)
    .filter((f) => !["missing", "group", "setuid", "setgid"].includes(f.problem));
  let isFile = true;
  try {
    isFile = Deno.statSync(PROCMAIL).isFile;
  } catch {
    // missing: execve reports it (exit 111)
  }
  if (problems.length > 0 || !isFile) {
    const why = problems.map((p) => p.message).join("; ") || "not a regular file";
    throw new Abort(EXIT.unsafeProcmail, `abort, ${jail}${PROCMAIL} is not safe: ${why}`);
  }
}

/** The whole of jk_procmailwrapper; success ends in execve. */
function run(log: HostLog, hardening: Hardening, argv0: string, args: string[]): never {
  if (![TOOL, `-${TOOL}`].includes(basename(argv0))) {
    throw new Abort(EXIT.name, `abort, ${TOOL} is called as ${argv0}`);
  }
  const privilege = step("privilege", privilegeMode);
  const me = step("user", () => resolveHostIdentity(privilege.uid));
  if (!me.home.includes("/./")) return deliverOnHost(me, hardening, args);

  if (me.gid !== privilege.gid) {
    throw new Abort(
      EXIT.gidMismatch,
      `abort, the group ID from /etc/passwd (${me.gid}) does not match the group ID we run ` +
        `with (${privilege.gid})`,
    );
  }
  const split = splitJailHome(me.home);
  if (!split) {
    throw new Abort(EXIT.noSeparator, `abort, cannot read a jail from the home ${me.home}`);
  }
  const { jail, home } = split;
  if (normalize(jail) !== jail || jail === "/") {
    throw new Abort(EXIT.jailMoved, `abort, the jail ${jail} is not a canonical path`);
  }
  const findings = checkJail(jail);
  if (findings.length > 0) {
    for (const f of findings) log.log(LOG_ERR, f.message);
    throw new Abort(
      EXIT.unsafe,
      `abort, ${jail} is not a safe jail, check ownership and permissions`,
    );
  }
  checkHome(jail, home, me);
  const env = callerEnvironment();
  log.log(LOG_INFO, `delivering mail for user ${who(me)} in jail ${jail}`);
  step(`entering ${jail}`, () => enterJail(jail));
  log.pin();
  step("dropping privileges", () => dropTo(me));
  step("no_new_privs", setNoNewPrivs);
  const shell = checkInJailIdentity(jail, home, me);
  checkProcmail(jail);
  try {
    chdir(home);
  } catch (e) {
    throw new Abort(
      EXIT.chdirHome,
      `abort, chdir(${home}) failed in jail ${jail}: ${errorText(e)}`,
    );
  }
  step("preparing to execute procmail", () => prepareExec(hardening));
  const procmailEnv = deliveryEnvironment(env, { home, user: me.name, shell });
  return execOrDie(PROCMAIL, ["procmail", ...args], procmailEnv, {
    exitCode: EXIT.exec,
    onFailure: (e) =>
      log.log(LOG_ERR, `failed to execute ${jail}${PROCMAIL} for user ${who(me)}: ${e.code}`),
  });
}

if (import.meta.main) {
  await runPrivileged(
    { name: TOOL, internalExit: EXIT.internal },
    (log, hardening) => run(log, hardening, process.argv0, Deno.args),
  );
}
