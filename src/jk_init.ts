/**
 * jk_init — build or extend a jail from named sections of jk_init.ini.
 *
 * ```
 * jk_init [-v] [-f] [-k] [-c CONFIG] -j JAIL SECTION...
 * jk_init [-v] [-f] [-k] [-c CONFIG] JAIL SECTION...      (jailkit's legacy form)
 * jk_init -l [-c CONFIG]
 * ```
 *
 * Each section (jailkit behaviour §1.7, §3.2) copies `paths` (and the
 * deprecated `libraries`, `executables`, `regularfiles`, `directories`),
 * `paths_w_owner` and `paths_w_setuid` with their libraries, creates
 * `emptydirs`, writes `users` and `groups` into the jail's etc/passwd and
 * etc/group, adds the jail's /dev/log to jk_socketd.ini when
 * `need_logsocket` is true, and recreates `devices`. `includesections` are
 * processed first. The copying itself is the engine of src/jailcopy.ts, which
 * never writes outside the jail.
 *
 * Differences from jailkit 2.23, on purpose:
 * - the whole configuration is checked before anything is touched: an unknown
 *   section (requested or included), an unknown key, an include cycle, a bad
 *   boolean or a relative path is a one-line error naming `file:line`, and the
 *   jail is left alone (jailkit warned and went on, and recursed forever on a
 *   cycle);
 * - `need_logsocket = 0` (or `no`, `false`, `off`) means no;
 * - `emptydirs` need not exist on the host;
 * - each section runs once per invocation, however often it is named or included;
 * - `users` bring their primary group, and `groups` are matched against the
 *   groups (jailkit matched them against the users);
 * - the password field of copied passwd and group lines is always `x`, so a
 *   hash in the host's /etc/passwd never lands in a file every jailed user reads;
 * - `--jail=` works; `-l` and `--help` do not need root;
 * - `[DEFAULT]` is refused: Python merged it into every section, and silently
 *   dropping that would build a different jail;
 * - `need_proc` is refused (it edited the host's /etc/fstab and ran mount);
 * - no `ldconfig -r JAIL` afterwards (it runs a program as root on jail
 *   content); the loader finds libraries in its default directories, which on
 *   Debian and Ubuntu include the multiarch ones.
 *
 * Exit codes:
 * - 0 jail built;
 * - 1 bad option;
 * - 2 no jail or no section given;
 * - 3 jail not safe or not a directory, or a symlink in it leads out (the run
 *   stops there);
 * - 4 configuration problem (missing or malformed file, unknown section or
 *   key, include cycle), found before the jail is touched;
 * - 5 not root;
 * - 6 built, but some items failed (each was reported on stderr).
 *
 * @module
 */

import { isAbsolute, normalize, resolve } from "./paths.ts";
import { errorText, JkError, parseCommandLine, runMain } from "./cli.ts";
import { IniError, type IniFile, type IniSection, readIniFile, unknownKeys } from "./ini.ts";
import { checkJail } from "./jailsafety.ts";
import { consoleReporter, CopyEngine, type Reporter, resolveProgram } from "./jailcopy.ts";
import { hostLstat, hostReadlink, Jail, JailEscapeError } from "./jailfs.ts";
import {
  appendLines,
  type GroupEntry,
  groupLine,
  parseGroup,
  parsePasswd,
  type PasswdEntry,
  passwdLine,
} from "./passwd.ts";
import { iniPath, INSTALLED } from "./site.ts";

/** Exit codes, as documented in the module comment. */
export const EXIT = {
  ok: 0,
  usage: 1,
  missingArguments: 2,
  unsafeJail: 3,
  config: 4,
  notRoot: 5,
  incomplete: 6,
} as const;

const USAGE = `jk_init, creates a jail from sections of a configuration file
Usage: jk_init [OPTIONS] -j JAIL SECTION...
       jk_init -l [-c CONFIG]
  -j, --jail=DIR         the jail directory (created 0755 if missing; its parent must exist)
  -c, --configfile=FILE  configuration file (default ${iniPath(INSTALLED, "jk_init")})
  -l, --list             list the sections of the configuration file with their comments
  -v, --verbose          tell what is done and what is skipped
  -f, --force            replace files in the jail that already exist
  -k, --hardlink         hardlink files instead of copying them (setuid files are copied)
  -h, --help             this text`;

