/**
 * `deno task bench [NAME...]`: runs the benchmarks in tests/bench/ one after
 * another (each is a standalone script printing its own table of medians and
 * ratios). Benchmarks are never part of `deno task test`: the machines are
 * shared and noisy, so timing belongs here, with figures copied to the README.
 *
 * @module
 */

const dir = new URL(".", import.meta.url).pathname;
const wanted = new Set(Deno.args);
const scripts = [...Deno.readDirSync(dir)]
  .map((e) => e.name)
  .filter((n) => n.endsWith(".ts") && n !== "run.ts")
  .filter((n) => wanted.size === 0 || wanted.has(n.replace(/\.ts$/, "")))
  .sort();
let failed = 0;
for (const script of scripts) {
  console.log(`\n== ${script}`);
  const status = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-config", "--no-lock", "-A", "--unstable-net", `${dir}${script}`],
  }).spawn().status;
  if (!status.success) failed++;
}
Deno.exit(failed ? 1 : 0);
