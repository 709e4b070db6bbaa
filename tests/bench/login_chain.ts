/**
 * Benchmark: the login chain `user → jk_chrootsh → jk_lsh → rsync --version`,
 * ours (the dev install: trampoline → Deno → execve → Deno → rsync) beside
 * Debian's jailkit 2.23 (/usr/sbin/jk_chrootsh + /usr/sbin/jk_lsh, C), in the
 * same run, alternating, each in its own jail and with its own account. Also
 * jk_lsh alone (chroot into the jail as the user, no jk_chrootsh) for both.
 *
 * Prints the median and quartiles of the wall time (from spawn to exit) and
 * the median peak resident size of the largest process of the chain
 * (`/usr/bin/time -f %M`; rsync runs beside jk_lsh and adds about 3 MiB).
 * Goal for ours: ≤ 40 ms and ≤ 40 MiB. Host files are not changed: Debian's
 * tools read /etc/jailkit/jk_chrootsh.ini (all defaults, checked to be
 * unchanged at the end) and the jail's own etc/jailkit/jk_lsh.ini.
 *
 * Run as root: `deno task bench login_chain` (ROUNDS=N to change the count).
 *
 * @module
 */

import {
  copyWithLibs,
  createUser,
  runCommand,
  runTool,
  scratchDir,
  testSite,
  type TestUser,
  toolPathUnderTest,
} from "../harness.ts";

const ROUNDS = Number(Deno.env.get("ROUNDS") ?? "40");
const DEBIAN_CHROOTSH = "/usr/sbin/jk_chrootsh";
const DEBIAN_LSH = "/usr/sbin/jk_lsh";
/** The environment every variant starts with (the chain replaces it with `env -i`). */
const ENV = { PATH: "/usr/bin:/bin", LANG: "C" };
const RSYNC_SECTION = "paths = /usr/bin\nexecutables = /usr/bin/rsync\n";

/** One way of running the chain: argv to spawn (as root; setpriv drops to the user). */
interface Variant {
  label: string;
  argv: string[];
}

async function must(what: string, p: Promise<{ code: number; stderr: string; stdout: string }>) {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr}${r.stdout}`);
}

/** Our chain: jk_init + jk_jailuser, as an administrator would set it up. */
async function ourSetup(user: TestUser): Promise<{ jail: string; chain: Variant; lsh: Variant }> {
  const site = await testSite();
  const jail = await scratchDir("bench-ours");
  await must("jk_init", runTool("jk_init", ["-j", jail, "jk_lsh", "rsync"]));
  await must("jk_jailuser", runTool("jk_jailuser", ["-n", "-m", "-j", jail, user.name]));
  await Deno.writeTextFile(`${jail}${site.sysconfdir}/jk_lsh.ini`, `[DEFAULT]\n${RSYNC_SECTION}`);
  const chrootsh = await toolPathUnderTest("jk_chrootsh");
  const lsh = await toolPathUnderTest("jk_lsh");
  return {
    jail,
    chain: { label: "ours: jk_chrootsh -> jk_lsh -> rsync", argv: asUser(user, jail, chrootsh) },
    lsh: { label: "ours: jk_lsh -> rsync (chroot, no jk_chrootsh)", argv: inJail(user, jail, lsh) },
  };
}

/** Debian's chain: its binaries in a jail of their own; passwd lines by hand. */
async function debianSetup(
  user: TestUser,
): Promise<{ jail: string; chain: Variant; lsh: Variant }> {
  const jail = await scratchDir("bench-debian");
  await copyWithLibs(jail, [DEBIAN_LSH, "/usr/bin/rsync"]);
  await Deno.mkdir(`${jail}/etc/jailkit`, { recursive: true });
  await Deno.writeTextFile(`${jail}/etc/jailkit/jk_lsh.ini`, `[DEFAULT]\n${RSYNC_SECTION}`);
  await Deno.writeTextFile(
    `${jail}/etc/passwd`,
    `root:x:0:0::/root:/bin/false\n` +
      `${user.name}:x:${user.uid}:${user.gid}::/home/${user.name}:${DEBIAN_LSH}\n`,
  );
  await Deno.writeTextFile(`${jail}/etc/group`, `root:x:0:\n${user.name}:x:${user.gid}:\n`);
  await Deno.mkdir(`${jail}/home/${user.name}`, { recursive: true });
  await Deno.chown(`${jail}/home/${user.name}`, user.uid, user.gid);
  await Deno.chmod(`${jail}/home/${user.name}`, 0o755);
  await must(
    "usermod",
    runCommand("usermod", ["-d", `${jail}/./home/${user.name}`, "-s", DEBIAN_CHROOTSH, user.name]),
  );
  return {
    jail,
    chain: {
      label: "jailkit 2.23: jk_chrootsh -> jk_lsh -> rsync",
      argv: asUser(user, jail, DEBIAN_CHROOTSH),
    },
    lsh: { label: "jailkit 2.23: jk_lsh -> rsync (chroot)", argv: inJail(user, jail, DEBIAN_LSH) },
  };
}

/** As sshd runs a login shell: as the user, with a fresh environment, `-c CMD`. */
function asUser(user: TestUser, jail: string, shell: string): string[] {
  return [
    "/usr/bin/setpriv",
    `--reuid=${user.uid}`,
    `--regid=${user.gid}`,
    "--init-groups",
    "/usr/bin/env",
    "-i",
    "PATH=/usr/bin:/bin",
    `USER=${user.name}`,
    `HOME=${jail}/./home/${user.name}`,
    `SHELL=${shell}`,
    shell,
    "-c",
    "rsync --version",
  ];
}

/** jk_lsh alone, where jk_chrootsh would leave it: chrooted, as the user (environment: `ENV`). */
function inJail(user: TestUser, jail: string, lsh: string): string[] {
  return [
    "/usr/sbin/chroot",
    `--userspec=${user.uid}:${user.gid}`,
    jail,
    lsh,
    "-c",
    "rsync --version",
  ];
}

/** Wall time of one run, in ms; fails unless rsync's banner came out. */
async function timeOnce(v: Variant): Promise<number> {
  const start = performance.now();
  const out = await new Deno.Command(v.argv[0], {
    args: v.argv.slice(1),
    cwd: "/",
    clearEnv: true,
    env: ENV,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - start;
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0 || !text.startsWith("rsync")) {
    throw new Error(`${v.label}: exit ${out.code}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return ms;
}

