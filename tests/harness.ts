/**
 * Shared test plumbing: a dev install of every tool into a scratch prefix, and
 * helpers to run the installed tools the way a user or an admin would.
 *
 * `deno task test` (tests/run.ts) installs once and passes the prefix in
 * `JK_TEST_PREFIX`. A test file run on its own (`deno test -A tests/x_test.ts`)
 * gets its own install on first use, removed when the process ends.
 *
 * Jails and prefixes live under /var/lib: a jail below a world-writable
 * directory such as /tmp is (rightly) refused by the tools.
 *
 * @module
 */

import { install } from "../src/install.ts";
import type { Site } from "../src/site.ts";
import { findTool } from "../src/tools.ts";

let prefix: string | undefined = Deno.env.get("JK_TEST_PREFIX");
let installing: Promise<string> | undefined;

/** Creates a root-owned 0755 scratch directory under /var/lib. */
export async function scratchDir(label: string): Promise<string> {
  const dir = await Deno.makeTempDir({ dir: "/var/lib", prefix: `jktest-${label}-` });
  await Deno.chmod(dir, 0o755);
  return dir;
}

/**
 * The prefix of the dev install under test, installing it on first use.
 *
 * @example
 * ```ts
 * const p = await testPrefix(); // e.g. "/var/lib/jktest-prefix-ab12"
 * ```
 */
export function testPrefix(): Promise<string> {
  if (prefix) return Promise.resolve(prefix);
  installing ??= (async () => {
    const dir = await scratchDir("prefix");
    await install({
      site: { prefix: dir, sysconfdir: `${dir}/etc/jailkit` },
      dev: true,
      caps: false,
      log: () => {},
    });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    prefix = dir;
    return dir;
  })();
  return installing;
}

/** The site of the install under test. */
export async function testSite(): Promise<Site> {
  const p = await testPrefix();
  return { prefix: p, sysconfdir: `${p}/etc/jailkit` };
}

/** Absolute path of an installed tool's public entry. */
export async function toolPathUnderTest(name: string): Promise<string> {
  const tool = findTool(name);
  if (!tool) throw new Error(`no tool ${name} in src/tools.ts`);
  return `${await testPrefix()}/${tool.dir}/${name}`;
}

