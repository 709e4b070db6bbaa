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
  return await (opts.stdin === undefined ? collectOutput(child) : finishChild(child, opts.stdin));
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
      // Killed is not yet gone: wait, so the next account given this uid starts
      // with no process (jk_jailuser refuses a user with running processes).
      for (let i = 0; i < 100; i++) {
        if ((await runCommand("pgrep", ["-u", name])).code !== 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await runCommand("userdel", ["-r", "-f", name]);
      await runCommand("groupdel", [name]);
      // userdel -r removes the home the account has at the end; a test that
      // moved it (jk_jailuser) leaves the one useradd made.
      await Deno.remove(`/home/${name}`, { recursive: true }).catch(() => {});
    },
  };
}

/** A throw-away host group. */
export interface TestGroup {
  name: string;
  gid: number;
  /** Deletes the group. */
  remove(): Promise<void>;
}

/**
 * Creates a host group `jkg<random>` with groupadd. Always `remove()` it in a
 * `finally` (after the users in it).
 *
 * @example
 * ```ts
 * const g = await createGroup();
 * const u = await createUser({ groups: [g.name] });
 * ```
 */
export async function createGroup(): Promise<TestGroup> {
  const name = `jkg${crypto.randomUUID().slice(0, 6)}`;
  const r = await runCommand("groupadd", [name]);
  if (r.code !== 0) throw new Error(`groupadd failed: ${r.stderr}`);
  const entry = (await runCommand("getent", ["group", name])).stdout;
  return {
    name,
    gid: Number(entry.split(":")[2]),
    remove: async () => void await runCommand("groupdel", [name]),
  };
}

/**
 * Compiles a C `source` with cc and `flags` into a fresh scratch directory
 * (removed when the test process ends); returns the program's path
 * (root-owned, 0755). Callers compile once per process and keep the promise.
 *
 * @example
 * ```ts
 * const flip = await compileProgram("race-bin", SOURCE, ["-O2", "-Wall", "-Werror"]);
 * ```
 */
