/**
 * Background copies (src/backgroundcopy.ts) as the copy engine uses them in
 * `copy`: more files than the queue holds, the read/write fallback when the
 * kernel cannot copy_file_range (tmpfs to ext4), and naming strictly in
 * queue order, on real jails under /var/lib.
 */
import assert from "node:assert/strict";
import { BACKGROUND_MIN, BackgroundCopies, MAX_QUEUED } from "../src/backgroundcopy.ts";
import { CopyEngine, type Reporter } from "../src/jailcopy.ts";
import { Jail } from "../src/jailfs.ts";
import * as c from "../src/libc.ts";
import { Rng, runCommand, testSeed } from "./harness.ts";
import { freshJail } from "./jailfixtures.ts";

function collector(): Reporter & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (l) => lines.push(l),
    verbose: (l) => lines.push(`v: ${l}`),
    error: (l) => lines.push(`E: ${l}`),
  };
}

/** Writes `count` files of seeded random bytes into `dir`, alternately big and small. */
async function plantFiles(dir: string, count: number, rng: Rng): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    const size = i % 3 === 2 ? 100 + rng.uint32() % 4000 : BACKGROUND_MIN + rng.uint32() % 200_000;
    const bytes = new Uint8Array(size);
    for (let j = 0; j < size; j += 4096) bytes[j] = rng.uint32() & 0xff;
    bytes[size - 1] = i;
    const path = `${dir}/f${String(i).padStart(3, "0")}`;
    await Deno.writeFile(path, bytes, { mode: 0o640 });
    await Deno.chmod(path, 0o640);
    files.set(path, bytes);
  }
  return files;
}

/** Copies `paths` into `jail` with `CopyEngine.copy`; returns the engine and its lines. */
async function copyInto(jail: string, paths: string[]) {
  const reporter = collector();
  const j = Jail.open(jail);
  try {
    const engine = new CopyEngine(j, { reporter, verbose: true });
    await engine.copy(paths);
    return { engine, lines: reporter.lines };
  } finally {
    j.close();
  }
}

/** Every name in `dir` that a copy leaves only when something went wrong. */
async function leftovers(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.startsWith(".jk_tmp")) out.push(e.name);
  return out;
}

Deno.test("copy: more files than the queue holds arrive whole, with their modes, and nothing is left over", async () => {
  const { base, jail, remove } = await freshJail("bgcopy");
  try {
    const source = `${base}/host`;
    await Deno.mkdir(source, { mode: 0o755 });
    const files = await plantFiles(source, MAX_QUEUED * 2 + 5, new Rng(testSeed(41)));
    const { engine, lines } = await copyInto(jail, [source]);
    assert.deepEqual(engine.errors, [], lines.join("\n"));
    for (const [path, bytes] of files) {
      const copied = `${jail}${path}`;
      assert.deepEqual(await Deno.readFile(copied), bytes, copied);
      const st = await Deno.lstat(copied);
      assert.equal(st.mode! & 0o7777, 0o640, copied);
      assert.equal(st.uid, 0);
      assert.equal(st.nlink, 1, `${copied} is a copy, not a link`);
    }
    assert.deepEqual(await leftovers(`${jail}${source}`), []);
  } finally {
    await remove();
  }
});

Deno.test("copy: where copy_file_range cannot copy (tmpfs to ext4), the file is copied by reading", async () => {
  const { base, jail, remove } = await freshJail("bgcopy-xdev");
  const mount = `${base}/tmpfs`;
  await Deno.mkdir(mount, { mode: 0o755 });
  const mounted = await runCommand("mount", ["-t", "tmpfs", "-o", "mode=0755", "jktest", mount]);
  assert.equal(mounted.code, 0, mounted.stderr);
  try {
    const files = await plantFiles(mount, 4, new Rng(testSeed(42)));
    // The premise: the kernel refuses this copy, so the worker's copy fails.
    const [first, bytes] = [...files][0];
    const from = c.openat(c.AT_FDCWD, first, c.O_RDONLY);
    const probe = `${base}/probe`;
    const to = c.openat(c.AT_FDCWD, probe, c.O_WRONLY | c.O_CREAT | c.O_EXCL, 0o600);
    try {
      assert.equal(await c.copyFileRangeInBackground(from, to, 0, bytes.length), -1);
    } finally {
      c.close(from);
      c.close(to);
    }
    const { engine, lines } = await copyInto(jail, [...files.keys()]);
    assert.deepEqual(engine.errors, [], lines.join("\n"));
    for (const [path, content] of files) {
      assert.deepEqual(await Deno.readFile(`${jail}${path}`), content, path);
    }
    assert.deepEqual(await leftovers(`${jail}${mount}`), []);
  } finally {
    await runCommand("umount", [mount]);
    await remove();
  }
});

Deno.test("BackgroundCopies: a file is named only after every file queued before it", async () => {
  const { base, jail, remove } = await freshJail("bgcopy-order");
  try {
    const [big, small] = [`${base}/big`, `${base}/small`];
    await Deno.writeFile(big, new Uint8Array(8 * 1024 * 1024).fill(7));
    await Deno.writeFile(small, new TextEncoder().encode("small\n"));
    const j = Jail.open(jail);
    try {
      const errors: string[] = [];
      const copies = new BackgroundCopies(j, (label, e) => errors.push(`${label}: ${e}`));
      const meta = { perm: 0o644, uid: 0, gid: 0 };
      copies.add(j.root, "big", c.openat(c.AT_FDCWD, big, c.O_RDONLY), 8 << 20, meta, false, big);
      copies.add(j.root, "small", c.openat(c.AT_FDCWD, small, c.O_RDONLY), 6, meta, false, small);
      // The small file is complete already, but the big one before it is not
      // known to be: nothing may be named yet.
      copies.nameFinished();
      assert.equal(copies.size, 2);
      await assert.rejects(Deno.lstat(`${jail}/small`), Deno.errors.NotFound);
      await copies.settle();
      assert.equal(copies.size, 0);
      assert.deepEqual(errors, []);
      assert.equal(await Deno.readTextFile(`${jail}/small`), "small\n");
      assert.equal((await Deno.stat(`${jail}/big`)).size, 8 << 20);
    } finally {
      j.close();
    }
  } finally {
    await remove();
  }
});

Deno.test("BackgroundCopies: naming everything at once redoes unfinished copies on this thread", async () => {
  const { base, jail, remove } = await freshJail("bgcopy-now");
  try {
    const paths: string[] = [];
    for (let i = 0; i < 3; i++) {
      paths.push(`${base}/f${i}`);
      await Deno.writeFile(paths[i], new Uint8Array(BACKGROUND_MIN * (i + 2)).fill(i + 1));
    }
    const j = Jail.open(jail);
    try {
      const errors: string[] = [];
      const copies = new BackgroundCopies(j, (label, e) => errors.push(`${label}: ${e}`));
      for (const [i, p] of paths.entries()) {
        const size = BACKGROUND_MIN * (i + 2);
        const meta = { perm: 0o600, uid: 0, gid: 0 };
        copies.add(j.root, `f${i}`, c.openat(c.AT_FDCWD, p, c.O_RDONLY), size, meta, false, p);
      }
      copies.nameAllNow(); // no event loop turn: every copy is redone here
      assert.equal(copies.size, 0);
      for (const [i, p] of paths.entries()) {
        assert.deepEqual(await Deno.readFile(`${jail}/f${i}`), await Deno.readFile(p));
      }
      await copies.settle();
      assert.deepEqual(errors, []);
      assert.deepEqual(await leftovers(jail), []);
    } finally {
      j.close();
    }
  } finally {
    await remove();
  }
});
