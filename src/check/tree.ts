/**
 * The walk of one jail: every entry is `lstat`ed once and judged on what it
 * is, and regular files and symlinks are compared with the host's file of the
 * same path.
 *
 * jailkit's tests, with their ignore keys: group/world-writable directories,
 * setuid/setgid executables, files that differ from the host. Beyond jailkit:
 * whole-file comparison; writable or non-root files in the system trees (bin,
 * etc, lib*, sbin, usr); the jail's etc/jailkit; device nodes outside an
 * allowlist; sockets and FIFOs; files with hard links outside the jail; procfs
 * and sysfs mounted inside the jail (reported, not descended).
 *
 * Synchronous on purpose: measured on a 6,800-entry jail, async `lstat` of
 * every entry alone took longer than this whole sync walk. Cheap tests first:
 * sizes come from the `lstat`s, and only same-size regular files are queued
 * for the byte comparison, which runs on other threads (src/check/jobs.ts).
 *
 * Nothing is followed: symlinks are compared as links, directories are
 * entered only when `lstat` says they are real directories.
 *
 * @module
 */

import type { FindingCode } from "./findings.ts";
import type { CompareResult } from "./compare.ts";
import type { JailRules } from "./config.ts";
import { errorText } from "../errors.ts";

/** Top-level jail directories whose contents no user may own or write. */
export const SYSTEM_TREES = new Set([
  "bin",
  "etc",
  "lib",
  "lib32",
  "lib64",
  "libx32",
  "sbin",
  "usr",
]);

/** Character devices a jail may hold, by `major:minor` (Linux's fixed numbers). */
export const ALLOWED_CHAR_DEVICES = new Map([
  ["1:3", "null"],
  ["1:5", "zero"],
  ["1:7", "full"],
  ["1:8", "random"],
  ["1:9", "urandom"],
  ["5:0", "tty"],
  ["5:2", "ptmx"],
]);

/** What the walk needs from its caller. */
export interface WalkContext {
  rules: JailRules;
  /** Receives each problem; the caller applies `ignorefindings` and prints. */
  report(code: FindingCode, path: string, message: string): void;
  /**
   * Queues the byte comparison of a jail file with the host file of the same
   * size. `trusted`: both files are in directories only root can change, up
   * to `/`, so neither can be swapped for a FIFO (a blocking open is safe).
   * `executable`: the file is also for the closure test (as for
   * `executable`), its in-jail path being `hostPath`.
   */
  compareContents(
    path: string,
    hostPath: string,
    size: number,
    trusted: boolean,
    executable: boolean,
  ): void;
  /**
   * Receives the in-jail path of each executable or shared library in a
   * directory only root can change, for the closure test, unless it went to
   * `compareContents` as `executable`.
   */
  executable(rel: string): void;
  /**
   * Whether the directories above the jail are safe (root-owned, writable by
   * nobody else); if not, nothing in the jail counts as root-only.
   */
  ancestorsSafe: boolean;
  /** Device numbers of the host's system binaries (for the hard-link message). */
  hostSystemDevs: ReadonlySet<number>;
}

/** What the walk collected for later checks. */
export interface WalkResult {
  /** Entries looked at. */
  entries: number;
  /** Regular files whose contents are compared byte for byte. */
  compared: number;
  /** Executables and shared libraries passed on for the closure test. */
  executables: number;
  /** Executables left out of it because a non-root user can change their directory. */
  untrustedExecutables: number;
}

/** Where a directory is: in a system tree, and changeable by root only. */
interface Place {
  /** Under bin, etc, lib*, sbin or usr of the jail. */
  system: boolean;
  /**
   * Only root can add, remove or swap entries here: this directory and every
   * one above it, up to `/`, is root-owned and not group/world-writable.
   */
  rootOnly: boolean;
}

/** Whether a directory keeps its parent's root-only status. */
function rootOnly(parent: boolean, info: Deno.FileInfo): boolean {
  return parent && info.uid === 0 && ((info.mode ?? 0) & 0o022) === 0;
}

