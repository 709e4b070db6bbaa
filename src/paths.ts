/**
 * POSIX path strings: `normalize`, `join`, `dirname`, `basename`,
 * `isAbsolute`, `resolve` — the subset of `node:path` the tools use, with the
 * same results (tests/paths_test.ts compares them on thousands of inputs).
 *
 * Why not `node:path` itself: the first `node:` import loads Deno's Node
 * compatibility layer, about 20 ms per start without a code cache, and the
 * privileged tools run without one (`--no-code-cache`). A login through
 * jk_chrootsh and jk_lsh pays every millisecond of that.
 *
 * These functions are lexical: `..` is removed without looking at the file
 * system, so a joined path must still be checked against its jail.
 *
 * @module
 */

/**
 * Collapses `//`, `.` and `..`; keeps a leading `/`; `""` becomes `"."`. A
 * trailing slash is kept, as node:path does.
 *
 * @example
 * ```ts
 * normalize("/srv//jail/./etc/../lib/"); // "/srv/jail/lib/"
 * normalize("a/../.."); // ".."
 * ```
 */
export function normalize(path: string): string {
  if (path === "") return ".";
  const absolute = path.startsWith("/");
  const trailing = path.endsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
      continue;
    }
    out.push(part);
  }
  let result = (absolute ? "/" : "") + out.join("/");
  if (result === "") result = ".";
  if (trailing && result !== "/") result += "/";
  return result;
}

/**
 * Joins the non-empty segments with `/` and normalizes the result.
 *
 * @example
 * ```ts
 * join("/home/jail", "../etc", "passwd"); // "/home/etc/passwd"
 * ```
 */
export function join(...segments: string[]): string {
  const parts = segments.filter((s) => s !== "");
  return parts.length === 0 ? "." : normalize(parts.join("/"));
}

/**
 * The directory part of a path (trailing slashes ignored).
 *
 * @example
 * ```ts
 * dirname("/usr/lib/"); // "/usr"
 * dirname("file"); // "."
 * dirname("a//b"); // "a/" (as node:path)
 * ```
 */
export function dirname(path: string): string {
  if (path === "") return ".";
  // Node's rule: everything before the last slash that follows a non-slash,
  // slashes before it kept ("a//b" -> "a/").
  let end = -1;
  let sawNonSlash = false;
  for (let i = path.length - 1; i >= 1; i--) {
    if (path[i] === "/") {
      if (sawNonSlash) {
        end = i;
        break;
      }
    } else {
      sawNonSlash = true;
    }
  }
  if (end === -1) return path.startsWith("/") ? "/" : ".";
  if (path.startsWith("/") && end === 1) return "//";
  return path.slice(0, end);
}

/**
 * The last component of a path (trailing slashes ignored).
 *
 * @example
 * ```ts
 * basename("/usr/sbin/jk_lsh"); // "jk_lsh"
 * basename("/srv/jail/"); // "jail"
 * ```
 */
export function basename(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/**
 * Whether a path starts at `/`.
 *
 * @example
 * ```ts
 * isAbsolute("etc/passwd"); // false
 * ```
 */
export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

/**
 * An absolute, normalized path: the segments from the right until one is
 * absolute, on top of the current directory (which needs read permission on
 * it). No trailing slash.
 *
 * @example
 * ```ts
 * resolve("/srv", "jail", "../x"); // "/srv/x"
 * ```
 */
export function resolve(...segments: string[]): string {
  let path = "";
  for (let i = segments.length - 1; i >= 0 && !path.startsWith("/"); i--) {
    if (segments[i] !== "") path = path === "" ? segments[i] : `${segments[i]}/${path}`;
  }
  if (!path.startsWith("/")) path = path === "" ? Deno.cwd() : `${Deno.cwd()}/${path}`;
  const result = normalize(path);
  return result.length > 1 ? result.replace(/\/$/, "") : result;
}
