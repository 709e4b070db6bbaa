/**
 * jk_chrootsh — the login shell that puts a user into their jail.
 *
 * Set as the user's shell in the host's /etc/passwd, with a home of the form
 * `JAIL/./HOME` (e.g. `/srv/jail/./home/alice`). It is reached through the
 * setuid-root (or `--caps`) trampoline, which hands it the caller's
 * environment on fd 3. It checks the jail, its ancestors and the home, enters
 * the jail, drops to the user for good, checks the user against the jail's
 * own /etc/passwd and execs the shell named there (or `injail_shell`) with
 * the caller's arguments: sshd's `-c CMD` keeps working.
 *
 * Config: `jk_chrootsh.ini` in the site's sysconfdir; one section, the first
 * of `[USER]`, `[group PRIMARYGROUP]`, `[DEFAULT]`; keys `env`,
 * `relax_home_owner`, `relax_home_group`, `relax_home_group_permissions`,
 * `relax_home_other_permissions`, `injail_shell`, `skip_injail_passwd_check`,
 * `injail_login_shell`. A missing file means defaults.
 *
 * Logs to syslog (facility auth, ident `jk_chrootsh[pid]`) with jailkit's
 * lines; every refusal also goes to stderr.
 *
 * Differences from jailkit 2.23, on purpose:
 * - the user is the real uid's passwd entry; `USER` is never read (jailkit
 *   looked `USER` up by name, so the caller chose whose entry was used);
 * - supplementary groups are the host's groups of the user (getgrouplist,
 *   before chroot), not whatever the caller happened to hold;
 * - every ancestor of the jail, of the config directory, and every directory
 *   between the jail and the home are checked; the ini file itself must be
 *   root's and writable only by root;
 * - the jail is entered by fd (chdir, chroot, chdir) and `/` verified to be
 *   it; setgroups → setresgid → setresuid, then no capabilities, then proof
 *   that neither uid 0, gid 0 nor the old ids can be regained; no_new_privs;
 * - the jail's /etc/passwd and /etc/group are read as files after the drop,
 *   never through NSS (jailkit asked NSS inside the jail first);
 * - the shell must be an absolute path to a root-owned file, not setuid or
 *   setgid, not writable by group or others (jailkit only logged that);
 * - a login `-` in argv[0] is passed on as `-<shell basename>`, so the jailed
 *   shell is a login shell; `injail_login_shell` adds `--login` and keeps the
 *   arguments (jailkit dropped them, which broke scp and sftp);
 * - signals default, mask empty, fds above 2 closed, the caller's core limit
 *   restored, before execve; no Deno process stays behind;
 * - ini syntax follows src/ini.ts (e.g. `injail_shell = /bin/sh` with spaces
 *   works; a bad value or a broken file is refused, exit 14).
 *
 * Exit codes: see `EXIT`. jailkit's codes are kept where the step exists;
 * 38 (no_new_privs), 40 (unsafe shell) and 70 (internal error) are new.
 *
 * @module
 */

import { basename, normalize } from "../src/paths.ts";
import { errorText } from "../src/errors.ts";
import { IniSection, readIniFileIfPresent, sectionForUser, unknownKeys } from "../src/ini.ts";
import { checkJail, checkPath, type Finding } from "../src/jailsafety.ts";
import { chdir } from "../src/libc.ts";
import {
  callerEnvironment,
  commandLine,
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
  splitJailHome,
  type StepLabel,
  stepRunner,
} from "../src/privtool.ts";
import { iniPath, INSTALLED } from "../src/site.ts";
import { type HostLog, LOG_ERR, LOG_INFO, LOG_WARNING } from "../src/syslog.ts";

const TOOL = "jk_chrootsh";

