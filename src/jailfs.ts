/**
 * File operations inside a jail for root tools (jk_init, jk_cp, jk_update),
 * written for trees a jailed user may partly write.
 *
 * Every in-jail path is resolved relative to a descriptor of the jail root,
 * never as a host path string, so a symlink planted in the jail cannot send
 * root's writes elsewhere (peers-and-threats §2.11, §3):
 *
 * - Fast path: one `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS |
 *   RESOLVE_NO_MAGICLINKS)` for a directory path without symlinks.
 * - Otherwise (a symlink on the way, or a kernel without openat2): a
 *   component walk with `openat(O_PATH | O_DIRECTORY | O_NOFOLLOW)`. Each
 *   symlink met is read with `readlinkat` and its target spliced into the
 *   walk by us, never followed by the kernel: absolute targets restart at the
 *   jail root, `..` pops back to a directory fd already held (at the root it
 *   stays), as `chroot` would see it.
 * - Symlink policy: a directory symlink is followed only if, read as a host
 *   path, it stays inside the jail (merged /usr: `lib -> usr/lib`), or if it
 *   is an exact copy of the host's symlink at the same path (the engine
 *   mirrors host links such as `/usr/lib/ssl/certs -> /etc/ssl/certs`). Any
 *   other link (`usr/lib -> /srv/elsewhere`, `x -> ../../..`) is refused with
 *   a {@link JailEscapeError} naming it: it is either tampering or a layout
 *   that differs from the host, and in both cases root should not guess.
 * - The last component is never followed: files, links and nodes are created
 *   with `*at()` calls relative to the parent's fd. Regular files are written
 *   to an unnamed `O_TMPFILE` inode (or, where the file system lacks it, an
 *   `O_EXCL` temporary name) and linked or renamed into place complete, so no
 *   half-written file ever has its final name, not even after `kill -9`.
 *   Directories likewise get their mode under a temporary name first. A
 *   temporary a killed run left behind is removed by the next run that
 *   writes into that directory (root-only directories, dead processes only).
 *   Without `replace`, creating an existing name fails (O_EXCL semantics).
 * - Replacing a name never writes through it: a jail file that is a hard
 *   link to a host file is replaced as a directory entry, the shared inode is
 *   untouched. Reading a file to rewrite it (`readFile`) refuses hard-linked
 *   files unless asked, since their content may be a host file's.
 *
 * Mount points inside the jail are crossed (bind mounts are the admin's
 * deliberate choice; only root can make them).
 *
 * A jail opened with `dryRun` performs no change: every mutation is recorded
 * in an in-memory overlay that later lookups see, so a dry run walks exactly
 * the decisions a real run makes.
 *
 * Needs `--allow-ffi` (see src/libc.ts).
 *
 * @module
 */

import { JkError } from "./cli.ts";
import type { OpenedFile } from "./elf.ts";
import * as c from "./libc.ts";

/**
 * Exit code for a jail that is unsafe or a path in it that leads out (jk_cp's code 6).
 *
 * @example
 * ```ts
 * throw new JkError("jail /srv/jail is not safe: ...", UNSAFE_EXIT);
 * ```
 */
export const UNSAFE_EXIT = 6;

/**
 * A path in the jail would lead root out of the jail; the tool refuses to act
 * through it. Exit code {@link UNSAFE_EXIT}.
 *
 * @example
 * ```ts
 * try { jail.lookupDir("/usr/lib"); } catch (e) { if (e instanceof JailEscapeError) throw e; }
 * ```
 */
export class JailEscapeError extends JkError {
  /** @param message one line naming the path, its target and why it is refused */
  constructor(message: string) {
    super(message, UNSAFE_EXIT);
    this.name = "JailEscapeError";
  }
}

/** File types, as `lstat` sees them. */
export type NodeType = "file" | "dir" | "symlink" | "char" | "block" | "fifo" | "socket";

/** What `lstat` says about one node (in the jail or on the host). */
export interface NodeStat {
  type: NodeType;
  /** Permission bits with setuid, setgid and sticky (`mode & 0o7777`). */
  perm: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  dev: bigint;
  ino: bigint;
  /** Device number of a device node (`makedev` encoding). */
  rdev: bigint;
  atime: c.Timespec;
  mtime: c.Timespec;
  /** Exists only in a dry run's overlay. */
  virtual: boolean;
}

/** An open directory of the jail: its fd (-1 when virtual, in a dry run) and resolved path. */
export interface Dir {
  /** `O_PATH` descriptor; -1 for a directory that exists only in a dry run. */
  readonly fd: number;
  /** Resolved in-jail path, `/` for the root, no symlinks in it. */
  readonly path: string;
}

/** What to create for a missing component while walking (`makeDirs`). */
export type Creation =
  | { kind: "dir"; meta: NodeMeta }
  | { kind: "symlink"; target: string };

/** Ownership, mode and optional times of a node to create. */
export interface NodeMeta {
  /** Permission bits, applied exactly (no umask). */
  perm: number;
  uid: number;
  gid: number;
  atime?: c.Timespec;
  mtime?: c.Timespec;
}

/** Options of `Jail.open`. */
export interface JailOpenOptions {
  /** Create the jail directory (and missing parents, root 0755) when absent. */
  create?: boolean;
  /** Called with each directory `create` makes. */
  onCreate?: (path: string) => void;
  /** Record changes in an overlay instead of making them. */
  dryRun?: boolean;
  /** Never use the openat2 fast path (tests exercise the walk with this). */
  walkOnly?: boolean;
  /** Never use O_TMPFILE, always an O_EXCL temporary name (tests). */
  namedTemporaries?: boolean;
}

