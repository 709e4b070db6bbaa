/**
 * The native trampoline on its own: built setuid root (and with file
 * capabilities) in front of ordinary programs that show what they received,
 * then started by an unprivileged user with a hostile environment, stray fds
 * and odd argv.
 */
import assert from "node:assert/strict";
import { compileLauncher, launcherHeader, type LauncherSpec } from "../src/launchers.ts";
import { createUser, runCommand, scratchDir, type TestUser } from "./harness.ts";

const SOURCE = new URL("../shells/trampoline.c", import.meta.url).pathname;

function spec(target: string, args: string[], caps = false): LauncherSpec {
  return {
    tool: "jk_probe",
    target,
    args,
    env: ["PATH=/usr/bin:/bin", "HOME=/"],
    privileged: true,
    caps,
  };
}

/** A hostile environment as a local user could set it. */
const HOSTILE = {
  PATH: "/tmp/evil:/usr/bin:/bin",
  LD_PRELOAD: "/tmp/evil.so",
  LD_LIBRARY_PATH: "/tmp",
  NODE_OPTIONS: "--require /tmp/evil.cjs",
  DENO_INTERNAL_CHILD_ENTRYPOINT: "/tmp/evil.ts",
  NODE_CHANNEL_FD: "3",
  DENO_V8_FLAGS: "--allow-natives-syntax",
  DENO_DIR: "/tmp/evil-cache",
  TMPDIR: "/tmp/evil",
  BASH_ENV: "/tmp/evil.sh",
  USER: "root",
  GLIBC_TUNABLES: "glibc.malloc.check=3",
};

