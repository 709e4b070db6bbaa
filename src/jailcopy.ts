/**
 * The copy engine of jk_init, jk_cp and jk_update (jailkit behaviour §3.3–§3.6):
 * copies host paths into a jail at the same path, with the libraries of every
 * ELF file and the `#!` interpreter of every script, found by src/deps.ts
 * (never by running ldd).
 *
 * What it does, per host path P (each done once per engine, `handled`):
 * - **Directory path (§3.4).** P's parent is mirrored into the jail component
 *   by component: a host directory becomes a directory (mode, times, and with
 *   keepOwner the owner, copied; setuid/setgid stripped unless keepSetuid), a
 *   host symlink becomes the same symlink and its target is mirrored in turn.
 *   That alone reproduces merged /usr (`lib -> usr/lib`, `bin -> usr/bin`)
 *   and every link of a chain such as
 *   `/usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`.
 * - **Symlink:** recreated with the same target text, then the target is copied.
 * - **Directory:** mirrored, then every entry copied.
 * - **Regular file:** its libraries first (so a program never sits in the
 *   jail without them, even after `kill -9`), then the file itself, written
 *   complete under no name and linked into place (src/jailfs.ts). Owner
 *   root:root unless keepOwner; setuid/setgid stripped unless keepSetuid.
 *   In hardlink mode the host inode is linked instead, except for
 *   setuid/setgid files and files a copy would give another owner: a link
 *   shares the inode, mode and owner with the host (jailkit linked a
 *   setuid-root `chfn` into jails this way).
 * - **Device node (§3.6):** created with the host's major/minor and mode.
 *
 * Differences from jailkit's engine:
 * - An existing file without force: left alone, but its libraries are still
 *   checked, so a rerun completes an interrupted jail.
 * - Force replaces only files that differ (content, mode or owner), atomically.
 * - A malformed ELF file or a library that cannot be found is an error
 *   (jailkit skipped "not found" silently); the malformed file is not copied.
 * - Globs match as the shell does (no dot files), sorted.
 * - A symlink in the jail that leads out aborts the run (`JailEscapeError`),
 *   as jailkit's "symlink points outside jail, ABORT" did.
 * - No `ldconfig -r JAIL`: that runs a program as root on jail content; the
 *   loader finds libraries in its default directories without a cache.
 *
 * @module
 */

import { basename, dirname, join, normalize } from "./paths.ts";
import { errorText, JkError } from "./cli.ts";
import { type Closure, DepResolver, type ResolvedFile } from "./deps.ts";
import { isElf } from "./elf.ts";
import {
  closeHostDirs,
  copyFd,
  type Dir,
  type HostDirs,
  hostFstat,
  hostLstat,
  hostReadlink,
  hostStat,
  Jail,
  JailEscapeError,
  type NodeMeta,
  type NodeStat,
  openHostFile,
  openHostReader,
  sameBytes,
} from "./jailfs.ts";
import * as c from "./libc.ts";

/** Where the engine's messages go. `info` lines are the ones jailkit always prints. */
export interface Reporter {
  /** Always printed (stdout in the tools), e.g. "Copying /usr/bin/ls to /srv/jail/usr/bin/ls". */
  info(line: string): void;
  /** Printed with -v only (the engine filters; the reporter just prints). */
  verbose(line: string): void;
  /** A problem with one path; the run goes on (stderr in the tools). */
  error(line: string): void;
}

/** Options of one `copy` call (jailkit's copyIntoJail flags). */
export interface CopyOptions {
  /** -f: replace files in the jail that differ from the host. */
  force?: boolean;
  /** -k: hardlink regular files instead of copying (never setuid/setgid ones). */
  hardlink?: boolean;
  /** -s / paths_w_setuid: keep setuid and setgid bits. */
  keepSetuid?: boolean;
  /** -o / paths_w_owner: keep the host owner and group. */
  keepOwner?: boolean;
  /** Copy the libraries of ELF files and the `#!` interpreter of scripts (default true). */
  checkLibs?: boolean;
  /** Expand shell patterns in absolute entries that do not exist literally (jk_init). */
  glob?: boolean;
}

