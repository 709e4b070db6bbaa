/**
 * The library-closure engine of jk_init, jk_cp, jk_update and jk_check: what a
 * program needs at run time, found the way glibc's loader finds it, without
 * running ldd, the loader, or any other process.
 *
 * For each requested path: a script brings its `#!` interpreter (recursively);
 * an ELF program brings its `PT_INTERP` and, breadth first as glibc's
 * `_dl_map_object_deps` does, every `DT_NEEDED` (and `DT_FILTER` /
 * `DT_AUXILIARY`) object. A name is first matched against objects already
 * loaded (by requested name, path or `DT_SONAME`, and by file identity),
 * then searched, exactly in glibc's order:
 *
 * 1. `DT_RPATH` of the requesting object, then of the object that loaded it,
 *    and so on up to the program, then the program's own `DT_RPATH` — all of
 *    this only when the requesting object has no `DT_RUNPATH` (an object with
 *    both has its `DT_RPATH` ignored);
 * 2. `LD_LIBRARY_PATH` is never used (a jail's environment is not ours);
 * 3. `DT_RUNPATH` of the requesting object only (not inherited);
 * 4. `/etc/ld.so.cache` (with `-z nodeflib`, entries in the default
 *    directories are refused);
 * 5. the loader's built-in directories, unless `-z nodeflib`.
 *
 * `$ORIGIN`, `$LIB` and `$PLATFORM` (also `${...}`) are expanded in paths;
 * a candidate of another ELF class or machine is skipped and the search goes
 * on; a candidate that is not loadable (bad header, wrong byte order, not
 * ET_DYN/ET_EXEC) stops the search, as it makes glibc fail. glibc-hwcaps
 * subdirectories are not preferred: the baseline library is chosen so the jail
 * works on any CPU, and variants are reported beside it.
 *
 * Everything happens relative to a root directory (the host's `/` by default,
 * or a jail): paths, symlinks, `/etc/ld.so.cache` and `/etc/ld.so.preload` are
 * all read inside it, and symlinks are followed as a chrooted process would
 * see them — an absolute target or `..` at the top stays inside the root, so
 * nothing outside it is ever consulted. This is analysis only: it reads ELF
 * headers and never writes. A copier must still open what it copies safely;
 * a file swapped while it is being analysed can at worst make the answer wrong.
 *
 * @module
 */

import { errorText, JkError } from "./cli.ts";
import {
  ElfError,
  type ElfIdent,
  type ElfInfo,
  ET_DYN,
  ET_EXEC,
  type FileInspection,
  type FileOpener,
  inspectFileSync,
  isElf,
  readElfIdent,
  readShebang,
} from "./elf.ts";
import {
  type ArchAbi,
  archAbi,
  type LdCache,
  LdCacheError,
  lookupLdCache,
  parseLdCache,
} from "./ldcache.ts";

/** A symlink met while resolving a path: recreate it as `path -> target` in a jail. */
export interface SymlinkHop {
  /** Absolute path of the link, inside the root, with every earlier link resolved. */
  path: string;
  /** The link's target text, exactly as `readlink` returns it. */
  target: string;
}

/** A path resolved inside a root. */
export interface PathResolution {
  /** The physical path (no symlinks, no `.`/`..`) inside the root. */
  real: string;
  /** What is there. `missing` also covers loops and unreadable directories (see `error`). */
  kind: "file" | "dir" | "other" | "missing";
  /** Every symlink followed, in order, without duplicates. */
  symlinks: SymlinkHop[];
  /** Device and inode, identifying the file (0 when missing). */
  dev: number;
  ino: number;
  /** Why a path is missing when it is not simply absent, e.g. a symlink loop. */
  error: string | null;
}

/** Linux's limit on symlinks followed in one path lookup (ELOOP). */
const MAX_SYMLINKS = 40;
/** Longest path or symlink target accepted (PATH_MAX). */
const MAX_PATH = 4096;

type Lstat = { kind: "file" | "dir" | "other" | "link" | "missing"; dev: number; ino: number };

/**
 * Path resolution confined to a root directory, with the semantics of
 * `openat2(RESOLVE_IN_ROOT)`: absolute symlink targets and `..` are taken
 * relative to the root, so resolution can never leave it. Results and the
 * underlying `lstat`/`readlink` calls are cached for the instance's lifetime.
 *
 * @example
 * ```ts
 * const paths = new RootedPaths("/");
 * paths.resolve("/lib64/ld-linux-x86-64.so.2").symlinks;
 * // [{ path: "/lib64", target: "usr/lib64" },
 * //  { path: "/usr/lib64/ld-linux-x86-64.so.2", target: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" },
 * //  { path: "/lib", target: "usr/lib" }]
 * ```
 */
export class RootedPaths {
  /** The root as a physical host path (`/` for the host itself). */
  readonly root: string;
  readonly #lstat = new Map<string, Lstat>();
  readonly #links = new Map<string, string | null>();
  readonly #memo = new Map<string, PathResolution>();