/** Keys a jk_init section may have. */
const PATH_KEYS = ["paths", "libraries", "executables", "regularfiles", "directories"] as const;
const KNOWN_KEYS = [
  ...PATH_KEYS,
  "paths_w_owner",
  "paths_w_setuid",
  "users",
  "groups",
  "devices",
  "emptydirs",
  "includesections",
  "need_logsocket",
  "comment",
];

/** A section checked and ready to run: every list already split and validated. */
export interface SectionPlan {
  name: string;
  /** `paths` then the deprecated aliases, in jailkit's order; bare names still unresolved. */
  paths: string[];
  pathsWithOwner: string[];
  pathsWithSetuid: string[];
  emptydirs: string[];
  users: string[];
  groups: string[];
  devices: string[];
  needLogSocket: boolean;
}

/** What the command line asks for. */
export interface InitRequest {
  configFile: string;
  list: boolean;
  help: boolean;
  jail?: string;
  sections: string[];
  verbose: boolean;
  force: boolean;
  hardlink: boolean;
}

/**
 * Reads jk_init's command line. With no `-j`, the first positional argument
 * is the jail (jailkit's legacy form) and is not taken for a section.
 *
 * @example
 * ```ts
 * parseInitArgs(["--jail=/srv/j", "-v", "sftp", "scp"]);
 * // { jail: "/srv/j", sections: ["sftp", "scp"], verbose: true, ... }
 * ```
 */
export function parseInitArgs(args: string[]): InitRequest {
  const { values, positionals } = parseCommandLine(args, {
    jail: { type: "string", short: "j" },
    configfile: { type: "string", short: "c" },
    list: { type: "boolean", short: "l" },
    verbose: { type: "boolean", short: "v" },
    force: { type: "boolean", short: "f" },
    hardlink: { type: "boolean", short: "k" },
    help: { type: "boolean", short: "h" },
  }, { usageExit: EXIT.usage });
  let jail = values.jail as string | undefined;
  const sections = [...positionals];
  if (jail === undefined && sections.length > 0 && !values.list) jail = sections.shift();
  return {
    configFile: (values.configfile as string | undefined) ?? iniPath(INSTALLED, "jk_init"),
    list: !!values.list,
    help: !!values.help,
    jail,
    sections,
    verbose: !!values.verbose,
    force: !!values.force,
    hardlink: !!values.hardlink,
  };
}

/** A configuration error: exit code 4, message already naming the file (and line). */
function configError(message: string): JkError {
  return new JkError(message, EXIT.config);
}

/** `file:line` of a key, or of the section header when the key is absent. */
function where(section: IniSection, key?: string): string {
  const line = (key === undefined ? undefined : section.entry(key)?.line) ?? section.line;
  return `${section.file}:${line}`;
}

/**
 * Reads a jk_init.ini (Python dialect: `%%` is `%`) and refuses `[DEFAULT]`.
 * Every problem is a `JkError` with exit code 4 naming `file:line`.
 *
 * @example
 * ```ts
 * const ini = await loadConfig("/etc/jailkit/jk_init.ini");
 * ```
 */
export async function loadConfig(path: string): Promise<IniFile> {
  let ini: IniFile;
  try {
    ini = await readIniFile(path, { pythonPercent: true });
  } catch (e) {
    if (e instanceof IniError) throw configError(e.message);
    throw e;
  }
  const defaults = ini.section("DEFAULT");
  if (defaults) {
    throw configError(
      `${where(defaults)}: [DEFAULT] is not supported: jailkit merged its keys into every ` +
        "section; write them into the sections that need them",
    );
  }
  return ini;
}