/** Options of `mirrorDir` (emptydirs, parents). */
export interface MirrorOptions {
  /** Copy mode and times of each created directory from the host (else 0755 root). */
  copyPermissions?: boolean;
  /** Keep setuid/setgid bits of created directories (with copyPermissions). */
  keepSetuid?: boolean;
  /** Keep the host owner of created directories (with copyPermissions). */
  keepOwner?: boolean;
}

/** Engine-wide settings. */
export interface EngineOptions {
  reporter: Reporter;
  /** -v: pass verbose lines to the reporter. */
  verbose?: boolean;
  /** A resolver to share (jk_init keeps one across sections); default a new host resolver. */
  resolver?: DepResolver;
}

const ROOT_OWNED = { uid: 0, gid: 0 };

/**
 * Copies host paths into a jail. One engine per run: its `handled` set makes
 * each host path be done once. A `JailEscapeError` (a symlink in the jail that
 * leads out) aborts the whole call; every other problem is reported, added to
 * `errors`, and the run goes on. In a jail opened with `dryRun` the engine
 * prints the same lines and changes nothing.
 *
 * @example
 * ```ts
 * import { Jail } from "./jailfs.ts";
 * const jail = Jail.open("/srv/jail");
 * const engine = new CopyEngine(jail, { reporter: consoleReporter("jk_cp"), verbose: true });
 * await engine.copy(["/usr/bin/rsync", "/etc/localtime"], { force: false });
 * engine.errors; // [] when everything was copied
 * jail.close();
 * ```
 */
export class CopyEngine {
  /** Host paths done in this run. */
  readonly handled = new Set<string>();
  /** One line per failure (already passed to `reporter.error`). */
  readonly errors: string[] = [];
  readonly #reporter: Reporter;
  readonly #verbose: boolean;
  #resolver: DepResolver | undefined;
  /**
   * Open host directories whose entries are being copied, by path. Each entry
   * is looked up, read and opened relative to its directory's descriptor, not
   * by its path: where a user can write the host tree, they could otherwise
   * swap a directory on the way for a symlink between the listing and the
   * copy, and have root copy in a file only root can reach (a 0644 file in a
   * 0700 directory), under a name every jailed user can read.
   */
  readonly #listing = new Map<string, number>();
  /**
   * Host directories reached through root's symlinks (merged /usr) during one
   * `copySync`, kept open so that each further file in them is opened
   * relative to the directory already verified (see `openHostFile`).
   */
  readonly #hostDirs: HostDirs = new Map();

  /**
   * @param jail the open jail to copy into (its `dryRun` decides whether anything changes)
   * @param options the reporter, verbosity and an optional shared resolver
   */
  constructor(readonly jail: Jail, options: EngineOptions) {
    this.#reporter = options.reporter;
    this.#verbose = options.verbose ?? false;
    this.#resolver = options.resolver;
  }

