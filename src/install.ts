/**
 * `deno task install [--prefix DIR] [--sysconfdir DIR] [--dev] [--caps]`
 *
 * Installs every tool of `src/tools.ts`:
 * - compiled (default): `build.ts` compiles each tool for this site into
 *   `dist/`; unprivileged tools go to PREFIX/usr/sbin (or usr/bin), privileged
 *   ones to PREFIX/usr/lib/jailkit/ behind a trampoline at the public name;
 * - `--dev`: no compiled binaries (they need `denort`, see build.ts). The Deno
 *   runtime, the sources and a pre-warmed module cache go to
 *   PREFIX/usr/lib/jailkit/, and each public name is a native launcher that runs
 *   `deno run` with exactly the flags the compiled binary would bake.
 *
 * Privileged entries are `shells/trampoline.c` built with `cc`, setuid root or
 * (`--caps`) with cap_sys_chroot,cap_setuid,cap_setgid. The ini files go to the
 * sysconfdir (an existing file is kept and the new one written as `.dist`), and
 * jk_chrootsh is added to PREFIX/etc/shells. Paths baked into the tools and the
 * ini files follow the prefix and sysconfdir.
 *
 * Exit codes: 0 done, 1 failed (message names the step), 2 usage.
 *
 * @module
 */

import { basename, dirname, join } from "./paths.ts";
import { errorText, JkError, parseCommandLine, runMain } from "./cli.ts";
import { compileLauncher, type LauncherSpec } from "./launchers.ts";
import { libDir, logSocketPath, type Site, toolPath, validateSite } from "./site.ts";
import { lshLogSocket, runArgs, type Tool, TOOLS } from "./tools.ts";

/** The repository this module belongs to. */
const REPO = dirname(dirname(new URL(import.meta.url).pathname));

/** Options of one installation. */
export interface InstallOptions {
  site: Site;
  /** Install dev launchers (deno run) instead of compiled binaries. */
  dev: boolean;
  /** Privileged entries get file capabilities instead of the setuid bit. */
  caps: boolean;
  /** Deno executable copied into dev installs (default: the running one). */
  deno?: string;
  /** Progress lines go here (default: stdout). */
  log?: (line: string) => void;
}

const USAGE = `Usage: deno task install [--prefix DIR] [--sysconfdir DIR] [--dev] [--caps]
                         [--log-socket PATH]

  --prefix DIR       install below DIR (DIR/usr/sbin, DIR/usr/bin, DIR/usr/lib/jailkit)
  --sysconfdir DIR   ini files directory (default DIR/etc/jailkit, /etc/jailkit without prefix)
  --dev              dev launchers running the sources with deno run (no denort needed)
  --caps             privileged entries get file capabilities instead of setuid root
  --log-socket PATH  the system logger's datagram socket (default /dev/log)
  -h, --help         this text`;

/** The sources a dev install or a compile needs: modules only, no tests. */
const SOURCE_DIRS = ["src", "shells"];

/**
 * Copies the sources into `dest` with `src/site.ts` rewritten for `site`, so
 * every path the tools use follows the install.
 *
 * @example
 * ```ts
 * await stageSources({ prefix: "/opt/jk", sysconfdir: "/opt/jk/etc/jailkit" }, "/opt/jk/usr/lib/jailkit");
 * ```
 */
export async function stageSources(site: Site, dest: string): Promise<void> {
  for (const dir of SOURCE_DIRS) await stageDir(site, dir, dest);
}

/** Copies the `.ts` and `.c` files of `REPO/dir`, subdirectories included. */
async function stageDir(site: Site, dir: string, dest: string): Promise<void> {
  await Deno.mkdir(join(dest, dir), { recursive: true, mode: 0o755 });
  for await (const entry of Deno.readDir(join(REPO, dir))) {
    const rel = join(dir, entry.name);
    if (entry.isDirectory) {
      await stageDir(site, rel, dest);
      continue;
    }
    if (!entry.isFile || !/\.(ts|c)$/.test(entry.name)) continue;
    let text = await Deno.readTextFile(join(REPO, rel));
    if (rel === "src/site.ts") text = rewriteSite(text, site);
    await Deno.writeTextFile(join(dest, rel), text, { mode: 0o644 });
  }
}

