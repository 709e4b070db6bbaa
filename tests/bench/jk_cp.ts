/**
 * Benchmark: our jk_cp (dev install) against Debian's jailkit 2.23
 * /usr/sbin/jk_cp, each on a fresh jail, copying `ssh rsync git perl
 * vim.basic`; then hard-link mode (-k) of both against plain `cp -al`
 * creating the same links, and `cp -a` copying the same files (the cost of
 * the bytes alone).
 *
 * Runs are interleaved (one of each case per round, rotating the order) so
 * that load on a shared machine hits every case alike; the table shows
 * medians and each ratio to jailkit measured in the same run.
 *
 *   deno task bench jk_cp          (BENCH_RUNS=N for N rounds, default 11)
 *
 * Needs root, the Debian package jailkit, and vim (`apt-get install -y vim`).
 *
 * @module
 */

import { scratchDir, toolPathUnderTest } from "../harness.ts";

const PROGRAMS = ["ssh", "rsync", "git", "perl", "vim.basic"];
const ROUNDS = Number(Deno.env.get("BENCH_RUNS") ?? 11);
const JAILKIT = "/usr/sbin/jk_cp";
const ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C" };

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

for (const p of PROGRAMS) {
  if (!exists(`/usr/bin/${p}`)) {
    console.error(
      `bench jk_cp: /usr/bin/${p} is missing (apt-get install -y vim openssh-client ` +
        `rsync git perl)`,
    );
    Deno.exit(1);
  }
}
if (!exists(JAILKIT)) {
  console.error(`bench jk_cp: ${JAILKIT} is missing (apt-get install -y jailkit)`);
  Deno.exit(1);
}

const ours = await toolPathUnderTest("jk_cp");
const base = await scratchDir("bench-cp");
let serial = 0;

/** Runs a command once on a fresh jail; returns milliseconds (the jail is removed after). */
async function timed(build: (jail: string) => string[]): Promise<number> {
  const jail = `${base}/j${serial++}`;
  Deno.mkdirSync(jail, { mode: 0o755 });
  Deno.chmodSync(jail, 0o755);
  const [cmd, ...args] = build(jail);
  // Flush what earlier rounds wrote and removed, so that no run pays for
  // another's writeback (without this, medians wander by tens of ms).
  await new Deno.Command("sync").output();
  const start = performance.now();
  const out = await new Deno.Command(cmd, {
    args,
    cwd: "/",
    clearEnv: true,
    env: ENV,
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - start;
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: exit ${out.code}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  Deno.removeSync(jail, { recursive: true });
  return ms;
}

/** Host paths of every file and symlink our jk_cp puts in a jail (for the cp baselines). */
async function copiedPaths(): Promise<string[]> {
  const jail = `${base}/probe`;
  Deno.mkdirSync(jail, { mode: 0o755 });
  Deno.chmodSync(jail, 0o755);
  await new Deno.Command(ours, { args: ["-j", jail, ...PROGRAMS], env: ENV, stdout: "null" })
    .output();
  const paths: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) walk(path);
      // Top-level links (lib -> usr/lib) are left out: cp --parents makes real directories.
      else if (dir !== jail) paths.push(path.slice(jail.length));
    }
  };
  walk(jail);
  Deno.removeSync(jail, { recursive: true });
  return paths.sort();
}

const files = await copiedPaths();
const cases: [string, (jail: string) => string[]][] = [
  ["ours jk_cp", (j) => [ours, "-j", j, ...PROGRAMS]],
  ["jailkit jk_cp", (j) => [JAILKIT, "-j", j, ...PROGRAMS]],
  ["ours jk_cp -k", (j) => [ours, "-k", "-j", j, ...PROGRAMS]],
  ["jailkit jk_cp -k", (j) => [JAILKIT, "-k", "-j", j, ...PROGRAMS]],
  ["cp -a (same files)", (j) => ["/usr/bin/cp", "-a", "--parents", ...files, j]],
  ["cp -al (same links)", (j) => ["/usr/bin/cp", "-al", "--parents", ...files, j]],
];

const times = new Map<string, number[]>(cases.map(([name]) => [name, []]));
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < cases.length; i++) {
      const [name, build] = cases[(i + round) % cases.length];
      times.get(name)!.push(await timed(build));
    }
  }
} finally {
  Deno.removeSync(base, { recursive: true });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const med = (name: string) => median(times.get(name)!);
console.log(`jk_cp ${PROGRAMS.join(" ")}: ${files.length} files and links, ${ROUNDS} rounds\n`);
console.log("case                  median ms   min ms   ratio");
const ratioTo: Record<string, string> = {
  "ours jk_cp": "jailkit jk_cp",
  "ours jk_cp -k": "jailkit jk_cp -k",
  "cp -a (same files)": "jailkit jk_cp",
  "cp -al (same links)": "jailkit jk_cp -k",
};
for (const [name] of cases) {
  const ref = ratioTo[name];
  const ratio = ref ? `${(med(name) / med(ref)).toFixed(2)}x ${ref}` : "";
  console.log(
    `${name.padEnd(21)} ${med(name).toFixed(1).padStart(9)} ${
      Math.min(...times.get(name)!).toFixed(1).padStart(8)
    }   ${ratio}`,
  );
}
console.log(
  `\nours -k vs cp -al: ${(med("ours jk_cp -k") / med("cp -al (same links)")).toFixed(2)}x; ` +
    `goal: ours jk_cp <= 0.5x jailkit (now ${
      (med("ours jk_cp") / med("jailkit jk_cp")).toFixed(2)
    }x)`,
);