/** What a finished command left behind. */
export interface RunResult {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** Options for `runTool`, `runCommand` and `spawnCommand`. */
export interface RunOptions {
  /** Run as this uid/gid (Deno sets groups to none when either is given). */
  uid?: number;
  gid?: number;
  /** Environment; by default a minimal one. */
  env?: Record<string, string>;
  /** Bytes or text fed to stdin (`runCommand`); with `spawnCommand`, any value pipes stdin. */
  stdin?: string | Uint8Array;
  cwd?: string;
}

/** The environment a command gets unless the test gives one. */
const MINIMAL_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C" };

/**
 * Runs an installed tool with `args` and collects its output.
 *
 * @example
 * ```ts
 * const r = await runTool("jk_list", ["-w"]);
 * assertEquals(r.code, 0);
 * ```
 */
export async function runTool(name: string, args: string[], opts: RunOptions = {}) {
  return runCommand(await toolPathUnderTest(name), args, opts);
}

/**
 * Starts `cmd` with a clean environment, stdout and stderr piped (stdin piped
 * when `opts.stdin` is given, else /dev/null), for a test that watches it run.
 *
 * @example
 * ```ts
 * const child = spawnCommand("/usr/bin/sleep", ["5"]);
 * const r = await finishChild(child);
 * ```
 */
export function spawnCommand(cmd: string, args: string[], opts: RunOptions = {}) {
  return new Deno.Command(cmd, {
    args,
    uid: opts.uid,
    gid: opts.gid,
    cwd: opts.cwd,
    clearEnv: true,
    env: opts.env ?? MINIMAL_ENV,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs any command like `runTool` does. */
export async function runCommand(
  cmd: string,
  args: string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const child = spawnCommand(cmd, args, opts);
  return opts.stdin === undefined ? collectOutput(child) : finishChild(child, opts.stdin);
}

/**
 * Waits for a child spawned with piped stdout and stderr, and decodes both.
 *
 * @example
 * ```ts
 * const r = await collectOutput(spawnCommand("id", []));
 * ```
 */
export async function collectOutput(child: Deno.ChildProcess): Promise<RunResult> {
  const out = await child.output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/**
 * Writes `input` to a child's piped stdin, closes it (ending a child blocked
 * in `read`) and collects the output. A child that already exited or closed
 * its stdin is not an error here: its output tells.
 *
 * @example
 * ```ts
 * const r = await finishChild(child, "\n");
 * ```
 */
export async function finishChild(
  child: Deno.ChildProcess,
  input: string | Uint8Array = "",
): Promise<RunResult> {
  const writer = child.stdin.getWriter();
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  if (bytes.length > 0) await writer.write(bytes).catch(() => {});
  await writer.close().catch(() => {});
  return collectOutput(child);
}

/** A throw-away host account. */
export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** Deletes the account, its group and its home. */
  remove(): Promise<void>;
}

/**
 * Creates a host user `jkt<random>` with useradd (extra groups optional).
 * Always `remove()` it in a `finally`.
 *
 * @example
 * ```ts
 * const u = await createUser();
 * try { ... } finally { await u.remove(); }
 * ```
 */
export async function createUser(
  opts: { groups?: string[]; home?: string; shell?: string } = {},
): Promise<TestUser> {
  const name = `jkt${crypto.randomUUID().slice(0, 8)}`;
  const home = opts.home ?? `/home/${name}`;
  const args = ["-m", "-d", home, "-s", opts.shell ?? "/bin/sh", "-U"];
  if (opts.groups?.length) args.push("-G", opts.groups.join(","));
  const r = await runCommand("useradd", [...args, name]);
  if (r.code !== 0) throw new Error(`useradd failed: ${r.stderr}`);
  const id = async (flag: string) => Number((await runCommand("id", [flag, name])).stdout.trim());
  return {
    name,
    uid: await id("-u"),
    gid: await id("-g"),
    home,
    remove: async () => {
      await runCommand("pkill", ["-KILL", "-u", name]);
      await runCommand("userdel", ["-r", "-f", name]);
      await runCommand("groupdel", [name]);
    },
  };
}

/**
 * Copies host programs into `jail` at the same paths, with the libraries the
 * real loader reports for them (`ld.so --list`: test fixtures only; the product
 * resolves libraries itself, see src/deps.ts), and merged-/usr links.
 *
 * @example
 * ```ts
 * await copyWithLibs("/var/lib/jktest-j-1", ["/usr/bin/sleep"]);
 * ```
 */
export async function copyWithLibs(jail: string, programs: string[]): Promise<void> {
  const files = new Set<string>(programs);
  for (const p of programs) {
    const r = await runCommand("/lib64/ld-linux-x86-64.so.2", ["--list", p]);
    for (const m of r.stdout.matchAll(/(\/\S+) \(0x/g)) files.add(m[1]);
  }
  for (const link of ["bin", "lib", "lib64", "sbin"]) {
    const target = await Deno.readLink(`/${link}`).catch(() => null);
    if (target) await Deno.symlink(target, `${jail}/${link}`).catch(() => {});
  }
  for (const f of files) {
    // Recreate every symlink on the way (e.g. /usr/lib64/ld-linux... -> ../lib/...).
    let cur = f;
    for (let hops = 0; hops < 16; hops++) {
      const dir = await Deno.realPath(cur.slice(0, cur.lastIndexOf("/")) || "/");
      const leaf = `${dir === "/" ? "" : dir}/${cur.slice(cur.lastIndexOf("/") + 1)}`;
      await Deno.mkdir(`${jail}${dir}`, { recursive: true });
      const info = await Deno.lstat(leaf);
      if (!info.isSymlink) {
        await Deno.copyFile(leaf, `${jail}${leaf}`);
        await Deno.chmod(`${jail}${leaf}`, 0o755);
        break;
      }
      const target = await Deno.readLink(leaf);
      await Deno.symlink(target, `${jail}${leaf}`).catch(() => {});
      cur = target.startsWith("/") ? target : `${dir}/${target}`;
    }
  }
}