/** Replaces the `INSTALLED` literal of site.ts; fails loudly if its shape changed. */
function rewriteSite(text: string, site: Site): string {
  const pattern = /export const INSTALLED: Site = \{[^}]*\};/;
  if (!pattern.test(text)) throw new JkError("src/site.ts: INSTALLED literal not found");
  return text.replace(
    pattern,
    `export const INSTALLED: Site = ${JSON.stringify(site).replace(/"(\w+)":/g, "$1: ")};`,
  );
}

/**
 * Rewrites default paths in an ini file for a site: `/etc/jailkit` becomes the
 * sysconfdir and `/usr/sbin/jk_`, `/usr/bin/jk_`, `/usr/lib/jailkit` move below
 * the prefix.
 *
 * @example
 * ```ts
 * sitePaths("paths = /usr/sbin/jk_lsh, /etc/jailkit/jk_lsh.ini",
 *   { prefix: "/opt/x", sysconfdir: "/opt/x/etc/jailkit" });
 * // "paths = /opt/x/usr/sbin/jk_lsh, /opt/x/etc/jailkit/jk_lsh.ini"
 * ```
 */
export function sitePaths(text: string, site: Site): string {
  return text
    .replace(/\/etc\/jailkit(?=[\/\s,]|$)/gm, site.sysconfdir)
    .replace(/(^|[\s,=])\/usr\/(sbin|bin)\/jk_/gm, `$1${site.prefix}/usr/$2/jk_`)
    .replace(/(^|[\s,=])\/usr\/lib\/jailkit(?=[\/\s,]|$)/gm, `$1${libDir(site)}`);
}

/** Runs a command, failing with its stderr. */
async function run(cmd: string, args: string[], env?: Record<string, string>): Promise<void> {
  const out = await new Deno.Command(cmd, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-5).join("\n");
    throw new JkError(`${basename(cmd)} ${args.slice(0, 2).join(" ")} failed:\n${err}`);
  }
}

/** Environment of Deno under a dev launcher: its cache, and no update check. */
function devEnvironment(lib: string): string[] {
  return [
    `DENO_DIR=${lib}/cache`,
    "DENO_NO_UPDATE_CHECK=1",
    "NO_COLOR=1",
  ];
}

/** The fixed environment a privileged target starts with. */
const PRIVILEGED_PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The file a dev launcher runs: the tool's one-file bundle beside its staged
 * entry (`src/jk_cp.ts` → `src/jk_cp.js`) when one was made, else the entry.
 *
 * @example
 * ```ts
 * devEntry(findTool("jk_cp")!, "/usr/lib/jailkit", true); // "/usr/lib/jailkit/src/jk_cp.js"
 * ```
 */
export function devEntry(tool: Tool, lib: string, bundled: boolean): string {
  return `${lib}/${bundled ? tool.entry.replace(/\.ts$/, ".js") : tool.entry}`;
}

/** How a tool's public name is reached in a dev install. */
function devLauncher(tool: Tool, site: Site, caps: boolean, bundled: boolean): LauncherSpec {
  const lib = libDir(site);
  const env = devEnvironment(lib);
  return {
    tool: tool.name,
    target: `${lib}/deno`,
    args: runArgs(tool, site, devEntry(tool, lib, bundled)),
    env: tool.privileged ? [PRIVILEGED_PATH, "HOME=/", ...env] : env,
    privileged: tool.privileged,
    caps,
  };
}

/** A trampoline in front of a compiled privileged binary. */
function compiledTrampoline(tool: Tool, site: Site, caps: boolean): LauncherSpec {
  return {
    tool: tool.name,
    target: `${libDir(site)}/${tool.name}`,
    args: [],
    env: [PRIVILEGED_PATH, "HOME=/"],
    privileged: true,
    caps,
  };
}

/**
 * Bundles the staged entry of every tool without an `unbundled` reason
 * (src/tools.ts) into one JavaScript file beside it (`deno bundle`). A compiled binary holds its
 * modules already transpiled in one archive; a dev launcher running the
 * sources instead reads, hashes and looks up every module in the cache at
 * each start, which a bundle saves (`deno task bench floors` measures it).
 * Returns the names of the tools bundled; when bundling is impossible
 * (`deno bundle` fetches esbuild from npm on first use), says so and returns
 * none: the launchers then run the sources, which behave the same.
 */