const TYPE_BY_FORMAT: ReadonlyMap<number, NodeType> = new Map([
  [c.S_IFREG, "file"],
  [c.S_IFDIR, "dir"],
  [c.S_IFLNK, "symlink"],
  [c.S_IFCHR, "char"],
  [c.S_IFBLK, "block"],
  [c.S_IFIFO, "fifo"],
  [c.S_IFSOCK, "socket"],
]);

function nodeStat(st: c.FullStat, virtual = false): NodeStat {
  return {
    type: TYPE_BY_FORMAT.get(st.mode & c.S_IFMT) ?? "file",
    perm: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    nlink: st.nlink,
    dev: st.dev,
    ino: st.ino,
    rdev: st.rdev,
    atime: st.atime,
    mtime: st.mtime,
    virtual,
  };
}

/**
 * `lstat` of a host path through libc (works for /dev, which Deno's own API
 * refuses short of --allow-all); null when it does not exist. With `dirFd`,
 * `path` is taken relative to that open directory.
 *
 * @example
 * ```ts
 * hostLstat("/dev/null")?.type; // "char"
 * ```
 */
export function hostLstat(path: string, dirFd: number = c.AT_FDCWD): NodeStat | null {
  const st = c.statAt(dirFd, path, c.AT_SYMLINK_NOFOLLOW);
  return st && nodeStat(st);
}

/**
 * `fstat` of an open host file, with every field a copy needs.
 *
 * @example
 * ```ts
 * hostFstat(fd).type; // "file"
 * ```
 */
export function hostFstat(fd: number): NodeStat {
  return nodeStat(c.fstatFull(fd));
}

/**
 * Opens a host file for reading its headers (an `OpenedFile` of src/elf.ts):
 * through `openHostFile` (no symlink the user could have planted), with
 * `O_NONBLOCK` so a FIFO swapped in cannot block root's tool, and refusing
 * anything but a regular file.
 *
 * @example
 * ```ts
 * new DepResolver({ opener: openHostReader }).closure(["/usr/bin/rsync"]);
 * ```
 */
export function openHostReader(path: string): OpenedFile {
  const fd = openHostFile(path, c.O_RDONLY | c.O_NONBLOCK | c.O_NOCTTY);
  let size: number;
  try {
    const st = hostFstat(fd);
    if (st.type !== "file") throw new JkError(`${path}: not a regular file`);
    size = st.size;
  } catch (e) {
    c.close(fd);
    throw e;
  }
  return {
    size,
    pread: (into, offset) => c.pread(fd, into, offset),
    close: () => c.close(fd),
  };
}

/**
 * `stat` (following symlinks) of a host path; null when it or a link target is missing.
 *
 * @example
 * ```ts
 * hostStat("/dev/stdout"); // the terminal or pipe behind it
 * ```
 */
export function hostStat(path: string): NodeStat | null {
  const st = c.statAt(c.AT_FDCWD, path, 0);
  return st && nodeStat(st);
}

/**
 * Target of a host symlink, or null when `path` is not a symlink. With
 * `dirFd`, `path` is taken relative to that open directory.
 *
 * @example
 * ```ts
 * hostReadlink("/lib"); // "usr/lib" on merged-/usr systems
 * ```
 */
export function hostReadlink(path: string, dirFd: number = c.AT_FDCWD): string | null {
  try {
    return c.readlinkat(dirFd, path);
  } catch (e) {
    if (e instanceof c.LibcError) return null;
    throw e;
  }
}

/**
 * Opens a host path for root without following a symlink that someone other
 * than root could have put there: a symlink on the way is followed only when
 * the directory holding it is writable by root alone. Where a user can write
 * a directory of the path, they could otherwise swap an entry for a symlink
 * between root's checks and its open, and have root copy a file only root
 * may read (a 0644 file in a 0700 directory) into a jail under a readable
 * name (peers-and-threats §2.11). The last component is never followed
 * (`O_NOFOLLOW` is added). Throws `LibcError` as `openat` does, and
 * `JkError` naming the symlink it refuses.
 *
 * With `dirs`, a directory reached by the walk stays open there (keyed by
 * its path as given) and later files in it are opened relative to it, with
 * `O_NOFOLLOW`: the same directory the walk verified, without walking again
 * (a dozen calls per file on merged-/usr paths such as /lib/...). The caller
 * closes the descriptors (`closeHostDirs`) when its run ends, so that a
 * directory root moves later is not used by its old descriptor.
 *
 * @example
 * ```ts
 * const fd = openHostFile("/lib/x86_64-linux-gnu/libc.so.6", c.O_RDONLY); // /lib -> usr/lib is root's
 * ```
 */