/** Peak resident KiB of the largest process of one run (GNU time's %M). */
async function peakOnce(v: Variant): Promise<number> {
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "JKPEAK %M", ...v.argv],
    cwd: "/",
    clearEnv: true,
    env: ENV,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const m = new TextDecoder().decode(out.stderr).match(/JKPEAK (\d+)/);
  if (!m) throw new Error(`${v.label}: no peak from /usr/bin/time`);
  return Number(m[1]);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function snapshot(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) files.set(e.name, await Deno.readTextFile(`${dir}/${e.name}`));
  }
  return files;
}

async function main() {
  if (Deno.uid() !== 0) throw new Error("run as root");
  for (const f of [DEBIAN_CHROOTSH, DEBIAN_LSH, "/usr/bin/rsync"]) await Deno.stat(f);
  const haveTime = await Deno.stat("/usr/bin/time").then(() => true, () => false);
  const debianConfig = await snapshot("/etc/jailkit").catch(() => new Map<string, string>());

  const ourUser = await createUser();
  const debianUser = await createUser();
  const jails: string[] = [];
  try {
    const ours = await ourSetup(ourUser);
    jails.push(ours.jail);
    const debian = await debianSetup(debianUser);
    jails.push(debian.jail);
    const variants = [ours.chain, debian.chain, ours.lsh, debian.lsh];

    const times = new Map<Variant, number[]>(variants.map((v) => [v, []]));
    const peaks = new Map<Variant, number[]>(variants.map((v) => [v, []]));
    for (const v of variants) for (let i = 0; i < 3; i++) await timeOnce(v); // warm caches
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of variants) times.get(v)!.push(await timeOnce(v));
    }
    if (haveTime) {
      for (let round = 0; round < Math.min(ROUNDS, 10); round++) {
        for (const v of variants) peaks.get(v)!.push(await peakOnce(v));
      }
    }

    console.log(`login chain, ${ROUNDS} runs each, alternating (wall ms from spawn to exit)`);
    console.log(
      `${"variant".padEnd(50)} ${"median".padStart(7)} ${"p25".padStart(6)} ${"p75".padStart(6)} ` +
        `${"peak MiB".padStart(9)}`,
    );
    const median = (v: Variant) => quantile([...times.get(v)!].sort((a, b) => a - b), 0.5);
    for (const v of variants) {
      const t = [...times.get(v)!].sort((a, b) => a - b);
      const p = [...peaks.get(v)!].sort((a, b) => a - b);
      const peak = p.length ? (quantile(p, 0.5) / 1024).toFixed(1) : "n/a";
      console.log(
        `${v.label.padEnd(50)} ${quantile(t, 0.5).toFixed(1).padStart(7)} ` +
          `${quantile(t, 0.25).toFixed(1).padStart(6)} ${
            quantile(t, 0.75).toFixed(1).padStart(6)
          } ` +
          `${peak.padStart(9)}`,
      );
    }
    const ratio = median(ours.chain) / median(debian.chain);
    const ourPeak = quantile([...peaks.get(ours.chain)!].sort((a, b) => a - b), 0.5) / 1024;
    console.log(`ratio ours/jailkit (chain median): ${ratio.toFixed(1)}x`);
    console.log(
      `goal <= 40 ms median: ${median(ours.chain) <= 40 ? "met" : "NOT met"}; ` +
        `<= 40 MiB peak: ${
          !haveTime ? "not measured (no /usr/bin/time)" : ourPeak <= 40 ? "met" : "NOT met"
        }`,
    );
  } finally {
    await ourUser.remove();
    await debianUser.remove();
    for (const jail of jails) await Deno.remove(jail, { recursive: true }).catch(() => {});
    // Debian's config must be as it was; put back anything that changed.
    for (const [name, text] of debianConfig) {
      const now = await Deno.readTextFile(`/etc/jailkit/${name}`).catch(() => null);
      if (now !== text) {
        await Deno.writeTextFile(`/etc/jailkit/${name}`, text);
        console.error(`restored /etc/jailkit/${name}`);
      }
    }
  }
}

await main();
