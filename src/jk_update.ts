/**
 * jk_update: bring a jail's copies of host files up to date (jailkit
 * behaviour §1.12). It scans directories of the jail and compares every
 * entry with the host file at the same path:
 *
 * - a file or symlink that differs from the host's is replaced by the host's,
 *   atomically, through the copy engine (src/jailcopy.ts), which also copies
 *   in the libraries the new version needs;
 * - an entry the host no longer has is removed (a directory once empty);
 * - host directories are descended; devices and other types are left alone.
 *
 * Differences from jailkit 2.23's jk_update:
 * - Root only, and the jail, its system directories and every ancestor must
 *   be safe (src/jailsafety.ts); jailkit checked nothing.
 * - Symlinks are compared and renewed (jailkit ignored them, so a library
 *   upgrade left `libfoo.so.1 -> libfoo.so.1.2` dangling once 1.2 was removed).
 * - Only directories owned by root and writable by nobody else are
 *   maintained: a user's home or /tmp inside the jail is never touched.
 * - A jail symlink such as `bin -> usr/bin` is scanned once, under its target.
 * - Files are replaced, never removed and re-copied: a program is never
 *   missing in between; removals come after all copies.
 * - `hardlinks` in jk_update.ini is honoured.
 * - `-d` prints exactly the lines a real run prints, and changes nothing.
 * - Failures exit 7 (jailkit always exited 0).
 *
 * @module
 */

import { JkError, parseCommandLine, runMain, warn } from "./cli.ts";
import { readIniFileIfPresent, unknownKeys } from "./ini.ts";
import { consoleReporter, CopyEngine, reasonOf, type Reporter } from "./jailcopy.ts";
import {
  type Dir,
  hostLstat,
  hostReadlink,
  Jail,
  JailEscapeError,
  jailPath,
  type NodeStat,
  sameBytes,
  UNSAFE_EXIT,
} from "./jailfs.ts";
import { checkJail } from "./jailsafety.ts";
import * as c from "./libc.ts";
import { iniPath, INSTALLED, type Site } from "./site.ts";

/**
 * Exit codes of jk_update (21 as jailkit's).
 *
 * @example
 * ```ts
 * if ((await jkUpdate(["-j", "/srv/jail"])) === EXIT.failed) console.error("see above");
 * ```
 */
export const EXIT = {
  ok: 0,
  usage: 1,
  jailNotDirectory: 3,
  notRoot: 5,
  unsafe: UNSAFE_EXIT,
  failed: 7,
  jailAndSection: 21,
} as const;

const USAGE = `Usage: jk_update -j JAIL [-d] [-k] [-v] [-s PATH]... [DIRECTORY...]
       jk_update -c SECTION [-d] [-k] [-v] [-s PATH]... [DIRECTORY...]
Bring the jail's copies of host files up to date: files and symlinks that
differ from the host are replaced (with any new libraries they need), entries
the host no longer has are removed. Only directories owned by root that nobody
else can write are maintained.

  -j, --jail=JAIL             the jail to update
  -c, --configsection=NAME    use section NAME of jk_update.ini; its name is
                              the jail path, its keys: skips, directories
                              (comma lists, added to the command line) and
                              hardlinks (yes/no)
  -d, --dry-run               print what a real run would print, change nothing
  -k, --hardlink              hard-link files instead of copying them
  -s, --skip=PATH             leave PATH (and below) alone; repeatable
  -v, --verbose               say more
  -h, --help                  show this help

DIRECTORY: jail directories to scan (with or without the jail prefix);
default /bin /lib /usr /opt.

Exit status: 0 done; 1 bad option or missing section; 3 the jail is not a
directory; 5 not run by root; 6 the jail is not safe, or a symlink in it
leads out of it; 7 something could not be updated (named on stderr); 21 both
-j and -c given.`;

const OPTIONS = {
  jail: { type: "string", short: "j" },
  configsection: { type: "string", short: "c" },
  "dry-run": { type: "boolean", short: "d" },
  hardlink: { type: "boolean", short: "k" },
  skip: { type: "string", short: "s", multiple: true },
  verbose: { type: "boolean", short: "v" },
  help: { type: "boolean", short: "h" },
} as const;

const DEFAULT_DIRECTORIES = ["/bin", "/lib", "/usr", "/opt"];
const INI_KEYS = ["skips", "directories", "hardlinks", "hardlink"];

/** What one run does, after the command line and ini are read. */
export interface UpdatePlan {
  jail: string;
  directories: string[];
  skips: string[];
  hardlink: boolean;
  dryRun: boolean;
  verbose: boolean;
}

/** What the scan found. */
interface Findings {
  /** In-jail paths whose host file or symlink differs. */
  outdated: string[];
  /** In-jail paths the host no longer has, children before their directory. */
  deprecated: { path: string; directory: boolean }[];
}