export function openHostFile(path: string, flags: number, dirs?: HostDirs): number {
  const final = flags | c.O_NOFOLLOW;
  const split = dirs ? plainSplit(path) : null;
  const held = split ? dirs!.get(split[0]) : undefined;
  if (split && held !== undefined) return c.openat(held, split[1], final);
  try {
    // Fast path: no symlink anywhere on the way.
    return c.openat2(c.AT_FDCWD, path, {
      flags: final,
      resolve: c.RESOLVE_NO_SYMLINKS | c.RESOLVE_NO_MAGICLINKS,
    });
  } catch (e) {
    if (!(e instanceof c.LibcError) || ![c.ELOOP, c.ENOSYS, c.EPERM, c.EINVAL].includes(e.errno)) {
      throw e;
    }
  }
  const todo = components(path).reverse();
  const last = todo.shift();
  if (last === undefined) return c.open("/", final);
  let fd = c.open("/", c.O_PATH | c.O_DIRECTORY);
  let where = "";
  let hops = 0;
  try {
    while (todo.length > 0) {
      const name = todo.pop()!;
      const st = c.statAt(fd, name, c.AT_SYMLINK_NOFOLLOW);
      if (st && (st.mode & c.S_IFMT) === c.S_IFLNK) {
        const dir = c.fstat(fd);
        if (dir.uid !== 0 || dir.mode & 0o022) {
          throw new JkError(
            `${where}/${name} is a symlink in a directory others can write; not following it`,
          );
        }
        if (++hops > MAX_SYMLINKS) throw new JkError(`${path}: too many levels of symbolic links`);
        const target = c.readlinkat(fd, name);
        if (target.startsWith("/")) {
          c.close(fd);
          fd = c.open("/", c.O_PATH | c.O_DIRECTORY);
          where = "";
        }
        todo.push(...components(target).reverse());
        continue;
      }
      const next = c.openat(fd, name, c.O_PATH | c.O_DIRECTORY | c.O_NOFOLLOW);
      c.close(fd);
      fd = next;
      where = name === ".."
        ? where.slice(0, Math.max(0, where.lastIndexOf("/")))
        : `${where}/${name}`;
    }
    const opened = c.openat(fd, last, final);
    if (split) {
      dirs!.set(split[0], fd);
      fd = -1;
    }
    return opened;
  } finally {
    if (fd >= 0) c.close(fd);
  }
}

/**
 * `[directory, name]` of an absolute path made of plain components only (no
 * "", "." or ".."), with a directory other than "/"; else null. Only such a
 * path names the same entry as "its directory's descriptor + name".
 */
function plainSplit(path: string): [string, string] | null {
  const parts = path.split("/");
  if (parts.length < 3 || parts[0] !== "") return null;
  for (let i = 1; i < parts.length; i++) {
    if (parts[i] === "" || parts[i] === "." || parts[i] === "..") return null;
  }
  const slash = path.lastIndexOf("/");
  return [path.slice(0, slash), path.slice(slash + 1)];
}

/**
 * Host directories `openHostFile` walked to, open as `O_PATH`, by the
 * directory part of the path it was given.
 */
export type HostDirs = Map<string, number>;

/**
 * Closes the descriptors of `dirs` and empties it.
 *
 * @example
 * ```ts
 * const dirs: HostDirs = new Map();
 * try { c.close(openHostFile("/lib/x86_64-linux-gnu/libc.so.6", c.O_RDONLY, dirs)); }
 * finally { closeHostDirs(dirs); }
 * ```
 */
export function closeHostDirs(dirs: HostDirs): void {
  for (const fd of dirs.values()) c.close(fd);
  dirs.clear();
}

/**
 * Copies the rest of `from` into `to` (copy_file_range, falling back to
 * read/write where the kernel cannot).
 *
 * @example
 * ```ts
 * copyFd(sourceFd, targetFd);
 * ```
 */
export function copyFd(from: number, to: number): void {
  let first = true;
  for (;;) {
    let n: number;
    try {
      n = c.copyFileRange(from, to, 1 << 30);
    } catch (e) {
      const fallback = [c.EXDEV, c.EINVAL, c.ENOSYS, c.EOPNOTSUPP, c.EBADF];
      if (first && e instanceof c.LibcError && fallback.includes(e.errno)) {
        copyByReading(from, to);
        return;
      }
      throw e;
    }
    if (n === 0) return;
    first = false;
  }
}

const copyBuffer = new Uint8Array(1 << 20);

function copyByReading(from: number, to: number): void {
  for (;;) {
    const n = c.read(from, copyBuffer);
    if (n === 0) return;
    c.write(to, copyBuffer.subarray(0, n));
  }
}

const compareA = new Uint8Array(64 * 1024);
const compareB = new Uint8Array(64 * 1024);

/**
 * Do two open files hold the same `size` bytes? Reads with pread, so the
 * files' offsets are untouched.
 *
 * @example
 * ```ts
 * sameBytes(hostFd, jailFd, size); // true when identical
 * ```
 */
export function sameBytes(a: number, b: number, size: number): boolean {
  for (let at = 0; at < size;) {
    const n = c.pread(a, compareA, at);
    if (n === 0) return false;
    let got = 0;
    while (got < n) {
      const m = c.pread(b, compareB.subarray(got, n), at + got);
      if (m === 0) return false;
      got += m;
    }
    for (let i = 0; i < n; i++) if (compareA[i] !== compareB[i]) return false;
    at += n;
  }
  return true;
}

/** Splits a path into components (empty ones dropped). */
function components(path: string): string[] {
  return path.split("/").filter((p) => p !== "" && p !== ".");
}