/** Exit codes, jailkit's numbers where jailkit has the step. */
export const EXIT = {
  /** Called under a name other than jk_chrootsh or su. */
  name: 1,
  /** Neither setuid root nor the trampoline's capabilities. */
  notPrivileged: 11,
  /** Started by root. */
  rootCaller: 12,
  /** The caller's passwd or group entry is missing. */
  identity: 13,
  /** Config directory or file unsafe, or the ini file broken. */
  config: 14,
  /** The passwd gid is not the gid we were started with. */
  gidMismatch: 15,
  /** Empty home field. */
  emptyHome: 16,
  /** Home without the `/./` jail separator. */
  noSeparator: 17,
  /** The jail cannot be entered. */
  chdirJail: 19,
  /** The jail is not the directory that was checked (path not canonical, or moved). */
  jailMoved: 21,
  /** chroot failed. */
  chroot: 33,
  /** setresgid failed. */
  setgid: 34,
  /** setgroups failed, or the user/group is missing from the jail's files. */
  setgroups: 35,
  /** setresuid failed, or the drop could not be verified. */
  setuid: 36,
  /** User or group name in the jail differs from the host's. */
  names: 37,
  /** no_new_privs could not be set. */
  noNewPrivs: 38,
  /** Home in the jail's passwd differs from the host's, or the user is not there. */
  jailHome: 39,
  /** The jailed shell is not an absolute path to a safe file. */
  unsafeShell: 40,
  /** chdir to the home inside the jail failed. */
  chdirHome: 41,
  /** The jail or the home failed a safety check. */
  unsafe: 53,
  /** Capabilities could not be dropped (jailkit: 101–105). */
  capabilities: 101,
  /** The shell could not be executed. */
  exec: 111,
  /** Anything unexpected. */
  internal: 70,
} as const;

// ---------------------------------------------------------------------------
// Configuration

/** The keys of a jk_chrootsh.ini section. */
export const KEYS = [
  "env",
  "relax_home_owner",
  "relax_home_group",
  "relax_home_group_permissions",
  "relax_home_other_permissions",
  "injail_shell",
  "skip_injail_passwd_check",
  "injail_login_shell",
] as const;

/** Settings of one user, from their section (or the defaults). */
export interface Settings {
  /** Names of the caller's variables to keep. */
  env: string[];
  relaxHomeOwner: boolean;
  relaxHomeGroup: boolean;
  relaxHomeGroupPermissions: boolean;
  relaxHomeOtherPermissions: boolean;
  /** Shell to run instead of the jail passwd's. */
  injailShell?: string;
  /** Skip the in-jail passwd checks; only honoured with `injailShell`, as in jailkit. */
  skipInjailPasswdCheck: boolean;
  /** Exec the shell with `--login` before the caller's arguments. */
  injailLoginShell: boolean;
}

/**
 * Reads the settings of one section; defaults without one. A bad value throws
 * an `IniError` naming file and line.
 *
 * @example
 * ```ts
 * const ini = parseIni("[DEFAULT]\nenv = TERM, LANG\n", "jk_chrootsh.ini");
 * settingsFrom(ini.section("DEFAULT")).env; // ["TERM", "LANG"]
 * ```
 */
export function settingsFrom(section: IniSection | undefined): Settings {
  const s = section ?? new IniSection("", "", 0, []);
  const injailShell = s.get("injail_shell");
  return {
    env: s.list("env"),
    relaxHomeOwner: s.bool("relax_home_owner", false),
    relaxHomeGroup: s.bool("relax_home_group", false),
    relaxHomeGroupPermissions: s.bool("relax_home_group_permissions", false),
    relaxHomeOtherPermissions: s.bool("relax_home_other_permissions", false),
    injailShell,
    skipInjailPasswdCheck: injailShell !== undefined &&
      s.bool("skip_injail_passwd_check", false),
    injailLoginShell: s.bool("injail_login_shell", false),
  };
}

// ---------------------------------------------------------------------------
// Pure steps

/**
 * The jailed shell's environment: the caller's variables named in `allow`
 * (in the caller's order), then HOME, USER, USERNAME and SHELL, which always
 * win. Everything else the caller set (LD_PRELOAD, BASH_ENV, ...) is gone.
 *
 * @example
 * ```ts
 * jailedEnvironment(new Map([["TERM", "xterm"], ["LD_PRELOAD", "/x.so"]]), ["TERM"],
 *   { home: "/home/a", user: "a", shell: "/bin/sh" });
 * // ["TERM=xterm", "HOME=/home/a", "USER=a", "USERNAME=a", "SHELL=/bin/sh"]
 * ```
 */
