/**
 * `deno task test [FILES...]`: the whole suite, as CI runs it.
 *
 * Installs every tool (dev launchers) into a scratch prefix under /var/lib,
 * runs `deno test` over tests/ (or the given files) with that prefix in
 * `JK_TEST_PREFIX`, removes the prefix, and ends with the line CI reads:
 * `N passed, N failed`. The exit code is deno test's.
 *
 * @module
 */

import { install } from "../src/install.ts";
import { scratchDir } from "./harness.ts";

const dir = await scratchDir("prefix");
let code = 1;
let summary = "";
try {
  console.log(`installing dev launchers into ${dir}`);
  await install({
    site: { prefix: dir, sysconfdir: `${dir}/etc/jailkit` },
    dev: true,
    caps: false,
    log: () => {},
  });
  const files = Deno.args.length > 0 ? Deno.args : ["tests/"];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "--no-config", "--no-lock", "-A", "--unstable-net", ...files],
    env: { JK_TEST_PREFIX: dir, NO_COLOR: "1", RUST_BACKTRACE: "0" },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // Pass the output through while keeping the last lines for the summary.
  let tail = "";
  const dec = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    tail = (tail + dec.decode(chunk, { stream: true })).slice(-4096);
  }
  code = (await child.status).code;
  summary = tail.split("\n").filter((l) => /^(ok|FAILED) \| \d+ passed/.test(l)).pop() ?? "";
} catch (e) {
  // The install itself failed: one line, and the suite counts as failed.
  console.error(`tests/run.ts: ${e instanceof Error ? e.message : e}`);
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
const passed = summary.match(/(\d+) passed/)?.[1] ?? "0";
const failed = summary.match(/(\d+) failed/)?.[1] ?? (code === 0 ? "0" : "1");
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(code);