  /**
   * @param root directory to resolve inside; resolved once with realpath
   * @throws JkError if the root cannot be resolved
   */
  constructor(root = "/") {
    let real: string;
    try {
      real = Deno.realPathSync(root);
    } catch (e) {
      throw new JkError(`${root}: ${errorText(e)}`);
    }
    this.root = real === "/" ? "/" : real.replace(/\/+$/, "");
  }

  /** The host path of a physical in-root path. */
  hostPath(inRoot: string): string {
    return this.root === "/" ? inRoot : inRoot === "/" ? this.root : this.root + inRoot;
  }

  #stat(inRoot: string): Lstat {
    const hit = this.#lstat.get(inRoot);
    if (hit) return hit;
    let r: Lstat;
    try {
      const st = Deno.lstatSync(this.hostPath(inRoot));
      const kind = st.isSymlink ? "link" : st.isDirectory ? "dir" : st.isFile ? "file" : "other";
      r = { kind, dev: st.dev ?? 0, ino: st.ino ?? 0 };
    } catch {
      r = { kind: "missing", dev: 0, ino: 0 };
    }
    this.#lstat.set(inRoot, r);
    return r;
  }

  #readLink(inRoot: string): string | null {
    if (this.#links.has(inRoot)) return this.#links.get(inRoot)!;
    let t: string | null;
    try {
      t = Deno.readLinkSync(this.hostPath(inRoot));
    } catch {
      t = null;
    }
    this.#links.set(inRoot, t);
    return t;
  }

  /**
   * Resolves an absolute in-root path (a relative one is taken from the root).
   *
   * @example
   * ```ts
   * new RootedPaths("/srv/jail").resolve("/lib/x86_64-linux-gnu/libc.so.6").real;
   * // "/usr/lib/x86_64-linux-gnu/libc.so.6" when the jail has lib -> usr/lib
   * ```
   */
  resolve(path: string): PathResolution {
    const hit = this.#memo.get(path);
    if (hit) return hit;
    const r = this.#walk(path);
    this.#memo.set(path, r);
    return r;
  }

  #walk(path: string): PathResolution {
    const symlinks: SymlinkHop[] = [];
    const seenLinks = new Set<string>();
    const missing = (real: string, error: string | null = null): PathResolution => ({
      real,
      kind: "missing",
      symlinks,
      dev: 0,
      ino: 0,
      error,
    });
    if (path.length > MAX_PATH) return missing(path, "path too long");
    // Components still to walk, last one first (a stack, like the kernel's nameidata).
    const todo = path.split("/").reverse();
    let cur = "/";
    let hops = 0;
    while (todo.length > 0) {
      const c = todo.pop()!;
      if (c === "" || c === ".") continue;
      if (c === "..") {
        cur = cur === "/" ? "/" : cur.slice(0, cur.lastIndexOf("/")) || "/";
        continue;
      }
      const cand = cur === "/" ? `/${c}` : `${cur}/${c}`;
      const st = this.#stat(cand);
      const rest = todo.some((x) => x !== "" && x !== ".");
      switch (st.kind) {
        case "missing":
          return missing(cand);
        case "link": {
          if (++hops > MAX_SYMLINKS) return missing(cand, "too many levels of symbolic links");
          const target = this.#readLink(cand);
          if (target === null || target === "") return missing(cand);
          if (target.length > MAX_PATH) return missing(cand, "symlink target too long");
          if (!seenLinks.has(cand)) {
            seenLinks.add(cand);
            symlinks.push({ path: cand, target });
          }
          if (target.startsWith("/")) cur = "/";
          for (const t of target.split("/").reverse()) todo.push(t);
          break;
        }
        case "dir":
          cur = cand;
          break;
        default:
          if (rest) return missing(cand, "not a directory");
          return { real: cand, kind: st.kind, symlinks, dev: st.dev, ino: st.ino, error: null };
      }
    }
    const st = this.#stat(cur);
    return { real: cur, kind: "dir", symlinks, dev: st.dev, ino: st.ino, error: null };
  }

  /** Names in an in-root directory (physical path), or [] if it cannot be listed. */
  listDir(inRoot: string): string[] {
    try {
      return [...Deno.readDirSync(this.hostPath(inRoot))].map((e) => e.name);
    } catch {
      return [];
    }
  }
}

/** Why a file is in a closure. */
export type FileRole = "program" | "interpreter" | "library" | "preload" | "script-interpreter";