export function jailedEnvironment(
  caller: ReadonlyMap<string, string>,
  allow: readonly string[],
  fixed: { home: string; user: string; shell: string },
): string[] {
  const own = new Map<string, string>([
    ["HOME", fixed.home],
    ["USER", fixed.user],
    ["USERNAME", fixed.user],
    ["SHELL", fixed.shell],
  ]);
  const kept = [...caller].filter(([name]) => allow.includes(name) && !own.has(name));
  return [...kept, ...own].map(([name, value]) => `${name}=${value}`);
}

/**
 * The jailed shell's argv. argv[0] is the shell's path, or `-<basename>` when
 * we were started as a login shell (argv[0] beginning with `-`), so the
 * jailed shell reads its profile. `--login` comes first with
 * `injail_login_shell`; the caller's arguments always follow.
 *
 * @example
 * ```ts
 * shellArgv("-jk_chrootsh", "/bin/bash", [], false); // ["-bash"]
 * shellArgv("jk_chrootsh", "/usr/sbin/jk_lsh", ["-c", "ls"], false);
 * // ["/usr/sbin/jk_lsh", "-c", "ls"]
 * ```
 */
export function shellArgv(
  argv0: string,
  shell: string,
  args: readonly (string | Uint8Array)[],
  loginShell: boolean,
): (string | Uint8Array)[] {
  const first = argv0.startsWith("-") ? `-${basename(shell)}` : shell;
  return [first, ...(loginShell ? ["--login"] : []), ...args];
}

/**
 * Whether we were called under a name jailkit accepts: `jk_chrootsh` or `su`,
 * with or without the login `-`.
 *
 * @example
 * ```ts
 * acceptedName("/usr/sbin/jk_chrootsh"); // true
 * acceptedName("-bash"); // false
 * ```
 */
export function acceptedName(argv0: string): boolean {
  return ["jk_chrootsh", "-jk_chrootsh", "su", "-su"].includes(basename(argv0));
}

/**
 * The home's findings that the section does not relax, with jailkit's
 * wording. A missing home, a symlink or a non-directory is never relaxed.
 *
 * @example
 * ```ts
 * homeProblems(checkPath(home, { uid, gid }), settings); // ["path ... is group writable, ..."]
 * ```
 */
export function homeProblems(findings: Finding[], settings: Settings, uid = 0, gid = 0): string[] {
  const out: string[] = [];
  for (const f of findings) {
    switch (f.problem) {
      case "missing":
      case "symlink":
      case "not-directory":
        out.push(`path ${f.path} is not a directory`);
        break;
      case "owner":
        if (!settings.relaxHomeOwner) out.push(`path ${f.path} is not owned by ${uid}`);
        break;
      case "group":
        if (!settings.relaxHomeGroup) {
          out.push(
            `path ${f.path} does not have group owner ${gid}, ` +
              `set option 'relax_home_group' to relax this check`,
          );
        }
        break;
      case "group-writable":
        if (!settings.relaxHomeGroupPermissions) {
          out.push(
            `path ${f.path} is group writable, ` +
              `set option 'relax_home_group_permissions' to relax this check`,
          );
        }
        break;
      case "other-writable":
        if (!settings.relaxHomeOtherPermissions) {
          out.push(
            `path ${f.path} is writable for other, ` +
              `set option 'relax_home_other_permissions' to relax this check`,
          );
        }
        break;
      default: // setuid/setgid bits on a home: logged by jailkit, not fatal
    }
  }
  return out;
}

/**
 * Checks the directories strictly between the jail and the home (`JAIL/home`
 * for `JAIL/./home/alice`): each must be a real directory owned by root or the
 * user, and writable by neither group nor others, or another jailed user
 * could swap the home. jailkit checked none of them.
 *
 * @example
 * ```ts
 * betweenProblems("/srv/jail", "/home/alice", 1000); // [] when /srv/jail/home is root's 0755
 * ```
 */
