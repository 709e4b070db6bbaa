/**
 * src/privileged.ts for real: a probe program that calls the sequence runs
 * behind the product's own trampoline (setuid root, and `--caps`), started by
 * an unprivileged test user, and the process it finally execs inside a real
 * jail is inspected from outside through /proc. Refusals run the probe as
 * root and without privileges.
 */
import assert from "node:assert/strict";
import { compileLauncher } from "../src/launchers.ts";
import { resolveHostIdentity } from "../src/privileged.ts";
import {
  copyWithLibs,
  createGroup,
  createUser,
  finishChild,
  observeInJail,
  runCommand,
  scratchDir,
  type TestUser,
} from "./harness.ts";

const REPO = new URL("..", import.meta.url).pathname;
const TRAMPOLINE = `${REPO}shells/trampoline.c`;

/** The probe: one privileged sequence per mode, results as JSON lines on stdout. */
const PROBE = `
import * as P from "${REPO}src/privileged.ts";
import * as L from "${REPO}src/libc.ts";
const [mode, jail, command] = Deno.args;
const out = (o: unknown) => console.log(JSON.stringify(o));
const reason = (f: () => unknown) => {
  try { f(); return "ok"; } catch (e) { return e instanceof P.PrivilegeError ? e.reason : String(e); }
};
if (mode === "sequence") {
  const hardening = P.hardenProcess();
  const privilege = P.privilegeMode();
  const me = P.resolveHostIdentity(privilege.uid);
  const env = P.callerEnvironment();
  out({ privilege, me, dumpable: L.getDumpable(), core: String(L.getrlimit(L.RLIMIT_CORE).soft),
    callerUser: env.get("USER") ?? null, preload: env.get("LD_PRELOAD") ?? null });
  const root = P.enterJail(jail);
  P.dropTo(me);
  P.setNoNewPrivs();
  // glibc applies setresuid to every thread and aborts if they disagree: EPERM
  // here means no runtime thread kept CAP_SETUID (a --caps start included).
  let regain = "";
  try { L.setresuid(0, 0, 0); regain = "succeeded"; } catch (e) { regain = (e as L.LibcError).code; }
  out({ root: { dev: String(root.dev), ino: String(root.ino) }, regain, nnp: L.getNoNewPrivs(),
    caps: String(L.capabilities().permitted), ambient: String(L.ambientCapabilities()) });
  P.prepareExec(hardening);
  P.execOrDie("/bin/sh", ["sh", "-c", command], ["PATH=/usr/bin:/bin"]);
} else if (mode === "privilege") {
  out({ privilege: reason(P.privilegeMode) });
} else if (mode === "enter") {
  out({ enter: reason(() => P.enterJail(jail)) });
} else if (mode === "exec-fail") {
  L.signal(L.SIGINT, L.SIG_IGN);
  P.prepareExec();
  P.execOrDie("/nonexistent/shell", ["x"], [], {
    exitCode: 42,
    onFailure: (e) => out({ failure: e.code }),
  });
} else if (mode === "prepare") {
  L.signal(L.SIGINT, L.SIG_IGN);
  L.signal(L.SIGTERM, L.SIG_IGN);
  L.setSignalMask([L.SIGUSR1]);
  P.prepareExec();
  P.execOrDie("/bin/sh", ["sh", "-c", command], ["PATH=/usr/bin:/bin"]);
}
`;

/** A built probe: its trampolines and how to run it plainly. */
interface Probe {
  dir: string;
  setuid: string;
  caps: string;
  /** `deno run` of the probe, for root or unprivileged runs without a trampoline. */
  plain: string[];
}

let probe: Promise<Probe> | undefined;

/** Builds the probe, its module cache and both trampolines once per test process. */
function buildProbe(): Promise<Probe> {
  probe ??= (async () => {
    const dir = await scratchDir("privprobe");
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const script = `${dir}/probe.ts`;
    await Deno.writeTextFile(script, PROBE, { mode: 0o644 });
    const env = { DENO_DIR: `${dir}/cache`, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };
    const cached = await runCommand(
      Deno.execPath(),
      ["cache", "--no-config", "--no-lock", script],
      {
        env: { ...env, PATH: "/usr/bin:/bin", HOME: "/" },
      },
    );
    assert.equal(cached.code, 0, cached.stderr);
    await runCommand("chmod", ["-R", "go-w,a+rX", dir]);
    const args = [
      "run",
      "--no-config",
      "--no-lock",
      "--cached-only",
      "--no-prompt",
      "--no-code-cache",
      "--allow-ffi",
      "--allow-read",
      script,
    ];
    const fixedEnv = [
      "PATH=/usr/bin:/bin",
      "HOME=/",
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    ];
    for (const caps of [false, true]) {
      await compileLauncher(
        { tool: "jk_probe", target: Deno.execPath(), args, env: fixedEnv, privileged: true, caps },
        TRAMPOLINE,
        `${dir}/${caps ? "caps" : "setuid"}`,
      );
    }
    return {
      dir,
      setuid: `${dir}/setuid`,
      caps: `${dir}/caps`,
      plain: [Deno.execPath(), ...args],
    };
  })();
  return probe;
}

