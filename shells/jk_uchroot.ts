/**
 * jk_uchroot — let ordinary users run one program in a jail they are allowed in.
 *
 * `jk_uchroot -j JAIL -x EXECUTABLE [-- ARGS...]`
 *
 * Installed in usr/bin behind the setuid-root (or `--caps`) trampoline, which
 * hands over the caller's environment on fd 3. The caller's entry in the
 * host's user database decides: `jk_uchroot.ini` lists, per `[USER]`,
 * `[group PRIMARYGROUP]` or `[DEFAULT]` (the first that exists), the
 * `allowed_jails`. If JAIL is one of them and is safe, jk_uchroot enters it,
 * drops to the caller's own ids for good, checks the caller against the
 * jail's /etc/passwd and /etc/group (unless `skip_injail_passwd_check`), and
 * execs EXECUTABLE (a path inside the jail) with ARGS; the working directory
 * is the jail's `/`.
 *
 * The order is what matters: nothing about the requested jail or executable
 * is looked at before the caller is known to be allowed in that jail. jailkit
 * stat'ed `JAIL/EXECUTABLE` as root first, so any user could learn whether a
 * file exists in directories they cannot read (`-j / -x root/.bashrc`). Here
 * the executable is looked up after the drop, as the caller, inside the jail.
 *
 * Differences from jailkit 2.23, on purpose:
 * - that order (above); a caller not allowed in the requested jail gets the
 *   same answer whatever the executable;
 * - the user is the real uid's passwd entry; supplementary groups are the
 *   user's host groups (getgrouplist, before chroot), set with setgroups;
 * - the jail and every ancestor must be safe (src/jailsafety.ts), and the
 *   config directory and file must be root's;
 * - the jail is entered by fd and verified, the drop is verified and proven
 *   irreversible, no capabilities remain, and no_new_privs is set: setuid
 *   programs inside the jail run with the caller's rights;
 * - the jail's /etc/passwd and /etc/group are read as files after the drop
 *   (jailkit asked NSS inside the jail);
 * - the caller's environment is passed on as in jailkit, minus the variables
 *   glibc strips for setuid programs (jailkit's passed through glibc's own
 *   filter) and any other `LD_*`;
 * - signals default, fds above 2 closed, core limit restored before execve;
 * - ini syntax follows src/ini.ts (a broken file is refused, exit 14);
 *   `-v` is accepted and ignored, and `--help` prints the usage and exits 1,
 *   as in jailkit.
 *
 * Exit codes: see `EXIT` (jailkit's numbers; 38 and 70 are new).
 *
 * @module
 */

import process from "node:process";
import { basename, normalize } from "node:path";
import { errorText, type OptionSpec, parseCommandLine } from "../src/cli.ts";
import { IniError, type IniSection, readIniFile, sectionForUser, unknownKeys } from "../src/ini.ts";
import { checkJail } from "../src/jailsafety.ts";
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
  configDirFindings,
  configFileFindings,
  dirsEqual,
  jailGroup,
  jailUser,
  runPrivileged,
  stepRunner,
} from "../src/privtool.ts";
import { iniPath, INSTALLED } from "../src/site.ts";
import { type HostLog, LOG_ERR, LOG_INFO, LOG_WARNING } from "../src/syslog.ts";

const TOOL = "jk_uchroot";

/** Exit codes, jailkit's numbers where jailkit has the step. */
export const EXIT = {
  /** Wrong name, usage, `--help`, no config file or section, executable not found. */
  usage: 1,
  /** Neither setuid root nor the trampoline's capabilities. */
  notPrivileged: 11,
  /** Started by root. */
  rootCaller: 12,
  /** The caller's passwd or group entry is missing. */
  identity: 13,
  /** Config directory or file unsafe, or the ini file broken. */
  config: 14,
  /** The jail cannot be entered. */
  chdirJail: 19,
  /** Not allowed in the requested jail; or the jail moved while entering it. */
  notAllowed: 21,
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
  /** The jail failed a safety check. */
  unsafe: 53,
  /** Capabilities could not be dropped (jailkit: 101–105). */
  capabilities: 101,
  /** The executable could not be executed. */
  exec: 111,
  /** Anything unexpected. */
  internal: 70,
} as const;

const USAGE = `Usage: jk_uchroot -j jail -x executable [-- executable options]

 -j, --jail DIR            the jail, one of allowed_jails in ${iniPath(INSTALLED, TOOL)}
 -x, --executable PATH     the program to run, a path inside the jail (also --exec)
 -h, --help                this text`;

