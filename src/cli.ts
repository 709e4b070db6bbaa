/**
 * Command-line plumbing shared by every tool: option parsing with one-line
 * errors, `--help`, and a `main` wrapper that turns any failure into
 * `tool: message` on stderr and an exit code, never a stack trace.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";

/** A failure to report as one line, with the exit code the tool documents. */
export class JkError extends Error {
  /**
   * @param message what went wrong, naming the file, user or path concerned
   * @param exitCode the documented exit code (default 1)
   */
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = "JkError";
  }
}

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

/** Writes one line to stderr, prefixed with the tool's name. */
export function warn(tool: string, message: string): void {
  console.error(`${tool}: ${message}`);
}

/**
 * Runs a tool's main function: its return value is the exit code; a `JkError`
 * prints its message; anything else prints a one-line internal error (exit 70).
 *
 * @example
 * ```ts
 * if (import.meta.main) await runMain("jk_list", () => listJails(Deno.args));
 * ```
 */
export async function runMain(
  tool: string,
  main: () => number | void | Promise<number | void>,
): Promise<never> {
  let code: number;
  try {
    code = (await main()) ?? 0;
  } catch (e) {
    if (e instanceof JkError) {
      warn(tool, e.message);
      code = e.exitCode;
    } else {
      warn(tool, `internal error: ${e instanceof Error ? e.message : String(e)}`);
      code = 70;
    }
  }
  Deno.exit(code);
}

/** A message for an error thrown by a Deno file-system call, e.g. "No such file or directory". */
export function errorText(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file or directory";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.NotCapable) return "not permitted by this tool's Deno permissions";
  if (e instanceof Error) return e.message.replace(/ \(os error \d+\).*$/s, "");
  return String(e);
}
