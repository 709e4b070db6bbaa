/**
 * Command-line parsing shared by every tool, with one-line errors.
 *
 * `parseCommandLine` reads the option tables of `node:util`'s `parseArgs`
 * (the same `{ type, short, multiple }` entries) and gives the same results
 * for the forms the tools accept — `-v`, grouped `-vf`, `-j DIR`, `-jDIR`,
 * `--jail DIR`, `--jail=DIR`, `--` — which tests/cli_test.ts checks against
 * `node:util` on thousands of command lines. Why not `node:util` itself: its
 * import loads Deno's Node compatibility layer, 15–25 ms of every start
 * without a code cache (and the tools run without one, see src/tools.ts);
 * for an admin tool copying five programs that was a third of its time.
 *
 * `errors.ts` has `JkError`, `runMain` and friends; they are re-exported here.
 *
 * @module
 */

import { JkError } from "./errors.ts";

export { errorText, JkError, runMain, warn } from "./errors.ts";

/** One option: a flag (`boolean`) or an option with a value (`string`). */
export interface OptionEntry {
  type: "boolean" | "string";
  /** One-letter form, e.g. `j` for `-j`. */
  short?: string;
  /** Collect every occurrence into an array. */
  multiple?: boolean;
}

/** The option table: long name → entry. */
export type OptionSpec = Record<string, OptionEntry>;

/** Parsed command line: option values by long name, and the positionals. */
export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  positionals: string[];
}

/** Options of `parseCommandLine` itself. */
export interface ParseOptions {
  /** Whether positional arguments are allowed (default true). */
  positionals?: boolean;
  /** Exit code of a usage error (default 1). */
  usageExit?: number;
}

/** A next argument that looks like an option is not taken as a value ("-" is a value). */
function optionLike(arg: string): boolean {
  return arg.length > 1 && arg.startsWith("-");
}

/**
 * Parses `args` strictly. An unknown option, a missing value, a value given to
 * a flag or a stray positional throws a `JkError` (exit code `usageExit`)
 * whose message names the argument and ends with "try --help".
 *
 * @example
 * ```ts
 * const { values, positionals } = parseCommandLine(["-vj", "/srv/jail", "sftp"], {
 *   jail: { type: "string", short: "j" },
 *   verbose: { type: "boolean", short: "v" },
 * });
 * // values: { verbose: true, jail: "/srv/jail" }, positionals: ["sftp"]
 * ```
 */
export function parseCommandLine(
  args: string[],
  options: OptionSpec,
  { positionals: allowPositionals = true, usageExit = 1 }: ParseOptions = {},
): ParsedArgs {
  const usage = (message: string) => new JkError(`${message}; try --help`, usageExit);
  const byShort = new Map<string, string>();
  for (const [name, entry] of Object.entries(options)) {
    if (entry.short) byShort.set(entry.short, name);
  }
  const values: ParsedArgs["values"] = {};
  const positionals: string[] = [];
  const store = (name: string, value: string | boolean) => {
    if (options[name].multiple) {
      const list = (values[name] ?? []) as (string | boolean)[];
      values[name] = [...list, value] as string[] | boolean[];
    } else {
      values[name] = value;
    }
  };
  const describe = (name: string) => {
    const short = options[name].short;
    return short ? `'-${short}, --${name}'` : `'--${name}'`;
  };

  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      const rest = args.slice(i + 1);
      if (!allowPositionals && rest.length > 0) throw usage(`Unexpected argument '${rest[0]}'`);
      positionals.push(...rest);
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      const entry = Object.hasOwn(options, name) ? options[name] : undefined;
      if (!entry) throw usage(`Unknown option '--${name}'`);
      if (entry.type === "boolean") {
        if (eq !== -1) throw usage(`Option ${describe(name)} does not take an argument`);
        store(name, true);
      } else if (eq !== -1) {
        store(name, arg.slice(eq + 1));
      } else {
        if (i + 1 >= args.length || optionLike(args[i + 1])) {
          throw usage(`Option ${describe(name)} argument missing`);
        }
        store(name, args[++i]);
      }
      continue;
    }
    if (arg.startsWith("-") && arg !== "-") {
      // A group of one-letter options; a string option takes the rest of the
      // group, or the next argument, as its value.
      for (let k = 1; k < arg.length; k++) {
        const letter = arg[k];
        const name = byShort.get(letter);
        if (name === undefined) throw usage(`Unknown option '-${letter}'`);
        if (options[name].type === "boolean") {
          store(name, true);
          continue;
        }
        if (k + 1 < arg.length) {
          store(name, arg.slice(k + 1));
        } else if (i + 1 < args.length && !optionLike(args[i + 1])) {
          store(name, args[++i]);
        } else {
          throw usage(`Option ${describe(name)} argument missing`);
        }
        break;
      }
      continue;
    }
    if (!allowPositionals) throw usage(`Unexpected argument '${arg}'`);
    positionals.push(arg);
  }
  return { values, positionals };
}
