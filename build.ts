/**
 * `deno task build [--print] [--out DIR] [--prefix DIR] [--sysconfdir DIR]`
 *
 * Compiles every tool of `src/tools.ts` into one self-contained executable
 * (`deno compile`, type-checked) with the tool's permission flags baked in.
 * The sources are staged first with `src/site.ts` rewritten for the site, so
 * the binaries' paths follow `--prefix`/`--sysconfdir`.
 *
 * `deno compile` needs the `denort` runtime. It is taken from `$DENORT_BIN`,
 * from a `denort` beside the `deno` executable, or downloaded by Deno; where
 * none of these works the build stops with a message saying how to supply it.
 * `--print` prints the exact commands instead of running them.
 *
 * Exit codes: 0 built (or printed), 1 a compile failed, 2 usage.
 *
 * @module
 */

import { join, resolve } from "./src/paths.ts";
import { JkError, parseCommandLine, runMain } from "./src/cli.ts";
import { stageSources } from "./src/install.ts";
import type { Site } from "./src/site.ts";
import { compileArgs, TOOLS } from "./src/tools.ts";

/** One `deno compile` invocation: the executable and its arguments. */
export interface CompileCommand {
  tool: string;
  args: string[];
}

/**
 * The compile commands for a site, with sources staged in `stage` and
 * binaries written to `outDir`.
 *
 * @example
 * ```ts
 * const cmds = compileCommands({ prefix: "", sysconfdir: "/etc/jailkit" }, "dist/.stage", "dist");
 * console.log(cmds.map((c) => ["deno", ...c.args].join(" ")).join("\n"));
 * ```
 */
export function compileCommands(site: Site, stage: string, outDir: string): CompileCommand[] {
  return TOOLS.map((tool) => ({
    tool: tool.name,
    args: compileArgs(tool, site, join(stage, tool.entry), join(outDir, tool.name)),
  }));
}

/** Explains how to supply denort when `deno compile` could not get it. */
function denortHint(stderr: string): string {
  const cause = stderr.split("\n").find((l) => /error sending request|denort/i.test(l))?.trim();
  return "deno compile could not get its denort runtime" + (cause ? ` (${cause})` : "") +
    ". Set DENORT_BIN to a denort binary of the same Deno version (see README, Building), " +
    "or use `deno task install --dev`, which needs no denort.";
}

/**
 * Compiles every tool for `site` into `outDir`.
 *
 * @example
 * ```ts
 * await buildAll({ prefix: "", sysconfdir: "/etc/jailkit" }, "dist", console.log);
 * ```
 */
export async function buildAll(
  site: Site,
  outDir: string,
  log: (line: string) => void,
): Promise<void> {
  const stage = join(outDir, ".stage");
  await Deno.remove(stage, { recursive: true }).catch(() => {});
  await stageSources(site, stage);
  try {
    for (const { tool, args } of compileCommands(site, stage, outDir)) {
      log(`compile   ${tool}`);
      const out = await new Deno.Command(Deno.execPath(), {
        args,
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!out.success) {
        const stderr = new TextDecoder().decode(out.stderr);
        if (/Setting up base binary|denort/.test(stderr)) throw new JkError(denortHint(stderr));
        throw new JkError(`deno compile failed for ${tool}:\n${stderr.trim()}`);
      }
    }
  } finally {
    await Deno.remove(stage, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  await runMain("build", async () => {
    const { values } = parseCommandLine(Deno.args, {
      print: { type: "boolean" },
      out: { type: "string" },
      prefix: { type: "string" },
      sysconfdir: { type: "string" },
      help: { type: "boolean", short: "h" },
    }, { positionals: false, usageExit: 2 });
    if (values.help) {
      console.log(
        "Usage: deno task build [--print] [--out DIR] [--prefix DIR] [--sysconfdir DIR]",
      );
      return 0;
    }
    const prefix = ((values.prefix as string | undefined) ?? "").replace(/\/+$/, "");
    const site: Site = {
      prefix,
      sysconfdir: (values.sysconfdir as string | undefined) ?? `${prefix}/etc/jailkit`,
    };
    const outDir = resolve((values.out as string | undefined) ?? "dist");
    if (values.print) {
      for (const { args } of compileCommands(site, join(outDir, ".stage"), outDir)) {
        console.log(["deno", ...args].join(" "));
      }
      return 0;
    }
    await buildAll(site, outDir, (l) => console.log(l));
  });
}
