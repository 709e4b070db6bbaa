/**
 * Benchmark: the fixed costs under our tools that the README's "where the
 * time goes" rests on, each measured in this run:
 *
 * 1. Start-up: an empty program run by the dev install's Deno with jk_cp's
 *    exact flags, then `jk_cp --help` running its one-file bundle, then the
 *    same from the staged sources (wall median and peak resident size).
 * 2. One `open`+`close` of a file under `--allow-read` against `--allow-all`
 *    (Deno resolves every opened path for its permission check).
 * 3. How long `new Worker(...)` holds the calling thread.
 * 4. jk_check's floor: a program doing only jk_check's system calls on the
 *    minbase jail (walk with readDir + lstat of each entry and of its host
 *    counterpart; open, read whole and close both files of every same-size
 *    pair, half of them on one worker thread), under `--allow-read` and
 *    under `--allow-all`, beside Debian's /usr/sbin/jk_check, alternating.
 *
 * `deno task bench floors` (ROUNDS=N, default 15). Needs root and the
 * Debian package jailkit; builds the minbase jail on first use.
 *
 * @module
 */

import { devEntry } from "../../src/install.ts";
import { libDir } from "../../src/site.ts";
import { findTool, runArgs } from "../../src/tools.ts";
import { scratchDir, testSite } from "../harness.ts";
import { ensureMinbaseJail, MINBASE_JAIL } from "../jailfixtures.ts";

const ROUNDS = Number(Deno.env.get("ROUNDS") ?? "15");
const DEBIAN_JK_CHECK = "/usr/sbin/jk_check";

const site = await testSite();
const lib = libDir(site);
const deno = `${lib}/deno`;
const env = {
  DENO_DIR: `${lib}/cache`,
  DENO_NO_UPDATE_CHECK: "1",
  NO_COLOR: "1",
  PATH: "/usr/bin:/bin",
};
const scratch = await scratchDir("bench-floors");

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Runs argv; returns wall ms and peak resident KiB (GNU time's %M). Fails on a non-zero exit unless `anyExit`. */
async function measure(argv: string[], anyExit = false): Promise<{ ms: number; kib: number }> {
  const start = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "JKPEAK %M", ...argv],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - start;
  const err = new TextDecoder().decode(out.stderr);
  if (!out.success && !anyExit) throw new Error(`${argv.join(" ")}: exit ${out.code}: ${err}`);
  return { ms, kib: Number(err.match(/JKPEAK (\d+)/)?.[1] ?? NaN) };
}

/** Runs a helper script and returns what it printed on stdout. */
async function printed(args: string[]): Promise<string> {
  const out = await new Deno.Command(deno, { args, env, clearEnv: true, stderr: "inherit" })
    .output();
  if (!out.success) throw new Error(`${args.join(" ")}: exit ${out.code}`);
  return new TextDecoder().decode(out.stdout).trim();
}

/** Rounds of every variant, alternating; medians of wall ms and peak KiB per label. */
async function alternate(variants: [string, string[], boolean?][], rounds: number) {
  const ms = new Map<string, number[]>(variants.map(([l]) => [l, []]));
  const kib = new Map<string, number[]>(variants.map(([l]) => [l, []]));
  for (let r = -2; r < rounds; r++) {
    for (let i = 0; i < variants.length; i++) {
      const [label, argv, anyExit] = variants[(i + Math.max(r, 0)) % variants.length];
      const m = await measure(argv, anyExit);
      if (r < 0) continue; // warm-up
      ms.get(label)!.push(m.ms);
      kib.get(label)!.push(m.kib);
    }
  }
  return variants.map(([label]) => ({
    label,
    ms: median(ms.get(label)!),
    mib: median(kib.get(label)!) / 1024,
  }));
}