export async function compileProgram(
  label: string,
  source: string,
  flags: string[],
): Promise<string> {
  const dir = await scratchDir(label);
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  await Deno.writeTextFile(`${dir}/${label}.c`, source);
  const cc = await runCommand("cc", [...flags, "-o", `${dir}/${label}`, `${dir}/${label}.c`]);
  if (cc.code !== 0) throw new Error(`cc failed for ${label}: ${cc.stderr}`);
  return `${dir}/${label}`;
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

// ---------------------------------------------------------------------------
// Child `deno run` scripts (for what must not happen in the test runner)

/** Options for `runDenoScript`. */
export interface DenoScriptOptions {
  /** Permission and other flags of `deno run`. */
  flags?: string[];
  /**
   * A `sh -c` script run first, which must end by exec'ing `"$@"` (the deno
   * command line), e.g. to open descriptors or mount /proc.
   */
  shell?: string;
  /** A command line put in front (e.g. `setpriv ...`, `unshare ...`). */
  wrapper?: string[];
}

/**
 * Runs `source` as a module in a child `deno run` (written to a fresh
 * temporary directory, removed afterwards): for anything that changes process
 * state (chroot, ids, signals, umask), which must never happen in the runner.
 *
 * @example
 * ```ts
 * const r = await runDenoScript(`console.log(Deno.pid)`, { flags: [] });
 * ```
 */
export async function runDenoScript(
  source: string,
  { flags = [], shell, wrapper = [] }: DenoScriptOptions = {},
): Promise<RunResult> {
  const dir = await Deno.makeTempDir({ prefix: "jktest-child-" });
  try {
    const script = `${dir}/child.ts`;
    await Deno.writeTextFile(script, `${source}\n`);
    const deno = [Deno.execPath(), "run", "--no-config", "--no-lock", "--no-prompt"];
    const argv = [
      ...wrapper,
      ...(shell === undefined ? [] : ["/bin/sh", "-c", shell, "sh"]),
      ...deno,
      ...flags,
      script,
    ];
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    return await collectOutput(child);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------
// Seeded randomness (fuzz, race and fault tests)

/**
 * The seed of this run: `JK_SEED` when set (a decimal number), else `fallback`,
 * so a failure can be replayed: tests print their seed in failure messages.
 *
 * @example
 * ```ts
 * const rng = new Rng(testSeed(7));
 * ```
 */
export function testSeed(fallback: number): number {
  const given = Deno.env.get("JK_SEED");
  if (given === undefined || given === "") return fallback;
  const seed = Number(given);
  if (!Number.isSafeInteger(seed)) throw new Error(`JK_SEED must be an integer: ${given}`);
  return seed;
}

/**
 * mulberry32: 32 bits of state, fast, good enough to pick test cases; the
 * same seed gives the same sequence.
 *
 * @example
 * ```ts
 * const rng = new Rng(42);
 * rng.int(10); // 0..9
 * ```
 */
export class Rng {
  #state: number;

  /** @param seed any integer */
  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** An unsigned 32-bit integer. */
  uint32(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** An integer in [0, n); 0 when n is 0. */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

// ---------------------------------------------------------------------------
// Looking at processes from outside, through /proc

/**
 * The `Key:\tvalue` lines of a /proc/PID/status text (other lines ignored).
 *
 * @example
 * ```ts
 * assert.equal(statusFields("NoNewPrivs:\t1\n").NoNewPrivs, "1");
 * ```
 */
export function statusFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s*(.*?)\s*$/.exec(line);
    if (m) fields[m[1]] = m[2];
  }
  return fields;
}

/**
 * The fields of /proc/PID/status (`Uid`, `Groups`, `NoNewPrivs`, `CapEff`...).
 *
 * @example
 * ```ts
 * assert.equal(procStatus(pid).NoNewPrivs, "1");
 * ```
 */
export function procStatus(pid: number): Record<string, string> {
  return statusFields(Deno.readTextFileSync(`/proc/${pid}/status`));
}

/**
 * The first child of process `pid` (e.g. a daemon's worker); throws when it has none.
 *
 * @example
 * ```ts
 * const relay = firstChildPid(daemon.pid);
 * ```
 */
export function firstChildPid(pid: number): number {
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    const children = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`).trim();
    if (children) return Number(children.split(" ")[0]);
  }
  throw new Error(`process ${pid} has no child`);
}

/** What /proc shows of a process running a program inside a jail. */
export interface Observed {
  status: Record<string, string>;
  /** Open descriptors, ascending. */
  fds: number[];
  root: string;
  cwd: string;
  exe: string;
  cmdline: string[];
  environ: string[];
}

/**
 * Waits (up to 10 s) until `child` runs a program inside `jail` (its root is
 * the jail and its executable below it) and has settled, then reads /proc;
 * null if it exited first. Settled means asleep (state S) with the same open
 * descriptors on two readings in a row: right after execve the new program's
 * loader still has each library open for a moment (fd 3), which is not a
 * descriptor the program was given. A descriptor that stays open is still
 * seen: if the program never settles, the last reading is returned.
 *
 * @example
 * ```ts
 * const seen = await observeInJail(child, jail);
 * assert.equal(seen?.status.NoNewPrivs, "1");
 * ```
 */
export async function observeInJail(
  child: Deno.ChildProcess,
  jail: string,
): Promise<Observed | null> {
  const pid = child.pid;
  let exited = false;
  child.status.then(() => exited = true);
  let last: Observed | null = null;
  for (let i = 0; i < 400 && !exited; i++) {
    const seen = await readInJail(pid, jail).catch(() => null);
    if (seen) {
      const settled = seen.status.State?.startsWith("S") && last !== null &&
        last.fds.join() === seen.fds.join();
      if (settled) return seen;
      last = seen;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return last;
}

/** One reading of /proc for `pid` once it runs a program inside `jail`, else null. */
async function readInJail(pid: number, jail: string): Promise<Observed | null> {
  const root = await Deno.readLink(`/proc/${pid}/root`).catch(() => "");
  const exe = await Deno.readLink(`/proc/${pid}/exe`).catch(() => "");
  const split = async (f: string) =>
    (await Deno.readTextFile(`/proc/${pid}/${f}`)).split("\0").filter((s) => s !== "");
  // Mid-execve the new executable shows before its arguments are in place:
  // an empty cmdline means "not yet".
  const cmdline = root === jail && exe.startsWith(jail + "/")
    ? await split("cmdline").catch(() => [])
    : [];
  if (cmdline.length === 0) return null;
  return {
    status: procStatus(pid),
    fds: [...Deno.readDirSync(`/proc/${pid}/fd`)].map((e) => Number(e.name))
      .sort((a, b) => a - b),
    root,
    cwd: await Deno.readLink(`/proc/${pid}/cwd`),
    exe,
    cmdline,
    environ: await split("environ"),
  };
}

// ---------------------------------------------------------------------------
// Lines arriving over time, and a datagram listener (a stand-in for /dev/log)

/**
 * Lines arriving from somewhere (a log socket, a child's output), with a way
 * to wait for one.
 *
 * @example
 * ```ts
 * const out = new Lines();
 * out.push("ready");
 * await out.waitFor(/ready/);
 * ```
 */
export class Lines {
  readonly lines: string[] = [];
  #waiters: (() => void)[] = [];

  push(line: string): void {
    this.lines.push(line);
    this.#waiters.splice(0).forEach((w) => w());
  }

  /** Resolves with the first line matching, waiting up to `ms`; the error shows the last lines. */
  async waitFor(pattern: RegExp, ms = 15000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.lines.find((l) => pattern.test(l));
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `no line matching ${pattern} within ${ms} ms; last lines:\n` +
            this.lines.slice(-20).join("\n"),
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  matching(pattern: RegExp): string[] {
    return this.lines.filter((l) => pattern.test(l));
  }

  /**
   * Feeds the lines of a byte stream (a child's stdout, say) in; resolves
   * when the stream ends.
   */
  async collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    let pending = "";
    for await (const chunk of stream) {
      pending += dec.decode(chunk, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop()!;
      lines.forEach((l) => this.push(l));
    }
    if (pending) this.push(pending);
  }
}

/**
 * A unix datagram socket at `path` whose every datagram becomes a line, like
 * the host's syslog at /dev/log. It listens from construction; `close()` is a
 * syslog daemon exiting (the socket file goes), `reopen()` one starting again
 * (the lines received so far are kept).
 *
 * @example
 * ```ts
 * const log = new DatagramListener(`${dir}/log`, { mode: 0o666 });
 * try { await log.waitFor(/started/); } finally { await log.close(); }
 * ```
 */
export class DatagramListener extends Lines {
  #conn: Deno.DatagramConn | null = null;
  #reading: Promise<void> = Promise.resolve();

  /** @param mode permissions of the socket file (e.g. 0o666 so any user can send) */
  constructor(readonly path: string, readonly options: { mode?: number } = {}) {
    super();
    this.reopen();
  }

  /** Listens again at the same path (after `close()`). */
  reopen(): void {
    const conn = this.#conn = Deno.listenDatagram({ transport: "unixpacket", path: this.path });
    if (this.options.mode !== undefined) Deno.chmodSync(this.path, this.options.mode);
    const dec = new TextDecoder();
    this.#reading = (async () => {
      try {
        for await (const [data] of conn) this.push(dec.decode(data));
      } catch {
        // closed
      }
    })();
  }

  /** Stops listening and removes the socket file; closing twice is harmless. */
  async close(): Promise<void> {
    this.#conn?.close();
    this.#conn = null;
    await this.#reading;
    await Deno.remove(this.path).catch(() => {});
  }
}