  /**
   * Copies host paths (absolute) into the jail (§3.3); see the class.
   *
   * @example
   * ```ts
   * await engine.copy(["/usr/bin/ssh"], { hardlink: true });
   * ```
   */
  copy(paths: readonly string[], options: CopyOptions = {}): Promise<void> {
    try {
      this.copySync(paths, options);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Synchronous form of `copy` (the engine does no asynchronous work).
   *
   * @example
   * ```ts
   * engine.copySync(["/etc/localtime"]);
   * ```
   */
  copySync(paths: readonly string[], options: CopyOptions = {}): void {
    try {
      for (const path of paths) this.#copyOne(path, options);
    } finally {
      closeHostDirs(this.#hostDirs);
    }
  }

  /**
   * Creates the host directory `hostDir` in the jail, mirroring every
   * component (§3.4). Without copyPermissions new directories are 0755
   * root:root (emptydirs). Returns false (after reporting) on failure.
   *
   * @example
   * ```ts
   * engine.mirrorDir("/var/tmp");
   * ```
   */
  mirrorDir(hostDir: string, options: MirrorOptions = {}): boolean {
    try {
      this.#ensureDir(normalize(hostDir), options);
      return true;
    } catch (e) {
      if (e instanceof JailEscapeError) throw e;
      this.#fail(`cannot create directory ${hostDir} in ${this.jail.path}: ${reasonOf(e)}`);
      return false;
    }
  }

  /**
   * Creates a device node like the host's `hostDevice` (§3.6): same type,
   * major/minor and mode (setuid/setgid stripped), owner root unless
   * keepOwner. An existing node is left alone. Returns false on failure.
   *
   * @example
   * ```ts
   * engine.createDevice("/dev/urandom");
   * ```
   */
  createDevice(hostDevice: string, options: { keepOwner?: boolean } = {}): boolean {
    const path = normalize(hostDevice);
    try {
      const st = hostStat(path);
      if (!st) throw new JkError("no such file or directory");
      if (st.type !== "char" && st.type !== "block") {
        throw new JkError("not a character or block device");
      }
      const dir = this.#ensureDir(dirname(path), {});
      this.#device(path, st, dir, options.keepOwner ?? false);
      return true;
    } catch (e) {
      if (e instanceof JailEscapeError) throw e;
      this.#fail(`cannot create device ${hostDevice} in ${this.jail.path}: ${reasonOf(e)}`);
      return false;
    }
  }

  #say(line: string): void {
    this.#reporter.info(line);
  }

  #detail(line: string): void {
    if (this.#verbose) this.#reporter.verbose(line);
  }

  #fail(line: string): void {
    this.errors.push(line);
    this.#reporter.error(line);
  }

  /** The host entry `path` as (directory fd, name) while its directory is listed, else (AT_FDCWD, path). */
  #hostEntry(path: string): [number, string] {
    const fd = this.#listing.get(dirname(path));
    return fd === undefined ? [c.AT_FDCWD, path] : [fd, basename(path)];
  }

  /**
   * Opens the host entry `path` (never through a final symlink): relative to
   * its listed directory, or by path following only symlinks root alone
   * could have made (see `openHostFile`).
   */
  #openHost(path: string, flags: number): number {
    const [at, entry] = this.#hostEntry(path);
    return at === c.AT_FDCWD
      ? openHostFile(path, flags, this.#hostDirs)
      : c.openat(at, entry, flags | c.O_NOFOLLOW);
  }