/** One file of a closure. */
export interface ResolvedFile {
  /**
   * The path as the kernel or loader opens it, inside the root; it may
   * contain `..` (from `$ORIGIN/../lib`). Copy `realpath` and recreate
   * `symlinks`, and `path` resolves the same way in the jail.
   */
  path: string;
  /** Physical path inside the root. */
  realpath: string;
  /** Every symlink on the way from `path` to `realpath`, e.g. `/lib -> usr/lib`. */
  symlinks: SymlinkHop[];
  /** Why it is needed (the first reason found). */
  role: FileRole;
  /** Paths of the objects that asked for it; empty for requested programs. */
  neededBy: string[];
  /**
   * glibc-hwcaps (or legacy hwcap) variants of the same library that a loader
   * on a more capable CPU would pick instead; copy them too for a faithful jail.
   */
  hwcapsVariants: string[];
}

/** A dependency that could not be resolved; the closure is still returned. */
export interface UnresolvedNeed {
  /** The name asked for (DT_NEEDED text, PT_INTERP, `#!` interpreter or requested path). */
  name: string;
  /** Path of the object that needs it, or null for a requested path. */
  neededBy: string | null;
  /** Why, e.g. "not found", "wrong ELF class only: /usr/lib/libfoo.so (ELF32)". */
  reason: string;
}

/** The result of {@link DepResolver.closure}. */
export interface Closure {
  /** The requested paths that exist, with their own symlinks. */
  roots: ResolvedFile[];
  /** Everything they need, one entry per distinct `path`, in discovery order. */
  dependencies: ResolvedFile[];
  /** Needs that could not be met, each (name, neededBy) once. */
  unresolved: UnresolvedNeed[];
  /** Things that may matter but do not stop resolution (audit libraries, `env` scripts...). */
  warnings: string[];
}

/** Options of {@link DepResolver}. */
export interface DepResolverOptions {
  /** Directory to resolve inside (a jail); default `/`, the host. */
  root?: string;
  /** In-root path of the loader cache, or false for none; default `/etc/ld.so.cache`. */
  ldSoCache?: string | false;
  /** In-root path of the preload list, or false to ignore it; default `/etc/ld.so.preload`. */
  ldSoPreload?: string | false;
  /**
   * The loader's built-in directories. Default: on a multiarch (Debian-style)
   * system `/lib/<triplet>`, `/usr/lib/<triplet>`, `/lib`, `/usr/lib`; otherwise
   * `/lib64`, `/usr/lib64` for 64-bit (or `/lib`, `/usr/lib` for 32-bit).
   */
  defaultDirs?: string[];
  /** Value of `$LIB`; default `lib/<triplet>` on multiarch systems, else `lib64`/`lib`. */
  lib?: string;
  /** Value of `$PLATFORM`; default from the architecture (`x86_64`, `i686`, `aarch64`). */
  platform?: string;
  /**
   * How files are opened for reading their headers; default
   * `openRegularFile` (Deno's API). Tools with FFI pass one that opens with
   * `O_NOFOLLOW | O_NONBLOCK`, so a FIFO swapped in cannot block them.
   */
  opener?: FileOpener;
  /** Cap on objects loaded per program (a guard against hostile input); default 4096. */
  maxObjects?: number;
  /**
   * Cap on candidate files examined per program; default 100000 (a real
   * program needs well under a thousand). Hostile RPATH chains could
   * otherwise make resolution quadratic.
   */
  maxProbes?: number;
}

/** An object in one program's link map (glibc's `struct link_map`, reduced). */
interface Loaded {
  path: string;
  real: string;
  id: string;
  info: ElfInfo;
  loader: Loaded | null;
  origin: string | null;
  /** Expanded DT_RPATH / DT_RUNPATH directories, computed on first use. */
  rpathDirs?: string[];
  runpathDirs?: string[];
}

/** One program's loading context: its link map and architecture. */
interface Program {
  main: Loaded;
  objects: Loaded[];
  /** Objects by file identity (dev:ino): a second path to a loaded file reuses it. */
  byId: Map<string, Loaded>;
  /**
   * Objects by every name that matches them: names they were requested as,
   * their path, their SONAME. The first object to claim a name keeps it, as
   * glibc's walk of the link map in load order would find it first.
   */
  byName: Map<string, Loaded>;
  ident: ElfIdent;
  abi: ArchAbi | null;
  /** Candidate files examined so far (see {@link DepResolverOptions.maxProbes}). */
  probes: number;
}

/** Thrown inside one program's resolution when it exceeds its work budget. */
class WorkLimit extends Error {}

/** What `open_verify` makes of one candidate path. */
type Candidate =
  | { kind: "ok"; obj: Loaded; isNew: boolean; res: PathResolution }
  /** Another ELF class or machine: skipped, the search goes on. */
  | { kind: "skip"; why: string }
  | { kind: "missing" }
  /** A symlink loop: glibc abandons the rest of the current directory list. */
  | { kind: "abandon" }
  /** Not loadable: glibc fails the whole program. */
  | { kind: "fatal"; reason: string };

/** The result of searching for one needed name. */
type SearchOutcome =
  | { kind: "found"; candidate: Extract<Candidate, { kind: "ok" }>; variants: string[] }
  | { kind: "fatal"; reason: string }
  | { kind: "none"; skipped: string[] };