/**
 * The sections to run for `requested`, each once, every included section
 * before the section that includes it (depth first, in the order written).
 * Throws exit code 4 for an unknown section, an include cycle, an unknown key,
 * a bad `need_logsocket` or a path that is neither absolute nor a bare name.
 *
 * @example
 * ```ts
 * // [a] includesections = b    [b] paths = /bin/true
 * planSections(ini, ["a"]).map((s) => s.name); // ["b", "a"]
 * ```
 */
export function planSections(ini: IniFile, requested: readonly string[]): SectionPlan[] {
  const done = new Set<string>();
  const plans: SectionPlan[] = [];
  for (const name of requested) {
    if (!ini.has(name)) throw configError(`${ini.file}: no section [${name}]`);
    if (done.has(name)) continue;
    // Iterative depth-first walk: a chain of thousands of includes must not
    // exhaust the stack. `stack` holds the open sections; `active` detects cycles.
    const stack: { section: IniSection; includes: string[]; next: number }[] = [];
    const active = new Set<string>();
    const open = (section: IniSection) => {
      active.add(section.name);
      stack.push({ section, includes: section.list("includesections"), next: 0 });
    };
    open(ini.section(name)!);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (top.next < top.includes.length) {
        const included = top.includes[top.next++];
        if (done.has(included)) continue;
        const at = where(top.section, "includesections");
        if (active.has(included)) {
          const names = stack.map((f) => f.section.name);
          const cycle = [...names.slice(names.indexOf(included)), included];
          throw configError(`${at}: includesections cycle: ${shortChain(cycle)}`);
        }
        const section = ini.section(included);
        if (!section) {
          throw configError(`${at}: [${top.section.name}] includes unknown section [${included}]`);
        }
        open(section);
        continue;
      }
      stack.pop();
      active.delete(top.section.name);
      done.add(top.section.name);
      plans.push(checkSection(top.section));
    }
  }
  return plans;
}

/** `a -> b -> a`, with the middle of a very long cycle left out to keep one short line. */
function shortChain(names: string[]): string {
  if (names.length <= 12) return names.join(" -> ");
  const hidden = names.length - 8;
  return [...names.slice(0, 4), `(${hidden} more)`, ...names.slice(-4)].join(" -> ");
}

/** Checks one section's keys and values and splits its lists. */
function checkSection(section: IniSection): SectionPlan {
  for (const { key, line } of unknownKeys(section, KNOWN_KEYS)) {
    const why = key === "need_proc"
      ? ": not supported (jailkit edited the host's /etc/fstab); mount proc in the jail yourself"
      : "";
    throw configError(`${section.file}:${line}: unknown key "${key}" in [${section.name}]${why}`);
  }
  const absolute = (key: string, allowBare: boolean) => {
    const items = section.list(key);
    for (const item of items) {
      const bare = allowBare && !item.includes("/");
      if (!bare && !item.startsWith("/")) {
        const kind = allowBare ? "an absolute path or a program name" : "an absolute path";
        throw configError(`${where(section, key)}: ${key} entry "${item}" must be ${kind}`);
      }
    }
    return items;
  };
  const names = (key: string) => {
    const items = section.list(key);
    for (const item of items) {
      if (item.includes(":")) {
        throw configError(`${where(section, key)}: ${key} entry "${item}" contains ':'`);
      }
    }
    return items;
  };
  let needLogSocket: boolean;
  try {
    needLogSocket = section.bool("need_logsocket", false);
  } catch (e) {
    if (e instanceof IniError) throw configError(e.message);
    throw e;
  }
  return {
    name: section.name,
    paths: PATH_KEYS.flatMap((key) => absolute(key, true)),
    pathsWithOwner: absolute("paths_w_owner", true),
    pathsWithSetuid: absolute("paths_w_setuid", true),
    emptydirs: absolute("emptydirs", false),
    users: names("users"),
    groups: names("groups"),
    devices: absolute("devices", false),
    needLogSocket,
  };
}

/**
 * `name - comment` for every section, sorted by name (jailkit's `-l`).
 *
 * @example
 * ```ts
 * listSections(parseIni("[sftp]\ncomment = ssh secure ftp\n", "x.ini")); // ["sftp - ssh secure ftp"]
 * ```
 */