try {
  // 1. Start-up.
  const jkCp = findTool("jk_cp")!;
  const empty = `${scratch}/empty.js`;
  await Deno.writeTextFile(empty, "");
  const startup = await alternate([
    ["empty program, jk_cp's flags", [deno, ...runArgs(jkCp, site, empty)]],
    ["jk_cp --help, bundle", [deno, ...runArgs(jkCp, site, devEntry(jkCp, lib, true)), "--help"]],
    ["jk_cp --help, sources", [
      deno,
      ...runArgs(jkCp, site, devEntry(jkCp, lib, false)),
      "--help",
    ]],
  ], ROUNDS);
  console.log("1. start-up                      wall median   peak MiB");
  for (const r of startup) {
    console.log(
      `   ${r.label.padEnd(30)} ${r.ms.toFixed(1).padStart(8)} ms ${r.mib.toFixed(1).padStart(9)}`,
    );
  }

  // 2. Cost of one open under --allow-read against --allow-all.
  const opens = `${scratch}/opens.ts`;
  await Deno.writeTextFile(
    opens,
    `const paths = [...Deno.readDirSync("/usr/lib/x86_64-linux-gnu")]
  .filter((e) => e.isFile).map((e) => "/usr/lib/x86_64-linux-gnu/" + e.name);
for (const p of paths) Deno.openSync(p).close(); // warm-up
const t = performance.now();
for (let i = 0; i < 3; i++) for (const p of paths) Deno.openSync(p).close();
console.log(((performance.now() - t) * 1000 / (3 * paths.length)).toFixed(1), paths.length);
`,
  );
  const perOpen = async (flag: string) => {
    const xs: number[] = [];
    let n = "";
    for (let r = 0; r < 5; r++) {
      [xs[r], n] = (await printed(["run", "--no-config", "--no-code-cache", flag, opens]))
        .split(" ").map((v, i) => i === 0 ? Number(v) : v) as [number, string];
    }
    return { us: median(xs), n };
  };
  const narrow = await perOpen("--allow-read");
  const all = await perOpen("--allow-all");
  console.log(`\n2. open+close of one file (${narrow.n} files, median of 5 runs)`);
  console.log(`   --allow-read ${narrow.us.toFixed(1)} µs, --allow-all ${all.us.toFixed(1)} µs`);

  // 3. new Worker on the calling thread.
  const workerFile = `${scratch}/idle_worker.ts`;
  const spawner = `${scratch}/spawn_worker.ts`;
  await Deno.writeTextFile(workerFile, "self.onmessage = () => self.postMessage(1);\n");
  await Deno.writeTextFile(
    spawner,
    `const t = performance.now();
const w = new Worker(new URL("./idle_worker.ts", import.meta.url), { type: "module" });
console.log((performance.now() - t).toFixed(2));
w.terminate();
`,
  );
  const blocked: number[] = [];
  for (let r = 0; r < 9; r++) {
    blocked.push(
      Number(await printed(["run", "--no-config", "--no-code-cache", "--allow-read", spawner])),
    );
  }
  console.log(`\n3. new Worker holds the calling thread: median ${median(blocked).toFixed(1)} ms`);

  // 4. jk_check's floor on the minbase jail.
  await ensureMinbaseJail();
  const floor = `${scratch}/check_floor.ts`;
  const floorWorker = `${scratch}/check_floor_worker.ts`;
  await Deno.writeTextFile(
    floorWorker,
    `const buf = new Uint8Array(256 * 1024);
function readAll(p: string) {
  try {
    const f = Deno.openSync(p);
    try { while ((f.readSync(buf) ?? 0) > 0); } finally { f.close(); }
  } catch { /* unreadable: jk_check reports it */ }
}
export function pairs(list: string[]) { for (const p of list) readAll(p); }
const scope = self as unknown as { onmessage: unknown; postMessage(m: unknown): void };
if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === "function") {
  scope.onmessage = (e: MessageEvent<string[] | null>) => {
    if (e.data === null) scope.postMessage("done");
    else pairs(e.data);
  };
}
`,
  );
  await Deno.writeTextFile(
    floor,
    `import { pairs } from "./check_floor_worker.ts";
const jail = ${JSON.stringify(MINBASE_JAIL)};
const worker = new Worker(new URL("./check_floor_worker.ts", import.meta.url), { type: "module" });
const mine: string[] = [];
let batch: string[] = [];
let turn = 0;
function walk(dir: string) {
  for (const e of Deno.readDirSync(jail + dir)) {
    const p = dir === "/" ? "/" + e.name : dir + "/" + e.name;
    const st = Deno.lstatSync(jail + p);
    if (st.isDirectory) { if (!["/proc", "/sys", "/dev"].includes(p)) walk(p); continue; }
    if (!st.isFile) continue;
    let host: Deno.FileInfo;
    try { host = Deno.lstatSync(p); } catch { continue; }
    if (!host.isFile || host.size !== st.size) continue;
    batch.push(jail + p, p);
    if (batch.length >= 96) {
      if (turn++ % 2) mine.push(...batch); else worker.postMessage(batch);
      batch = [];
    }
  }
}
walk("/");
mine.push(...batch);
pairs(mine);
worker.postMessage(null);
await new Promise((done) => worker.onmessage = done);
worker.terminate();
`,
  );
  const config = `${scratch}/jk_check.ini`;
  await Deno.writeTextFile(config, `[${MINBASE_JAIL}]\n`);
  const floorRun = (flag: string) => [deno, "run", "--no-config", "--no-code-cache", flag, floor];
  const check = await alternate([
    ["syscalls only, --allow-read", floorRun("--allow-read")],
    ["syscalls only, --allow-all", floorRun("--allow-all")],
    ["Debian jk_check", [DEBIAN_JK_CHECK, "-c", config], true],
  ], Math.max(5, Math.ceil(ROUNDS / 2)));
  const debian = check[2].ms;
  console.log(`\n4. jk_check's floor on ${MINBASE_JAIL}      wall median   ratio to Debian`);
  for (const r of check) {
    console.log(
      `   ${r.label.padEnd(30)} ${r.ms.toFixed(0).padStart(8)} ms ${
        (r.ms / debian).toFixed(2).padStart(9)
      }x`,
    );
  }
} finally {
  await Deno.remove(scratch, { recursive: true });
}