  #show(dir: Dir, name: string): string {
    return this.jail.show(dir.path === "/" ? `/${name}` : `${dir.path}/${name}`);
  }

  #copyOne(given: string, options: CopyOptions): void {
    if (!given.startsWith("/")) {
      this.#fail(`${given}: not an absolute path`);
      return;
    }
    const path = normalize(given).replace(/(.)\/+$/, "$1");
    if (this.handled.has(path)) return;
    let st: NodeStat | null;
    try {
      const [at, entry] = this.#hostEntry(path);
      st = hostLstat(entry, at);
    } catch (e) {
      this.#fail(`failed to investigate source file ${path}: ${reasonOf(e)}`);
      return;
    }
    if (!st) {
      if (options.glob && /[*?[]/.test(path)) {
        const matches = expandGlob(path);
        if (matches.length === 0) this.#detail(`Source file(s) ${path} do not exist`);
        for (const m of matches) this.#copyOne(m, { ...options, glob: false });
      } else {
        this.#detail(`Source file ${path} does not exist`);
      }
      return;
    }
    this.handled.add(path);
    try {
      switch (st.type) {
        case "file":
          return this.#copyFile(path, options);
        case "symlink":
          return this.#copySymlink(path, options);
        case "dir":
          return this.#copyDirectory(path, options);
        case "char":
        case "block":
          return this.#device(
            path,
            st,
            this.#ensureDir(dirname(path), mirrorOf(options)),
            options.keepOwner ?? false,
          );
        default:
          throw new JkError(`it is a ${st.type}, which cannot be copied into a jail`);
      }
    } catch (e) {
      if (e instanceof JailEscapeError) throw e;
      this.#fail(`cannot copy ${path} into ${this.jail.path}: ${reasonOf(e)}`);
    }
  }

  /** Mirrors `hostDir` into the jail (§3.4) and returns it. */
  #ensureDir(hostDir: string, options: MirrorOptions): Dir {
    return this.jail.makeDirs(hostDir, (inJail) => {
      const host = hostLstat(inJail);
      if (!host) throw new JkError(`failed to lstat(${inJail}): no such file or directory`);
      if (host.type === "symlink") {
        const target = hostReadlink(inJail)!;
        this.#detail(`Creating symlink ${this.jail.show(inJail)} to ${target}`);
        return { kind: "symlink", target };
      }
      if (host.type !== "dir") throw new JkError(`${inJail} on the host is not a directory`);
      this.#detail(`Create directory ${this.jail.show(inJail)}`);
      if (!options.copyPermissions) return { kind: "dir", meta: { perm: 0o755, ...ROOT_OWNED } };
      return { kind: "dir", meta: this.#metaOf(host, inJail, options) };
    });
  }

  /** Mode, owner and times a copy of `host` gets; reports stripped setuid/setgid bits. */
  #metaOf(host: NodeStat, inJail: string, options: MirrorOptions): NodeMeta {
    let perm = host.perm;
    if (!options.keepSetuid && perm & 0o6000) {
      perm &= ~0o6000;
      if (host.type !== "dir") {
        this.#say(`removing setuid and setgid permissions from ${this.jail.show(inJail)}`);
      }
    }
    const owner = options.keepOwner ? { uid: host.uid, gid: host.gid } : ROOT_OWNED;
    return { perm, ...owner, atime: host.atime, mtime: host.mtime };
  }

  #copySymlink(path: string, options: CopyOptions): void {
    const [at, entry] = this.#hostEntry(path);
    const target = hostReadlink(entry, at);
    if (target === null) throw new JkError("it is no longer a symlink");
    const dir = this.#ensureDir(dirname(path), mirrorOf(options));
    const name = basename(path);
    const shown = this.#show(dir, name);
    const dest = this.jail.stat(dir, name);
    const owner = options.keepOwner ? ownerOf(hostLstat(entry, at)) : ROOT_OWNED;
    if (!dest) {
      this.#say(`Creating symlink ${shown} to ${target}`);
      this.jail.symlink(dir, name, target, owner);
    } else if (dest.type === "symlink" && this.jail.readlink(dir, name) === target) {
      this.#detail(`${shown} already exists, will not touch it`);
    } else if (!options.force) {
      this.#detail(`${shown} already exists, will not touch it`);
    } else if (dest.type === "dir") {
      throw new JkError(`${shown} is a directory, not replaced by a symlink`);
    } else {
      this.#detail(`Destination symlink ${shown} exists, will delete to force update`);
      this.#say(`Creating symlink ${shown} to ${target}`);
      this.jail.symlink(dir, name, target, { replace: true, ...owner });
    }
    // The whole chain: the target (resolved on the host) is copied too.
    const base = target.includes("..") ? realDir(dirname(path)) : dirname(path);
    this.#copyOne(target.startsWith("/") ? target : join(base, target), options);
  }

  #copyDirectory(path: string, options: CopyOptions): void {
    const parent = this.#ensureDir(dirname(path), mirrorOf(options));
    const name = basename(path);
    const dest = path === "/" ? null : this.jail.stat(parent, name);
    if (dest?.type === "dir") this.#detail(`Destination dir ${this.#show(parent, name)} exists`);
    else if (path !== "/") this.#ensureDir(path, mirrorOf(options));
    const fd = this.#openHost(path, c.O_RDONLY | c.O_DIRECTORY);
    this.#listing.set(path, fd);
    try {
      for (const child of c.readDirFd(fd).map((e) => e.name).sort()) {
        this.#copyOne(path === "/" ? `/${child}` : `${path}/${child}`, { ...options, glob: false });
      }
    } finally {
      this.#listing.delete(path);
      c.close(fd);
    }
  }

  #copyFile(path: string, options: CopyOptions): void {
    const source = this.#openHost(path, c.O_RDONLY | c.O_NONBLOCK | c.O_NOCTTY);
    try {
      const st = hostFstat(source);
      if (st.type !== "file") throw new JkError("it is no longer a regular file");
      if (options.checkLibs !== false && needsResolving(source, st)) {
        if (!this.#copyNeeds(path, options)) return;
      }
      const dir = this.#ensureDir(dirname(path), mirrorOf(options));
      this.#placeFile(path, source, st, dir, options);
    } finally {
      c.close(source);
    }
  }

  /**
   * Copies the libraries and interpreters `path` needs. Returns false, after
   * reporting, when `path` itself is unusable (a malformed ELF file).
   */
  #copyNeeds(path: string, options: CopyOptions): boolean {
    this.#resolver ??= new DepResolver({ opener: openHostReader });
    const closure: Closure = this.#resolver.closure([path]);
    for (const miss of closure.unresolved) {
      if (miss.neededBy === null) {
        this.#fail(`cannot copy ${path}: ${miss.reason}`);
        return false;
      }
    }
    for (const miss of closure.unresolved) {
      this.#fail(`${miss.neededBy} needs ${miss.name}, which cannot be used: ${miss.reason}`);
    }
    for (const warning of closure.warnings) this.#detail(warning);
    const libraryOptions: CopyOptions = {
      force: options.force,
      hardlink: options.hardlink,
      checkLibs: false, // the closure is already transitive
    };
    for (const dep of closure.dependencies) {
      for (const p of pathsToCopy(dep)) this.#copyOne(p, libraryOptions);
    }
    return true;
  }

  #placeFile(path: string, source: number, st: NodeStat, dir: Dir, options: CopyOptions): void {
    const name = basename(path);
    const shown = this.#show(dir, name);
    const dest = this.jail.stat(dir, name);
    const inJail = dir.path === "/" ? `/${name}` : `${dir.path}/${name}`;
    if (dest) {
      if (dest.type === "dir") throw new JkError(`${shown} is a directory`);
      if (!options.force) {
        this.#detail(`${shown} already exists, will not touch it`);
        return;
      }
      if (this.#upToDate(dir, name, dest, source, st, options)) {
        this.#detail(`${shown} is up to date`);
        return;
      }
      this.#detail(`Destination file ${shown} exists, will delete to force update`);
    }
    const replace = dest !== null;
    if (options.hardlink) {
      if (st.perm & 0o6000) {
        this.#say(`${path} is setuid or setgid: copying it instead of linking`);
      } else if (!options.keepOwner && (st.uid !== 0 || st.gid !== 0)) {
        this.#detail(`${path} is not owned by root: copying it instead of linking`);
      } else {
        this.#say(`Trying to link ${path} to ${shown}`);
        try {
          this.jail.hardlink(dir, name, source, replace, {
            perm: st.perm,
            uid: st.uid,
            gid: st.gid,
          });
          return;
        } catch (e) {
          if (!(e instanceof c.LibcError)) throw e;
          this.#say(`Linking ${path} to ${shown} failed, will revert to copying`);
        }
      }
    }
    this.#say(`Copying ${path} to ${shown}`);
    const meta = this.#metaOf(st, inJail, options);
    this.jail.placeFile(dir, name, (fd) => copyFd(source, fd), meta, replace);
  }

  /** Is the jail file `name` already what copying `source` would make? */
  #upToDate(
    dir: Dir,
    name: string,
    dest: NodeStat,
    source: number,
    st: NodeStat,
    options: CopyOptions,
  ): boolean {
    if (dest.type !== "file" || dest.virtual) return false;
    if (dest.dev === st.dev && dest.ino === st.ino) return true; // our own hard link
    const perm = options.keepSetuid ? st.perm : st.perm & ~0o6000;
    const owner = options.keepOwner ? ownerOf(st) : ROOT_OWNED;
    if (dest.size !== st.size || dest.perm !== perm) return false;
    if (dest.uid !== owner.uid || dest.gid !== owner.gid) return false;
    const fd = this.jail.openFile(dir, name);
    try {
      return sameBytes(source, fd, st.size);
    } finally {
      c.close(fd);
    }
  }

  #device(path: string, st: NodeStat, dir: Dir, keepOwner: boolean): void {
    const name = basename(path);
    const shown = this.#show(dir, name);
    if (this.jail.stat(dir, name)) {
      this.#detail(`Device ${shown} does exist already`);
      return;
    }
    this.#detail(`Creating device ${shown}`);
    const owner = keepOwner ? ownerOf(st) : ROOT_OWNED;
    const type = st.type === "block" ? "block" : "char";
    this.jail.mknod(dir, name, type, st.rdev, {
      perm: st.perm & ~0o6000,
      ...owner,
      atime: st.atime,
      mtime: st.mtime,
    });
  }
}

