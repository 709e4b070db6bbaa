/** Jail safety checks against real directory trees. */
import assert from "node:assert/strict";
import { checkAncestors, checkJail } from "../src/jailsafety.ts";
import { scratchDir } from "./harness.ts";

async function withTree(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await scratchDir("safety");
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a root-owned 0755 jail with merged-/usr links is safe", async () => {
  await withTree(async (dir) => {
    for (const d of ["usr/lib", "usr/bin", "etc", "dev"]) {
      await Deno.mkdir(`${dir}/${d}`, { recursive: true });
    }
    await Deno.symlink("usr/lib", `${dir}/lib`);
    await Deno.symlink("usr/bin", `${dir}/bin`);
    assert.deepEqual(checkJail(dir), []);
  });
});

Deno.test("each unsafe jail property is found with its path", async () => {
  await withTree(async (dir) => {
    await Deno.mkdir(`${dir}/usr/lib`, { recursive: true });
    await Deno.mkdir(`${dir}/etc`);
    await Deno.symlink("usr/lib", `${dir}/lib`);
    await Deno.chmod(`${dir}/usr/lib`, 0o775); // reached through the lib link
    await Deno.chown(`${dir}/etc`, 1, 0);
    await Deno.symlink("/usr/bin", `${dir}/bin`); // leaves the jail
    const found = checkJail(dir).map((f) => `${f.problem} ${f.path.slice(dir.length)}`).sort();
    assert.deepEqual(found, ["group-writable /usr/lib", "owner /etc", "symlink /bin"]);
  });
});

Deno.test("a jail below a world-writable directory is refused", async () => {
  await withTree(async (dir) => {
    await Deno.mkdir(`${dir}/pub/jail`, { recursive: true });
    await Deno.chmod(`${dir}/pub`, 0o1777);
    const found = checkJail(`${dir}/pub/jail`);
    assert.deepEqual(found.map((f) => [f.problem, f.path]), [
      ["group-writable", `${dir}/pub`],
      ["other-writable", `${dir}/pub`],
    ]);
    assert.deepEqual(checkAncestors("/tmp/jail").map((f) => f.problem), [
      "group-writable",
      "other-writable",
    ]);
  });
});

Deno.test("missing jail: refused, unless missingOk; a file is not a jail", async () => {
  await withTree(async (dir) => {
    assert.equal(checkJail(`${dir}/nope`)[0].problem, "missing");
    assert.deepEqual(checkJail(`${dir}/nope`, { missingOk: true }), []);
    await Deno.writeTextFile(`${dir}/file`, "");
    assert.equal(checkJail(`${dir}/file`)[0].problem, "not-directory");
    assert.equal(checkJail("relative/jail")[0].message, "relative/jail is not an absolute path");
  });
});