async function bundleEntries(lib: string, log: (l: string) => void): Promise<Set<string>> {
  const tools = TOOLS.filter((t) => t.unbundled === undefined);
  try {
    await run(`${lib}/deno`, [
      "bundle",
      "--no-config",
      "--no-lock",
      "--platform",
      "deno",
      "--outdir",
      lib,
      ...tools.map((t) => `${lib}/${t.entry}`),
    ], { DENO_NO_UPDATE_CHECK: "1" });
    for (const t of tools) await Deno.stat(devEntry(t, lib, true));
  } catch (e) {
    log(`warning   no bundles, the launchers run the sources: ${errorText(e).split("\n")[0]}`);
    // A bundle left by an earlier install would be stale beside the new sources.
    for (const t of tools) await Deno.remove(devEntry(t, lib, true)).catch(() => {});
    return new Set();
  }
  log(`bundles   ${tools.length} tools, each beside its entry (src/jk_cp.ts: src/jk_cp.js)`);
  return new Set(tools.map((t) => t.name));
}

/**
 * Installs the Deno runtime, the staged sources, their bundles and a warm
 * module cache; returns the names of the tools bundled.
 */
async function installDevRuntime(
  site: Site,
  deno: string,
  log: (l: string) => void,
): Promise<Set<string>> {
  const lib = libDir(site);
  await Deno.mkdir(lib, { recursive: true, mode: 0o755 });
  log(`runtime   ${lib}/deno`);
  const staged = `${lib}/.deno.new`;
  await Deno.copyFile(deno, staged);
  await Deno.chmod(staged, 0o755);
  await Deno.rename(staged, `${lib}/deno`);
  await stageSources(site, lib);
  const bundled = await bundleEntries(lib, log);
  // Warm the cache as root, for exactly the files the launchers run, so
  // callers never transpile into a directory they control and no start
  // parses its file again to find its imports (a bundle missing from the
  // cache would cost every start that parse, in time and memory); the
  // launchers run with --cached-only against it.
  const entries = TOOLS.map((t) => devEntry(t, lib, bundled.has(t.name)));
  await run(`${lib}/deno`, ["cache", "--no-config", "--no-lock", ...entries], {
    DENO_DIR: `${lib}/cache`,
    DENO_NO_UPDATE_CHECK: "1",
    PATH: "/usr/bin:/bin",
    HOME: "/",
  });
  await run("chmod", ["-R", "go-w,a+rX", lib]);
  return bundled;
}

/** Copies a file to `dest` under a temporary name, with mode, then renames it. */
async function placeFile(source: string, dest: string, mode: number): Promise<void> {
  const staged = join(dirname(dest), `.${basename(dest)}.new`);
  await Deno.copyFile(source, staged);
  await Deno.chown(staged, 0, 0);
  await Deno.chmod(staged, mode);
  await Deno.rename(staged, dest);
}

/** Installs the ini files; an existing file is kept and the new one becomes `.dist`. */
async function installConfig(site: Site, log: (l: string) => void): Promise<void> {
  await Deno.mkdir(site.sysconfdir, { recursive: true, mode: 0o755 });
  for await (const entry of Deno.readDir(join(REPO, "config"))) {
    if (!entry.isFile || !entry.name.endsWith(".ini")) continue;
    const text = sitePaths(await Deno.readTextFile(join(REPO, "config", entry.name)), site);
    let dest = join(site.sysconfdir, entry.name);
    if (await exists(dest)) dest += ".dist";
    log(`config    ${dest}`);
    const staged = `${dest}.new`;
    await Deno.writeTextFile(staged, text, { mode: 0o644 });
    await Deno.chmod(staged, 0o644);
    await Deno.rename(staged, dest);
  }
}

/**
 * Installs the systemd units of config/ (jk_socketd.service) into
 * PREFIX/etc/systemd/system, paths rewritten for the site; an existing unit is
 * kept and the new one becomes `.dist`. Nothing is enabled or started.
 */