/**
 * Entry point: parses `args`, updates, returns the exit code (see `EXIT`).
 *
 * @example
 * ```ts
 * await jkUpdate(["-j", "/srv/jail", "-d"]); // 0
 * ```
 */
export async function jkUpdate(args: string[], site: Site = INSTALLED): Promise<number> {
  const { values, positionals } = parseCommandLine(args, OPTIONS, { usageExit: EXIT.usage });
  if (values.help) {
    console.log(USAGE);
    return EXIT.ok;
  }
  const jailArg = values.jail as string | undefined;
  const section = values.configsection as string | undefined;
  if (jailArg !== undefined && section !== undefined) {
    throw new JkError("cannot specify both a jail and a configsection", EXIT.jailAndSection);
  }
  if (jailArg === undefined && section === undefined) {
    throw new JkError("need a jail (-j) or a config section (-c); try --help", EXIT.usage);
  }
  if (c.geteuid() !== 0) throw new JkError("cannot run without root privileges", EXIT.notRoot);

  const plan: UpdatePlan = {
    jail: jailArg ?? section!,
    directories: [...positionals],
    skips: [...(values.skip as string[] | undefined ?? [])],
    hardlink: values.hardlink === true,
    dryRun: values["dry-run"] === true,
    verbose: values.verbose === true,
  };
  if (section !== undefined) await applySection(plan, section, iniPath(site, "jk_update"));
  if (!plan.jail.startsWith("/")) {
    throw new JkError(`jail must be an absolute path: ${plan.jail}`, EXIT.usage);
  }
  plan.jail = jailPath(plan.jail);
  const reporter = consoleReporter("jk_update");
  try {
    return update(plan, reporter);
  } finally {
    reporter.flush();
  }
}

/** Adds a jk_update.ini section's settings to `plan`. */
async function applySection(plan: UpdatePlan, name: string, file: string): Promise<void> {
  const ini = await readIniFileIfPresent(file, { pythonPercent: true });
  const found = ini?.section(name);
  if (!found) throw new JkError(`section ${name} does not exist in ${file}`, EXIT.usage);
  for (const { key, line } of unknownKeys(found, INI_KEYS)) {
    warn("jk_update", `${file}:${line}: unknown key "${key}" in [${name}], ignored`);
  }
  plan.skips.push(...found.list("skips"));
  plan.directories.push(...found.list("directories"));
  plan.hardlink ||= found.bool("hardlinks", false) || found.bool("hardlink", false);
}

/**
 * Checks the jail, scans it and updates it (or, in a dry run, prints what
 * would be done). Returns the exit code.
 *
 * @example
 * ```ts
 * update({ jail: "/srv/jail", directories: [], skips: [], hardlink: false, dryRun: true,
 *   verbose: false }, consoleReporter("jk_update"));
 * ```
 */
export function update(plan: UpdatePlan, reporter: Reporter): number {
  const info = hostLstat(plan.jail);
  if (info?.type !== "dir") {
    throw new JkError(`${plan.jail} is not a directory`, EXIT.jailNotDirectory);
  }
  const findings = checkJail(plan.jail);
  if (findings.length > 0) {
    throw new JkError(
      `jail ${plan.jail} is not safe: ${findings.map((f) => f.message).join("; ")}`,
      EXIT.unsafe,
    );
  }
  if (plan.dryRun) warn("jk_update", "dry run: nothing is changed");

  const jail = Jail.open(plan.jail, { dryRun: plan.dryRun });
  try {
    const scanner = new Scanner(jail, plan, reporter);
    const found = scanner.scan(scanDirectories(plan));
    const engine = new CopyEngine(jail, { reporter, verbose: plan.verbose });
    for (const path of found.outdated) {
      reporter.info(`updating outdated file ${jail.show(path)}`);
      engine.copySync([path], { force: true, hardlink: plan.hardlink });
    }
    let failures = scanner.errors + engine.errors.length;
    for (const { path, directory } of found.deprecated) {
      const what = directory ? "directory" : "file";
      try {
        const dir = jail.lookupDir(parentPath(path));
        if (!dir) continue;
        reporter.info(`removing deprecated ${what} ${jail.show(path)}`);
        jail.remove(dir, baseName(path), directory);
      } catch (e) {
        if (e instanceof JailEscapeError) throw e;
        // Already gone: a temporary a killed run left, removed by the copies above.
        if (e instanceof c.LibcError && e.errno === c.ENOENT) continue;
        if (directory && e instanceof c.LibcError && e.errno === c.ENOTEMPTY) {
          if (plan.verbose) reporter.verbose(`${jail.show(path)} is not empty, kept`);
          continue;
        }
        reporter.error(`cannot remove ${jail.show(path)}: ${reasonOf(e)}`);
        failures++;
      }
    }
    return failures > 0 ? EXIT.failed : EXIT.ok;
  } finally {
    jail.close();
  }
}