/** Mirror options for the parents of a copied path. */
function mirrorOf(options: CopyOptions): MirrorOptions {
  return { copyPermissions: true, keepSetuid: options.keepSetuid, keepOwner: options.keepOwner };
}

function ownerOf(st: NodeStat | null): { uid: number; gid: number } {
  return st ? { uid: st.uid, gid: st.gid } : ROOT_OWNED;
}

const head = new Uint8Array(4);

/** An ELF file (any mode: shared objects are often 0644), or an executable `#!` script. */
function needsResolving(fd: number, st: NodeStat): boolean {
  const n = c.pread(fd, head, 0);
  if (n === 4 && isElf(head)) return true;
  return n >= 2 && head[0] === 0x23 && head[1] === 0x21 && (st.perm & 0o111) !== 0;
}

/**
 * The host paths to copy for one resolved dependency: its path as the loader
 * opens it, or, when that contains `..` (from `$ORIGIN/../lib`), every link on
 * the way and the file itself.
 */
function pathsToCopy(dep: ResolvedFile): string[] {
  const clean = !/(^|\/)\.\.?(\/|$)/.test(dep.path);
  const own = clean ? [dep.path] : [...dep.symlinks.map((s) => s.path), dep.realpath];
  return [...own, ...dep.hwcapsVariants];
}

