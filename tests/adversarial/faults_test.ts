/**
 * Faults: the jail-building tools killed with SIGKILL at seeded points, then
 * run again; jk_socketd flooded by several jails while the host's syslog
 * restarts (last test).
 *
 * A kill comes either after a seeded delay within the length of an
 * uninterrupted run (more of them without strace), or — when strace is
 * installed — exactly as the tool enters its Nth call of a seeded mutating
 * syscall (`strace -e inject=SYSCALL:signal=KILL:when=N`), which reaches the
 * narrow windows a timer almost never hits: between mkdir and chmod, between
 * linking a file under its temporary name and renaming it into place. Both
 * left a jail that a rerun did not repair (a 0700 directory, a stray
 * temporary jk_check reports) until src/jailfs.ts was fixed. After the rerun the
 * jail must be exactly what an uninterrupted run makes (every path, type,
 * mode, owner, device number, link target and content), jk_check must find
 * nothing the uninterrupted jail does not have, and no temporary name may be
 * left anywhere in the jail.
 *
 * `JK_SEED=N` replays other kill points.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  copyWithLibs,
  createUser,
  DatagramListener,
  firstChildPid,
  Rng,
  runCommand,
  runTool,
  scratchDir,
  spawnCommand,
  testSeed,
  testSite,
  toolPathUnderTest,
} from "../harness.ts";
import { treeEntries } from "../jailfixtures.ts";

const root = Deno.uid() === 0;
const haveStrace = root && await Deno.stat("/usr/bin/strace").then(() => true, () => false);

/** Syscalls through which the tools change a jail: the strace kill points. */
const MUTATING = [
  "mkdirat",
  "fchmod",
  "fchown",
  "utimensat",
  "linkat",
  "renameat2",
  "symlinkat",
  "mknodat",
  "unlinkat",
  "copy_file_range",
];

/** Temporary names of the tools (src/jailfs.ts, jk_jailuser, jk_init's ini rewrite). */
const TEMPORARY = /^\.jk_tmp\.|\.jk_jailuser\.|^\..*\.[0-9a-f]{8}\.new$/;

/** A jk_init configuration with a bit of everything jk_init does. */
const CONFIG = `[faults]
comment = programs with libraries, a directory tree, users, groups, devices, empty dirs
paths = /usr/bin/rsync, /usr/lib/openssh/sftp-server, /usr/bin/scp, /etc/nsswitch.conf,
    /usr/share/zoneinfo/Europe, /usr/lib/*-linux-gnu*/libnss_files.so.2
users = root, nobody
groups = root, nogroup
devices = /dev/null, /dev/zero, /dev/urandom
emptydirs = /tmp, /home, /var/run/empty
`;

/**
 * Everything about a tree that an uninterrupted run decides: each path, type,
 * mode, owner, device number, link target or content hash; link counts left
 * out (the reference jail is built apart).
 */
function jailDigest(root: string): Promise<string[]> {
  return treeEntries(root, { linkCounts: false });
}

/** Paths under `root` whose name is a temporary name of the tools. */
async function temporaries(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (TEMPORARY.test(e.name)) found.push(`${dir}/${e.name}`);
      if (e.isDirectory) await walk(`${dir}/${e.name}`);
    }
  };
  await walk(root);
  return found;
}

/** jk_check's problems for a jail, with the jail's path replaced by JAIL. */
async function checkFindings(jail: string): Promise<string[]> {
  const r = await runTool("jk_check", [jail]);
  assert.ok(r.code === 0 || r.code === 1, `jk_check ${jail}: exit ${r.code}\n${r.stderr}`);
  return r.stdout.split("\n").filter((l) => /^(ERROR|WARNING):/.test(l))
    .map((l) => l.replaceAll(jail, "JAIL")).sort();
}

/** Where a run is cut short. */
type KillPoint = { delayMs: number } | { syscall: string; nth: number };

function describe(point: KillPoint): string {
  return "delayMs" in point ? `after ${point.delayMs} ms` : `at ${point.syscall} #${point.nth}`;
}

/** Runs an installed tool and SIGKILLs it at `point`; true when it was killed. */
async function runKilled(tool: string, args: string[], point: KillPoint): Promise<boolean> {
  const program = await toolPathUnderTest(tool);
  const strace = "syscall" in point
    ? [
      "-f",
      "-qq",
      "-o",
      "/dev/null",
      "-e",
      `trace=${point.syscall}`,
      "-e",
      `inject=${point.syscall}:signal=KILL:when=${point.nth}`,
      program,
    ]
    : null;
  const child = strace
    ? spawnCommand("/usr/bin/strace", [...strace, ...args])
    : spawnCommand(program, args);
  let timer: ReturnType<typeof setTimeout> | undefined;
  if ("delayMs" in point) {
    timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // it finished first
      }
    }, point.delayMs);
  }
  const out = await child.output();
  clearTimeout(timer);
  if (out.signal === "SIGKILL") return true;
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `${tool} ${describe(point)}: exit ${out.code}\n${stderr}`);
  return false;
}