/** A jail with sh and id (plus a setuid-root copy of id), a user in an extra group. */
async function withJail(fn: (jail: string, user: TestUser) => Promise<void>): Promise<void> {
  const jail = await scratchDir("privjail");
  const group = await createGroup();
  const user = await createUser({ groups: [group.name] });
  try {
    await copyWithLibs(jail, ["/bin/sh", "/usr/bin/id"]);
    await Deno.copyFile(`${jail}/usr/bin/id`, `${jail}/usr/bin/id-suid`);
    await Deno.chmod(`${jail}/usr/bin/id-suid`, 0o4755);
    await fn(jail, user);
  } finally {
    await user.remove();
    await group.remove();
    await Deno.remove(jail, { recursive: true });
  }
}

/** Starts `cmd` as the user through bash (so fds and signal state can be set up first). */
function spawnAs(user: TestUser, script: string, env: Record<string, string> = {}) {
  return new Deno.Command("/usr/bin/bash", {
    args: ["-c", script],
    uid: user.uid,
    gid: user.gid,
    cwd: "/",
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** The lines of JSON a probe printed before exec. */
function probeLines(stdout: string): Record<string, unknown>[] {
  return stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

/** Ends a child blocked in `read` and collects its output. */
function finish(child: Deno.ChildProcess) {
  return finishChild(child, "\n");
}

for (const mode of ["setuid", "caps"] as const) {
  Deno.test(`privileged (${mode}): the exec'd program is the user, in the jail, with nothing else`, async () => {
    const p = await buildProbe();
    await withJail(async (jail, user) => {
      // A hostile start: signals ignored and blocked, a stray fd, USER=root.
      const child = spawnAs(
        user,
        `trap '' INT PIPE; exec 7</etc/hostname; exec ${p[mode]} sequence ${jail} 'read x'`,
        { USER: "root", LD_PRELOAD: "/nonexistent.so" },
      );
      const seen = await observeInJail(child, jail);
      const result = await finish(child);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(seen, `never ran a program inside the jail: ${result.stdout} ${result.stderr}`);
      const [before, after] = probeLines(result.stdout);
      assert.deepEqual(before.privilege, { mode, uid: user.uid, gid: user.gid });
      assert.equal(before.dumpable, false);
      assert.equal(before.core, "0");
      assert.equal(before.callerUser, "root", "the caller's USER arrives as data");
      assert.equal(before.preload, null, "glibc strips LD_PRELOAD for a privileged start");
      const jailStat = await Deno.stat(jail);
      assert.equal((after.root as { ino: string }).ino, String(jailStat.ino));
      assert.equal(after.regain, "EPERM");
      assert.equal(after.nnp, true);
      assert.equal(after.caps, "0");
      assert.equal(after.ambient, "0");

      const ids = (name: string) => seen.status[name]!.split(/\s+/).map(Number);
      assert.deepEqual(ids("Uid"), Array(4).fill(user.uid));
      assert.deepEqual(ids("Gid"), Array(4).fill(user.gid));
      const hostGroups = (await runCommand("id", ["-G", user.name])).stdout.trim().split(" ")
        .map(Number).sort((a, b) => a - b);
      assert.equal(hostGroups.length, 2, "the user's own group and the extra one");
      assert.deepEqual(ids("Groups").sort((a, b) => a - b), hostGroups);
      assert.equal(seen.status.NoNewPrivs, "1");
      for (const set of ["CapInh", "CapPrm", "CapEff", "CapAmb"]) {
        assert.equal(BigInt("0x" + seen.status[set]), 0n, `${set} ${seen.status[set]}`);
      }
      assert.equal(BigInt("0x" + seen.status.SigIgn), 0n);
      assert.equal(BigInt("0x" + seen.status.SigBlk), 0n);
      assert.deepEqual(seen.fds, [0, 1, 2], "fd 7, fd 3 and the runtime's fds are gone");
      assert.equal(seen.root, jail);
      assert.deepEqual(seen.cmdline, ["sh", "-c", "read x"]);
      assert.deepEqual(seen.environ, ["PATH=/usr/bin:/bin"]);
    });
  });
}

Deno.test("privileged: no_new_privs makes a setuid-root file in the jail inert", async () => {
  const p = await buildProbe();
  await withJail(async (jail, user) => {
    // The file is really setuid root: run outside any jail, it gives euid 0.
    const outside = await runCommand(`${jail}/usr/bin/id-suid`, ["-u"], user);
    assert.equal(outside.stdout.trim(), "0");
    const child = spawnAs(user, `exec ${p.setuid} sequence ${jail} '/usr/bin/id-suid -u'`);
    const r = await finish(child);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split("\n").pop(), String(user.uid));
  });
});

Deno.test("privileged: privilegeMode refuses root and the unprivileged", async () => {
  const p = await buildProbe();
  const user = await createUser();
  try {
    const [cmd, ...args] = p.plain;
    const asRoot = await runCommand(cmd, [...args, "privilege"]);
    assert.deepEqual(probeLines(asRoot.stdout), [{ privilege: "root-caller" }], asRoot.stderr);
    const plain = await runCommand(cmd, [...args, "privilege"], user);
    assert.deepEqual(probeLines(plain.stdout), [{ privilege: "not-privileged" }], plain.stderr);
    // Through the setuid trampoline, but started by root: still the real uid 0.
    const viaTrampoline = await runCommand(p.setuid, ["privilege"]);
    assert.deepEqual(probeLines(viaTrampoline.stdout), [{ privilege: "root-caller" }]);
  } finally {
    await user.remove();
  }
});

Deno.test("privileged: enterJail refuses a symlinked or missing jail", async () => {
  const p = await buildProbe();
  const dir = await scratchDir("priventer");
  try {
    await Deno.mkdir(`${dir}/real`);
    await Deno.symlink(`${dir}/real`, `${dir}/link`);
    const [cmd, ...args] = p.plain;
    for (const [jail, want] of [[`${dir}/link`, "chdir"], [`${dir}/none`, "chdir"]]) {
      const r = await runCommand(cmd, [...args, "enter", jail]);
      assert.deepEqual(probeLines(r.stdout), [{ enter: want }], `${jail}: ${r.stderr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("privileged: prepareExec resets dispositions and mask and closes inherited fds", async () => {
  const p = await buildProbe();
  const [cmd, ...args] = p.plain;
  const script = `exec 7</etc/hostname; exec ${cmd} ${args.join(" ")} prepare /` +
    ` 'grep -E "^Sig(Ign|Blk)" /proc/self/status; ls /proc/self/fd'`;
  const r = await runCommand("/usr/bin/bash", ["-c", script]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^SigIgn:\s+0{16}$/m);
  assert.match(r.stdout, /^SigBlk:\s+0{16}$/m);
  // ls lists its own directory fd (3) besides 0-2; fd 7 must be gone.
  const fds = r.stdout.split("\n").filter((l) => /^\d+$/.test(l)).map(Number);
  assert.deepEqual(fds, [0, 1, 2, 3]);
});

Deno.test("privileged: execOrDie reports a failed execve and exits with the given code", async () => {
  const p = await buildProbe();
  const [cmd, ...args] = p.plain;
  const r = await runCommand(cmd, [...args, "exec-fail"]);
  assert.equal(r.code, 42);
  assert.deepEqual(probeLines(r.stdout), [{ failure: "ENOENT" }]);
  assert.match(
    r.stderr,
    /cannot execute \/nonexistent\/shell: execve\("\/nonexistent\/shell"\): ENOENT/,
  );
});

Deno.test("privileged: resolveHostIdentity uses the host database and getgrouplist", async () => {
  const group = await createGroup();
  const user = await createUser({ groups: [group.name] });
  try {
    const me = resolveHostIdentity(user.uid);
    assert.equal(me.name, user.name);
    assert.equal(me.gid, user.gid);
    assert.equal(me.groupName, user.name);
    assert.equal(me.home, user.home);
    assert.deepEqual(me.groups, [user.gid, group.gid]);
    assert.throws(() => resolveHostIdentity(4_000_000_000), /no user with user ID 4000000000/);
  } finally {
    await user.remove();
    await group.remove();
  }
});