/** Accumulates one closure across programs. */
class Collector {
  readonly roots = new Map<string, ResolvedFile>();
  readonly deps = new Map<string, ResolvedFile>();
  readonly unresolved = new Map<string, UnresolvedNeed>();
  readonly warnings = new Set<string>();

  add(
    into: Map<string, ResolvedFile>,
    path: string,
    res: PathResolution,
    role: FileRole,
    neededBy: string | null,
    variants: string[] = [],
  ): void {
    let f = into.get(path);
    if (!f) {
      f = {
        path,
        realpath: res.real,
        symlinks: res.symlinks,
        role,
        neededBy: [],
        hwcapsVariants: variants,
      };
      into.set(path, f);
    }
    if (neededBy !== null && !f.neededBy.includes(neededBy)) f.neededBy.push(neededBy);
  }

  miss(name: string, neededBy: string | null, reason: string): void {
    const key = `${name}\0${neededBy}`;
    if (!this.unresolved.has(key)) this.unresolved.set(key, { name, neededBy, reason });
  }

  result(): Closure {
    return {
      roots: [...this.roots.values()],
      dependencies: [...this.deps.values()],
      unresolved: [...this.unresolved.values()],
      warnings: [...this.warnings],
    };
  }
}

/** Most `#!` interpreters followed in a chain (Linux allows a few levels). */
const MAX_SCRIPT_DEPTH = 4;

/**
 * Computes library closures as glibc's loader would, inside a root. Parsed
 * ELF headers, path resolutions and the cache are kept for the instance's
 * lifetime, so resolving many programs with one resolver is cheap; create a
 * new resolver to see changes on disk.
 *
 * @example
 * ```ts
 * const resolver = new DepResolver();
 * const c = resolver.closure(["/usr/bin/ssh"]);
 * c.dependencies.map((d) => d.path);
 * // ["/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libcrypto.so.3", ...]
 *
 * // jk_check: is every library of the jail's programs resolvable inside the jail?
 * const jail = new DepResolver({ root: "/srv/jail" });
 * jail.closure(["/usr/bin/bash"]).unresolved; // [] when the jail is complete
 * ```
 */
export class DepResolver {
  /** Path resolution inside the root. */
  readonly paths: RootedPaths;
  readonly #opts: DepResolverOptions;
  readonly #inspections = new Map<string, FileInspection | string>();
  #cache: LdCache | null | undefined;
  readonly #defaults = new Map<string, string[]>();
  readonly #hwcapsDirs = new Map<string, string[]>();
  #preload: string[] | undefined;
  #warnings: string[] = [];

  /** @param options see {@link DepResolverOptions} */
  constructor(options: DepResolverOptions = {}) {
    this.#opts = options;
    this.paths = new RootedPaths(options.root ?? "/");
  }

  /**
   * The closure of `paths` (absolute in-root paths; relative ones are taken
   * from the cwd on the host, from `/` in a root). Never throws for missing or
   * malformed files: they land in `unresolved`.
   *
   * @example
   * ```ts
   * const { dependencies, unresolved } = new DepResolver().closure(["/usr/bin/perl"]);
   * ```
   */
  closure(paths: string[]): Closure {
    const out = new Collector();
    for (const w of this.#warnings) out.warnings.add(w);
    for (const p of paths) {
      const abs = p.startsWith("/") ? p : this.paths.root === "/" ? `${Deno.cwd()}/${p}` : `/${p}`;
      const res = this.paths.resolve(abs);
      if (res.kind !== "file") {
        out.miss(abs, null, res.kind === "missing" ? res.error ?? "no such file" : "not a file");
        continue;
      }
      out.add(out.roots, abs, res, "program", null);
      this.#program(abs, res, null, 0, out);
    }
    for (const w of this.#warnings) out.warnings.add(w);
    return out.result();
  }

  /** Parsed header of an in-root physical path, cached; a string is an open error. */
  #inspect(real: string): FileInspection | string {
    let r = this.#inspections.get(real);
    if (r === undefined) {
      try {
        r = inspectFileSync(this.paths.hostPath(real), this.#opts.opener);
      } catch (e) {
        r = e instanceof ElfError ? e.problem : errorText(e);
      }
      this.#inspections.set(real, r);
    }
    return r;
  }

  /** Handles one executable file: a script's interpreter chain or an ELF link map. */
  #program(
    path: string,
    res: PathResolution,
    neededBy: string | null,
    depth: number,
    out: Collector,
  ): void {
    const insp = this.#inspect(res.real);
    if (typeof insp === "string") {
      out.miss(path, neededBy, insp);
      return;
    }
    if (insp.elfError) {
      out.miss(path, neededBy, `not a valid ELF file: ${insp.elfError.problem}`);
      return;
    }
    if (!insp.elf) {
      const sb = readShebang(insp.head);
      if (sb) this.#script(path, sb.interpreter, sb.argument, depth, out);
      return; // a data file or a non-script: nothing to load
    }
    const elf = insp.elf;
    if (elf.type !== ET_EXEC && elf.type !== ET_DYN) return; // object files, cores
    this.#link(path, res, elf, out);
  }

  #script(
    path: string,
    interpreter: string,
    argument: string | null,
    depth: number,
    out: Collector,
  ): void {
    if (depth >= MAX_SCRIPT_DEPTH) {
      out.miss(interpreter, path, "interpreter chain is too deep");
      return;
    }
    if (!interpreter.startsWith("/")) {
      out.miss(interpreter, path, "relative interpreter (resolved against the working directory)");
      return;
    }
    const res = this.paths.resolve(interpreter);
    if (res.kind !== "file") {
      out.miss(interpreter, path, res.error ?? "no such file");
      return;
    }
    out.add(out.deps, interpreter, res, "script-interpreter", path);
    if (/(^|\/)env$/.test(interpreter) && argument) {
      out.warnings.add(
        `${path}: runs "${argument}" through ${interpreter} and PATH; that program is not resolved`,
      );
    }
    this.#program(interpreter, res, path, depth + 1, out);
  }

