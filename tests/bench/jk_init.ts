/**
 * Benchmark: jk_init with the ten stock sections, ours against Debian's
 * jailkit 2.23, each run on a fresh jail, in the same run of this script.
 *
 * Ours is the dev install of this checkout (config/jk_init.ini, installed
 * under a scratch prefix); jailkit is /usr/sbin/jk_init with Debian's
 * /etc/jailkit/jk_init.ini. Both start from a warm page cache (one untimed
 * run of ours first); the disks are synced before every run, and the jails
 * (about 0.5 GB per round) are removed at the end. Prints the medians and the
 * ratio ours/jailkit (goal: at most 0.1).
 *
 * jailkit's jk_init appends each jail's /dev/log to /etc/jailkit/jk_socketd.ini;
 * the file is put back byte for byte after every jailkit run.
 *
 * Usage (root): `deno task bench jk_init`, or
 * `deno run -A tests/bench/jk_init.ts [RUNS]` (default 3 runs each).
 *
 * @module
 */

import { iniPath } from "../../src/site.ts";
import { scratchDir, testSite, toolPathUnderTest } from "../harness.ts";

const SECTIONS = [
  "jk_lsh",
  "sftp",
  "scp",
  "rsync",
  "basicshell",
  "extendedshell",
  "netutils",
  "editors",
  "git",
  "perl",
];
const JAILKIT = "/usr/sbin/jk_init";
const JAILKIT_SOCKETD = "/etc/jailkit/jk_socketd.ini";
const runs = Math.max(1, Number(Deno.args[0] ?? 3) || 3);

if (Deno.uid() !== 0) {
  console.log("jk_init benchmark: needs root (it builds jails); skipped");
  Deno.exit(0);
}

/** Runs a command to completion, discarding its output; returns seconds taken. */
async function timed(cmd: string, args: string[]): Promise<number> {
  const start = performance.now();
  const out = await new Deno.Command(cmd, {
    args,
    clearEnv: true,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - start) / 1000;
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join("\n");
    throw new Error(`${cmd} failed (${out.code}):\n${err}`);
  }
  return seconds;
}

async function sync(): Promise<void> {
  await new Deno.Command("sync").output();
}

/** Size of a jail: files and bytes (du -sb). */
async function jailSize(jail: string): Promise<string> {
  const out = await new Deno.Command("du", { args: ["-sb", "--apparent-size", jail] }).output();
  const bytes = Number(new TextDecoder().decode(out.stdout).split("\t")[0]);
  const count = await new Deno.Command("find", { args: [jail, "-type", "f"] }).output();
  const files = new TextDecoder().decode(count.stdout).split("\n").length - 1;
  return `${files} files, ${(bytes / 1e6).toFixed(0)} MB`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const ours = await toolPathUnderTest("jk_init");
const ourIni = iniPath(await testSite(), "jk_init");
const haveJailkit = await Deno.stat(JAILKIT).then(() => true, () => false);
const socketdBackup = haveJailkit ? await Deno.readFile(JAILKIT_SOCKETD).catch(() => null) : null;
const base = await scratchDir("bench-init");

interface Variant {
  label: string;
  run: (jail: string) => Promise<number>;
  times: number[];
  size?: string;
}

const variants: Variant[] = [
  {
    label: "ours (copy)",
    run: (jail) => timed(ours, ["-c", ourIni, "-j", jail, ...SECTIONS]),
    times: [],
  },
  {
    label: "ours (-k hardlink)",
    run: (jail) => timed(ours, ["-k", "-c", ourIni, "-j", jail, ...SECTIONS]),
    times: [],
  },
];
if (haveJailkit) {
  variants.push({
    label: "jailkit 2.23",
    run: async (jail) => {
      try {
        return await timed(JAILKIT, ["-j", jail, ...SECTIONS]);
      } finally {
        if (socketdBackup) await Deno.writeFile(JAILKIT_SOCKETD, socketdBackup);
      }
    },
    times: [],
  });
}

let counter = 0;
try {
  // Untimed warm-up: brings every source file into the page cache.
  const warm = `${base}/warm`;
  await variants[0].run(warm);
  await Deno.remove(warm, { recursive: true });
  for (let i = 0; i < runs; i++) {
    for (const v of variants) {
      const jail = `${base}/jail${counter++}`;
      await sync();
      v.times.push(await v.run(jail));
      v.size ??= await jailSize(jail);
      // Jails are removed at the end only: on a file system mounted with
      // `discard`, blocks freed just before a run slow its allocations down.
    }
  }
} finally {
  await Deno.remove(base, { recursive: true }).catch(() => {});
}

const reference = variants.find((v) => v.label.startsWith("jailkit"));
console.log(`jk_init ${SECTIONS.join(" ")}: fresh jail each run, median of ${runs}`);
console.log("| tool | median (s) | runs (s) | ratio to jailkit | jail |");
console.log("| --- | ---: | --- | ---: | --- |");
for (const v of variants) {
  const m = median(v.times);
  const ratio = reference ? (m / median(reference.times)).toFixed(3) : "n/a";
  const all = v.times.map((t) => t.toFixed(2)).join(", ");
  console.log(`| ${v.label} | ${m.toFixed(2)} | ${all} | ${ratio} | ${v.size} |`);
}
if (!reference) console.log(`(${JAILKIT} not installed: no jailkit reference)`);
