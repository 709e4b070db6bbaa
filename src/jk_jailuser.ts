/**
 * jk_jailuser — move existing accounts into a jail.
 *
 * `jk_jailuser -j JAIL [-s SHELL] [-m] [-n] [-v] USER...`
 *
 * For each user: adds them to JAIL/etc/passwd (with SHELL, default the
 * installed jk_lsh) and their primary and supplementary groups to
 * JAIL/etc/group, then changes the host account with usermod(8): home
 * `JAIL/./HOME`, shell the installed jk_chrootsh. With `-m` the home's
 * contents are copied into the jail first, and the old home is removed once
 * the account points into the jail. Interactive unless `-n`: asks for the
 * jail when it is not valid, and whether to move each home outside it.
 *
 * Differences from jailkit 2.23, on purpose:
 * - the jail must pass jk_chrootsh's safety checks (root-owned, not writable
 *   by others, every ancestor too): a jail that would refuse every login is
 *   refused here;
 * - the shell is looked up inside the jail (symlinks resolved within it, not
 *   on the host);
 * - `-m` copies and removes the home **as the user** (cp -a, find -delete),
 *   never as root, so hardlinks and symlinks planted in a home cannot make
 *   root read or write a file the user could not; it refuses outright a home
 *   holding hardlinked files; symlinks are kept as symlinks (jailkit copied
 *   their targets, as root);
 * - nothing is removed before everything that can fail has been done: a user
 *   with running processes (which usermod would refuse) is refused before
 *   anything changes; the home is copied, then usermod changes the account,
 *   and only then is the old home removed. A failed copy or usermod removes
 *   the copy again, so the account and the old home stay as they were (the
 *   lines added to the jail's passwd and group stay: a rerun finds them);
 * - jail files keep their bytes (a Latin-1 GECOS of another user survives);
 * - jail files are replaced atomically (temporary file and rename), never
 *   appended to or rewritten in place;
 * - `--noninteractive` works (jailkit registered only `-n`), `--nomove` means
 *   "do not move" (jailkit ignored it);
 * - users are read from the host's /etc/passwd and /etc/group files, the
 *   files usermod changes (jailkit asked NSS, then usermod failed for users
 *   it cannot change).
 *
 * Exit codes: 0 done, 1 usage error or not root or some user failed (among
 * them a user with running processes: "user U has running processes ...",
 * their account and home left as they were), 2 no user named or a jail file
 * could not be written, 33 no valid jail.
 *
 * @module
 */

import { basename, dirname, normalize, resolve } from "./paths.ts";
import { errorText, JkError, parseCommandLine, runMain, warn } from "./cli.ts";
import { RootedPaths } from "./deps.ts";
import { checkJail } from "./jailsafety.ts";
import {
  appendLines,
  type GroupEntry,
  groupLine,
  parseGroup,
  parsePasswd,
  type PasswdEntry,
  passwdLine,
} from "./passwd.ts";
import { INSTALLED, toolPath } from "./site.ts";

const TOOL = "jk_jailuser";

const USAGE = `Usage: ${TOOL} [OPTIONS] username [more usernames]

 -j | --jail=jaildir     : jail directory
 -v | --verbose          : verbose output
 -n | --noninteractive   : no user interaction
 -s | --shell=shell      : set shell inside jail (${
  toolPath(INSTALLED, "usr/sbin", "jk_lsh")
} default)
 -m | --move             : move home if home outside jail
      --nomove           : never move the home
 -h | --help             : this message`;

/** Programs run by absolute path (the tool's `--allow-run` list). */
const USERMOD = "/usr/sbin/usermod", CP = "/usr/bin/cp", FIND = "/usr/bin/find";

/** Exit codes. */
export const EXIT = { ok: 0, failed: 1, noUser: 2, writeFailed: 2, noJail: 33 } as const;

// ---------------------------------------------------------------------------
// Paths

/**
 * Whether `path` is `jail` or below it (jailkit's `dirinjail`, which compares
 * with a slash on both sides so `/srv/jail2` is not inside `/srv/jail`).
 *
 * @example
 * ```ts
 * isInJail("/srv/jail/./home/a", "/srv/jail"); // true
 * isInJail("/srv/jail2/home/a", "/srv/jail"); // false
 * ```
 */