/** The in-jail directories to scan: given ones (jail prefix stripped) or the defaults. */
function scanDirectories(plan: UpdatePlan): string[] {
  const given = plan.directories.length > 0 ? plan.directories : DEFAULT_DIRECTORIES;
  return given.map((d) => {
    const stripped = d === plan.jail || d.startsWith(plan.jail + "/")
      ? d.slice(plan.jail.length) || "/"
      : d;
    return jailPath(stripped);
  });
}

/** Walks the jail's directories and compares each entry with the host. */
class Scanner {
  errors = 0;
  readonly #skips: Set<string>;
  readonly #scanned = new Set<string>();
  readonly #found: Findings = { outdated: [], deprecated: [] };

  constructor(readonly jail: Jail, readonly plan: UpdatePlan, readonly reporter: Reporter) {
    this.#skips = new Set(plan.skips.map((s) => s.replace(/(.)\/+$/, "$1")));
  }

  scan(directories: string[]): Findings {
    for (const path of directories) {
      if (this.#skipped(path)) continue;
      const dir = this.jail.lookupDir(path);
      if (!dir) {
        this.#detail(`${this.jail.show(path)} does not exist, not scanned`);
        continue;
      }
      this.#scanDir(dir.path);
    }
    return this.#found;
  }

  #detail(line: string): void {
    if (this.plan.verbose) this.reporter.verbose(line);
  }

  /** Skips match the host path or the jail path, exactly (and so everything below). */
  #skipped(path: string): boolean {
    if (!this.#skips.has(path) && !this.#skips.has(this.jail.show(path))) return false;
    this.reporter.info(`skip ${this.jail.show(path)}`);
    return true;
  }

  /** Scans one resolved in-jail directory, once. */
  #scanDir(path: string): void {
    if (this.#scanned.has(path)) return;
    this.#scanned.add(path);
    const dir = this.jail.lookupDir(path);
    if (!dir) return;
    const own = dir.fd >= 0 ? c.fstat(dir.fd) : null;
    if (own && (own.uid !== 0 || own.mode & 0o022)) {
      this.#detail(`${this.jail.show(path)} is not a root-only directory, not maintained`);
      return;
    }
    const names = this.jail.list(dir).map((e) => e.name).sort();
    for (const name of names) {
      const child = path === "/" ? `/${name}` : `${path}/${name}`;
      if (this.#skipped(child)) continue;
      try {
        this.#compare(child);
      } catch (e) {
        if (e instanceof JailEscapeError) throw e;
        this.reporter.error(
          `while checking if ${this.jail.show(child)} needs an update: ${reasonOf(e)}`,
        );
        this.errors++;
      }
    }
  }

  #compare(path: string): void {
    const dir = this.jail.lookupDir(parentPath(path));
    if (!dir) return;
    const name = baseName(path);
    const mine = this.jail.stat(dir, name);
    if (!mine) return;
    const host = hostLstat(path);
    if (!host) {
      if (mine.type === "dir") this.#scanDir(path);
      this.#found.deprecated.push({ path, directory: mine.type === "dir" });
      return;
    }
    if (host.type === "dir") {
      if (mine.type === "dir") return this.#scanDir(path);
      // A link where the host has a directory: refused if it leads out of the jail.
      if (mine.type === "symlink") this.jail.lookupDir(path);
      this.#detail(`${this.jail.show(path)} is a ${mine.type}, the host's a directory`);
      return;
    }
    if (host.type !== "file" && host.type !== "symlink") return;
    if (mine.type !== "file" && mine.type !== "symlink") return;
    if (this.#differs(dir, name, mine, path, host)) this.#found.outdated.push(path);
  }

  #differs(dir: Dir, name: string, mine: NodeStat, path: string, host: NodeStat): boolean {
    if (mine.type !== host.type) return true;
    if (host.type === "symlink") return this.jail.readlink(dir, name) !== hostReadlink(path);
    if (mine.dev === host.dev && mine.ino === host.ino) return false; // a hard link of it
    if (mine.size !== host.size) return true;
    const ours = this.jail.openFile(dir, name);
    try {
      const theirs = c.open(path, c.O_RDONLY | c.O_NOFOLLOW | c.O_NONBLOCK | c.O_NOCTTY);
      try {
        return !sameBytes(ours, theirs, host.size);
      } finally {
        c.close(theirs);
      }
    } finally {
      c.close(ours);
    }
  }
}

function parentPath(path: string): string {
  const at = path.lastIndexOf("/");
  return at <= 0 ? "/" : path.slice(0, at);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

if (import.meta.main) await runMain("jk_update", () => jkUpdate(Deno.args));