export function betweenProblems(jail: string, home: string, uid: number): string[] {
  const parts = home.split("/").filter((p) => p !== "");
  const out: string[] = [];
  let path = jail;
  for (const part of parts.slice(0, -1)) {
    path = `${path}/${part}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(path);
    } catch (e) {
      out.push(`path ${path} cannot be checked: ${errorText(e)}`);
      continue;
    }
    if (info.isSymlink || !info.isDirectory) out.push(`path ${path} is not a directory`);
    else if (info.uid !== 0 && info.uid !== uid) {
      out.push(`path ${path} is not owned by 0 or ${uid}`);
    } else if ((info.mode ?? 0) & 0o022) out.push(`path ${path} is writable by group or others`);
  }
  return out;
}

// ---------------------------------------------------------------------------
// The run

/** Runs a step of src/privileged.ts; its failure becomes an `Abort` with the step's `EXIT`. */
const step = stepRunner(EXIT);

/** jailkit's wording of a failed step, by `PrivilegeError.reason`; gets the detail. */
type Texts = Record<string, (detail: string) => string>;

/** Words a failed step as jailkit did where `texts` has its reason, else `step: detail`. */
function worded(texts: Texts = {}): StepLabel {
  return (e) => texts[e.reason]?.(e.message) ?? `${e.step}: ${e.message}`;
}

/** What the run has learned so far. */
interface Context {
  log: HostLog;
  hardening: Hardening;
  argv0: string;
  /** The caller's arguments as raw bytes, passed on to the shell unchanged. */
  args: Uint8Array[];
}

/**
 * The whole of jk_chrootsh. Returns only by throwing an `Abort`; success ends
 * in execve.
 */
async function run(ctx: Context): Promise<never> {
  const { log, argv0, args } = ctx;
  if (!acceptedName(argv0)) throw new Abort(EXIT.name, `${TOOL} is called as ${argv0}`);

  const privilege = step(
    worded({
      "not-privileged": (d) =>
        `effective user ID is not 0, possibly ${TOOL} is not setuid root (${d})`,
      "root-caller": () =>
        `${TOOL} is run by root, which does not make sense because user root can break out ` +
        `of a jail anyway`,
    }),
    privilegeMode,
  );
  const me = step(
    worded({
      "no-user": (d) =>
        `failed to get user information for user ID ${privilege.uid}: ${d}, ` +
        `check /etc/passwd`,
      "no-group": (d) => `failed to get group information: ${d}, check /etc/group`,
    }),
    () => resolveHostIdentity(privilege.uid),
  );
  const settings = await readSettings(me, log);
  const callerEnv = callerEnvironment();

  if (me.gid !== privilege.gid) {
    throw new Abort(
      EXIT.gidMismatch,
      `the group ID from /etc/passwd (${me.gid}) does not match the group ID we run with ` +
        `(${privilege.gid})`,
    );
  }
  if (me.home === "") {
    throw new Abort(EXIT.emptyHome, `got an empty home directory for user ${who(me)}`);
  }
  if (!me.home.includes("/./")) {
    throw new Abort(
      EXIT.noSeparator,
      `homedir '${me.home}' for user ${who(me)} does not contain the jail separator ` +
        `<jail>/./<home>`,
    );
  }
  const split = splitJailHome(me.home);
  if (!split) {
    throw new Abort(
      EXIT.noSeparator,
      `failed to read the jail and the home from ${me.home} for user ${who(me)}`,
    );
  }
  const { jail, home } = split;
  checkJailAndHome(jail, home, me, settings, log);

  log.log(
    LOG_INFO,
    `now entering jail ${jail} for user ${who(me)} with arguments ${
      args.map((a) => new TextDecoder().decode(a)).join(" ")
    }`,
  );
  step(
    worded({
      chdir: (d) => `chdir(${jail}) failed: ${d}, check the permissions for ${jail}`,
      moved: (d) => `the jail ${jail} is not the directory that was checked: ${d}`,
      chroot: (d) => `chroot(${jail}) failed: ${d}, check the permissions for ${jail}`,
    }),
    () => enterJail(jail),
  );
  log.pin();
  step(
    worded({
      setresgid: (d) => `failed to set effective group ID ${me.gid}: ${d}`,
      setgroups: (d) => `failed to set additional groups: ${d}`,
      setresuid: (d) => `failed to set effective user ID ${me.uid}: ${d}`,
    }),
    () => dropTo(me),
  );
  step(worded(), setNoNewPrivs);

  const shell = await jailedShell(jail, home, me, settings);
  checkShell(shell, jail);
  const env = jailedEnvironment(callerEnv, settings.env, { home, user: me.name, shell });
  try {
    chdir(home);
  } catch (e) {
    throw new Abort(
      EXIT.chdirHome,
      `chdir(${home}) failed inside the jail ${jail}: ${errorText(e)}, check the permissions ` +
        `for ${jail}${home}`,
    );
  }
  const argv = shellArgv(argv0, shell, args, settings.injailLoginShell);
  step(worded(), () => prepareExec(ctx.hardening));
  return execOrDie(shell, argv, env, {
    exitCode: EXIT.exec,
    onFailure: (e) =>
      log.log(
        LOG_ERR,
        `ERROR: failed to execute shell ${shell} for user ${who(me)}, check the permissions ` +
          `and libraries of ${jail}${shell} (${e.code})`,
      ),
  });
}

function who(me: HostIdentity): string {
  return `${me.name} (${me.uid})`;
}

/**
 * The config directory and its ancestors, the ini file, then the user's
 * section. jailkit tolerates a group-writable config directory; so do we.
 * Unknown keys are logged and ignored: a misspelt key can only fail safe.
 */
async function readSettings(me: HostIdentity, log: HostLog): Promise<Settings> {
  const dir = INSTALLED.sysconfdir;
  const unsafe = configDirFindings(dir);
  if (unsafe.length > 0) {
    throw new Abort(
      EXIT.config,
      `jailkit configuration directory ${dir} is not safe; it should be owned 0:0 and not ` +
        `writable for others (${unsafe.map((f) => f.message).join("; ")})`,
    );
  }
  const file = iniPath(INSTALLED, TOOL);
  const fileProblems = configFileFindings(file);
  if (fileProblems.length > 0) {
    throw new Abort(
      EXIT.config,
      `configuration file ${file} is not safe: ${fileProblems.map((f) => f.message).join("; ")}`,
    );
  }
  try {
    const ini = await readIniFileIfPresent(file);
    const section = ini && sectionForUser(ini, me.name, [me.groupName]);
    for (const { key, line } of section ? unknownKeys(section, KEYS) : []) {
      log.log(
        LOG_WARNING,
        `${file}:${line}: unknown key "${key}" in [${section!.name}], ignored`,
      );
    }
    return settingsFrom(section);
  } catch (e) {
    throw new Abort(EXIT.config, `configuration file unusable: ${errorText(e)}`);
  }
}

/** The jail (and every ancestor), the directories down to the home, the home. */
function checkJailAndHome(
  jail: string,
  home: string,
  me: HostIdentity,
  settings: Settings,
  log: HostLog,
): void {
  if (normalize(jail) !== jail) {
    throw new Abort(
      EXIT.jailMoved,
      `the jail ${jail} is not a canonical path (it resolves to ${normalize(jail)})`,
    );
  }
  try {
    if (!Deno.lstatSync(jail).isDirectory) throw new Error("not a directory");
  } catch (e) {
    throw new Abort(
      EXIT.chdirJail,
      `chdir(${jail}) failed: ${errorText(e)}, check the permissions for ${jail}`,
    );
  }
  const jailFindings = checkJail(jail);
  if (jailFindings.length > 0) {
    for (const f of jailFindings) log.log(LOG_ERR, f.message);
    throw new Abort(
      EXIT.unsafe,
      `${jail} is not a safe jail, check ownership and permissions.`,
    );
  }
  const between = betweenProblems(jail, home, me.uid);
  if (between.length > 0) throw new Abort(EXIT.unsafe, between.join("; "));
  const full = home === "/" ? jail : `${jail}${home.replace(/\/+$/, "")}`;
  const problems = homeProblems(
    checkPath(full, { uid: me.uid, gid: me.gid }),
    settings,
    me.uid,
    me.gid,
  );
  if (problems.length > 0) throw new Abort(EXIT.unsafe, problems[0]);
}

/**
 * After the drop: the user in the jail's own /etc/passwd and /etc/group, read
 * as files (no NSS), must match the host's name, group name and home. Returns
 * the shell to run.
 */
async function jailedShell(
  jail: string,
  home: string,
  me: HostIdentity,
  settings: Settings,
): Promise<string> {
  if (settings.injailShell !== undefined && settings.skipInjailPasswdCheck) {
    return settings.injailShell;
  }
  const read = async (path: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw new Abort(
        EXIT.setgroups,
        `failed to read ${jail}${path} for user ID ${me.uid}: ${errorText(e)}`,
      );
    }
  };
  const user = jailUser(await read("/etc/passwd"), me.uid);
  if (!user) {
    throw new Abort(
      EXIT.setgroups,
      `failed to get user information in the jail for user ID ${me.uid}, ` +
        `check ${jail}/etc/passwd`,
    );
  }
  const group = jailGroup(await read("/etc/group"), me.gid);
  if (!group) {
    throw new Abort(
      EXIT.setgroups,
      `failed to get group information in the jail for group ID ${me.gid}, ` +
        `check ${jail}/etc/group`,
    );
  }
  if (user.name !== me.name) {
    throw new Abort(
      EXIT.names,
      `username ${me.name} differs from jail username ${user.name} for user ID ${me.uid}, ` +
        `check /etc/passwd and ${jail}/etc/passwd`,
    );
  }
  if (group.name !== me.groupName) {
    throw new Abort(
      EXIT.names,
      `groupname ${me.groupName} differs from jail groupname ${group.name} for group ID ` +
        `${me.gid}, check /etc/group and ${jail}/etc/group`,
    );
  }
  if (!dirsEqual(user.home, home)) {
    throw new Abort(
      EXIT.jailHome,
      `home directory ${home} differs from jail home directory ${user.home} for user ` +
        `${who(me)}, check /etc/passwd and ${jail}/etc/passwd`,
    );
  }
  return settings.injailShell ?? user.shell;
}

/**
 * The shell must be an absolute path whose file is root's, not setuid or
 * setgid, and not writable by group or others: the user must not be able to
 * replace what runs as them at login, and no_new_privs aside, a setuid shell
 * is never what an admin meant. A missing file is left to execve (exit 111).
 */
function checkShell(shell: string, jail: string): void {
  if (!shell.startsWith("/")) {
    throw new Abort(EXIT.unsafeShell, `shell '${shell}' in ${jail} is not an absolute path`);
  }
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(shell);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw new Abort(EXIT.unsafeShell, `cannot check shell ${jail}${shell}: ${errorText(e)}`);
  }
  const mode = info.mode ?? 0;
  const problems = [
    !info.isFile && "is not a regular file",
    info.uid !== 0 && "is not owned by root",
    (mode & 0o022) !== 0 && "is writable by group or others",
    (mode & 0o4000) !== 0 && "is setuid",
    (mode & 0o2000) !== 0 && "is setgid",
  ].filter((p): p is string => typeof p === "string");
  if (problems.length > 0) {
    throw new Abort(EXIT.unsafeShell, `shell ${jail}${shell} ${problems.join(", ")}`);
  }
}

if (import.meta.main) {
  // Refusals are logged and printed with jailkit's "abort, " in front.
  await runPrivileged(
    { name: TOOL, internalExit: EXIT.internal, abortPrefix: "abort, " },
    (log, hardening) => {
      const { argv0, args } = commandLine();
      return run({ log, hardening, argv0, args });
    },
  );
}