/**
 * How often the tool's main thread makes each mutating syscall in a full
 * run, from an strace log of that run.
 */
async function syscallCounts(
  tool: string,
  args: string[],
  dir: string,
): Promise<Map<string, number>> {
  const log = `${dir}/strace.log`;
  const r = await runCommand("/usr/bin/strace", [
    "-f",
    "-qq",
    "-o",
    log,
    "-e",
    `trace=${MUTATING.join(",")}`,
    await toolPathUnderTest(tool),
    ...args,
  ]);
  assert.equal(r.code, 0, `${tool} under strace: ${r.stderr}`);
  // Lines are "PID  syscall(...": the main thread's id is the process id,
  // lower than those of the threads it starts.
  const calls = [...(await Deno.readTextFile(log)).matchAll(/^(\d+)\s+(\w+)\(/gm)];
  await Deno.remove(log);
  const main = Math.min(...calls.map((m) => Number(m[1])));
  const counts = new Map<string, number>();
  for (const [, pid, name] of calls) {
    if (Number(pid) === main) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

/**
 * Seeded kill points: `timed` delays within `runMs`; with strace, `traced`
 * points uniform over every mutating call of the run, plus one at a random
 * call of each syscall that opens a narrow window (a directory made but not
 * yet renamed into place, a file linked under its temporary name, a removal
 * half done), so each is hit whatever the seed.
 */
function killPoints(
  rng: Rng,
  timed: number,
  runMs: number,
  counts: Map<string, number> | null,
  traced: number,
): KillPoint[] {
  const points: KillPoint[] = [];
  for (let i = 0; i < timed; i++) points.push({ delayMs: Math.round(rng.next() * runMs * 1.1) });
  if (!counts) return points;
  const calls = [...counts].flatMap(([syscall, n]) => Array<string>(n).fill(syscall));
  for (let i = 0; i < traced && calls.length > 0; i++) {
    const at = rng.int(calls.length);
    const syscall = calls[at];
    points.push({ syscall, nth: calls.slice(0, at + 1).filter((s) => s === syscall).length });
  }
  for (const syscall of ["mkdirat", "renameat2", "linkat", "unlinkat", "mknodat"]) {
    const n = counts.get(syscall) ?? 0;
    if (n > 0) points.push({ syscall, nth: 1 + rng.int(n) });
  }
  return points;
}

/** What one kill-and-rerun trial showed. */
interface Trial {
  point: KillPoint;
  killed: boolean;
  /** The killed run had changed the jail, but not finished it. */
  partial: boolean;
}

/**
 * For every kill point: a fresh jail from `prepare`, `tool` killed at the
 * point, then run again to the end; the result must equal `reference`
 * (digest and jk_check findings) and hold no temporary name.
 */
async function killAndRerun(
  tool: string,
  argsFor: (jail: string) => string[],
  points: KillPoint[],
  prepare: (jail: string) => Promise<void>,
  reference: { digest: string[]; findings: string[] },
  seed: number,
): Promise<Trial[]> {
  const trials: Trial[] = [];
  for (const point of points) {
    const base = await scratchDir("fault");
    const jail = `${base}/jail`;
    const what = `${tool} killed ${describe(point)} (JK_SEED=${seed})`;
    try {
      await prepare(jail);
      const state = async () => JSON.stringify(await jailDigest(jail).catch(() => []));
      const before = await state();
      const killed = await runKilled(tool, argsFor(jail), point);
      const after = await state();
      const partial = killed && after !== before && after !== JSON.stringify(reference.digest);
      const rerun = await runCommand(await toolPathUnderTest(tool), argsFor(jail));
      assert.equal(rerun.code, 0, `${what}, rerun: exit ${rerun.code}\n${rerun.stderr}`);
      assert.deepEqual(await temporaries(jail), [], `${what}: temporaries left`);
      assert.deepEqual(await jailDigest(jail), reference.digest, `${what}: jail differs`);
      assert.deepEqual(await checkFindings(jail), reference.findings, `${what}: jk_check`);
      trials.push({ point, killed, partial });
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  }
  return trials;
}

/** Checks that the kills really cut runs short, and mid-build. */
function assertKillsLanded(trials: Trial[], seed: number): void {
  const killed = trials.filter((t) => t.killed).length;
  assert.ok(
    killed >= trials.length / 2,
    `only ${killed} of ${trials.length} runs killed (${seed})`,
  );
  assert.ok(trials.some((t) => t.partial), `no kill left a partial jail (JK_SEED=${seed})`);
}

Deno.test({
  name: "FAULT jk_init killed with SIGKILL at seeded points, then rerun: the jail is " +
    "what an uninterrupted run builds, jk_check finds nothing more, no temporary left",
  ignore: !root,
  fn: async () => {
    await testSite();
    const rng = new Rng(testSeed(20261129));
    const dir = await scratchDir("fault-init");
    try {
      const config = `${dir}/jk_init.ini`;
      await Deno.writeTextFile(config, CONFIG);
      const argsFor = (jail: string) => ["-c", config, "-j", jail, "faults"];
      const ref = `${dir}/reference`;
      const started = Date.now();
      const built = await runCommand(await toolPathUnderTest("jk_init"), argsFor(ref));
      const runMs = Date.now() - started;
      assert.equal(built.code, 0, built.stderr);
      const reference = { digest: await jailDigest(ref), findings: await checkFindings(ref) };
      assert.ok(reference.digest.length > 50, "the reference jail has content");

      const counts = haveStrace
        ? await syscallCounts("jk_init", argsFor(`${dir}/counted`), dir)
        : null;
      const points = killPoints(rng, haveStrace ? 6 : 16, runMs, counts, 10);
      // The jail directory does not exist yet: jk_init creates it.
      const trials = await killAndRerun(
        "jk_init",
        argsFor,
        points,
        async () => {},
        reference,
        rng.seed,
      );
      assertKillsLanded(trials, rng.seed);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "FAULT jk_update killed with SIGKILL at seeded points, then rerun: the jail is " +
    "what an uninterrupted update makes, jk_check finds nothing more, no temporary left",
  ignore: !root,
  fn: async () => {
    await testSite();
    const rng = new Rng(testSeed(20261130));
    const dir = await scratchDir("fault-update");
    try {
      // An aged jail: built by jk_init, then files changed, links retargeted,
      // and files and directories the host no longer has.
      const config = `${dir}/jk_init.ini`;
      await Deno.writeTextFile(config, CONFIG);
      const template = `${dir}/template`;
      const built = await runCommand(await toolPathUnderTest("jk_init"), [
        "-c",
        config,
        "-j",
        template,
        "faults",
      ]);
      assert.equal(built.code, 0, built.stderr);
      await ageJail(template);
      const prepare = async (jail: string) => {
        const r = await runCommand("cp", ["-a", template, jail]);
        assert.equal(r.code, 0, r.stderr);
      };
      const argsFor = (jail: string) => ["-j", jail];
      const ref = `${dir}/reference`;
      await prepare(ref);
      const started = Date.now();
      const updated = await runCommand(await toolPathUnderTest("jk_update"), argsFor(ref));
      const runMs = Date.now() - started;
      assert.equal(updated.code, 0, updated.stderr);
      assert.match(updated.stdout, /updating outdated file/);
      assert.match(updated.stdout, /removing deprecated file/);
      const reference = { digest: await jailDigest(ref), findings: await checkFindings(ref) };

      let counts: Map<string, number> | null = null;
      if (haveStrace) {
        await prepare(`${dir}/counted`);
        counts = await syscallCounts("jk_update", argsFor(`${dir}/counted`), dir);
      }
      const points = killPoints(rng, haveStrace ? 6 : 16, runMs, counts, 10);
      const trials = await killAndRerun("jk_update", argsFor, points, prepare, reference, rng.seed);
      assertKillsLanded(trials, rng.seed);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** What a host upgrade leaves for jk_update: changed files, a moved link, removed files. */
async function ageJail(jail: string): Promise<void> {
  const zones = `${jail}/usr/share/zoneinfo/Europe`;
  let aged = 0;
  for await (const e of Deno.readDir(zones)) {
    const path = `${zones}/${e.name}`;
    if (e.isFile && aged++ < 25) await Deno.writeTextFile(path, "old zone\n", { append: true });
    if (e.isSymlink) {
      await Deno.remove(path);
      await Deno.symlink("Retired", path);
    }
  }
  await Deno.writeTextFile(`${jail}/usr/bin/rsync`, "an old rsync", { append: true });
  await Deno.writeTextFile(`${jail}/usr/bin/gone-from-host`, "old tool\n");
  for (let i = 0; i < 10; i++) {
    const plugin = `${jail}/usr/lib/oldplugins/set${i}/sub`;
    await Deno.mkdir(plugin, { recursive: true });
    await Deno.writeTextFile(`${plugin}/p${i}.so`, "old plugin\n");
  }
}

// ---------------------------------------------------------------------------
// jk_socketd under a flood while the host's syslog restarts

Deno.test({
  name: "FAULT jk_socketd flooded from three jails while the host syslog restarts again and " +
    "again: it stays up, leaks no descriptor, and relays again once syslog is back",
  ignore: !root,
  fn: async () => {
    const site = await testSite();
    const rng = new Rng(testSeed(777));
    const iniFile = `${site.sysconfdir}/jk_socketd.ini`;
    const original = await Deno.readTextFile(iniFile);
    const dir = await scratchDir("fault-socketd");
    const user = await createUser();
    let host: DatagramListener | undefined;
    let daemon: Deno.ChildProcess | undefined;
    try {
      const jails = [0, 1, 2].map((i) => `${dir}/jail${i}`);
      for (const jail of jails) {
        await Deno.mkdir(`${jail}/dev`, { recursive: true });
        await copyWithLibs(jail, ["/usr/bin/logger"]);
      }
      await Deno.writeTextFile(
        iniFile,
        jails.map((j) => `[${j}/dev/log]\nbase = 20000\npeak = 100000\ninterval = 1\n`).join("\n"),
      );
      host = new DatagramListener(`${dir}/host-log`);
      daemon = spawnCommand(await toolPathUnderTest("jk_socketd"), [
        "-n",
        `--log-socket=${host.path}`,
      ]);
      const output = daemon.output();
      let ended = false;
      output.then(() => ended = true);
      const logger = (jail: string, tag: string, input: string) =>
        runCommand("sh", [
          "-c",
          `${input} | timeout -s KILL 6 chroot --userspec=${user.uid}:${user.gid} ${jail} ` +
          `/usr/bin/logger -t ${tag} -u /dev/log`,
        ]);
      // Ready once a message from each jail comes through.
      for (const [i, jail] of jails.entries()) {
        const deadline = Date.now() + 15000;
        while (host.matching(new RegExp(`ready${i}: up`)).length === 0) {
          assert.ok(!ended && Date.now() < deadline, "jk_socketd did not start relaying");
          await logger(jail, `ready${i}`, "echo up");
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const relay = firstChildPid(daemon.pid);
      const fds = () => [...Deno.readDirSync(`/proc/${relay}/fd`)].length;
      const fdsBefore = fds();

      // Three floods for 4 seconds; meanwhile syslog goes away and comes back, seeded.
      const floods = jails.map((jail, i) =>
        logger(jail, `flood${i}`, `yes 'flood from jail ${i} flood flood flood flood flood'`)
      );
      const until = Date.now() + 4000;
      let restarts = 0, sinceRestart = 0;
      while (Date.now() < until) {
        await new Promise((r) => setTimeout(r, 150 + rng.int(450)));
        await host.close();
        await new Promise((r) => setTimeout(r, rng.int(300)));
        host.reopen();
        restarts++;
        sinceRestart = host.lines.length;
      }
      const flooded = await Promise.all(floods);
      for (const f of flooded) assert.equal(f.code, 137, f.stderr); // killed by timeout: held up

      assert.ok(!ended, "jk_socketd stayed up");
      // Relaying resumed while the floods went on, after the last restart.
      const resumed = host.lines.slice(sinceRestart).filter((l) => /: flood\d: /.test(l));
      assert.ok(resumed.length > 0, `nothing relayed after restart ${restarts}`);
      for (const i of [0, 1, 2]) {
        assert.ok(
          host.matching(new RegExp(`flood${i}: flood from jail ${i}`)).length > 0,
          `jail ${i}`,
        );
      }
      // Back to normal: after a rate interval, one line from each jail arrives.
      await new Promise((r) => setTimeout(r, 1200));
      for (const [i, jail] of jails.entries()) {
        const r = await logger(jail, `after${i}`, "echo still relaying");
        assert.equal(r.code, 0, r.stderr);
        await host.waitFor(
          new RegExp(`jail=${jail} uid=${user.uid} pid=\\d+: after${i}: still relaying$`),
          5000,
        );
      }
      assert.equal(firstChildPid(daemon.pid), relay, "the same relay throughout");
      assert.equal(fds(), fdsBefore, `descriptors of the relay after ${restarts} restarts`);

      daemon.kill("SIGTERM");
      const end = await output;
      assert.equal(end.code, 0, new TextDecoder().decode(end.stderr));
      for (const jail of jails) {
        await assert.rejects(Deno.lstat(`${jail}/dev/log`), Deno.errors.NotFound);
      }
    } finally {
      try {
        daemon?.kill("SIGKILL");
      } catch {
        // ended
      }
      await daemon?.output().catch(() => {});
      await host?.close();
      await Deno.writeTextFile(iniFile, original);
      await user.remove();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