async function withTrampoline(
  s: LauncherSpec,
  fn: (path: string, user: TestUser) => Promise<void>,
): Promise<void> {
  const dir = await scratchDir("tramp");
  const user = await createUser();
  try {
    const path = `${dir}/jk_probe`;
    await compileLauncher(s, SOURCE, path);
    await fn(path, user);
  } finally {
    await user.remove();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `cmd` as `user` through bash, so fds and env can be set up first. */
function asUser(user: TestUser, script: string, env: Record<string, string> = HOSTILE) {
  return runCommand("/usr/bin/bash", ["-c", script], { uid: user.uid, gid: user.gid, env });
}

Deno.test("trampoline: the target gets only the fixed environment, whatever the caller set", async () => {
  await withTrampoline(spec("/usr/bin/env", []), async (path, user) => {
    const r = await asUser(user, `exec ${path}`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n").sort(), ["HOME=/", "PATH=/usr/bin:/bin"]);
  });
});

Deno.test("trampoline: the caller's environment arrives as data on fd 3, nothing else is open", async () => {
  await withTrampoline(spec("/usr/bin/cat", ["/proc/self/fd/3"]), async (path, user) => {
    const r = await asUser(user, `exec ${path}`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.startsWith("JKENV1\n"), JSON.stringify(r.stdout.slice(0, 20)));
    const entries = r.stdout.slice("JKENV1\n".length).split("\0").filter((e) => e !== "");
    assert.ok(entries.includes("USER=root"));
    assert.ok(entries.includes("LD_PRELOAD=/tmp/evil.so") === false, "glibc strips LD_PRELOAD");
  });
  await withTrampoline(spec("/usr/bin/ls", ["/proc/self/fd"]), async (path, user) => {
    // fds 7 and 9 opened by the caller (one of them on a file the user may read) must not survive.
    const r = await asUser(user, `exec 7</etc/hostname 9>/dev/null; exec ${path}`);
    assert.equal(r.code, 0, r.stderr);
    // 3 is the environment memfd; 4 is the directory ls itself opened to list.
    const fds = r.stdout.trim().split("\n").map(Number).sort((a, b) => a - b);
    assert.deepEqual(fds, [0, 1, 2, 3, 4], `stray fds survived: ${fds}`);
  });
});

Deno.test("trampoline: closed std fds are reopened, signals and mask are reset, euid is root", async () => {
  await withTrampoline(spec("/usr/bin/cat", ["/proc/self/status"]), async (path, user) => {
    // stdin closed, SIGINT and SIGPIPE ignored by the caller (and glibc's signals 32/33,
    // which posix_spawn leaves ignored in every child Deno starts).
    const r = await asUser(
      user,
      `trap '' INT PIPE; exec 0<&-; exec ${path}`,
    );
    assert.equal(r.code, 0, r.stderr);
    const field = (name: string) => r.stdout.match(new RegExp(`^${name}:\\s*(.*)$`, "m"))?.[1];
    assert.equal(field("SigIgn"), "0000000000000000");
    assert.equal(field("SigBlk"), "0000000000000000");
    const [ruid, euid] = field("Uid")!.split(/\s+/).map(Number);
    assert.equal(ruid, user.uid);
    assert.equal(euid, 0);
  });
});

Deno.test(
  'trampoline: argv[0] is the tool\'s name (login "-" kept), arguments follow the fixed ones, ' +
    "an empty argv is safe",
  async () => {
    await withTrampoline(spec("/usr/bin/printf", ["[%s]"]), async (path, user) => {
      const r = await asUser(user, `exec -a -jk_probe ${path} a 'b c'`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "[a][b c]");
    });
    await withTrampoline(spec("/usr/bin/cat", ["/proc/self/cmdline"]), async (path, user) => {
      const r = await asUser(user, `exec -a -anything ${path}`);
      assert.equal(r.stdout.split("\0")[0], "-jk_probe", "a login '-' is kept, the name is not");
      // The Deno CLI obeys argv[0] ("dx" runs `deno x`): a caller's name never reaches it.
      const dx = await asUser(user, `exec -a dx ${path}`);
      assert.equal(dx.stdout.split("\0")[0], "jk_probe");
      // execve with argc == 0: argv[0] becomes the tool name, nothing is read past the end.
      const dir = path.slice(0, path.lastIndexOf("/"));
      const c =
        `#include <unistd.h>\nint main(void){char *n[]={0};execve("${path}",n,n);return 99;}\n`;
      await Deno.writeTextFile(`${dir}/noargv.c`, c);
      const cc = await runCommand("cc", ["-o", `${dir}/noargv`, `${dir}/noargv.c`]);
      assert.equal(cc.code, 0, cc.stderr);
      const empty = await runCommand(`${dir}/noargv`, [], { uid: user.uid, gid: user.gid });
      assert.equal(empty.code, 0, empty.stderr);
      assert.equal(empty.stdout.split("\0")[0], "jk_probe");
    });
  },
);

Deno.test("trampoline: the target starts in /, not in the caller's directory", async () => {
  await withTrampoline(spec("/usr/bin/pwd", []), async (path, user) => {
    const r = await asUser(user, `cd ${user.home} && exec ${path}`);
    assert.equal(r.stdout.trim(), "/");
  });
});

Deno.test("trampoline: refuses a target that is not root-owned or is writable by others", async () => {
  const dir = await scratchDir("tramp-target");
  const user = await createUser();
  try {
    const target = `${dir}/target`;
    await Deno.copyFile("/usr/bin/true", target);
    await Deno.chmod(target, 0o757);
    await compileLauncher(spec(target, []), SOURCE, `${dir}/jk_probe`);
    const writable = await asUser(user, `exec ${dir}/jk_probe`);
    assert.equal(writable.code, 127);
    assert.match(writable.stderr, /target is writable by group or others/);
    await Deno.chmod(target, 0o755);
    await Deno.chown(target, user.uid, user.gid);
    const owned = await asUser(user, `exec ${dir}/jk_probe`);
    assert.equal(owned.code, 127);
    assert.match(owned.stderr, /target is not owned by root/);
  } finally {
    await user.remove();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trampoline --caps: capabilities reach the target through the ambient set, uid unchanged", async () => {
  await withTrampoline(spec("/usr/bin/cat", ["/proc/self/status"], true), async (path, user) => {
    const mode = (await Deno.stat(path)).mode! & 0o7777;
    assert.equal(mode, 0o755, "a caps trampoline has no setuid bit");
    const r = await asUser(user, `exec ${path}`);
    assert.equal(r.code, 0, r.stderr);
    const field = (name: string) => r.stdout.match(new RegExp(`^${name}:\\s*(.*)$`, "m"))?.[1];
    // cap_setgid (6), cap_setuid (7), cap_sys_chroot (18)
    const wanted = (1n << 6n) | (1n << 7n) | (1n << 18n);
    assert.equal(BigInt("0x" + field("CapEff")), wanted);
    assert.equal(BigInt("0x" + field("CapAmb")), wanted);
    assert.deepEqual(field("Uid")!.split(/\s+/).map(Number), Array(4).fill(user.uid));
  });
});

Deno.test("launcher header: strings are escaped, non-printable ones refused", () => {
  const h = launcherHeader({ ...spec('/opt/a"b\\c', ["x?y"]), privileged: false });
  assert.match(h, /jk_target = "\/opt\/a\\"b\\\\c";/);
  assert.match(h, /\{"x\\\?y", NULL\}/);
  assert.throws(() => launcherHeader(spec("/opt/a\nb", [])), /non-printable/);
});
