/**
 * Command-line plumbing shared by every tool: option parsing with one-line
 * errors, `--help`, and a `main` wrapper that turns any failure into
 * `tool: message` on stderr and an exit code, never a stack trace.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { JkError } from "./errors.ts";

export { errorText, JkError, runMain, warn } from "./errors.ts";

/** The option table of `node:util` parseArgs. */
export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

/** Parsed command line: option values by long name, and the positionals. */
export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/**
 * Parses `args` strictly. An unknown option, a missing value or a stray
 * positional throws a `JkError` (exit code `usageExit`) whose message ends
 * with "try --help".
 *
 * @example
 * ```ts
 * const { values, positionals } = parseCommandLine(Deno.args, {
 *   jail: { type: "string", short: "j" },
 *   verbose: { type: "boolean", short: "v" },
 * });
 * ```
 */
export function parseCommandLine(
  args: string[],
  options: OptionSpec,
  { positionals = true, usageExit = 1 }: { positionals?: boolean; usageExit?: number } = {},
): ParsedArgs {
  try {
    const parsed = parseArgs({ args, options, allowPositionals: positionals, strict: true });
    return { values: parsed.values as ParsedArgs["values"], positionals: parsed.positionals };
  } catch (e) {
    const text = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new JkError(`${text.replace(/\. To specify.*$/, "")}; try --help`, usageExit);
  }
}