  /** Builds one program's link map breadth first, as `_dl_map_object_deps` does. */
  #link(path: string, res: PathResolution, elf: ElfInfo, out: Collector): void {
    const main: Loaded = {
      path,
      real: res.real,
      id: `${res.dev}:${res.ino}`,
      info: elf,
      loader: null,
      // The kernel gives the loader the program's resolved path (/proc/self/exe).
      origin: dirname(res.real),
    };
    const prog: Program = {
      main,
      objects: [],
      byId: new Map(),
      byName: new Map(),
      ident: elf,
      abi: archAbi(elf.machine, elf.elfClass, elf.flags),
      probes: 0,
    };
    // The program is known by its SONAME only: glibc gives the main map an empty name.
    register(prog, main, []);
    this.#noteTags(main, out);
    if (elf.interpreter !== null) this.#interpreter(prog, out);
    if (!elf.dynamic) return;
    try {
      this.#loadAll(prog, out);
    } catch (e) {
      if (!(e instanceof WorkLimit)) throw e;
      // An incomplete closure must not pass for a complete one.
      out.miss("(remaining dependencies)", path, e.message);
    }
  }

  /** The breadth-first walk over DT_NEEDED (after any preloads). */
  #loadAll(prog: Program, out: Collector): void {
    const queue: Loaded[] = [prog.main];
    for (const name of this.#preloadNames()) {
      const r = this.#load(prog, name, prog.main, out, "preload");
      if (r?.isNew) queue.push(r.obj);
    }
    const max = this.#opts.maxObjects ?? 4096;
    for (let i = 0; i < queue.length; i++) {
      const obj = queue[i];
      const wanted: [string, boolean][] = [
        ...obj.info.needed.map((n): [string, boolean] => [n, true]),
        ...obj.info.filters.map((n): [string, boolean] => [n, true]),
        ...obj.info.auxiliary.map((n): [string, boolean] => [n, false]),
      ];
      for (const [name, required] of wanted) {
        if (prog.objects.length >= max) {
          throw new WorkLimit(`more than ${max} objects; resolution stopped`);
        }
        const r = this.#load(prog, name, obj, out, "library", required);
        if (r?.isNew) queue.push(r.obj);
      }
    }
  }

  #noteTags(obj: Loaded, out: Collector): void {
    if (obj.info.audit) {
      out.warnings.add(`${obj.path}: DT_AUDIT ${obj.info.audit} is loaded as an audit module`);
    }
    if (obj.info.depaudit) {
      out.warnings.add(
        `${obj.path}: DT_DEPAUDIT ${obj.info.depaudit} is loaded as an audit module`,
      );
    }
  }

  /** Loads PT_INTERP into the link map under its path and SONAME, as rtld registers itself. */
  #interpreter(prog: Program, out: Collector): void {
    const name = prog.main.info.interpreter!;
    const by = prog.main.path;
    if (!name.startsWith("/")) {
      out.miss(name, by, "relative PT_INTERP (resolved against the working directory)");
      return;
    }
    const res = this.paths.resolve(name);
    if (res.kind !== "file") {
      out.miss(name, by, res.error ?? "no such file");
      return;
    }
    const insp = this.#inspect(res.real);
    if (typeof insp === "string" || !insp.elf) {
      const why = typeof insp === "string" ? insp : insp.elfError?.problem ?? "not an ELF file";
      out.miss(name, by, `interpreter is not usable: ${why}`);
      return;
    }
    const obj: Loaded = {
      path: name,
      real: res.real,
      id: `${res.dev}:${res.ino}`,
      info: insp.elf,
      loader: null,
      origin: dirname(name),
    };
    // rtld is known by the PT_INTERP string and its SONAME.
    if (!prog.byId.has(obj.id)) register(prog, obj, [name]);
    out.add(out.deps, name, res, "interpreter", by);
  }

  /** glibc's `_dl_map_object`: match a loaded object, or search and load. */
  #load(
    prog: Program,
    name: string,
    requester: Loaded,
    out: Collector,
    role: FileRole,
    required = true,
  ): { obj: Loaded; isNew: boolean } | null {
    const known = prog.byName.get(name);
    if (known) return { obj: known, isNew: false };
    const by = role === "preload" ? this.#preloadFile() : requester.path;
    const outcome = name.includes("/")
      ? this.#openPath(prog, name, requester)
      : this.#search(prog, name, requester, out);
    if (outcome.kind === "found") {
      const c = outcome.candidate;
      if (c.isNew) {
        register(prog, c.obj, [name, c.obj.path]);
        this.#noteTags(c.obj, out);
      } else if (!prog.byName.has(name)) {
        prog.byName.set(name, c.obj); // glibc's add_name_to_object
      }
      out.add(out.deps, c.obj.path, c.res, role, by, outcome.variants);
      return { obj: c.obj, isNew: c.isNew };
    }
    if (required) {
      out.miss(
        name,
        by,
        outcome.kind === "fatal"
          ? outcome.reason
          : outcome.skipped.length > 0
          ? `only incompatible candidates: ${outcome.skipped.join(", ")}`
          : "not found",
      );
    }
    return null;
  }

  /** A needed name containing `/`: a path, after `$ORIGIN` and friends are expanded. */
  #openPath(prog: Program, name: string, requester: Loaded): SearchOutcome {
    const expanded = this.#expand(name, requester);
    if (expanded === null) return { kind: "fatal", reason: "cannot expand its $ORIGIN/$PLATFORM" };
    if (!expanded.startsWith("/")) {
      return { kind: "fatal", reason: "relative path (resolved against the working directory)" };
    }
    const c = this.#candidate(prog, expanded, requester);
    if (c.kind === "ok") return { kind: "found", candidate: c, variants: [] };
    if (c.kind === "fatal") return c;
    return { kind: "none", skipped: c.kind === "skip" ? [c.why] : [] };
  }

  /** glibc's search for a name without `/`: RPATHs or RUNPATH, the cache, the defaults. */
  #search(prog: Program, name: string, requester: Loaded, out: Collector): SearchOutcome {
    const skipped: string[] = [];
    const inDirs = (dirs: string[]): SearchOutcome | null => {
      for (const dir of dirs) {
        const c = this.#candidate(prog, dir === "/" ? `/${name}` : `${dir}/${name}`, requester);
        if (c.kind === "ok") {
          return { kind: "found", candidate: c, variants: this.#dirVariants(dir, name) };
        }
        if (c.kind === "fatal") return c;
        if (c.kind === "skip") skipped.push(c.why);
        if (c.kind === "abandon") return null; // glibc gives up on the rest of this list
      }
      return null;
    };
    for (const dirs of this.#pathLists(prog, requester, out)) {
      const r = inDirs(dirs);
      if (r) return r;
    }
    const defaults = this.#defaultDirs(prog);
    const cache = this.#ldCache();
    if (cache) {
      const hit = lookupLdCache(cache, name, prog.abi);
      const p = hit.path;
      // With -z nodeflib, cache entries in the default directories are refused.
      const refused = p !== null && requester.info.nodeflib &&
        defaults.some((d) => p.startsWith(`${d}/`));
      if (p !== null && !refused) {
        const c = this.#candidate(prog, p, requester);
        if (c.kind === "ok") return { kind: "found", candidate: c, variants: hit.hwcapsVariants };
        if (c.kind === "fatal") return c;
        if (c.kind === "skip") skipped.push(c.why);
      }
    }
    if (!requester.info.nodeflib) {
      const r = inDirs(defaults);
      if (r) return r;
    }
    return { kind: "none", skipped };
  }

  /**
   * The RPATH/RUNPATH directory lists to try, in order, lazily (the program's
   * RPATH is skipped if the chain already tried it). An object with a
   * DT_RUNPATH has its DT_RPATH ignored, and uses only its own DT_RUNPATH.
   */
  *#pathLists(prog: Program, requester: Loaded, out: Collector): Generator<string[]> {
    if (requester.info.runpath !== null) {
      requester.runpathDirs ??= this.#searchList(
        requester.info.runpath,
        requester,
        "DT_RUNPATH",
        out,
      );
      yield requester.runpathDirs;
      return;
    }
    const rpathOf = (l: Loaded) =>
      l.info.rpath === null || l.info.runpath !== null
        ? null
        : (l.rpathDirs ??= this.#searchList(l.info.rpath, l, "DT_RPATH", out));
    let didMain = false;
    for (let l: Loaded | null = requester; l; l = l.loader) {
      const dirs = rpathOf(l);
      if (dirs === null) continue;
      yield dirs;
      didMain ||= l === prog.main;
    }
    const mainDirs = rpathOf(prog.main);
    if (!didMain && mainDirs !== null) yield mainDirs;
  }

  /** glibc's `open_verify` on one candidate path. */
  #candidate(prog: Program, path: string, requester: Loaded): Candidate {
    const limit = this.#opts.maxProbes ?? 100_000;
    if (++prog.probes > limit) {
      throw new WorkLimit(`more than ${limit} candidate files examined; resolution stopped`);
    }
    const res = this.paths.resolve(path);
    if (res.kind === "missing") {
      return res.error?.startsWith("too many levels") ? { kind: "abandon" } : { kind: "missing" };
    }
    if (res.kind === "dir") return { kind: "fatal", reason: `${path}: is a directory` };
    if (res.kind === "other") return { kind: "fatal", reason: `${path}: not a regular file` };
    const id = `${res.dev}:${res.ino}`;
    const existing = prog.byId.get(id);
    if (existing) return { kind: "ok", obj: existing, isNew: false, res };
    const insp = this.#inspect(res.real);
    if (typeof insp === "string") return { kind: "missing" }; // glibc skips EACCES and the like
    if (!isElf(insp.head)) return { kind: "fatal", reason: `${path}: invalid ELF header` };
    let ident: ElfIdent;
    try {
      ident = readElfIdent(insp.head, path);
    } catch (e) {
      return { kind: "fatal", reason: e instanceof ElfError ? e.message : String(e) };
    }
    const want = prog.ident;
    if (ident.elfClass !== want.elfClass) {
      return { kind: "skip", why: `${path} (ELF${ident.elfClass})` };
    }
    const bad = (why: string): Candidate => ({ kind: "fatal", reason: `${path}: ${why}` });
    if (ident.littleEndian !== want.littleEndian) return bad("ELF data encoding differs");
    if (ident.identVersion !== 1) return bad("ELF file version ident does not match current one");
    if (ident.osabi !== 0 && ident.osabi !== 3) return bad("ELF file OS ABI invalid");
    if (ident.osabi === 0 ? ident.abiVersion !== 0 : ident.abiVersion > 4) {
      return bad("ELF file ABI version invalid");
    }
    if (!ident.paddingZero) return bad("nonzero padding in e_ident");
    if (ident.version !== 1) return bad("ELF file version does not match current one");
    if (ident.machine !== want.machine) {
      return { kind: "skip", why: `${path} (machine ${ident.machine})` };
    }
    if (ident.type !== ET_DYN && ident.type !== ET_EXEC) {
      return bad("only ET_DYN and ET_EXEC can be loaded");
    }
    if (insp.elfError || !insp.elf) return bad(insp.elfError?.problem ?? "not an ELF file");
    const obj: Loaded = {
      path,
      real: res.real,
      id,
      info: insp.elf,
      loader: requester,
      // glibc takes $ORIGIN of a library from the path it opened, unresolved.
      origin: dirname(path),
    };
    return { kind: "ok", obj, isNew: true, res };
  }

  /** Splits and expands an RPATH/RUNPATH like glibc's `fillin_rpath`. */
  #searchList(value: string, owner: Loaded, tag: string, out: Collector): string[] {
    const dirs: string[] = [];
    for (const element of value.split(":")) {
      if (element === "") {
        out.warnings.add(`${owner.path}: empty ${tag} element means the working directory`);
        continue;
      }
      const expanded = this.#expand(element, owner);
      if (expanded === null || expanded === "") continue; // glibc drops the element
      let dir = expanded;
      while (dir.length > 1 && dir.endsWith("/")) dir = dir.slice(0, -1);
      if (!dir.startsWith("/")) {
        out.warnings.add(
          `${owner.path}: ${tag} element "${element}" is relative to the working directory`,
        );
        continue;
      }
      dirs.push(dir);
    }
    return dirs;
  }

  /**
   * Expands `$ORIGIN`, `$LIB`, `$PLATFORM` (and `${...}` forms) per glibc's
   * `is_dst`; an unknown `$NAME` stays literal. Null when a known token has no
   * value, which makes glibc drop the path.
   */
  #expand(text: string, obj: Loaded): string | null {
    if (!text.includes("$")) return text;
    const abi = archAbi(obj.info.machine, obj.info.elfClass, obj.info.flags);
    let out = "";
    let i = 0;
    while (i < text.length) {
      if (text[i] !== "$") {
        out += text[i++];
        continue;
      }
      const curly = text[i + 1] === "{";
      const body = i + 1 + (curly ? 1 : 0);
      let matched = false;
      for (const tok of ["ORIGIN", "PLATFORM", "LIB"]) {
        if (!text.startsWith(tok, body)) continue;
        const after = text[body + tok.length] ?? "";
        if (curly ? after !== "}" : /[A-Za-z0-9_]/.test(after)) continue;
        const value = tok === "ORIGIN"
          ? obj.origin
          : tok === "LIB"
          ? this.#libToken(abi)
          : this.#opts.platform ?? abi?.platform ?? null;
        if (value === null) return null;
        out += value;
        i = body + tok.length + (curly ? 1 : 0);
        matched = true;
        break;
      }
      if (!matched) out += text[i++];
    }
    return out;
  }

  #multiarch(abi: ArchAbi | null): boolean {
    if (!abi?.triplet) return false;
    for (const d of [`/usr/lib/${abi.triplet}`, `/lib/${abi.triplet}`]) {
      if (this.paths.resolve(d).kind === "dir") return true;
      // A jail's loader is a copy of the host's, so the host's layout decides too.
      try {
        if (Deno.statSync(d).isDirectory) return true;
      } catch {
        // not on the host either
      }
    }
    return false;
  }

  #libToken(abi: ArchAbi | null): string | null {
    if (this.#opts.lib !== undefined) return this.#opts.lib;
    if (!abi) return null;
    return this.#multiarch(abi) ? `lib/${abi.triplet}` : abi.libdir;
  }

  #defaultDirs(prog: Program): string[] {
    if (this.#opts.defaultDirs) return this.#opts.defaultDirs;
    const key = `${prog.ident.elfClass}:${prog.ident.machine}:${prog.abi?.triplet}`;
    let dirs = this.#defaults.get(key);
    if (!dirs) {
      const abi = prog.abi;
      if (abi && this.#multiarch(abi)) {
        dirs = [`/lib/${abi.triplet}`, `/usr/lib/${abi.triplet}`, "/lib", "/usr/lib"];
      } else {
        const libdir = abi?.libdir ?? (prog.ident.elfClass === 64 ? "lib64" : "lib");
        dirs = [`/${libdir}`, `/usr/${libdir}`];
      }
      this.#defaults.set(key, dirs);
    }
    return dirs;
  }

  /** glibc-hwcaps variants of `name` below a directory it was found in. */
  #dirVariants(dir: string, name: string): string[] {
    let subdirs = this.#hwcapsDirs.get(dir);
    if (!subdirs) {
      const res = this.paths.resolve(`${dir}/glibc-hwcaps`);
      subdirs = res.kind === "dir" ? this.paths.listDir(res.real).sort() : [];
      this.#hwcapsDirs.set(dir, subdirs);
    }
    return subdirs.map((s) => `${dir}/glibc-hwcaps/${s}/${name}`)
      .filter((p) => this.paths.resolve(p).kind === "file");
  }

  #ldCache(): LdCache | null {
    if (this.#cache !== undefined) return this.#cache;
    this.#cache = null;
    const where = this.#opts.ldSoCache ?? "/etc/ld.so.cache";
    if (where === false) return null;
    const res = this.paths.resolve(where);
    if (res.kind !== "file") return null; // the loader silently does without
    try {
      const bytes = Deno.readFileSync(this.paths.hostPath(res.real));
      this.#cache = parseLdCache(bytes, where);
    } catch (e) {
      // The loader ignores a cache it cannot use; say so, then do the same.
      const why = e instanceof LdCacheError ? e.problem : errorText(e);
      this.#warnings.push(`${where}: ignored: ${why}`);
    }
    return this.#cache;
  }

  #preloadFile(): string {
    const p = this.#opts.ldSoPreload;
    return p === undefined ? "/etc/ld.so.preload" : p === false ? "" : p;
  }

  /** Names listed in the root's `/etc/ld.so.preload`, which the loader loads into every program. */
  #preloadNames(): string[] {
    if (this.#preload !== undefined) return this.#preload;
    this.#preload = [];
    const where = this.#preloadFile();
    if (where === "") return this.#preload;
    const res = this.paths.resolve(where);
    if (res.kind !== "file") return this.#preload;
    try {
      const text = new TextDecoder().decode(Deno.readFileSync(this.paths.hostPath(res.real)));
      this.#preload = text.replace(/#[^\n]*/g, "").split(/[\s:]+/).filter((n) => n !== "")
        .slice(0, 1024);
      this.#warnings.push(`${where}: preloads ${this.#preload.join(" ")} into every program`);
    } catch (e) {
      this.#warnings.push(`${where}: unreadable: ${errorText(e)}`);
    }
    return this.#preload;
  }
}

/** Adds an object to a link map under `names` and its SONAME (first claim wins). */
function register(prog: Program, obj: Loaded, names: string[]): void {
  prog.objects.push(obj);
  prog.byId.set(obj.id, obj);
  for (const n of obj.info.soname === null ? names : [...names, obj.info.soname]) {
    if (!prog.byName.has(n)) prog.byName.set(n, obj);
  }
}

/** Lexical dirname of an absolute path (`/` for top-level names). */
function dirname(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}