const OPTIONS = {
  jail: { type: "string", short: "j" },
  executable: { type: "string", short: "x" },
  exec: { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
  v: { type: "boolean", short: "v" },
} satisfies OptionSpec;

/** The keys of a jk_uchroot.ini section. */
export const KEYS = ["allowed_jails", "skip_injail_passwd_check"] as const;

/**
 * glibc's secure-execution list (unsecvars.h): removed from a setuid
 * program's environment, so jailkit never passed them on. Any other `LD_*`
 * goes too.
 */
const UNSECURE = new Set([
  "GCONV_PATH",
  "GETCONF_DIR",
  "GLIBC_TUNABLES",
  "HOSTALIASES",
  "LOCALDOMAIN",
  "LOCPATH",
  "MALLOC_TRACE",
  "NIS_PATH",
  "NLSPATH",
  "RESOLV_HOST_CONF",
  "RES_OPTIONS",
  "TMPDIR",
  "TZDIR",
]);

/**
 * The program's environment: the caller's, minus glibc's secure-execution
 * list and every `LD_*` variable.
 *
 * @example
 * ```ts
 * passedEnvironment(new Map([["TERM", "xterm"], ["LD_PRELOAD", "/x.so"]])); // ["TERM=xterm"]
 * ```
 */
export function passedEnvironment(caller: ReadonlyMap<string, string>): string[] {
  return [...caller]
    .filter(([name]) => !UNSECURE.has(name) && !name.startsWith("LD_"))
    .map(([name, value]) => `${name}=${value}`);
}

/**
 * The configured jail the request names, or `undefined`. Only the configured
 * spelling is used from here on, never the caller's.
 *
 * @example
 * ```ts
 * allowedJail(["/srv/a", "/srv/b/"], "/srv/b"); // "/srv/b"
 * ```
 */
export function allowedJail(allowed: readonly string[], requested: string): string | undefined {
  const match = allowed.find((jail) => dirsEqual(jail, requested));
  return match === undefined ? undefined : match.replace(/(.)\/+$/, "$1");
}

// ---------------------------------------------------------------------------
// The run

/** A usage error: printed on stdout before the usage text, as jailkit did; not logged. */
class UsageAbort extends Abort {}

/** Runs a step of src/privileged.ts; a moved jail counts as not allowed (21, as jailkit). */
const step = stepRunner({ ...EXIT, jailMoved: EXIT.notAllowed });

/** What the caller asked for. */
interface Request {
  jail: string;
  executable: string;
  args: string[];
}

function readRequest(args: string[]): Request {
  let parsed;
  try {
    parsed = parseCommandLine(args, OPTIONS, { usageExit: EXIT.usage });
  } catch (e) {
    throw new UsageAbort(EXIT.usage, `ERROR: ${errorText(e)}`);
  }
  const { values, positionals } = parsed;
  if (values.help || values.version) throw new UsageAbort(EXIT.usage, "");
  const jail = values.jail as string | undefined;
  const executable = (values.executable ?? values.exec) as string | undefined;
  if (!jail) {
    throw new UsageAbort(EXIT.usage, "ERROR: No jail path specified. Use -j or --jail");
  }
  if (!executable) {
    throw new UsageAbort(EXIT.usage, "ERROR: No executable path specified. Use -x or --executable");
  }
  return { jail, executable, args: positionals };
}

/** The caller's section: `allowed_jails` and `skip_injail_passwd_check`. */
async function readSection(me: HostIdentity, log: HostLog): Promise<IniSection> {
  const dir = INSTALLED.sysconfdir;
  const file = iniPath(INSTALLED, TOOL);
  const unsafe = [...configDirFindings(dir), ...configFileFindings(file)];
  if (unsafe.length > 0) {
    throw new Abort(
      EXIT.config,
      `abort, jailkit configuration ${file} is not safe; it and its directory should be owned ` +
        `0:0 and not writable for others (${unsafe.map((f) => f.message).join("; ")})`,
    );
  }
  let section: IniSection | undefined;
  try {
    section = sectionForUser(await readIniFile(file), me.name, [me.groupName]);
  } catch (e) {
    if (e instanceof IniError && e.reason === "missing") {
      throw new Abort(EXIT.usage, `abort, no config file ${file}`);
    }
    throw new Abort(EXIT.config, `abort, configuration file unusable: ${errorText(e)}`);
  }
  if (!section || section.list("allowed_jails").length === 0) {
    throw new Abort(
      EXIT.usage,
      `abort, no relevant section for user ${me.name} (${me.uid}) or DEFAULT found in ${file}`,
    );
  }
  for (const { key, line } of unknownKeys(section, KEYS)) {
    log.log(LOG_WARNING, `${file}:${line}: unknown key "${key}" in [${section.name}], ignored`);
  }
  return section;
}

/** After the drop: the caller in the jail's own /etc/passwd and /etc/group (files, not NSS). */
function checkInJailIdentity(jail: string, me: HostIdentity): void {
  const read = (path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (e) {
      throw new Abort(EXIT.setgroups, `abort, failed to read ${jail}${path}: ${errorText(e)}`);
    }
  };
  const user = jailUser(read("/etc/passwd"), me.uid);
  if (!user) {
    throw new Abort(
      EXIT.setgroups,
      `abort, failed to get user information in the jail for user ID ${me.uid}, check ` +
        `${jail}/etc/passwd`,
    );
  }
  const group = jailGroup(read("/etc/group"), me.gid);
  if (!group) {
    throw new Abort(
      EXIT.setgroups,
      `abort, failed to get group information in the jail for group ID ${me.gid}, check ` +
        `${jail}/etc/group`,
    );
  }
  if (user.name !== me.name) {
    throw new Abort(
      EXIT.names,
      `abort, username ${me.name} differs from jail username ${user.name} for user ID ${me.uid}`,
    );
  }
  if (group.name !== me.groupName) {
    throw new Abort(
      EXIT.names,
      `abort, groupname ${me.groupName} differs from jail groupname ${group.name} for group ` +
        `ID ${me.gid}`,
    );
  }
}

/** The whole of jk_uchroot; success ends in execve. */
async function run(log: HostLog, hardening: Hardening, argv0: string, args: string[]) {
  if (!["jk_uchroot", "-jk_uchroot"].includes(basename(argv0))) {
    throw new Abort(EXIT.usage, `abort, ${TOOL} is called as ${argv0}`);
  }
  const privilege = step("privilege", privilegeMode);
  const me = step("user", () => resolveHostIdentity(privilege.uid));
  const request = readRequest(args);
  const section = await readSection(me, log);
  const callerEnv = callerEnvironment();

  // Whether the caller may use this jail is decided on strings alone: no
  // file is looked at before the answer is yes.
  const jail = allowedJail(section.list("allowed_jails"), request.jail);
  if (jail === undefined) {
    throw new Abort(
      EXIT.notAllowed,
      `abort, user ${me.name} (${me.uid}) is not allowed in jail ${request.jail}`,
    );
  }
  if (!jail.startsWith("/") || normalize(jail) !== jail || jail === "/") {
    throw new Abort(
      EXIT.config,
      `abort, allowed jail ${jail} for user ${me.name} is not an absolute, canonical path`,
    );
  }
  const findings = checkJail(jail);
  if (findings.length > 0) {
    for (const f of findings) log.log(LOG_ERR, f.message);
    throw new Abort(
      EXIT.unsafe,
      `abort, ${jail} is not a safe jail, check ownership and permissions`,
    );
  }
  const inside = normalize(
    request.executable.startsWith("/") ? request.executable : `/${request.executable}`,
  );
  log.log(
    LOG_INFO,
    `entering jail ${jail} for user ${me.name} (${me.uid}) in order to execute ${inside}`,
  );
  step(`entering ${jail}`, () => enterJail(jail));
  log.pin();
  step("dropping privileges", () => dropTo(me));
  step("no_new_privs", setNoNewPrivs);
  if (!section.bool("skip_injail_passwd_check", false)) checkInJailIdentity(jail, me);

  // As the caller, inside the jail.
  let isFile = false;
  try {
    isFile = Deno.statSync(inside).isFile;
  } catch {
    // missing, or not visible to the caller: the same answer
  }
  if (!isFile) {
    throw new UsageAbort(
      EXIT.usage,
      `ERROR: Executable path ${inside} does not exist or is not a regular file`,
    );
  }
  step("preparing to execute", () => prepareExec(hardening));
  return execOrDie(inside, [request.executable, ...request.args], passedEnvironment(callerEnv), {
    exitCode: EXIT.exec,
    onFailure: (e) =>
      log.log(
        LOG_ERR,
        `failed to execute ${inside} in jail ${jail} for user ${me.name} (${me.uid}): ${e.code}`,
      ),
  });
}

/** A usage error: its message and the usage text on stdout. */
function reportUsage(abort: Abort): boolean {
  if (!(abort instanceof UsageAbort)) return false;
  if (abort.message) console.log(abort.message);
  console.log(USAGE);
  return true;
}

if (import.meta.main) {
  await runPrivileged(
    { name: TOOL, internalExit: EXIT.internal, report: reportUsage },
    (log, hardening) => run(log, hardening, process.argv0, Deno.args),
  );
}