/** The physical path of a host directory (for `..` in link targets). */
function realDir(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

/**
 * Entry names of a host directory, sorted, read through libc (works for /dev
 * too). `follow`: the directory may be reached through a final symlink (globs).
 */
function listHostDir(path: string, follow = false): string[] {
  const fd = c.open(path, c.O_RDONLY | c.O_DIRECTORY | (follow ? 0 : c.O_NOFOLLOW));
  try {
    return c.readDirFd(fd).map((e) => e.name).sort();
  } finally {
    c.close(fd);
  }
}

/**
 * Expands a shell pattern (`*`, `?`, `[...]`, `[!...]`) against the host file
 * system, component by component, as `sh` would: `*` does not match a leading
 * dot. Returns the existing matches, sorted.
 *
 * @example
 * ```ts
 * expandGlob("/lib/x86_64-linux-gnu/libnss_files*"); // ["/lib/x86_64-linux-gnu/libnss_files.so.2"]
 * ```
 */
export function expandGlob(pattern: string): string[] {
  let found = ["/"];
  for (const part of pattern.split("/").filter((p) => p !== "")) {
    const next: string[] = [];
    const magic = /[*?[]/.test(part);
    const matcher = magic ? globRegExp(part) : null;
    for (const dir of found) {
      const join = (name: string) => dir === "/" ? `/${name}` : `${dir}/${name}`;
      if (!matcher) {
        if (hostLstat(join(part))) next.push(join(part));
        continue;
      }
      let names: string[];
      try {
        names = listHostDir(dir, true);
      } catch {
        continue; // not a directory, or unreadable: no matches there
      }
      for (const name of names) {
        if (name.startsWith(".") && !part.startsWith(".")) continue;
        if (matcher.test(name)) next.push(join(name));
      }
    }
    found = next;
  }
  return found.filter((p) => p !== "/").sort();
}

/** One glob component as an anchored regular expression. */
function globRegExp(part: string): RegExp {
  let out = "";
  for (let i = 0; i < part.length; i++) {
    const ch = part[i];
    if (ch === "*") out += "[^/]*";
    else if (ch === "?") out += "[^/]";
    else if (ch === "[") {
      const close = part.indexOf("]", i + 2);
      if (close < 0) {
        out += "\\[";
        continue;
      }
      let body = part.slice(i + 1, close);
      const negate = body.startsWith("!") || body.startsWith("^");
      if (negate) body = body.slice(1);
      out += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
      i = close;
    } else out += ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}

/**
 * Resolves jk_cp/jk_init arguments: absolute paths stay, names with a `/` are
 * taken relative to `cwd`, bare names are looked up in `path` (a $PATH value;
 * empty and relative entries are ignored). Returns null when not found.
 *
 * @example
 * ```ts
 * resolveProgram("rsync", "/usr/bin:/bin", "/root"); // "/usr/bin/rsync"
 * ```
 */
export function resolveProgram(name: string, path: string, cwd: string): string | null {
  if (name.startsWith("/")) return normalize(name);
  if (name.includes("/")) return join(cwd, name);
  for (const dir of path.split(":")) {
    if (!dir.startsWith("/")) continue;
    const candidate = join(dir, name);
    if (hostStat(candidate)) return candidate;
  }
  return null;
}

/**
 * A reporter writing info and verbose lines to stdout, errors to stderr as
 * `tool: message`. Stdout is buffered (one write per 16 KiB instead of one
 * per line, which was a tenth of jk_cp's run time) and flushed before every
 * error line, so the two streams stay in order, and at exit (`unload`, which
 * `Deno.exit` dispatches); `flush()` flushes at once.
 *
 * @example
 * ```ts
 * const reporter = consoleReporter("jk_cp");
 * try { engine.copySync(paths); } finally { reporter.flush(); }
 * ```
 */
export function consoleReporter(tool: string): Reporter & { flush(): void } {
  const encoder = new TextEncoder();
  let pending = "";
  const flush = () => {
    if (pending === "") return;
    const bytes = encoder.encode(pending);
    pending = "";
    for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
  };
  // Deno.exit (runMain) dispatches "unload": nothing buffered is lost.
  globalThis.addEventListener("unload", flush);
  const out = (line: string) => {
    pending += line + "\n";
    if (pending.length >= 16384) flush();
  };
  return {
    info: out,
    verbose: out,
    error: (line) => {
      flush();
      console.error(`${tool}: ${line}`);
    },
    flush,
  };
}

/**
 * A user-facing reason for a failure: libc's description, or the error's own message.
 *
 * @example
 * ```ts
 * reasonOf(new LibcError('openat(3, "x")', 13)); // "Permission denied"
 * ```
 */
export function reasonOf(e: unknown): string {
  if (e instanceof c.LibcError) return c.strerror(e.errno);
  if (e instanceof JkError) return e.message;
  return errorText(e);
}
