import assert from "node:assert/strict";
import { copyWithLibs, createUser, runTool, scratchDir } from "./harness.ts";
import { formatListing, type JailedProcess } from "../src/jk_list.ts";

/** Starts `sleep 60` chrooted into `jail` as `userspec` ("uid:gid"). */
function startJailed(jail: string, userspec: string): Deno.ChildProcess {
  return new Deno.Command("chroot", {
    args: [`--userspec=${userspec}`, jail, "/usr/bin/sleep", "60"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function waitForRoot(pid: number, jail: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await Deno.readLink(`/proc/${pid}/root`).catch(() => "")) === jail) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`process ${pid} never entered ${jail}`);
}

Deno.test("jk_list finds a real chrooted process, and -j filters by jail", async () => {
  const jailA = await scratchDir("list-a");
  const jailB = await scratchDir("list-b");
  const procs: Deno.ChildProcess[] = [];
  try {
    for (const j of [jailA, jailB]) await copyWithLibs(j, ["/usr/bin/sleep"]);
    procs.push(startJailed(jailA, "0:0"), startJailed(jailB, "0:0"));
    await waitForRoot(procs[0].pid, jailA);
    await waitForRoot(procs[1].pid, jailB);

    const all = await runTool("jk_list", ["-w"]);
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.trim().split("\n");
    assert.match(lines[0], /^Pid\s+User\s+Jail\s+Command$/);
    const rowA = lines.find((l) => l.startsWith(`${procs[0].pid} `));
    assert.ok(rowA, all.stdout);
    assert.match(
      rowA,
      new RegExp(`^${procs[0].pid}\\s+root\\s+${jailA}\\s+${jailA}/usr/bin/sleep 60$`),
    );

    const filtered = await runTool("jk_list", ["--jail", jailB]);
    assert.equal(filtered.code, 0);
    assert.ok(filtered.stdout.includes(`${procs[1].pid} `), filtered.stdout);
    assert.ok(!filtered.stdout.includes(jailA), filtered.stdout);
  } finally {
    for (const p of procs) {
      p.kill("SIGKILL");
      await p.status;
    }
    await Deno.remove(jailA, { recursive: true });
    await Deno.remove(jailB, { recursive: true });
  }
});

Deno.test("jk_list: an unreadable process does not hide the ones after it", async () => {
  const jail = await scratchDir("list-perm");
  const user = await createUser();
  const procs: Deno.ChildProcess[] = [];
  try {
    await copyWithLibs(jail, ["/usr/bin/sleep"]);
    // Root's jailed process comes first in /proc; the user cannot read its root link.
    procs.push(startJailed(jail, "0:0"));
    await waitForRoot(procs[0].pid, jail);
    procs.push(startJailed(jail, `${user.uid}:${user.gid}`));
    await waitForRoot(procs[1].pid, jail);

    const r = await runTool("jk_list", [], { uid: user.uid, gid: user.gid });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`${procs[1].pid} `), r.stdout);
    assert.ok(r.stdout.includes(user.name), r.stdout);
    assert.ok(!r.stdout.includes(`${procs[0].pid} `), "root's process must not be readable");
  } finally {
    for (const p of procs) {
      p.kill("SIGKILL");
      await p.status;
    }
    await user.remove();
    await Deno.remove(jail, { recursive: true });
  }
});

Deno.test("jk_list: usage errors are one line with exit 2", async () => {
  const bad = await runTool("jk_list", ["--bogus"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^jk_list: .*bogus.*try --help\n$/);
  const rel = await runTool("jk_list", ["-j", "relative/jail"]);
  assert.equal(rel.code, 2);
  assert.match(rel.stderr, /^jk_list: jail must be an absolute path: relative\/jail\n$/);
  const help = await runTool("jk_list", ["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /-w --wide/);
});

Deno.test("jk_list output layout matches jailkit's columns", () => {
  const p = (
    pid: number,
    user: string,
    jail: string,
    exe: string,
    args: string,
  ): JailedProcess => ({
    pid,
    uid: 0,
    user,
    jail,
    exe,
    args,
  });
  assert.equal(formatListing([], false), "No jailed processes found");
  const out = formatListing([
    p(20, "bob", "/srv/z", "/bin/sh", "-c x"),
    p(10, "alice", "/srv/a", "/usr/bin/sleep", "60"),
  ], false).split("\n");
  assert.deepEqual(out, [
    "Pid    User  Jail   Command",
    "10     alice /srv/a /usr/bin/sleep 60",
    "20     bob   /srv/z /bin/sh -c x",
  ]);
  const long = formatListing([p(1, "u", "/j", "/bin/x", "a".repeat(200))], false).split("\n")[1];
  assert.equal(long.length, 6 + 1 + 4 + 1 + 4 + 1 + (80 - 5 - 4 - 4 - 4));
  const wide = formatListing([p(1, "u", "/j", "/bin/x", "a".repeat(200))], true).split("\n")[1];
  assert.ok(wide.endsWith("a".repeat(200)));
});