/** Linux `dev_t` → `major:minor` (glibc's gnu_dev_major/minor). */
export function deviceNumber(rdev: number): string {
  const big = BigInt(rdev);
  const major = ((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn);
  const minor = (big & 0xffn) | ((big >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** A regular file's hard links: how many the inode has and how many the walk met. */
interface LinkCount {
  path: string;
  nlink: number;
  seen: number;
  dev: number;
}

/** Per-walk state. */
class Walker {
  readonly #ctx: WalkContext;
  readonly #jail: string;
  readonly #links = new Map<string, LinkCount>();
  /** Host directories by path: whether it and every one above are root's alone. */
  readonly #hostDirs = new Map<string, boolean>([["/", hostDirRootOnly("/")]]);
  readonly result: WalkResult = {
    entries: 0,
    compared: 0,
    executables: 0,
    untrustedExecutables: 0,
  };

  constructor(ctx: WalkContext) {
    this.#ctx = ctx;
    this.#jail = ctx.rules.jail === "/" ? "" : ctx.rules.jail;
  }

  /** Walks the jail, whose `lstat` the caller already has. */
  run(root: Deno.FileInfo): WalkResult {
    const place = { system: false, rootOnly: rootOnly(this.#ctx.ancestorsSafe, root) };
    this.#directory(this.#jail || "/", "", root, root.dev, place);
    this.#reportLinks();
    return this.result;
  }

  #directory(path: string, rel: string, info: Deno.FileInfo, parentDev: number, place: Place) {
    const { rules, report } = this.#ctx;
    const mode = info.mode ?? 0;
    if (mode & 0o002 && !rules.ignoreWritableForOthers.covers(path)) {
      report("dir-writable-others", path, `${path} is writable for others!`);
    }
    if (mode & 0o020 && !rules.ignoreWritableForGroup.covers(path)) {
      report("dir-writable-group", path, `${path} is writable for group!`);
    }
    if (place.system) this.#owner(path, rel, info);
    if (info.dev !== parentDev && this.#pseudoFilesystem(path, info)) return;

    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(path)];
    } catch (e) {
      report("walk-error", path, `failed to test any files in ${path}: ${errorText(e)}`);
      return;
    }
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    const prefix = path === "/" ? "" : path;
    for (const { name, isSymlink } of entries) {
      const child = `${prefix}/${name}`;
      if (rules.ignoreEverywhere.covers(child)) continue;
      this.result.entries++;
      // A symlink's own metadata tells nothing (its mode is always 0777), so
      // the directory entry's type is enough. (A name that is not UTF-8
      // cannot be named: lstat below reports it.)
      if (isSymlink && !name.includes("\uFFFD")) {
        this.#symlink(child, `${rel}/${name}`);
        continue;
      }
      let st: Deno.FileInfo;
      try {
        st = Deno.lstatSync(child);
      } catch (e) {
        // Deno turns a name that is not UTF-8 into U+FFFD, so such a file cannot be named.
        const why = name.includes("\uFFFD")
          ? "its name is not valid UTF-8, which Deno cannot open; not checked"
          : errorText(e);
        report("walk-error", child, `cannot lstat() ${child}: ${why}`);
        continue;
      }
      const childRel = `${rel}/${name}`;
      if (st.isDirectory) {
        this.#directory(child, childRel, st, info.dev, {
          system: place.system || (rel === "" && SYSTEM_TREES.has(name)),
          rootOnly: rootOnly(place.rootOnly, st),
        });
      } else if (st.isFile) this.#file(child, childRel, name, st, place);
      else if (st.isSymlink) this.#symlink(child, childRel);
      else this.#special(child, childRel, st);
    }
  }

  /** Ownership in the system trees; the jail's etc/jailkit gets its own code. */
  #owner(path: string, rel: string, info: Deno.FileInfo): void {
    if (info.uid === 0) return;
    if (rel === "/etc/jailkit" || rel.startsWith("/etc/jailkit/")) {
      this.#ctx.report(
        "jail-ini-not-root",
        path,
        `${path} is owned by uid ${info.uid}, not root: a jailed jk_lsh reads its config here`,
      );
    } else {
      this.#ctx.report(
        "system-path-not-root",
        path,
        `${path} is owned by uid ${info.uid}, not root`,
      );
    }
  }

  /**
   * A mount point holding procfs or sysfs (recognised by their root inode 1
   * and their fixed entries) is reported and not entered: /proc/PID/root of
   * an outside process is a way out of the jail.
   */
  #pseudoFilesystem(path: string, info: Deno.FileInfo): boolean {
    if (info.ino !== 1) return false;
    const kind = (name: string) => {
      try {
        const st = Deno.lstatSync(`${path}/${name}`);
        return st.isSymlink ? "link" : st.isDirectory ? "dir" : "other";
      } catch {
        return "missing";
      }
    };
    if (kind("self") === "link" && kind("sys") === "dir") {
      this.#ctx.report("proc-mounted", path, `${path} is a mounted procfs; not descended`);
      return true;
    }
    if (kind("kernel") === "dir" && kind("devices") === "dir" && kind("fs") === "dir") {
      this.#ctx.report("sysfs-mounted", path, `${path} is a mounted sysfs; not descended`);
      return true;
    }
    return false;
  }

  #file(path: string, rel: string, name: string, st: Deno.FileInfo, place: Place): void {
    const { rules, report } = this.#ctx;
    const mode = st.mode ?? 0;
    if (mode & 0o6000) this.#setid(path, st, mode);
    if (place.system) {
      if (mode & 0o022) {
        const who = mode & 0o002 ? "others" : "group";
        report("system-file-writable", path, `${path} is writable for ${who}!`);
      }
      this.#owner(path, rel, st);
    }
    if ((st.nlink ?? 1) > 1) this.#countLink(path, st);
    let executable = false;
    if (mode & 0o111 || /\.so(\.|$)/.test(name)) {
      // The resolver opens what it inspects; where a user can swap a file for
      // a FIFO between its lstat and its open, that open would block forever.
      // Programs there are the user's own, so they are left out.
      if (place.rootOnly) {
        this.result.executables++;
        executable = true;
      } else this.result.untrustedExecutables++;
    }
    const compared = !rules.ignoreOnCompare.covers(path) &&
      this.#compareFile(path, rel, st, place.rootOnly, executable);
    if (executable && !compared) this.#ctx.executable(rel);
  }

  /**
   * setuid/setgid executables, whoever owns them (jailkit looked at root's
   * only). Ignored when listed in the ignore key of every execute bit the
   * file has, as jailkit's per-bit warnings were.
   */
  #setid(path: string, st: Deno.FileInfo, mode: number): void {
    const { rules, report } = this.#ctx;
    const bits: [number, string, Set<string>][] = [
      [0o100, "user", rules.ignoreSetuidForUser],
      [0o010, "group", rules.ignoreSetuidForGroup],
      [0o001, "others", rules.ignoreSetuidForOthers],
    ];
    const exec = bits.filter(([bit]) => mode & bit);
    if (exec.length === 0 || exec.every(([, , ignore]) => ignore.has(path))) return;
    const who = exec.map(([, name]) => name).join(", ");
    if (mode & 0o4000) {
      const owner = st.uid === 0 ? "root" : `uid ${st.uid}`;
      report("setuid-file", path, `${path} is setuid ${owner} and executable for ${who}!!`);
    }
    // Without group execute the setgid bit means mandatory locking, not a gid change.
    if (mode & 0o2000 && mode & 0o010) {
      const group = st.gid === 0 ? "root" : `gid ${st.gid}`;
      report("setgid-file", path, `${path} is setgid ${group} and executable for ${who}!!`);
    }
  }

  #countLink(path: string, st: Deno.FileInfo): void {
    const key = `${st.dev}:${st.ino}`;
    const known = this.#links.get(key);
    if (known) known.seen++;
    else this.#links.set(key, { path, nlink: st.nlink ?? 1, seen: 1, dev: st.dev });
  }

  /** Links of an inode the walk did not meet are outside the jail (or in ignored paths). */
  #reportLinks(): void {
    const ignored = this.#ctx.rules.ignoreEverywhere.empty ? "" : " or under ignored paths";
    for (const l of this.#links.values()) {
      if (l.seen >= l.nlink) continue;
      const where = this.#ctx.hostSystemDevs.has(l.dev)
        ? ", on the filesystem of the host's system binaries"
        : "";
      this.#ctx.report(
        "hardlink-outside",
        l.path,
        `${l.path} has ${l.nlink} hard links, ${l.nlink - l.seen} of them outside the jail` +
          `${ignored}${where}`,
      );
    }
  }

  /**
   * Same size first, then every byte; the host path is followed like a
   * program would. True when the contents were queued for comparison.
   */
  #compareFile(
    path: string,
    rel: string,
    st: Deno.FileInfo,
    jailRootOnly: boolean,
    executable: boolean,
  ): boolean {
    const { report } = this.#ctx;
    let host: Deno.FileInfo;
    let hostLink = false;
    try {
      host = Deno.lstatSync(rel);
      if (host.isSymlink) {
        hostLink = true;
        host = Deno.statSync(rel);
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
        report("host-file-missing", path, `${path} has no counterpart ${rel} on the host`);
      } else {
        report("compare-unreadable", path, `cannot read ${path} or ${rel}: ${errorText(e)}`);
      }
      return false;
    }
    if (!host.isFile) {
      report("file-type-differs", path, `${path} is a regular file, ${rel} is not`);
      return false;
    }
    if (host.size !== st.size) {
      report("file-size-differs", path, `${path} and ${rel} have a different size!`);
      return false;
    }
    if (st.size === 0) return false;
    this.result.compared++;
    // A host file reached through a symlink is not trusted: the link may lead anywhere.
    const trusted = jailRootOnly && !hostLink && this.#hostDirRootOnly(parentDir(rel));
    this.#ctx.compareContents(path, rel, st.size, trusted, executable);
    return true;
  }

  /** Whether a host directory, and every one above it, is a real directory only root can change. */
  #hostDirRootOnly(dir: string): boolean {
    let known = this.#hostDirs.get(dir);
    if (known === undefined) {
      known = this.#hostDirRootOnly(parentDir(dir)) && hostDirRootOnly(dir);
      this.#hostDirs.set(dir, known);
    }
    return known;
  }

  /**
   * A symlink is compared with the host's symlink of the same path; a path
   * the host lacks, or has as something else, is not reported (the link's
   * target is checked where it lives).
   */
  #symlink(path: string, rel: string): void {
    if (this.#ctx.rules.ignoreOnCompare.covers(path)) return;
    let hostTarget: string;
    try {
      hostTarget = Deno.readLinkSync(rel); // fails (EINVAL) if it is not a symlink
    } catch {
      return;
    }
    let target: string;
    try {
      target = Deno.readLinkSync(path);
    } catch (e) {
      this.#ctx.report("compare-unreadable", path, `cannot read ${path}: ${errorText(e)}`);
      return;
    }
    if (target !== hostTarget) {
      this.#ctx.report(
        "symlink-differs",
        path,
        `symlinks ${path} and ${rel} point to different files! (${target}, ${hostTarget})`,
      );
    }
  }

  /** Devices, sockets, FIFOs. */
  #special(path: string, rel: string, st: Deno.FileInfo): void {
    const { report } = this.#ctx;
    if (st.isBlockDevice) {
      report("device-node", path, `${path} is a block device (${deviceNumber(st.rdev ?? 0)})`);
    } else if (st.isCharDevice) {
      const dev = deviceNumber(st.rdev ?? 0);
      if (!ALLOWED_CHAR_DEVICES.has(dev)) {
        report("device-node", path, `${path} is a character device (${dev}) not in the allowlist`);
      }
    } else if (st.isSocket) {
      // jk_socketd's log socket is the one socket a jail is meant to have.
      if (rel !== "/dev/log") report("socket", path, `${path} is a unix socket`);
    } else if (st.isFifo) {
      report("fifo", path, `${path} is a named pipe`);
    }
  }
}

