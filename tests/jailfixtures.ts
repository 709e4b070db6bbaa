/**
 * Fixtures shared by the jail-building tests (jailcopy, jk_cp, jk_update, and
 * the adversarial races and faults): fresh jails under /var/lib, a digest of a
 * whole tree to prove nothing in it changed, and a chroot runner.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { runCommand, type RunResult, scratchDir } from "./harness.ts";

/**
 * A fresh, safe (root-owned 0755) jail directory and the scratch directory
 * holding it; `remove()` deletes both.
 *
 * @example
 * ```ts
 * const { jail, remove } = await freshJail("cp");
 * try { ... } finally { await remove(); }
 * ```
 */
export async function freshJail(label: string): Promise<{
  base: string;
  jail: string;
  remove: () => Promise<void>;
}> {
  const base = await scratchDir(label);
  const jail = `${base}/jail`;
  await Deno.mkdir(jail, { mode: 0o755 });
  await Deno.chmod(jail, 0o755);
  return { base, jail, remove: () => Deno.remove(base, { recursive: true }) };
}

/**
 * One line per entry under `root`, sorted by path: its path relative to
 * `root`, mode, owner, link count, and link target, content hash or device
 * number. Any change shows. `linkCounts: false` leaves the counts out, to
 * compare two trees built apart (a file hard-linked elsewhere, a directory's
 * count of subdirectories, are not the tree's content).
 *
 * @example
 * ```ts
 * assert.deepEqual(await treeEntries(jail, { linkCounts: false }), await treeEntries(reference, { linkCounts: false }));
 * ```
 */
export async function treeEntries(
  root: string,
  { linkCounts = true }: { linkCounts?: boolean } = {},
): Promise<string[]> {
  const lines: string[] = [];
  const walk = async (dir: string) => {
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    for (const name of names.sort()) {
      const path = `${dir}/${name}`;
      const st = await Deno.lstat(path);
      let what = "";
      if (st.isSymlink) what = `-> ${await Deno.readLink(path)}`;
      else if (st.isFile) {
        what = createHash("sha256").update(await Deno.readFile(path)).digest("hex");
      } else if (!st.isDirectory) what = `rdev ${st.rdev}`;
      const links = linkCounts ? `n${st.nlink} ` : "";
      lines.push(
        `${path.slice(root.length)} ${st.mode?.toString(8)} ${st.uid}:${st.gid} ${links}${what}`,
      );
      if (st.isDirectory) await walk(path);
    }
  };
  await walk(root);
  return lines;
}

/**
 * `treeEntries` of `root` as one string, link counts included: to prove
 * nothing in a tree changed.
 *
 * @example
 * ```ts
 * const before = await treeDigest("/var/lib/outside");
 * // ... attack ...
 * assert.equal(await treeDigest("/var/lib/outside"), before);
 * ```
 */
export async function treeDigest(root: string): Promise<string> {
  return (await treeEntries(root)).join("\n");
}

/**
 * Runs `program` inside `jail` with chroot(8), clean environment.
 *
 * @example
 * ```ts
 * const r = await inJail(jail, "/usr/bin/ls", ["/"]);
 * ```
 */
export function inJail(jail: string, program: string, args: string[]): Promise<RunResult> {
  return runCommand("/usr/sbin/chroot", [jail, program, ...args], {
    env: { PATH: "/usr/bin:/bin", LANG: "C", LC_ALL: "C" },
  });
}

/**
 * Every regular file under `root` whose content differs from the host file
 * at the same path (relative to the jail), or that the host lacks.
 *
 * @example
 * ```ts
 * assert.deepEqual(await filesDifferingFromHost(jail), []);
 * ```
 */
export async function filesDifferingFromHost(jail: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.isFile) {
        const host = path.slice(jail.length);
        const [a, b] = await Promise.all([
          Deno.readFile(path),
          Deno.readFile(host).catch(() => null),
        ]);
        if (b === null || a.length !== b.length || a.some((x, i) => x !== b[i])) out.push(host);
      }
    }
  };
  await walk(jail);
  return out.sort();
}

/** Where the benchmarks keep a debootstrap minbase jail (~6,800 entries, ~200 MB). */
export const MINBASE_JAIL = "/var/lib/jkbench-minbase";

/** The Debian mirror of this machine's apt sources (deb822 or one-line), for debootstrap. */
function debianMirror(): string {
  const texts: string[] = [];
  for (const dir of ["/etc/apt/sources.list.d"]) {
    try {
      for (const e of Deno.readDirSync(dir)) {
        if (/\.(sources|list)$/.test(e.name)) texts.push(Deno.readTextFileSync(`${dir}/${e.name}`));
      }
    } catch {
      // no such directory
    }
  }
  try {
    texts.push(Deno.readTextFileSync("/etc/apt/sources.list"));
  } catch {
    // none
  }
  for (const text of texts) {
    for (const m of text.matchAll(/^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)/gm)) {
      if (/\/debian\/?$/.test(m[1])) return m[1].replace(/\/$/, "");
    }
  }
  return "http://deb.debian.org/debian";
}

/**
 * The debootstrap minbase jail the jk_check and floors benchmarks use, built
 * on first use (into a temporary name, renamed when complete) and kept in
 * {@link MINBASE_MINBASE_JAIL}; delete it to rebuild.
 *
 * @example
 * ```ts
 * await ensureMinbaseJail(); // then MINBASE_MINBASE_JAIL/usr/bin/bash exists
 * ```
 */
export async function ensureMinbaseJail(): Promise<void> {
  try {
    if (Deno.statSync(`${MINBASE_JAIL}/usr/bin/bash`).isFile) return;
  } catch {
    // not built yet
  }
  const partial = `${MINBASE_JAIL}.partial`;
  await Deno.remove(partial, { recursive: true }).catch(() => {});
  const mirror = debianMirror();
  console.log(`building ${MINBASE_JAIL} with debootstrap from ${mirror} (once)...`);
  const status = await new Deno.Command("debootstrap", {
    args: ["--variant=minbase", "bookworm", partial, mirror],
    stdout: "null",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) throw new Error("debootstrap failed");
  await Deno.rename(partial, MINBASE_JAIL);
}