export function isInJail(path: string, jail: string): boolean {
  return (path.replace(/\/*$/, "/")).startsWith(jail.replace(/\/*$/, "/"));
}

/**
 * The home as seen inside the jail: the part after `JAIL/./` or `JAIL` when
 * the host home is already inside it, else the host home itself. Trailing
 * slashes are dropped; the jail itself is `/`.
 *
 * @example
 * ```ts
 * jailHomeFor("/home/alice", "/srv/jail"); // "/home/alice"
 * jailHomeFor("/srv/jail/./home/alice", "/srv/jail"); // "/home/alice"
 * jailHomeFor("/srv/jail/home/alice", "/srv/jail"); // "/home/alice"
 * ```
 */
export function jailHomeFor(hostHome: string, jail: string): string {
  let inner = hostHome;
  if (isInJail(hostHome, jail)) {
    inner = hostHome.slice(jail.length);
    if (inner === "/." || inner.startsWith("/./")) inner = inner.slice(2);
  }
  inner = inner.replace(/\/+$/, "");
  return inner === "" ? "/" : inner;
}

/**
 * The host home that makes jk_chrootsh enter `jail`: `JAIL/./<home in jail>`.
 *
 * @example
 * ```ts
 * newHostHome("/home/alice", "/srv/jail"); // "/srv/jail/./home/alice"
 * ```
 */
export function newHostHome(hostHome: string, jail: string): string {
  return `${jail}/.${jailHomeFor(hostHome, jail)}`;
}

// ---------------------------------------------------------------------------
// Jail files

/**
 * passwd bytes with a line for `user` appended; `null` when a line with that
 * name is already there (jailkit leaves an existing entry alone). The existing
 * bytes are kept exactly.
 *
 * @example
 * ```ts
 * const out = addUserLine(new Uint8Array(), { name: "a", password: "x", uid: 1000, gid: 1000,
 *   gecos: "", home: "/home/a", shell: "/usr/sbin/jk_lsh" });
 * new TextDecoder().decode(out!); // "a:x:1000:1000::/home/a:/usr/sbin/jk_lsh\n"
 * ```
 */
export function addUserLine(
  bytes: Uint8Array,
  user: Omit<PasswdEntry, "line">,
): Uint8Array | null {
  if (parsePasswd(decodeLossy(bytes)).entries.some((e) => e.name === user.name)) return null;
  return appendLines(bytes, [passwdLine(user)]);
}

/**
 * group bytes in which the group exists (by name) and, when `member` is given,
 * lists it; `null` when nothing changes. A group already present by name with
 * a different gid is left as it is. Only the changed line is rewritten; the
 * other bytes are kept exactly.
 *
 * @example
 * ```ts
 * const text = (b: Uint8Array | null) => new TextDecoder().decode(b!);
 * text(addGroupMember(new Uint8Array(), { name: "sftp", gid: 1001 }, "alice")); // "sftp:x:1001:alice\n"
 * const old = new TextEncoder().encode("sftp:x:1001:bob\n");
 * text(addGroupMember(old, { name: "sftp", gid: 1001 }, "alice")); // "sftp:x:1001:bob,alice\n"
 * ```
 */
export function addGroupMember(
  bytes: Uint8Array,
  group: { name: string; gid: number },
  member: string | null,
): Uint8Array | null {
  const existing = parseGroup(decodeLossy(bytes)).entries.find((e) => e.name === group.name);
  if (!existing) {
    const line = groupLine({ ...group, password: "x", members: member ? [member] : [] });
    return appendLines(bytes, [line]);
  }
  if (member === null || existing.members.includes(member)) return null;
  const line = groupLine({ ...existing, members: [...existing.members, member] });
  return replaceLine(bytes, existing.line, line);
}

/**
 * Decodes for parsing only: a newline byte is never part of a UTF-8 sequence,
 * so line numbers match the bytes even where other bytes are not UTF-8.
 */
function decodeLossy(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** `bytes` with its 1-based line `lineNo` (without its newline) replaced by `line`. */
function replaceLine(bytes: Uint8Array, lineNo: number, line: string): Uint8Array {
  let start = 0;
  for (let n = 1; n < lineNo; n++) start = bytes.indexOf(0x0a, start) + 1;
  let end = bytes.indexOf(0x0a, start);
  if (end < 0) end = bytes.length;
  if (end > start && bytes[end - 1] === 0x0d) end--; // keep a CRLF line's CR
  const middle = new TextEncoder().encode(line);
  const out = new Uint8Array(start + middle.length + bytes.length - end);
  out.set(bytes.subarray(0, start));
  out.set(middle, start);
  out.set(bytes.subarray(end), start + middle.length);
  return out;
}

/**
 * Replaces a file of the jail's etc atomically: a new file next to it with the
 * old one's mode and owner, then rename. Refuses a symlink or a non-file (the
 * rename would replace the link, but a link there means someone meddled).
 */
function replaceJailFile(path: string, bytes: Uint8Array): void {
  let mode = 0o644, uid = 0, gid = 0;
  try {
    const info = Deno.lstatSync(path);
    if (!info.isFile) throw new JkError(`${path} is not a regular file`, EXIT.writeFailed);
    mode = (info.mode ?? mode) & 0o777;
    uid = info.uid ?? 0;
    gid = info.gid ?? 0;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const staged = `${dirname(path)}/.${basename(path)}.${TOOL}.${crypto.randomUUID().slice(0, 8)}`;
  try {
    Deno.writeFileSync(staged, bytes, { createNew: true, mode });
    Deno.chownSync(staged, uid, gid);
    Deno.chmodSync(staged, mode);
    Deno.renameSync(staged, path);
  } catch (e) {
    try {
      Deno.removeSync(staged);
    } catch {
      // never created, or already renamed
    }
    throw new JkError(`failed to write to ${path}: ${errorText(e)}`, EXIT.writeFailed);
  }
}

function readOrEmpty(path: string): Uint8Array {
  try {
    return Deno.readFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return new Uint8Array();
    throw new JkError(`cannot read ${path}: ${errorText(e)}`, EXIT.writeFailed);
  }
}

// ---------------------------------------------------------------------------
// The jail

/**
 * What is wrong with `jail` as a target for `shell`, or `null`: jailkit's
 * checks (exists, has etc/passwd, the shell exists inside it and is
 * executable) and jk_chrootsh's safety checks of the jail and its ancestors.
 *
 * @example
 * ```ts
 * jailProblem("/srv/jail", "/usr/sbin/jk_lsh"); // null, or "invalid jail, ..."
 * ```
 */
export function jailProblem(jail: string, shell: string): string | null {
  try {
    if (!Deno.statSync(jail).isDirectory) return `${jail} is not a directory`;
  } catch {
    return `${jail} does not exist`;
  }
  try {
    Deno.statSync(`${jail}/etc/passwd`);
  } catch {
    return `invalid jail, ${jail}/etc/passwd does not exist`;
  }
  const unsafe = checkJail(jail);
  if (unsafe.length > 0) {
    return `${jail} is not a safe jail: ${unsafe.map((f) => f.message).join("; ")}`;
  }
  if (!shell.startsWith("/")) return `invalid shell, ${shell} is not an absolute path`;
  const found = new RootedPaths(jail).resolve(shell);
  if (found.kind !== "file") return `invalid shell, ${jail}${shell} does not exist`;
  const mode = Deno.statSync(`${jail}${found.real}`).mode ?? 0;
  if ((mode & 0o111) === 0) return `invalid shell, ${jail}${shell} is not executable`;
  return null;
}

/** Reads one line from stdin (without the newline); `null` at end of input. */
function readLine(): string | null {
  const bytes: number[] = [];
  const one = new Uint8Array(1);
  for (;;) {
    const n = Deno.stdin.readSync(one);
    if (n === null || n === 0) return bytes.length > 0 ? decode(bytes) : null;
    if (one[0] === 0x0a) return decode(bytes);
    bytes.push(one[0]);
  }
}

function decode(bytes: number[]): string {
  return new TextDecoder().decode(new Uint8Array(bytes)).replace(/\r$/, "");
}

/** Prints a question and reads the answer. */
function ask(question: string): string | null {
  Deno.stdout.writeSync(new TextEncoder().encode(question));
  return readLine();
}

/** The jail as an absolute, normalised path without a trailing slash. */
function canonicalJail(jail: string): string {
  const absolute = jail.startsWith("/") ? jail : resolve(Deno.cwd(), jail);
  return normalize(absolute).replace(/(.)\/+$/, "$1");
}

/** A valid jail, asking again while interactive; exit 33 otherwise. */
function chooseJail(given: string | undefined, shell: string, interactive: boolean): string {
  let jail = given;
  for (;;) {
    if (jail !== undefined && jail !== "") {
      const canonical = canonicalJail(jail);
      const problem = jailProblem(canonical, shell);
      if (problem === null) return canonical;
      warn(TOOL, problem);
    }
    if (!interactive) throw new JkError("no valid jail, giving up", EXIT.noJail);
    const answer = ask("enter jail directory: ");
    if (answer === null) throw new JkError("no valid jail, giving up", EXIT.noJail);
    jail = answer.trim();
  }
}

// ---------------------------------------------------------------------------
// One user

/** What jailing one user needs to know. */
interface Plan {
  jail: string;
  shell: string;
  chrootsh: string;
  verbose: boolean;
  passwd: PasswdEntry[];
  groups: GroupEntry[];
}

/**
 * Adds the user and their groups to the jail's files, copies the home into
 * the jail when asked, points the host account at the jail, and only then
 * removes the old home. Returns false when the user could not be (completely)
 * jailed; a jail file that cannot be written throws (exit 2), as in jailkit.
 */
function jailUser(plan: Plan, user: PasswdEntry, move: boolean): boolean {
  const { jail, verbose } = plan;
  const say = (line: string) => verbose && console.log(line);
  const jailHome = jailHomeFor(user.home, jail);
  const newHome = newHostHome(user.home, jail);
  const accountDone = user.home === newHome && user.shell === plan.chrootsh;

  // Everything that can be checked is checked before anything changes.
  if (!accountDone) {
    const pids = userProcesses(user.uid);
    if (pids.length > 0) {
      const shown = pids.slice(0, 5).join(", ") + (pids.length > 5 ? ", ..." : "");
      warn(
        TOOL,
        `user ${user.name} has running processes (pid ${shown}); stop them and run again, ` +
          `nothing was changed`,
      );
      return false;
    }
  }
  const primary = plan.groups.find((g) => g.gid === user.gid);
  if (!primary) {
    warn(TOOL, `group ID ${user.gid} of user ${user.name} does not exist in /etc/group`);
    return false;
  }

  const passwdFile = `${jail}/etc/passwd`;
  const passwd = addUserLine(readOrEmpty(passwdFile), {
    name: user.name,
    password: "x",
    uid: user.uid,
    gid: user.gid,
    gecos: user.gecos,
    home: jailHome,
    shell: plan.shell,
  });
  if (passwd === null) say(`user ${user.name} already exists in ${passwdFile}`);
  else {
    say(`adding user ${user.name} to ${passwdFile} with shell ${plan.shell}`);
    replaceJailFile(passwdFile, passwd);
  }

  const memberships: [{ name: string; gid: number }, string | null][] = [
    [primary, null],
    ...plan.groups.filter((g) => g.members.includes(user.name))
      .map((g): [GroupEntry, string] => [g, user.name]),
  ];
  const groupFile = `${jail}/etc/group`;
  for (const [group, member] of memberships) {
    const bytes = addGroupMember(readOrEmpty(groupFile), group, member);
    if (bytes === null) continue;
    say(`adding ${member ? `user ${member} to ` : ""}group ${group.name} in ${groupFile}`);
    replaceJailFile(groupFile, bytes);
  }

  let copy: HomeCopy | null = null;
  if (move) {
    const copied = copyHome(plan, user, jailHome);
    if (copied === "failed") return false;
    copy = copied;
  } else if (!exists(`${jail}${jailHome}`)) {
    warn(TOOL, `note: ${jail}${jailHome} does not exist; create it, or use -m to move the home`);
  }

  if (accountDone) say(`user ${user.name} has a correct home directory and shell already`);
  else {
    say(`modify user ${user.name}; dir ${newHome} and shell ${plan.chrootsh}`);
    const r = runQuiet(USERMOD, ["-d", newHome, "-s", plan.chrootsh, "--", user.name]);
    if (!r.ok) {
      warn(TOOL, `failed to modify user ${user.name}: ${r.stderr}`);
      if (copy) undoCopy(copy, user);
      return false;
    }
  }

  // The account now points into the jail: the old home is no longer needed.
  if (copy) removeOldHome(copy, user);
  return true;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs a program (absolute path) with a minimal environment; optionally as a user. */
function runQuiet(
  program: string,
  args: string[],
  as?: { uid: number; gid: number },
): { ok: boolean; stdout: string; stderr: string } {
  const out = new Deno.Command(program, {
    args,
    uid: as?.uid,
    gid: as?.gid,
    cwd: "/",
    clearEnv: true,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const stderr = text(out.stderr).trim().split("\n").slice(-3).join("; ");
  return { ok: out.success, stdout: text(out.stdout), stderr };
}

/**
 * Process ids whose /proc directory the user owns: their processes, as far
 * as the kernel shows (it shows the effective uid of a dumpable process).
 * Deno grants /proc only to --allow-all, so find(1), already needed to empty
 * homes, lists them. A process seen only by usermod (real or saved uid)
 * still stops the move at usermod, after the copy, which is then removed.
 */
function userProcesses(uid: number): number[] {
  const r = runQuiet(FIND, [
    "/proc",
    "-mindepth",
    "1",
    "-maxdepth",
    "1",
    "-name",
    "[0-9]*",
    "-uid",
    String(uid),
    "-printf",
    "%f\\n",
  ]);
  // find exits non-zero when a process ends while it looks: what it printed stands.
  return r.stdout.split("\n").filter((l) => /^\d+$/.test(l)).map(Number);
}

/** A path that could not be read while scanning a home. */
class ScanError extends Error {
  constructor(readonly path: string, cause: unknown) {
    super(`cannot read ${path}: ${errorText(cause)}`, { cause });
  }
}

/**
 * Non-directories in `dir` with more than one link, found with lstat (links
 * are not followed). A hardlink in a home may point at any file on the same
 * file system, the user's or not: jailkit's root copy then copied it. Throws
 * ScanError naming the entry that could not be read (the user may change
 * their home while it is scanned).
 */
function hardlinkedFiles(dir: string, limit = 5): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(path)];
    } catch (e) {
      throw new ScanError(path, e);
    }
    for (const entry of entries) {
      if (found.length >= limit) return;
      const child = `${path}/${entry.name}`;
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(child);
      } catch (e) {
        throw new ScanError(child, e);
      }
      if (info.isDirectory) walk(child);
      else if ((info.nlink ?? 1) > 1) found.push(child);
    }
  };
  walk(dir);
  return found;
}

/**
 * Creates the directories above the home inside the jail (`JAIL/home` for
 * `/home/alice`) as root, with the host's modes minus group and other write;
 * existing ones must be real root-owned directories writable only by root.
 * Returns the directories it created, outermost first.
 */
function mirrorParents(jail: string, jailHome: string): string[] {
  const created: string[] = [];
  let path = "";
  for (const part of dirname(jailHome).split("/").filter((p) => p !== "")) {
    path += `/${part}`;
    const target = `${jail}${path}`;
    let info: Deno.FileInfo | null = null;
    try {
      info = Deno.lstatSync(target);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw new ScanError(target, e);
    }
    if (info) {
      if (!info.isDirectory || info.uid !== 0 || ((info.mode ?? 0) & 0o022)) {
        throw new Error(`${target} is not a root-owned directory writable only by root`);
      }
      continue;
    }
    let mode = 0o755;
    try {
      mode = (Deno.statSync(path).mode ?? mode) & 0o755;
    } catch {
      // no such directory on the host: 0755
    }
    try {
      Deno.mkdirSync(target, { mode });
      created.push(target);
      Deno.chownSync(target, 0, 0);
      Deno.chmodSync(target, mode);
    } catch (e) {
      removeEmptyDirs(created);
      throw new Error(`cannot create ${target}: ${errorText(e)}`);
    }
  }
  return created;
}

/** Removes directories that are empty, innermost first; a non-empty one stays. */
function removeEmptyDirs(dirs: readonly string[]): void {
  for (const dir of [...dirs].reverse()) {
    try {
      Deno.removeSync(dir); // rmdir: fails on a non-empty directory
    } catch {
      // something else was put there meanwhile: keep it
    }
  }
}

/** A home copied into the jail whose old home is still in place. */
interface HomeCopy {
  oldHome: string;
  target: string;
  /** What the target was before, to restore on undo; null when it was created. */
  before: { uid: number; gid: number; mode: number } | null;
  /** Parent directories created in the jail, outermost first. */
  parents: string[];
}

/**
 * Copies the home into the jail as the user: root only creates the empty
 * target (the user's, with the old home's group and mode) and its parents;
 * `cp -a` run as the user copies. The old home is left in place. Returns null
 * when there is nothing to move, "failed" (reason printed, the copy undone)
 * when the home cannot be moved.
 */
function copyHome(plan: Plan, user: PasswdEntry, jailHome: string): HomeCopy | null | "failed" {
  const { jail, verbose } = plan;
  const oldHome = normalize(user.home).replace(/(.)\/+$/, "$1");
  const target = `${jail}${jailHome === "/" ? "" : jailHome}`;
  if (oldHome === normalize(target).replace(/(.)\/+$/, "$1") || isInJail(oldHome, jail)) {
    console.log(`home directory ${user.home} is already inside the jail`);
    return null;
  }
  let old: Deno.FileInfo;
  try {
    old = Deno.lstatSync(oldHome);
  } catch {
    warn(TOOL, `home directory ${oldHome} does not exist, nothing moved`);
    return null;
  }
  if (!old.isDirectory) {
    warn(TOOL, `home directory ${oldHome} is not a directory (a symlink?), nothing moved`);
    return "failed";
  }
  try {
    const linked = hardlinkedFiles(oldHome);
    if (linked.length > 0) {
      warn(
        TOOL,
        `refusing to move ${oldHome}: it holds hardlinked files (${linked.join(", ")}); ` +
          `remove the extra links first`,
      );
      return "failed";
    }
  } catch (e) {
    if (!(e instanceof ScanError)) throw e;
    const hint = e.cause instanceof Deno.errors.NotFound ? " (did it change meanwhile?)" : "";
    warn(TOOL, `${e.message}${hint}, nothing moved`);
    return "failed";
  }

  let parents: string[];
  try {
    parents = mirrorParents(jail, jailHome);
  } catch (e) {
    warn(TOOL, `${errorText(e)}, nothing moved`);
    return "failed";
  }
  const copy: HomeCopy = { oldHome, target, before: null, parents };
  try {
    if (exists(target)) {
      const info = Deno.lstatSync(target);
      if (!info.isDirectory || [...Deno.readDirSync(target)].length > 0) {
        warn(TOOL, `${target} already exists and is not an empty directory, nothing moved`);
        removeEmptyDirs(parents);
        return "failed";
      }
      copy.before = { uid: info.uid ?? 0, gid: info.gid ?? 0, mode: (info.mode ?? 0) & 0o7777 };
    } else {
      Deno.mkdirSync(target, { mode: 0o700 });
    }
    Deno.chownSync(target, user.uid, old.gid ?? user.gid);
    Deno.chmodSync(target, (old.mode ?? 0o755) & 0o1777);
  } catch (e) {
    warn(TOOL, `cannot prepare ${target}: ${errorText(e)}, nothing moved`);
    undoCopy(copy, user);
    return "failed";
  }
  if (verbose) console.log(`Copying files from ${oldHome} to ${target} as ${user.name}`);
  const copied = runQuiet(CP, ["-a", "-T", "--", oldHome, target], asUser(user));
  if (!copied.ok) {
    warn(TOOL, copied.stderr);
    console.log(`Not everything was copied to ${target}, keeping the old directory ${oldHome}`);
    undoCopy(copy, user);
    return "failed";
  }
  return copy;
}

function asUser(user: PasswdEntry): { uid: number; gid: number } {
  return { uid: user.uid, gid: user.gid };
}

/**
 * Empties a directory of the user's as the user: find gives the owner read,
 * write and search on directories that lack them (cp -a copies a read-only
 * directory as read-only), before entering them, then deletes depth first. Run as the user, a link
 * planted meanwhile can only reach what the user could change anyway.
 */
function emptyAsUser(dir: string, user: PasswdEntry): { ok: boolean; stderr: string } {
  runQuiet(FIND, [
    dir,
    "-type",
    "d",
    "!",
    "-perm",
    "-u=rwx",
    "-exec",
    "chmod",
    "u+rwx",
    "--",
    "{}",
    ";",
  ], asUser(user));
  return runQuiet(FIND, [dir, "-mindepth", "1", "-delete"], asUser(user));
}

/**
 * Takes back a copy after a failure: empties the target as the user, then
 * root removes it (or restores the empty directory that was there) and the
 * parents it created. What cannot be removed is named.
 */
function undoCopy(copy: HomeCopy, user: PasswdEntry): void {
  const emptied = emptyAsUser(copy.target, user);
  try {
    if (!emptied.ok) throw new Error(emptied.stderr);
    if (copy.before === null) Deno.removeSync(copy.target);
    else {
      Deno.chownSync(copy.target, copy.before.uid, copy.before.gid);
      Deno.chmodSync(copy.target, copy.before.mode);
    }
  } catch (e) {
    warn(TOOL, `could not remove the partial copy ${copy.target}: ${errorText(e)}`);
    return;
  }
  removeEmptyDirs(copy.parents);
  console.log(`removed the copy ${copy.target}; ${copy.oldHome} and the account are unchanged`);
}

/** Removes the old home once the account points into the jail: as the user, then root's rmdir. */
function removeOldHome(copy: HomeCopy, user: PasswdEntry): void {
  const emptied = emptyAsUser(copy.oldHome, user);
  try {
    if (!emptied.ok) throw new Error(emptied.stderr);
    Deno.removeSync(copy.oldHome);
  } catch (e) {
    warn(TOOL, `copied, but failed to remove ${copy.oldHome}: ${errorText(e)}`);
  }
}

// ---------------------------------------------------------------------------
// Main

/**
 * The command line and the loop over users.
 *
 * @example
 * ```ts
 * Deno.exit(jailUsers(["-n", "-j", "/srv/jail", "alice"]));
 * ```
 */
export function jailUsers(args: string[]): number {
  const { values, positionals } = parseCommandLine(args, {
    jail: { type: "string", short: "j" },
    shell: { type: "string", short: "s" },
    move: { type: "boolean", short: "m" },
    nomove: { type: "boolean" },
    noninteractive: { type: "boolean", short: "n" },
    verbose: { type: "boolean", short: "v" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT.ok;
  }
  if (Deno.uid() !== 0) throw new JkError("must run as root (it changes accounts)");
  if (positionals.length === 0) throw new JkError("aborted, no username specified", EXIT.noUser);
  const interactive = !values.noninteractive;
  const shell = (values.shell as string | undefined) ?? toolPath(INSTALLED, "usr/sbin", "jk_lsh");
  const jail = chooseJail(values.jail as string | undefined, shell, interactive);
  const plan: Plan = {
    jail,
    shell,
    chrootsh: toolPath(INSTALLED, "usr/sbin", "jk_chrootsh"),
    verbose: !!values.verbose,
    passwd: parsePasswd(decodeLossy(readOrEmpty("/etc/passwd"))).entries,
    groups: parseGroup(decodeLossy(readOrEmpty("/etc/group"))).entries,
  };
  let failed = 0;
  for (const name of positionals) {
    const user = plan.passwd.find((e) => e.name === name);
    if (!user) {
      warn(TOOL, `user ${name} does not exist`);
      failed++;
      continue;
    }
    let move = !!values.move;
    if (!values.move && !values.nomove && interactive && !isInJail(user.home, jail)) {
      const answer = ask(
        `home directory ${user.home} is not within ${jail}, move the directory contents?\n[Y]/[n]`,
      );
      move = answer !== null && ["Y", "y", ""].includes(answer.trim());
    }
    if (!jailUser(plan, user, move)) failed++;
  }
  return failed > 0 ? EXIT.failed : EXIT.ok;
}

if (import.meta.main) await runMain(TOOL, () => jailUsers(Deno.args));