/** Joins an in-jail directory path and a name. */
function childOf(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

/** Parent of an in-jail path (`/` for top-level names). */
function parentOf(path: string): string {
  const at = path.lastIndexOf("/");
  return at <= 0 ? "/" : path.slice(0, at);
}

/**
 * Normalises an in-jail path lexically: absolute, no `.`, `..` or doubled
 * slashes (`..` stops at `/`, as in a chroot).
 *
 * @example
 * ```ts
 * jailPath("usr//lib/../../../etc"); // "/etc"
 * ```
 */
export function jailPath(path: string): string {
  const out: string[] = [];
  for (const part of components(path)) {
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

/**
 * Does a relative link target, read from directory `dir` (an in-jail path),
 * stay inside the jail without climbing above its root?
 */
function staysInside(dir: string, target: string): boolean {
  let depth = components(dir).length;
  for (const part of components(target)) {
    depth += part === ".." ? -1 : 1;
    if (depth < 0) return false;
  }
  return true;
}

/** Longest symlink chain followed while resolving one path (the kernel's limit). */
const MAX_SYMLINKS = 40;

/** Directory fds kept open for reuse; the oldest is closed beyond this. */
const DIR_CACHE_SIZE = 256;

class DirHandle implements Dir {
  closed = false;
  constructor(readonly fd: number, readonly path: string) {}
}

interface OverlayNode {
  stat: NodeStat;
  target?: string;
}

let temporaryCounter = 0;

/** The names `temporaryName` makes: `.jk_tmp.PID.N.RANDOM`. */
const TEMPORARY = /^\.jk_tmp\.(\d+)\.\d+\.[0-9a-z]+$/;

/** A name for a temporary file next to its final name: hidden, unique in this process. */
function temporaryName(): string {
  return `.jk_tmp.${Deno.pid}.${++temporaryCounter}.${
    crypto.getRandomValues(new Uint32Array(1))[0].toString(36)
  }`;
}

/**
 * An open jail: a descriptor of its root and the operations root tools need,
 * all relative to it. See the module documentation for the rules.
 *
 * @example
 * ```ts
 * const jail = Jail.open("/srv/jail");
 * try {
 *   const etc = jail.lookupDir("/etc");
 *   if (etc) console.log(jail.stat(etc, "passwd")?.size);
 * } finally {
 *   jail.close();
 * }
 * ```
 */
export class Jail {
  /** The root of the jail. */
  readonly root: Dir;
  readonly dryRun: boolean;
  readonly #cache = new Map<string, DirHandle>();
  readonly #overlay = new Map<string, OverlayNode | "removed">();
  readonly #swept = new Set<string>();
  #fastPath: boolean;
  #tmpfile: boolean;

  private constructor(readonly path: string, rootFd: number, options: JailOpenOptions) {
    this.root = new DirHandle(rootFd, "/");
    this.dryRun = options.dryRun ?? false;
    this.#fastPath = !options.walkOnly;
    this.#tmpfile = !options.namedTemporaries;
  }

  /**
   * Opens the jail directory `path` (absolute) without following any symlink
   * on the way, optionally creating it, and checks that it is a directory
   * owned by root that nobody else can write. The caller checks the
   * ancestors first (src/jailsafety.ts `checkJail`).
   *
   * @example
   * ```ts
   * const jail = Jail.open("/srv/jail", { create: true, onCreate: (p) => console.log(`Creating jail ${p}`) });
   * ```
   */
  static open(path: string, options: JailOpenOptions = {}): Jail {
    if (!path.startsWith("/")) throw new JkError(`jail ${path} is not an absolute path`, 3);
    const normal = jailPath(path);
    if (normal === "/") throw new JkError(`the root directory cannot be a jail`, UNSAFE_EXIT);
    const fd = openHostDir(normal, options.create === true && !options.dryRun, options.onCreate);
    try {
      const st = hostFstat(fd);
      if (st.type !== "dir") throw new JkError(`${normal} is not a directory`, 3);
      if (st.uid !== 0) throw new JkError(`${normal} is not owned by root`, UNSAFE_EXIT);
      if (st.perm & 0o022) {
        throw new JkError(`${normal} is writable by group or others`, UNSAFE_EXIT);
      }
      return new Jail(normal, fd, options);
    } catch (e) {
      c.close(fd);
      throw e;
    }
  }

  /**
   * Host path of an in-jail path, for messages only.
   *
   * @example
   * ```ts
   * jail.show("/usr/bin/ls"); // "/srv/jail/usr/bin/ls"
   * ```
   */
  show(inJail: string): string {
    return inJail === "/" ? this.path : this.path + inJail;
  }

  /**
   * Closes the root and every cached directory.
   *
   * @example
   * ```ts
   * const jail = Jail.open("/srv/jail");
   * try { ... } finally { jail.close(); }
   * ```
   */
  close(): void {
    this.#dropCache();
    c.close(this.root.fd);
  }

  /**
   * Resolves an in-jail directory path under the symlink policy. Returns null
   * when a component is missing (a dangling link counts as missing). Throws
   * {@link JailEscapeError} for a link that leads out and `JkError` when a
   * component is not a directory. The result stays valid until the next
   * lookup; use it at once.
   *
   * @example
   * ```ts
   * jail.lookupDir("/lib/x86_64-linux-gnu")?.path; // "/usr/lib/x86_64-linux-gnu"
   * ```
   */
  lookupDir(inJail: string): Dir | null {
    return this.#resolve(jailPath(inJail), null);
  }

  /**
   * Like `lookupDir`, creating each missing component as `create` says (a
   * directory with its metadata, or a symlink whose target is then walked).
   *
   * @example
   * ```ts
   * jail.makeDirs("/usr/lib", () => ({ kind: "dir", meta: { perm: 0o755, uid: 0, gid: 0 } }));
   * ```
   */
  makeDirs(inJail: string, create: (inJailPath: string) => Creation): Dir {
    return this.#resolve(jailPath(inJail), create)!;
  }

  /**
   * `lstat` of `name` in `dir`, or null when absent.
   *
   * @example
   * ```ts
   * jail.stat(jail.root, "lib")?.type; // "symlink"
   * ```
   */
  stat(dir: Dir, name: string): NodeStat | null {
    const fd = this.#use(dir);
    if (this.dryRun) {
      const node = this.#overlay.get(childOf(dir.path, name));
      if (node === "removed") return null;
      if (node) return node.stat;
      if (fd < 0) return null;
    }
    const st = c.statAt(fd, name, c.AT_SYMLINK_NOFOLLOW);
    return st && nodeStat(st);
  }

  /**
   * Target of the symlink `name` in `dir`.
   *
   * @example
   * ```ts
   * jail.readlink(jail.root, "lib"); // "usr/lib"
   * ```
   */
  readlink(dir: Dir, name: string): string {
    const fd = this.#use(dir);
    const node = this.#overlay.get(childOf(dir.path, name));
    if (node && node !== "removed" && node.target !== undefined) return node.target;
    return c.readlinkat(fd, name);
  }

  /**
   * Names and types of the entries of `dir` (dry runs include the overlay).
   *
   * @example
   * ```ts
   * jail.list(jail.lookupDir("/usr/bin")!).map((e) => e.name);
   * ```
   */
  list(dir: Dir): { name: string; type: NodeType }[] {
    const fd = this.#use(dir);
    const entries = new Map<string, NodeType>();
    if (fd >= 0) {
      const open = c.openat(fd, ".", c.O_RDONLY | c.O_DIRECTORY);
      try {
        for (const e of c.readDirFd(open)) entries.set(e.name, direntType(e.type));
      } finally {
        c.close(open);
      }
    }
    if (this.dryRun) {
      const prefix = dir.path === "/" ? "/" : dir.path + "/";
      for (const [path, node] of this.#overlay) {
        if (!path.startsWith(prefix) || path.indexOf("/", prefix.length) >= 0) continue;
        const name = path.slice(prefix.length);
        if (node === "removed") entries.delete(name);
        else entries.set(name, node.stat.type);
      }
    }
    return [...entries].map(([name, type]) => ({ name, type }));
  }

  /**
   * Opens the regular file `name` in `dir` for reading (never through a
   * symlink, never blocking on a FIFO). The caller closes the fd.
   *
   * @example
   * ```ts
   * const fd = jail.openFile(dir, "passwd");
   * ```
   */
  openFile(dir: Dir, name: string): number {
    const fd = this.#use(dir);
    if (fd < 0 || this.#overlay.has(childOf(dir.path, name))) {
      throw new JkError(`${this.show(childOf(dir.path, name))} exists only in this dry run`);
    }
    const file = c.openat(fd, name, c.O_RDONLY | c.O_NOFOLLOW | c.O_NONBLOCK | c.O_NOCTTY);
    if ((c.fstat(file).mode & c.S_IFMT) !== c.S_IFREG) {
      c.close(file);
      throw new JkError(`${this.show(childOf(dir.path, name))} is not a regular file`);
    }
    return file;
  }

  /**
   * Reads a whole regular file of the jail, or null when it (or its
   * directory) does not exist. A file with several hard links is refused
   * unless `allowHardlinks`: its content may be a host file's.
   *
   * @example
   * ```ts
   * const passwd = jail.readFile("/etc/passwd");
   * ```
   */
  readFile(inJail: string, options: { allowHardlinks?: boolean } = {}): Uint8Array | null {
    const path = jailPath(inJail);
    const dir = this.lookupDir(parentOf(path));
    const name = path.slice(path.lastIndexOf("/") + 1);
    if (!dir || !name) return null;
    const st = this.stat(dir, name);
    if (!st) return null;
    if (st.type !== "file") throw new JkError(`${this.show(path)} is not a regular file`);
    if (st.nlink > 1 && !options.allowHardlinks) {
      throw new JailEscapeError(
        `${this.show(path)} has ${st.nlink} hard links; refusing to use a file that may be ` +
          `shared with the host`,
      );
    }
    const fd = this.openFile(dir, name);
    try {
      const chunks: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const chunk = new Uint8Array(64 * 1024);
        const n = c.read(fd, chunk);
        if (n === 0) break;
        chunks.push(chunk.subarray(0, n));
        total += n;
      }
      const out = new Uint8Array(total);
      let at = 0;
      for (const chunk of chunks) {
        out.set(chunk, at);
        at += chunk.length;
      }
      return out;
    } finally {
      c.close(fd);
    }
  }

  /**
   * Writes a whole file into an existing jail directory, complete or not at
   * all; with `replace` an existing file is replaced atomically, without it
   * an existing name is an error.
   *
   * @example
   * ```ts
   * jail.writeFile("/etc/passwd", bytes, { perm: 0o644, uid: 0, gid: 0 }, { replace: true });
   * ```
   */
  writeFile(
    inJail: string,
    data: Uint8Array,
    meta: NodeMeta,
    options: { replace?: boolean } = {},
  ): void {
    const path = jailPath(inJail);
    const dir = this.lookupDir(parentOf(path));
    if (!dir) throw new JkError(`${this.show(parentOf(path))} does not exist`);
    const name = path.slice(path.lastIndexOf("/") + 1);
    this.placeFile(dir, name, (fd) => c.write(fd, data), meta, options.replace ?? false);
  }

  /**
   * Creates directory `name` in `dir` with exactly `meta` (no umask).
   *
   * @example
   * ```ts
   * jail.mkdir(jail.root, "etc", { perm: 0o755, uid: 0, gid: 0 });
   * ```
   */
  mkdir(dir: Dir, name: string, meta: NodeMeta): void {
    const fd = this.#use(dir);
    if (this.dryRun) return this.#record(dir, name, "dir", meta);
    this.#sweep(dir);
    // Made under a temporary name and renamed into place once it has its
    // mode: a kill -9 between mkdir and chmod would otherwise leave a 0700
    // directory at the final name, which a rerun keeps (it never re-applies
    // metadata to an existing directory), and jailed users could not enter it.
    const temporary = temporaryName();
    c.mkdirat(fd, temporary, 0o700);
    try {
      const made = c.openat(fd, temporary, c.O_RDONLY | c.O_DIRECTORY | c.O_NOFOLLOW);
      try {
        // Someone who can write `dir` could have swapped in a directory of theirs.
        if (c.fstat(made).uid !== 0) {
          throw new JailEscapeError(
            `${this.show(childOf(dir.path, name))} was replaced while created`,
          );
        }
        applyMeta(made, meta);
      } finally {
        c.close(made);
      }
      c.renameat2(fd, temporary, fd, name, c.RENAME_NOREPLACE);
    } catch (e) {
      try {
        c.unlinkat(fd, temporary, c.AT_REMOVEDIR);
      } catch {
        // Best effort: an empty hidden directory is harmless.
      }
      throw e;
    }
  }

  /**
   * Creates symlink `name` -> `target` in `dir`; with `replace`, atomically
   * over whatever non-directory is there.
   *
   * @example
   * ```ts
   * jail.symlink(jail.root, "lib", "usr/lib");
   * ```
   */
  symlink(
    dir: Dir,
    name: string,
    target: string,
    options: { replace?: boolean; uid?: number; gid?: number } = {},
  ): void {
    const fd = this.#use(dir);
    if (this.dryRun) {
      const meta = { perm: 0o777, uid: options.uid ?? 0, gid: options.gid ?? 0 };
      return this.#record(dir, name, "symlink", meta, target);
    }
    this.#sweep(dir);
    if (!options.replace) {
      c.symlinkat(target, fd, name);
    } else {
      const temporary = temporaryName();
      c.symlinkat(target, fd, temporary);
      try {
        c.renameat2(fd, temporary, fd, name, 0);
      } catch (e) {
        unlinkQuietly(fd, temporary);
        throw e;
      }
      // A replaced name may have been a directory component of a cached path.
      this.#dropCache();
    }
    const uid = options.uid ?? 0, gid = options.gid ?? 0;
    if (uid !== 0 || gid !== 0) c.fchownat(fd, name, uid, gid, c.AT_SYMLINK_NOFOLLOW);
  }

  /**
   * Creates regular file `name` in `dir`: `fill` writes the content into a
   * fresh unnamed (or temporary) file, which then gets `meta` (owner first, so
   * setuid bits survive) and only then its name. Without `replace` an
   * existing name is an error (EEXIST); with it, it is replaced atomically.
   *
   * @example
   * ```ts
   * jail.placeFile(dir, "ls", (fd) => copyFd(src, fd), { perm: 0o755, uid: 0, gid: 0 }, false);
   * ```
   */
  placeFile(
    dir: Dir,
    name: string,
    fill: (fd: number) => void,
    meta: NodeMeta,
    replace: boolean,
  ): void {
    const dirFd = this.#use(dir);
    if (this.dryRun) return this.#record(dir, name, "file", meta);
    this.#sweep(dir);
    let temporary: string | null = null;
    let fd = -1;
    if (this.#tmpfile) {
      try {
        fd = c.openat(dirFd, ".", c.O_TMPFILE | c.O_WRONLY, 0o600);
      } catch (e) {
        if (!(e instanceof c.LibcError) || ![c.EOPNOTSUPP, c.EISDIR, c.EINVAL].includes(e.errno)) {
          throw e;
        }
        this.#tmpfile = false; // this file system has no O_TMPFILE
      }
    }
    if (fd < 0) {
      temporary = temporaryName();
      fd = c.openat(dirFd, temporary, c.O_CREAT | c.O_EXCL | c.O_WRONLY | c.O_NOFOLLOW, 0o600);
    }
    try {
      fill(fd);
      applyMeta(fd, meta);
      if (temporary === null && !replace) {
        c.linkat(fd, "", dirFd, name, true);
      } else {
        if (temporary === null) {
          temporary = temporaryName();
          c.linkat(fd, "", dirFd, temporary, true);
        }
        c.renameat2(dirFd, temporary, dirFd, name, replace ? 0 : c.RENAME_NOREPLACE);
        temporary = null;
      }
    } finally {
      c.close(fd);
      if (temporary !== null) unlinkQuietly(dirFd, temporary);
    }
  }

  /**
   * Makes `name` in `dir` a hard link to the open file `sourceFd` (an `O_PATH`
   * or read fd of a host file); with `replace`, atomically over an existing
   * file. Fails with EXDEV across file systems.
   *
   * @example
   * ```ts
   * jail.hardlink(dir, "ls", hostFd, false, { perm: 0o755, uid: 0, gid: 0 });
   * ```
   */
  hardlink(dir: Dir, name: string, sourceFd: number, replace: boolean, meta: NodeMeta): void {
    const dirFd = this.#use(dir);
    if (this.dryRun) return this.#record(dir, name, "file", meta);
    this.#sweep(dir);
    if (!replace) return c.linkat(sourceFd, "", dirFd, name, true);
    const temporary = temporaryName();
    c.linkat(sourceFd, "", dirFd, temporary, true);
    try {
      c.renameat2(dirFd, temporary, dirFd, name, 0);
    } catch (e) {
      unlinkQuietly(dirFd, temporary);
      throw e;
    }
  }

  /**
   * Creates a character or block device `name` in `dir` with exactly `meta`
   * (mode set at creation, so there is no moment with wider permissions).
   *
   * @example
   * ```ts
   * jail.mknod(devDir, "null", "char", c.makedev(1, 3), { perm: 0o666, uid: 0, gid: 0 });
   * ```
   */
  mknod(dir: Dir, name: string, type: "char" | "block", rdev: bigint, meta: NodeMeta): void {
    const fd = this.#use(dir);
    if (this.dryRun) return this.#record(dir, name, type, meta, undefined, rdev);
    const format = type === "char" ? c.S_IFCHR : c.S_IFBLK;
    const old = c.umask(0);
    try {
      c.mknodat(fd, name, format | (meta.perm & 0o7777), rdev);
    } finally {
      c.umask(old);
    }
    c.fchownat(fd, name, meta.uid, meta.gid, c.AT_SYMLINK_NOFOLLOW);
    if (meta.atime && meta.mtime) {
      c.utimensat(fd, name, meta.atime, meta.mtime, c.AT_SYMLINK_NOFOLLOW);
    }
  }

  /**
   * Removes `name` from `dir` (an empty directory when `directory`). Never
   * follows a symlink; a hard-linked file loses only this name.
   *
   * @example
   * ```ts
   * jail.remove(dir, "libold.so.1", false);
   * ```
   */
  remove(dir: Dir, name: string, directory: boolean): void {
    const fd = this.#use(dir);
    const type = this.stat(dir, name)?.type;
    if (this.dryRun) this.#overlay.set(childOf(dir.path, name), "removed");
    else c.unlinkat(fd, name, directory ? c.AT_REMOVEDIR : 0);
    // A removed directory or link may be a component of a cached path.
    if (type === "dir" || type === "symlink") this.#dropCache();
  }

  /**
   * Removes what a killed run left in `dir`, once per directory and run,
   * before writing there: a `kill -9` between naming a finished file (or
   * directory) temporarily and renaming it into place leaves the temporary,
   * which the rerun would otherwise keep, and jk_check report. Only
   * temporaries of processes that no longer exist, and only in directories
   * root alone can write: elsewhere such a name proves nothing.
   */
  #sweep(dir: Dir): void {
    if (this.dryRun || dir.fd < 0 || this.#swept.has(dir.path)) return;
    this.#swept.add(dir.path);
    // Without /proc the living cannot be told from the dead: leave everything.
    if (!c.statAt(c.AT_FDCWD, "/proc/self", 0)) return;
    const own = c.fstat(dir.fd);
    if (own.uid !== 0 || own.mode & 0o022) return;
    const listing = c.openat(dir.fd, ".", c.O_RDONLY | c.O_DIRECTORY);
    let entries: c.DirEntry[];
    try {
      entries = c.readDirFd(listing);
    } finally {
      c.close(listing);
    }
    for (const { name, type } of entries) {
      const pid = TEMPORARY.exec(name)?.[1];
      if (pid === undefined || c.statAt(c.AT_FDCWD, `/proc/${pid}`, 0)) continue;
      try {
        c.unlinkat(dir.fd, name, type === 4 ? c.AT_REMOVEDIR : 0);
      } catch {
        // Best effort: a leftover is hidden and harmless.
      }
    }
  }

  /** Checks a handle before use; returns its fd. */
  #use(dir: Dir): number {
    if ((dir as DirHandle).closed) throw new Error(`stale directory handle for ${dir.path}`);
    return dir.fd;
  }

  #record(
    dir: Dir,
    name: string,
    type: NodeType,
    meta: NodeMeta,
    target?: string,
    rdev = 0n,
  ): void {
    const path = childOf(dir.path, name);
    const zero = { sec: 0, nsec: 0 };
    const stat: NodeStat = {
      type,
      perm: meta.perm,
      uid: meta.uid,
      gid: meta.gid,
      size: 0,
      nlink: 1,
      dev: 0n,
      ino: 0n,
      rdev,
      atime: meta.atime ?? zero,
      mtime: meta.mtime ?? zero,
      virtual: true,
    };
    this.#overlay.set(path, { stat, target });
  }

  #dropCache(): void {
    for (const handle of this.#cache.values()) {
      handle.closed = true;
      if (handle.fd >= 0) c.close(handle.fd);
    }
    this.#cache.clear();
  }

  #remember(key: string, handle: DirHandle): DirHandle {
    if (handle.fd === this.root.fd) return handle;
    if (this.#cache.size >= DIR_CACHE_SIZE) {
      const [oldestKey, oldest] = this.#cache.entries().next().value!;
      this.#cache.delete(oldestKey);
      oldest.closed = true;
      if (oldest.fd >= 0) c.close(oldest.fd);
    }
    this.#cache.set(key, handle);
    return handle;
  }

  /** Resolves `path` (normalised); see `lookupDir` and `makeDirs`. */
  #resolve(path: string, create: ((p: string) => Creation) | null): Dir | null {
    if (path === "/") return this.root;
    const cached = this.#cache.get(path);
    if (cached) return cached;
    if (this.#fastPath && !this.dryRun) {
      try {
        const fd = c.openat2(this.root.fd, path.slice(1), {
          flags: c.O_PATH | c.O_DIRECTORY,
          resolve: c.RESOLVE_IN_ROOT | c.RESOLVE_NO_SYMLINKS | c.RESOLVE_NO_MAGICLINKS,
        });
        return this.#remember(path, new DirHandle(fd, path));
      } catch (e) {
        if (!(e instanceof c.LibcError)) throw e;
        // Without symlinks on the way, ENOENT means really missing.
        if (e.errno === c.ENOENT && !create) return null;
        // No openat2 here (old kernel, seccomp): walk from now on.
        if ([c.ENOSYS, c.EPERM, c.EINVAL].includes(e.errno)) this.#fastPath = false;
      }
    }
    return this.#walk(path, create);
  }

  /** The component walk: see the module documentation. */
  #walk(path: string, create: ((p: string) => Creation) | null): Dir | null {
    const todo = components(path).reverse();
    const held: DirHandle[] = []; // fds opened by this walk, for ".." and closing
    let current = this.root as DirHandle;
    let hops = 0;
    const release = (d: DirHandle) => {
      if (d !== this.root && d.fd >= 0) c.close(d.fd);
    };
    try {
      while (todo.length > 0) {
        const name = todo.pop()!;
        if (name === "..") {
          if (held.length > 0) {
            release(current);
            current = held.pop()!;
          }
          continue;
        }
        const child = childOf(current.path, name);
        let st = this.stat(current, name);
        if (!st) {
          if (!create) return null;
          const what = create(child);
          if (what.kind === "dir") this.mkdir(current, name, what.meta);
          else this.symlink(current, name, what.target);
          st = this.stat(current, name)!;
        }
        if (st.type === "dir") {
          held.push(current);
          current = this.#openChild(current, name, st);
          continue;
        }
        if (st.type !== "symlink") throw new JkError(`${this.show(child)} is not a directory`);
        if (++hops > MAX_SYMLINKS) {
          throw new JkError(`${this.show(child)}: too many levels of symbolic links`);
        }
        const target = this.readlink(current, name);
        this.#checkSymlink(child, target);
        if (target.startsWith("/")) {
          for (const d of held) release(d);
          held.length = 0;
          release(current);
          current = this.root as DirHandle;
        }
        todo.push(...components(target).reverse());
      }
      const result = current;
      current = this.root as DirHandle; // handed over: not released below
      return this.#remember(path, result);
    } finally {
      release(current);
      for (const d of held) release(d);
    }
  }

  #openChild(parent: DirHandle, name: string, st: NodeStat): DirHandle {
    const path = childOf(parent.path, name);
    if (parent.fd < 0 || st.virtual) return new DirHandle(-1, path);
    return new DirHandle(c.openat(parent.fd, name, c.O_PATH | c.O_DIRECTORY | c.O_NOFOLLOW), path);
  }

  /** The symlink policy of the module documentation; throws when `link` must not be followed. */
  #checkSymlink(link: string, target: string): void {
    if (target === "") throw new JkError(`${this.show(link)} is an empty symlink`);
    if (!target.startsWith("/") && staysInside(parentOf(link), target)) return;
    const host = hostReadlink(link);
    if (host === target) return;
    throw new JailEscapeError(
      `${this.show(link)} is a symlink to ${target}, which leads out of the jail ` +
        `(the host's ${link} ${host === null ? "is not a symlink" : `points to ${host}`}); ` +
        `refusing to follow it`,
    );
  }
}

