/**
 * Is a jail directory safe to chroot into, and safe for root to write in?
 *
 * One check for every tool (jailkit has two: the C `basicJailIsSafe` of the
 * shells and the Python `chrootIsSafe` of jk_init/jk_cp/jk_check). A jail is
 * safe when the jail directory, its system subdirectories and **every ancestor
 * up to `/`** are real directories owned by root and writable by nobody else.
 * jailkit's C shells never looked at the ancestors: a world-writable `/srv`
 * let any user swap the jail for a tree of their own.
 *
 * All checks use `lstat`, so a symlink is judged as a symlink. The one symlink
 * accepted is a relative one that stays inside the jail, such as the merged-/usr
 * `lib -> usr/lib`; its target is judged instead.
 *
 * These checks describe the tree at one moment; tools that then write into
 * the jail still resolve every path inside it without following links out
 * (see the jail-building modules).
 *
 * @module
 */

import { dirname, join, normalize } from "./paths.ts";

/** What is wrong with one path. */
export type Problem =
  | "missing"
  | "symlink"
  | "not-directory"
  | "owner"
  | "group"
  | "group-writable"
  | "other-writable"
  | "setuid"
  | "setgid";

/** One problem found at one path, with a message in jailkit's words. */
export interface Finding {
  path: string;
  problem: Problem;
  message: string;
}

/** Owner a path is expected to have. */
export interface Owner {
  uid: number;
  gid: number;
}

const ROOT: Owner = { uid: 0, gid: 0 };

/** System directories of a jail that a user must never be able to write. */
export const SYSTEM_SUBDIRS = ["bin", "dev", "etc", "lib", "lib32", "lib64", "sbin", "usr", "var"];

function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
}

/** Names in a directory, or null when it cannot be listed (then every name is checked). */
function listNames(dir: string): Set<string> | null {
  try {
    return new Set(Array.from(Deno.readDirSync(dir), (e) => e.name));
  } catch {
    return null;
  }
}

/**
 * Checks one path with `lstat`: it must exist, be a directory (unless
 * `directory` is false), not be a symlink, have the expected owner, and not be
 * group- or world-writable or setuid/setgid. Sticky world-writable directories
 * such as /tmp are findings too: a jail below one can be replaced by anyone.
 *
 * @example
 * ```ts
 * checkPath("/srv/jail", { uid: 0, gid: 0 });
 * // [] when root-owned 0755, else findings such as
 * // { path: "/srv/jail", problem: "group-writable", message: "/srv/jail is writable by group" }
 * ```
 */
export function checkPath(path: string, owner: Owner = ROOT, directory = true): Finding[] {
  const info = lstatOrNull(path);
  const found = (problem: Problem, message: string) => ({ path, problem, message });
  if (!info) return [found("missing", `${path} does not exist`)];
  if (info.isSymlink) {
    return [found("symlink", `${path} is a symlink, please point to the real directory`)];
  }
  if (directory && !info.isDirectory) return [found("not-directory", `${path} is not a directory`)];
  const mode = info.mode ?? 0;
  const out: Finding[] = [];
  if (info.uid !== owner.uid) {
    out.push(
      found("owner", `${path} is not owned by ${owner.uid === 0 ? "root" : `uid ${owner.uid}`}`),
    );
  }
  if (info.gid !== owner.gid) {
    out.push(
      found("group", `${path} is not owned by group ${owner.gid === 0 ? "root" : owner.gid}`),
    );
  }
  if (mode & 0o020) out.push(found("group-writable", `${path} is writable by group`));
  if (mode & 0o002) out.push(found("other-writable", `${path} is writable by others`));
  if (mode & 0o4000) out.push(found("setuid", `${path} has the setuid bit`));
  if (mode & 0o2000) out.push(found("setgid", `${path} has the setgid bit`));
  return out;
}

/**
 * Checks every ancestor of `path` from its parent up to and including `/`.
 * Each must be a root-owned directory that neither group nor others can write.
 *
 * @example
 * ```ts
 * checkAncestors("/tmp/jail"); // [{ path: "/tmp", problem: "other-writable", ... }]
 * ```
 */
export function checkAncestors(path: string): Finding[] {
  const out: Finding[] = [];
  let dir = dirname(normalize(path));
  for (;;) {
    out.push(...checkPath(dir).filter((f) => f.problem !== "setgid"));
    if (dir === "/") break;
    dir = dirname(dir);
  }
  return out;
}

/**
 * Where a system subdirectory of the jail really is: itself, or for a relative
 * symlink that stays inside the jail (merged /usr: `lib -> usr/lib`) its target.
 * Returns a finding instead when the link leaves the jail.
 */
function resolveSubdir(jail: string, name: string): string | Finding {
  let path = join(jail, name);
  for (let hops = 0; hops < 8; hops++) {
    const info = lstatOrNull(path);
    if (!info?.isSymlink) return path;
    const target = Deno.readLinkSync(path);
    const next = normalize(join(dirname(path), target));
    if (target.startsWith("/") || !(next === jail || next.startsWith(jail + "/"))) {
      return {
        path,
        problem: "symlink",
        message: `${path} is a symlink to ${target}, which is outside the jail`,
      };
    }
    path = next;
  }
  return { path, problem: "symlink", message: `${path}: too many levels of symlinks` };
}

/** Options of `checkJail`. */
export interface JailCheckOptions {
  /** A jail that does not exist yet is fine (jk_init creates it). */
  missingOk?: boolean;
  /** Subdirectories to check besides the jail; default `SYSTEM_SUBDIRS`. */
  subdirs?: string[];
}

/**
 * Checks a jail directory, its system subdirectories (a missing one is fine)
 * and every ancestor up to `/`. An empty result means safe.
 *
 * @example
 * ```ts
 * const findings = checkJail("/home/sftproot");
 * if (findings.length) throw new Error(findings.map((f) => f.message).join("; "));
 * ```
 */
export function checkJail(jail: string, options: JailCheckOptions = {}): Finding[] {
  if (!jail.startsWith("/")) {
    return [{ path: jail, problem: "missing", message: `${jail} is not an absolute path` }];
  }
  const root = normalize(jail).replace(/\/+$/, "") || "/";
  const out = checkAncestors(root);
  const self = checkPath(root);
  if (self.length === 1 && self[0].problem === "missing" && options.missingOk) return out;
  out.push(...self);
  if (self.some((f) => f.problem === "missing" || f.problem === "not-directory")) return out;
  // A missing subdirectory is fine; listing the jail once spares an lstat
  // that fails, with the exception Deno builds for it, per absent name (a
  // new jail has none of them).
  const present = listNames(root);
  for (const name of options.subdirs ?? SYSTEM_SUBDIRS) {
    if (present !== null && !present.has(name)) continue;
    const where = resolveSubdir(root, name);
    if (typeof where !== "string") {
      out.push(where);
      continue;
    }
    out.push(...checkPath(where).filter((f) => f.problem !== "missing"));
  }
  return out;
}