export function listSections(ini: IniFile): string[] {
  return ini.sections()
    .map((s) => ({ name: s.name, comment: s.get("comment", "").replace(/\s*\n\s*/g, " ") }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((s) => (s.comment ? `${s.name} - ${s.comment}` : s.name));
}

/** Host accounts picked for a jail, and the wanted names that matched nothing. */
export interface AccountSelection<T> {
  /** Host entries the jail lacks, in the order wanted, each once. */
  add: T[];
  /** Host entries the jail already has (by name or id). */
  present: T[];
  /** Wanted names or ids the host does not know. */
  unknown: string[];
}

/**
 * Chooses which host passwd or group entries to append to a jail's file:
 * each wanted name (or decimal id) is looked up on the host, and skipped when
 * the jail already has an entry with the same name or the same id.
 *
 * @example
 * ```ts
 * const host = parsePasswd("root:x:0:0:root:/root:/bin/bash\nbin:x:2:2::/bin:/usr/sbin/nologin\n");
 * const jail = parsePasswd("root:x:0:0:root:/root:/bin/bash\n");
 * selectAccounts(host.entries, jail.entries, ["root", "2"], (e) => e.uid).add.map((e) => e.name);
 * // ["bin"]
 * ```
 */
export function selectAccounts<T extends { name: string }>(
  host: readonly T[],
  jail: readonly T[],
  wanted: readonly string[],
  id: (entry: T) => number,
): AccountSelection<T> {
  const result: AccountSelection<T> = { add: [], present: [], unknown: [] };
  const seen = new Set<T>();
  for (const want of wanted) {
    const found = host.find((e) => e.name === want) ??
      (/^\d+$/.test(want) ? host.find((e) => id(e) === Number(want)) : undefined);
    if (!found) {
      result.unknown.push(want);
      continue;
    }
    if (seen.has(found)) continue;
    seen.add(found);
    const inJail = jail.some((e) => e.name === found.name || id(e) === id(found));
    (inJail ? result.present : result.add).push(found);
  }
  return result;
}

/** Re-exported: it moved to src/passwd.ts, shared with jk_jailuser. */
export { appendLines };

/**
 * The jk_socketd.ini section name of a jail's /dev/log.
 *
 * @example
 * ```ts
 * logSocketName("/srv/jail"); // "/srv/jail/dev/log"
 * ```
 */
export function logSocketName(jail: string): string {
  return `${jail === "/" ? "" : jail}/dev/log`;
}

/**
 * Adds `[JAIL/dev/log]` with jailkit's rates to a jk_socketd.ini unless a
 * section of that name is there. The file is replaced atomically (a new file
 * renamed over it, keeping its mode), or created 0644. Returns whether it added.
 *
 * @example
 * ```ts
 * await addLogSocket("/etc/jailkit/jk_socketd.ini", "/srv/jail"); // true the first time
 * ```
 */
export async function addLogSocket(iniFile: string, jail: string): Promise<boolean> {
  const name = logSocketName(jail);
  if (/[\[\]\n\r#;]/.test(name)) {
    throw new JkError(`cannot name ${name} in ${iniFile}: it contains [, ], # or ;`);
  }
  let existing = new Uint8Array();
  let mode = 0o644;
  try {
    existing = await Deno.readFile(iniFile);
    mode = (await Deno.stat(iniFile)).mode! & 0o7777;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new JkError(`${iniFile}: cannot read: ${errorText(e)}`);
    }
  }
  // Section names are compared as jk_socketd reads them: the text between the
  // brackets, trimmed. (Parsing the whole file would refuse to add to a file
  // jk_socketd itself accepts.)
  const present = new TextDecoder().decode(existing).split("\n").some((line) => {
    const m = /^\s*\[([^\]]*)\]/.exec(line);
    return m !== null && m[1].trim() === name;
  });
  if (present) return false;
  const block = `[${name}]\nbase = 512\npeak = 2048\ninterval = 10\n`;
  // The existing bytes are kept exactly; a blank line separates the new section.
  const separator = existing.length === 0
    ? ""
    : existing[existing.length - 1] === 0x0a
    ? "\n"
    : "\n\n";
  const tail = new TextEncoder().encode(separator + block);
  const updated = new Uint8Array(existing.length + tail.length);
  updated.set(existing);
  updated.set(tail, existing.length);
  await replaceFile(iniFile, updated, mode);
  return true;
}

/** Writes `bytes` to a fresh file beside `path` (O_EXCL), then renames it over `path`. */
async function replaceFile(path: string, bytes: Uint8Array, mode: number): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const staged = `${dir}/.${path.slice(dir.length + 1)}.${crypto.randomUUID().slice(0, 8)}.new`;
  try {
    const file = await Deno.open(staged, { write: true, createNew: true, mode: 0o600 });
    try {
      for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.chmod(staged, mode);
    await Deno.rename(staged, path);
  } catch (e) {
    await Deno.remove(staged).catch(() => {});
    throw new JkError(`${path}: cannot write: ${errorText(e)}`);
  }
}

/** Options of `buildJail`. */
export interface BuildOptions {
  verbose: boolean;
  force: boolean;
  hardlink: boolean;
  /** jk_socketd.ini to add log sockets to. */
  socketdIni: string;
  /** $PATH used for bare program names. */
  searchPath: string;
  reporter: Reporter;
}

/**
 * Checks the jail (every ancestor too) and creates it 0755 when missing; its
 * parent must exist. Throws exit code 3 when unsafe.
 *
 * @example
 * ```ts
 * prepareJail("/srv/jail", consoleReporter("jk_init"));
 * ```
 */
export function prepareJail(jail: string, reporter: Reporter): void {
  const unsafe = (findings: { message: string }[]) =>
    new JkError(
      `jail directory ${jail} is not safe: ${findings.map((f) => f.message).join("; ")}`,
      EXIT.unsafeJail,
    );
  const findings = checkJail(jail, { missingOk: true });
  if (findings.length > 0) throw unsafe(findings);
  let exists = true;
  try {
    Deno.lstatSync(jail);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    exists = false;
  }
  if (!exists) {
    reporter.info(`Creating jail ${jail}`);
    try {
      Deno.mkdirSync(jail, { mode: 0o755 });
      Deno.chmodSync(jail, 0o755); // the umask may have taken bits away
    } catch (e) {
      throw new JkError(`cannot create jail ${jail}: ${errorText(e)}`, EXIT.unsafeJail);
    }
    const after = checkJail(jail);
    if (after.length > 0) throw unsafe(after);
  }
}

/** Absolute directories of a $PATH value (empty and relative entries mean the cwd: dropped). */
function searchDirs(path: string): string {
  return path.split(":").filter((d) => d.startsWith("/")).join(":");
}

/** Metadata of every file and directory jk_init makes itself: root, 0755 or 0644. */
const ROOT_DIR = { perm: 0o755, uid: 0, gid: 0 };
const ROOT_FILE = { perm: 0o644, uid: 0, gid: 0 };

/**
 * Creates an in-jail directory and its missing parents. A component that is a
 * symlink on the host (`/var/run -> /run`) becomes the same symlink, as the
 * copy engine mirrors it; anything else, including a path the host does not
 * have, becomes a directory owned by root, mode 0755.
 *
 * @example
 * ```ts
 * makeEmptyDir(jail, "/srv/uploads");
 * ```
 */
export function makeEmptyDir(jail: Jail, dir: string): void {
  jail.makeDirs(dir, (inJail) => {
    const target = hostLstat(inJail)?.type === "symlink" ? hostReadlink(inJail) : null;
    return target ? { kind: "symlink", target } : { kind: "dir", meta: ROOT_DIR };
  });
}

/**
 * Runs the planned sections against a jail that `prepareJail` accepted.
 * Returns the number of failures (each already reported). A symlink in the
 * jail that leads out aborts the run with a `JailEscapeError`.
 *
 * @example
 * ```ts
 * const failures = await buildJail("/srv/jail", planSections(ini, ["sftp"]), options);
 * ```
 */
export async function buildJail(
  jailPath: string,
  plans: readonly SectionPlan[],
  options: BuildOptions,
): Promise<number> {
  const { reporter } = options;
  const jail = Jail.open(jailPath);
  let failures = 0;
  const attempt = async (what: string, step: () => void | Promise<void>) => {
    try {
      await step();
    } catch (e) {
      if (e instanceof JailEscapeError) throw e;
      reporter.error(`${what}: ${e instanceof JkError ? e.message : errorText(e)}`);
      failures++;
    }
  };
  try {
    const engine = new CopyEngine(jail, { reporter, verbose: options.verbose });
    const copyOptions = { force: options.force, hardlink: options.hardlink, glob: true };
    const resolveAll = (items: string[]) =>
      items.flatMap((item) => {
        if (item.startsWith("/")) return [item];
        const found = resolveProgram(item, options.searchPath, "/");
        if (found === null && options.verbose) reporter.verbose(`${item} not found on PATH`);
        return found === null ? [] : [found];
      });
    const doneDevices = new Set<string>();
    for (const plan of plans) {
      if (options.verbose) reporter.verbose(`Processing section [${plan.name}]`);
      await engine.copy(resolveAll(plan.paths), copyOptions);
      await engine.copy(resolveAll(plan.pathsWithOwner), { ...copyOptions, keepOwner: true });
      await engine.copy(resolveAll(plan.pathsWithSetuid), {
        ...copyOptions,
        keepOwner: true,
        keepSetuid: true,
      });
      for (const dir of plan.emptydirs) {
        await attempt(`cannot create ${jail.show(dir)}`, () => makeEmptyDir(jail, dir));
      }
      if (plan.users.length > 0 || plan.groups.length > 0) {
        await attempt(`cannot write users and groups into ${jail.show("/etc")}`, async () => {
          failures += await addAccounts(jail, plan.users, plan.groups, options);
        });
      }
      if (plan.needLogSocket) {
        await attempt(`cannot set up ${logSocketName(jailPath)}`, async () => {
          makeEmptyDir(jail, "/dev");
          if (await addLogSocket(options.socketdIni, jailPath)) {
            reporter.info(`Adding [${logSocketName(jailPath)}] to ${options.socketdIni}`);
          } else if (options.verbose) {
            reporter.verbose(`${options.socketdIni} already has [${logSocketName(jailPath)}]`);
          }
        });
      }
      for (const device of plan.devices) {
        if (doneDevices.has(device)) continue;
        doneDevices.add(device);
        engine.createDevice(device);
      }
    }
    failures += engine.errors.length;
  } finally {
    jail.close();
  }
  return failures;
}

/**
 * Appends the wanted host users and groups to the jail's etc/passwd and
 * etc/group (root, 0644). Host entries come from the host's /etc/passwd and
 * /etc/group, as in jailkit: the jail gets lines of the same files, not what
 * NSS (LDAP, sssd) would answer, and no NSS module is loaded into this root
 * process. Returns the number of names the host does not know.
 */
async function addAccounts(
  jail: Jail,
  users: string[],
  groups: string[],
  options: BuildOptions,
): Promise<number> {
  const { reporter, verbose } = options;
  let failures = 0;
  const hostPasswd = parsePasswd(await Deno.readTextFile("/etc/passwd")).entries;
  const hostGroup = parseGroup(await Deno.readTextFile("/etc/group")).entries;
  makeEmptyDir(jail, "/etc");

  const passwdFile = jail.show("/etc/passwd");
  const passwdBytes = jail.readFile("/etc/passwd") ?? new Uint8Array();
  const jailUsers = parsePasswd(new TextDecoder().decode(passwdBytes)).entries;
  const userPick = selectAccounts(hostPasswd, jailUsers, users, (e) => e.uid);
  for (const name of userPick.unknown) {
    reporter.error(`user ${name} does not exist in /etc/passwd`);
    failures++;
  }
  for (const e of userPick.present) {
    if (verbose) reporter.verbose(`user ${e.name} exists in ${passwdFile}`);
  }
  if (userPick.add.length > 0) {
    for (const e of userPick.add) reporter.info(`writing user ${e.name} to ${passwdFile}`);
    const lines = userPick.add.map((e: PasswdEntry) => passwdLine({ ...e, password: "x" }));
    jail.writeFile("/etc/passwd", appendLines(passwdBytes, lines), ROOT_FILE, { replace: true });
  }

  // A user's primary group comes along, by id.
  const primary = [...userPick.present, ...userPick.add].map((e) => String(e.gid));
  const groupFile = jail.show("/etc/group");
  const groupBytes = jail.readFile("/etc/group") ?? new Uint8Array();
  const jailGroups = parseGroup(new TextDecoder().decode(groupBytes)).entries;
  const groupPick = selectAccounts(hostGroup, jailGroups, [...groups, ...primary], (e) => e.gid);
  for (const name of groupPick.unknown) {
    // A primary gid without a host group line is legal; a named group must exist.
    if (!groups.includes(name)) continue;
    reporter.error(`group ${name} does not exist in /etc/group`);
    failures++;
  }
  for (const e of groupPick.present) {
    if (verbose) reporter.verbose(`group ${e.name} exists in ${groupFile}`);
  }
  if (groupPick.add.length > 0) {
    for (const e of groupPick.add) reporter.info(`writing group ${e.name} to ${groupFile}`);
    const lines = groupPick.add.map((e: GroupEntry) => groupLine({ ...e, password: "x" }));
    jail.writeFile("/etc/group", appendLines(groupBytes, lines), ROOT_FILE, { replace: true });
  }
  return failures;
}

/**
 * Entry point: parses `args`, checks the configuration, builds the jail.
 * Returns the exit code.
 *
 * @example
 * ```ts
 * const code = await jkInit(["-j", "/srv/jail", "sftp", "scp"]);
 * ```
 */
export async function jkInit(args: string[]): Promise<number> {
  const request = parseInitArgs(args);
  if (request.help) {
    console.log(USAGE);
    return EXIT.ok;
  }
  if (request.list) {
    const ini = await loadConfig(request.configFile);
    console.log(listSections(ini).join("\n"));
    return EXIT.ok;
  }
  if (Deno.uid() !== 0) {
    throw new JkError("cannot create a chroot jail without root privileges", EXIT.notRoot);
  }
  if (request.jail === undefined || request.sections.length === 0) {
    throw new JkError(
      "need a jail directory (-j) and at least one section; try --help",
      EXIT.missingArguments,
    );
  }
  if (/[\0\n\r]/.test(request.jail)) {
    throw new JkError("jail path contains a line break", EXIT.missingArguments);
  }
  const jail = normalize(isAbsolute(request.jail) ? request.jail : resolve(request.jail))
    .replace(/(.)\/+$/, "$1");
  if (jail === "/") throw new JkError("the jail cannot be /", EXIT.unsafeJail);

  // Everything about the configuration is checked before the jail is touched.
  const ini = await loadConfig(request.configFile);
  const plans = planSections(ini, request.sections);

  const reporter = consoleReporter("jk_init");
  prepareJail(jail, reporter);
  let failures: number;
  try {
    failures = await buildJail(jail, plans, {
      verbose: request.verbose,
      force: request.force,
      hardlink: request.hardlink,
      socketdIni: iniPath(INSTALLED, "jk_socketd"),
      searchPath: searchDirs(Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin"),
      reporter,
    });
  } catch (e) {
    // A link in the jail that leads out, or a jail swapped since the check: abort.
    if (e instanceof JailEscapeError) throw new JkError(e.message, EXIT.unsafeJail);
    throw e;
  }
  if (failures > 0) {
    console.error(`jk_init: ${failures} item(s) failed; the rest of ${jail} is in place`);
    return EXIT.incomplete;
  }
  return EXIT.ok;
}

if (import.meta.main) await runMain("jk_init", () => jkInit(Deno.args));