async function installUnits(site: Site, log: (l: string) => void): Promise<void> {
  const dir = `${site.prefix}/etc/systemd/system`;
  for await (const entry of Deno.readDir(join(REPO, "config"))) {
    if (!entry.isFile || !entry.name.endsWith(".service")) continue;
    const text = sitePaths(await Deno.readTextFile(join(REPO, "config", entry.name)), site);
    await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
    let dest = join(dir, entry.name);
    if (await exists(dest)) dest += ".dist";
    log(`unit      ${dest}`);
    const staged = `${dest}.new`;
    await Deno.writeTextFile(staged, text, { mode: 0o644 });
    await Deno.chmod(staged, 0o644);
    await Deno.rename(staged, dest);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * jk_lsh logs through `lshLogSocket(site)`, a symlink to the log socket: Deno
 * refuses /dev/log itself short of --allow-all. The link is copied into jails
 * by jk_init's [jk_lsh] section, where /dev/log is the jail's own socket.
 */
async function linkLogSocket(site: Site, log: (l: string) => void): Promise<void> {
  const link = lshLogSocket(site);
  await Deno.mkdir(dirname(link), { recursive: true, mode: 0o755 });
  const staged = `${link}.new`;
  await Deno.remove(staged).catch(() => {});
  await Deno.symlink(logSocketPath(site), staged);
  await Deno.rename(staged, link);
  log(`log link  ${link} -> ${logSocketPath(site)}`);
}

/** Adds the chroot shell to PREFIX/etc/shells when it is not listed yet. */
async function registerShell(site: Site, shell: string, log: (l: string) => void) {
  const shells = `${site.prefix}/etc/shells`;
  let text = "";
  try {
    text = await Deno.readTextFile(shells);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (text.split("\n").includes(shell)) return;
  log(`shell     ${shell} >> ${shells}`);
  await Deno.mkdir(dirname(shells), { recursive: true });
  await Deno.writeTextFile(shells, (text && !text.endsWith("\n") ? "\n" : "") + shell + "\n", {
    append: true,
  });
}

/**
 * Installs every tool for `options.site`.
 *
 * @example
 * ```ts
 * await install({ site: { prefix: "/opt/jkt", sysconfdir: "/opt/jkt/etc/jailkit" }, dev: true, caps: false });
 * ```
 */
export async function install(options: InstallOptions): Promise<void> {
  const { site, dev, caps } = options;
  const log = options.log ?? ((l: string) => console.log(l));
  const problem = validateSite(site);
  if (problem) throw new JkError(problem, 2);
  const trampoline = join(REPO, "shells", "trampoline.c");
  let bundled = new Set<string>();
  if (dev) {
    bundled = await installDevRuntime(site, options.deno ?? Deno.execPath(), log);
  } else {
    const { buildAll } = await import("../build.ts");
    await buildAll(site, join(REPO, "dist"), log);
  }
  for (const tool of TOOLS) {
    const dest = toolPath(site, tool.dir, tool.name);
    await Deno.mkdir(dirname(dest), { recursive: true, mode: 0o755 });
    if (dev) {
      log(`launcher  ${dest}${tool.privileged ? (caps ? " (caps)" : " (setuid)") : ""}`);
      await compileLauncher(
        devLauncher(tool, site, caps, bundled.has(tool.name)),
        trampoline,
        dest,
      );
    } else if (tool.privileged) {
      await placeFile(join(REPO, "dist", tool.name), `${libDir(site)}/${tool.name}`, 0o755);
      log(`trampoline ${dest} -> ${libDir(site)}/${tool.name}`);
      await compileLauncher(compiledTrampoline(tool, site, caps), trampoline, dest);
    } else {
      log(`binary    ${dest}`);
      await placeFile(join(REPO, "dist", tool.name), dest, 0o755);
    }
  }
  await linkLogSocket(site, log);
  await installConfig(site, log);
  await installUnits(site, log);
  const chrootsh = TOOLS.find((t) => t.name === "jk_chrootsh");
  if (chrootsh) await registerShell(site, toolPath(site, chrootsh.dir, chrootsh.name), log);
  log(`installed ${TOOLS.length} tools below ${site.prefix || "/"}`);
}

/** Reads the command line of `deno task install`. */
export function installOptions(args: string[]): InstallOptions | null {
  const { values } = parseCommandLine(args, {
    prefix: { type: "string" },
    sysconfdir: { type: "string" },
    dev: { type: "boolean" },
    caps: { type: "boolean" },
    "log-socket": { type: "string" },
    help: { type: "boolean", short: "h" },
  }, { positionals: false, usageExit: 2 });
  if (values.help) return null;
  const prefix = ((values.prefix as string | undefined) ?? "").replace(/\/+$/, "");
  const sysconfdir = (values.sysconfdir as string | undefined) ??
    `${prefix}/etc/jailkit`;
  const logSocket = values["log-socket"] as string | undefined;
  const site: Site = { prefix, sysconfdir, ...(logSocket === undefined ? {} : { logSocket }) };
  return { site, dev: !!values.dev, caps: !!values.caps };
}

if (import.meta.main) {
  await runMain("install", async () => {
    const options = installOptions(Deno.args);
    if (!options) {
      console.log(USAGE);
      return 0;
    }
    if (Deno.uid() !== 0) throw new JkError("must run as root (it sets owners and setuid bits)");
    await install(options);
  });
}