/** The directory part of an absolute path (`/` for top-level names). */
function parentDir(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** One host directory on its own: a real directory (not a symlink), root's, not group/world-writable. */
function hostDirRootOnly(dir: string): boolean {
  try {
    const st = Deno.lstatSync(dir);
    return st.isDirectory && st.uid === 0 && ((st.mode ?? 0) & 0o022) === 0;
  } catch {
    return false;
  }
}

/**
 * Walks one jail (which must exist and be a directory: `root` is its
 * `lstat`) and reports through `ctx.report`.
 *
 * @example
 * ```ts
 * const jobs = new CheckJobs().jail(rules.jail);
 * walkJail({
 *   rules,
 *   report: (code, path, msg) => console.log(code, msg),
 *   compareContents: (path, host, size, trusted, executable) =>
 *     jobs.compare(path, host, size, trusted, executable),
 *   executable: (rel) => jobs.executable(rel),
 *   ancestorsSafe: true,
 *   hostSystemDevs: new Set(),
 * }, Deno.lstatSync(rules.jail));
 * ```
 */
export function walkJail(ctx: WalkContext, root: Deno.FileInfo): WalkResult {
  return new Walker(ctx).run(root);
}

/**
 * Reports a comparison that did not find the files equal.
 *
 * @example
 * ```ts
 * for (const r of (await jobs.results()).compared) reportComparison(r, report);
 * ```
 */
export function reportComparison(r: CompareResult, report: WalkContext["report"]): void {
  const { jailPath, hostPath, outcome } = r;
  if (outcome.kind === "differs") {
    report(
      "file-differs",
      jailPath,
      `${jailPath} and ${hostPath} are not the same! (first difference at byte ${outcome.offset})`,
    );
  } else {
    report(
      "compare-unreadable",
      jailPath,
      `cannot read ${jailPath} or ${hostPath}: ${outcome.path}: ${outcome.reason}`,
    );
  }
}
