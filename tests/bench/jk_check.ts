/**
 * Benchmark: jk_check on a debootstrap minbase jail (~6,800 entries), beside
 * Debian's jailkit 2.23 /usr/sbin/jk_check on the same jail in the same run.
 *
 * The jail is made once with `debootstrap --variant=minbase bookworm` from the
 * Debian mirror this machine's apt uses, and cached in /var/lib/jkbench-minbase
 * (delete it to rebuild). Both tools get the same temporary config naming only
 * that jail, so both walk it and also scan /etc/passwd, as each does by
 * default. Ours compares every byte of every same-size file; Debian's compares
 * one random 1 KiB window per file. Runs alternate (ours, Debian's) after two
 * warm-up rounds; the medians and their ratio are printed.
 *
 * `deno task bench jk_check`, or with a round count: `... tests/bench/jk_check.ts 21`.
 *
 * @module
 */

import { testPrefix } from "../harness.ts";
import { ensureMinbaseJail, MINBASE_JAIL } from "../jailfixtures.ts";

const JAIL = MINBASE_JAIL;
const DEBIAN_JK_CHECK = "/usr/sbin/jk_check";
const ROUNDS = Number(Deno.args[0] ?? 11);

/** One run's wall time, and its CPU time (user + system) when /usr/bin/time is there. */
interface Timing {
  wall: number;
  cpu: number | null;
}

const TIME = "/usr/bin/time";
const hasTime = (() => {
  try {
    return Deno.statSync(TIME).isFile;
  } catch {
    return false;
  }
})();

/** Times one run (milliseconds); the output is discarded. */
async function timeRun(cmd: string, args: string[], scratch: string): Promise<Timing> {
  const [exe, argv] = hasTime ? [TIME, ["-o", scratch, "-f", "%U %S", cmd, ...args]] : [cmd, args];
  const start = performance.now();
  await new Deno.Command(exe, { args: argv, stdin: "null", stdout: "null", stderr: "null" })
    .output();
  const wall = performance.now() - start;
  if (!hasTime) return { wall, cpu: null };
  const [user, sys] = (await Deno.readTextFile(scratch)).trim().split("\n").pop()!.split(" ")
    .map(Number);
  return { wall, cpu: (user + sys) * 1000 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

await ensureMinbaseJail();
const prefix = await testPrefix();
const ours = `${prefix}/usr/sbin/jk_check`;
const config = await Deno.makeTempFile({
  dir: "/var/lib",
  prefix: "jkbench-check-",
  suffix: ".ini",
});
try {
  await Deno.writeTextFile(config, `[${JAIL}]\n`);
  const oursArgs = ["-c", config];
  const debianArgs = ["-c", config];

  const v = await new Deno.Command(ours, { args: ["-v", ...oursArgs], stdout: "piped" }).output();
  const summary = new TextDecoder().decode(v.stdout).split("\n").find((l) =>
    l.startsWith(`${JAIL}: `)
  );
  console.log(summary ?? "(no summary line from jk_check -v)");

  const scratch = `${config}.time`;
  for (let i = 0; i < 2; i++) {
    await timeRun(ours, oursArgs, scratch);
    await timeRun(DEBIAN_JK_CHECK, debianArgs, scratch);
  }
  const a: Timing[] = [];
  const b: Timing[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    a.push(await timeRun(ours, oursArgs, scratch));
    b.push(await timeRun(DEBIAN_JK_CHECK, debianArgs, scratch));
  }
  await Deno.remove(scratch).catch(() => {});
  const mo = median(a.map((t) => t.wall)), md = median(b.map((t) => t.wall));
  console.log(`rounds: ${ROUNDS}, cores: ${navigator.hardwareConcurrency}`);
  console.log(`jk_check (ours, whole files)       wall median ${mo.toFixed(0)} ms`);
  console.log(`jk_check (Debian 2.23, 1 KiB/file) wall median ${md.toFixed(0)} ms`);
  console.log(`ratio ours/Debian (wall): ${(mo / md).toFixed(2)}x`);
  if (hasTime) {
    const co = median(a.map((t) => t.cpu!)), cd = median(b.map((t) => t.cpu!));
    console.log(`CPU (user+sys) medians: ours ${co.toFixed(0)} ms, Debian ${cd.toFixed(0)} ms`);
  }
} finally {
  await Deno.remove(config);
}
