/**
 * The one table of jailkit's tools: where each entry point lives, where it is
 * installed, whether it sits behind the privileged trampoline, and the exact
 * Deno permissions it runs with.
 *
 * `build.ts` turns each row into a `deno compile` command, and `src/install.ts`
 * turns the same row into a dev launcher that runs `deno run` with the same
 * flags, so the tests exercise exactly what a compiled binary would bake.
 *
 * Rules every row follows:
 * - every path in a permission is absolute (Deno resolves relative paths and
 *   bare `--allow-run` names at run time, against the caller's cwd and PATH);
 * - every tool gets `--no-prompt` (a prompt would let the person at the
 *   terminal grant themselves permissions);
 * - privileged tools also get `--no-code-cache` (the cache lives in $TMPDIR);
 * - `--allow-ffi` and `--allow-run` amount to everything: Deno documents both as
 *   equivalent to `--allow-all`. Rows that need them say why.
 *
 * @module
 */

import { iniPath, type Site } from "./site.ts";

/** One tool of the suite. */
export interface Tool {
  /** Installed name, e.g. `jk_list`. */
  name: string;
  /** Entry module, relative to the repository root. */
  entry: string;
  /** Installation directory below the prefix. */
  dir: "usr/sbin" | "usr/bin";
  /**
   * Installed behind the setuid-root (or file-capability) trampoline
   * `shells/trampoline.c`; the Deno program itself never carries the bit.
   */
  privileged: boolean;
  /** Deno permission flags for a site; absolute paths only. */
  permissions: (site: Site) => string[];
  /** `--unstable-*` features the tool needs, e.g. `net` for datagram sockets. */
  unstable?: string[];
  /** Why the tool needs what it has, for the reader of this table. */
  why: string;
}

/**
 * Every tool, in installation order.
 *
 * @example
 * ```ts
 * import { TOOLS } from "./tools.ts";
 * console.log(TOOLS.map((t) => t.name).join(" "));
 * ```
 */
export const TOOLS: readonly Tool[] = [
  {
    name: "jk_list",
    entry: "src/jk_list.ts",
    dir: "usr/sbin",
    privileged: false,
    permissions: () => ["--allow-all"],
    why: "reads /proc/<pid>/root, exe and cmdline of every process; Deno refuses " +
      "/proc to anything short of --allow-all (even --allow-read=/proc), so the " +
      "alternatives are --allow-all or --allow-ffi, which Deno itself documents as " +
      "equivalent. The program only reads.",
  },
];

/**
 * Looks a tool up by name.
 *
 * @example
 * ```ts
 * findTool("jk_list")?.dir; // "usr/sbin"
 * ```
 */
export function findTool(name: string): Tool | undefined {
  return TOOLS.find((t) => t.name === name);
}

/**
 * Flags shared by `deno run` and `deno compile` for one tool: prompt off, code
 * cache off when privileged, unstable features, then the permissions.
 *
 * @example
 * ```ts
 * toolFlags(findTool("jk_list")!, { prefix: "", sysconfdir: "/etc/jailkit" });
 * // ["--no-prompt", "--allow-all"]
 * ```
 */
export function toolFlags(tool: Tool, site: Site): string[] {
  const flags = ["--no-prompt"];
  if (tool.privileged) flags.push("--no-code-cache");
  for (const feature of tool.unstable ?? []) flags.push(`--unstable-${feature}`);
  flags.push(...tool.permissions(site));
  return flags;
}

/** Flags that keep Deno from reading a deno.json, a lock file or the network. */
const HERMETIC = ["--no-config", "--no-lock", "--no-remote", "--no-npm"];

/**
 * Arguments for `deno compile` of one tool into `output`.
 *
 * @example
 * ```ts
 * compileArgs(findTool("jk_list")!, site, "/src/src/jk_list.ts", "dist/jk_list");
 * ```
 */
export function compileArgs(tool: Tool, site: Site, entry: string, output: string): string[] {
  return ["compile", ...HERMETIC, ...toolFlags(tool, site), "--output", output, entry];
}

/**
 * Arguments for `deno run` of one tool's source, as a dev launcher runs it:
 * the same flags as the compiled binary, plus `--cached-only` so nothing is
 * fetched or transpiled into a cache the caller controls.
 *
 * @example
 * ```ts
 * runArgs(findTool("jk_list")!, site, "/usr/lib/jailkit/src/jk_list.ts");
 * ```
 */
export function runArgs(tool: Tool, site: Site, entry: string): string[] {
  return ["run", ...HERMETIC, "--cached-only", ...toolFlags(tool, site), entry];
}

/** Permission helper: `--allow-read` of the named ini files of a site. */
export function readIni(site: Site, ...tools: string[]): string {
  return `--allow-read=${tools.map((t) => iniPath(site, t)).join(",")}`;
}
