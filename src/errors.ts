/**
 * How every tool fails: `JkError` (one line, a documented exit code), `warn`,
 * `runMain` (a tool's main, never a stack trace) and `errorText`. Kept apart
 * from src/cli.ts so that what runs on every login (jk_lsh, jk_chrootsh and
 * the modules they import) does not load `node:util`: the first `node:`
 * import costs about 10 ms of start-up (measured for jk_lsh, Deno 2.9.6).
 * src/cli.ts re-exports everything here.
 *
 * @module
 */

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