function direntType(type: number): NodeType {
  switch (type) {
    case 4:
      return "dir";
    case 10:
      return "symlink";
    case 2:
      return "char";
    case 6:
      return "block";
    case 1:
      return "fifo";
    case 12:
      return "socket";
    default:
      return "file";
  }
}

/** Owner, then mode (chown clears setuid bits), then times, on an open fd. */
function applyMeta(fd: number, meta: NodeMeta): void {
  c.fchown(fd, meta.uid, meta.gid);
  c.fchmod(fd, meta.perm & 0o7777);
  if (meta.atime && meta.mtime) c.futimens(fd, meta.atime, meta.mtime);
}

function unlinkQuietly(dirFd: number, name: string): void {
  try {
    c.unlinkat(dirFd, name, 0);
  } catch {
    // Best effort: the temporary name is hidden and harmless.
  }
}

/**
 * Opens an absolute host directory as `O_PATH` without following symlinks in
 * any component; with `create`, makes missing components (root, 0755).
 */
function openHostDir(path: string, create: boolean, onCreate?: (path: string) => void): number {
  try {
    return c.openat2(c.AT_FDCWD, path, {
      flags: c.O_PATH | c.O_DIRECTORY,
      resolve: c.RESOLVE_NO_SYMLINKS | c.RESOLVE_NO_MAGICLINKS,
    });
  } catch (e) {
    if (!(e instanceof c.LibcError)) throw e;
    if (e.errno === c.ELOOP) {
      throw new JkError(`${path}: a component is a symlink, please point to the real directory`, 6);
    }
    if (e.errno === c.ENOTDIR) throw new JkError(`${path} is not a directory`, 3);
    if (e.errno === c.ENOENT && !create) throw new JkError(`${path} does not exist`, 3);
    if (e.errno !== c.ENOENT && ![c.ENOSYS, c.EPERM, c.EINVAL].includes(e.errno)) throw e;
  }
  // Walk from "/" one component at a time (no openat2, or creating).
  let fd = c.open("/", c.O_PATH | c.O_DIRECTORY);
  let sofar = "";
  try {
    for (const name of components(path)) {
      sofar += "/" + name;
      let st = c.statAt(fd, name, c.AT_SYMLINK_NOFOLLOW);
      if (!st && create) {
        c.mkdirat(fd, name, 0o700);
        const made = c.openat(fd, name, c.O_RDONLY | c.O_DIRECTORY | c.O_NOFOLLOW);
        try {
          applyMeta(made, { perm: 0o755, uid: 0, gid: 0 });
        } finally {
          c.close(made);
        }
        onCreate?.(sofar);
        st = c.statAt(fd, name, c.AT_SYMLINK_NOFOLLOW);
      }
      if (!st) throw new JkError(`${sofar} does not exist`, 3);
      if ((st.mode & c.S_IFMT) === c.S_IFLNK) {
        throw new JkError(`${sofar} is a symlink, please point to the real directory`, 6);
      }
      if ((st.mode & c.S_IFMT) !== c.S_IFDIR) throw new JkError(`${sofar} is not a directory`, 3);
      const next = c.openat(fd, name, c.O_PATH | c.O_DIRECTORY | c.O_NOFOLLOW);
      c.close(fd);
      fd = next;
    }
    return fd;
  } catch (e) {
    c.close(fd);
    throw e;
  }
}
