/**
 * Tests of src/libc.ts against the real kernel and glibc. Root only. Anything
 * that changes process state (chroot, ids, signals, no_new_privs, umask) runs
 * in a child `deno run`, never in the test runner. Run with
 * `deno test --no-config -A tests/libc_test.ts`.
 */

import assert from "node:assert/strict";
import { dirname } from "node:path";
import { JkError } from "../src/cli.ts";
import { compileLauncher } from "../src/launchers.ts";
import {
  chdir,
  close,
  errnoName,
  fstat,
  getgrgid,
  getgrnam,
  getgrouplist,
  getpwnam,
  getpwuid,
  lchown,
  LibcError,
  makedev,
  mknod,
  O_PATH,
  O_RDONLY,
  open,
  openat2,
  read,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  S_IFCHR,
  S_IFMT,
  strerror,
} from "../src/libc.ts";
import {
  type DenoScriptOptions,
  runDenoScript,
  type RunResult,
  scratchDir,
  statusFields,
} from "./harness.ts";

const DENO = Deno.execPath();
const LIBC = new URL("../src/libc.ts", import.meta.url).href;
const isRoot = Deno.uid() === 0;
const decoder = new TextDecoder();
const EEXIST = 17;

/**
 * Runs `source` (a module importing libc.ts as `L`) in a child `deno run` with
 * `flags` (default `--allow-ffi`); `shell` and `wrapper` as for `runDenoScript`.
 */
function runChild(source: string, opts: DenoScriptOptions = {}): Promise<RunResult> {
  return runDenoScript(`import * as L from "${LIBC}";\n${source}`, {
    ...opts,
    flags: opts.flags ?? ["--allow-ffi"],
  });
}

async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdin: "null" }).output();
  const text = decoder.decode(out.stdout);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${decoder.decode(out.stderr)}`);
  return text;
}

Deno.test("importing libc.ts needs no permission; calling a wrapper needs --allow-ffi", async () => {
  const out = await runChild(
    `console.log(L.errnoName(2), L.errnoName(1), L.errnoName(9999));
     try { L.getuid(); console.log("called"); } catch (e) { console.log(e.constructor.name); }`,
    { flags: [] },
  );
  assert.equal(out.stderr, "");
  assert.equal(out.stdout, "ENOENT EPERM errno 9999\nNotCapable\n");
});

Deno.test("a failing call throws LibcError with errno, name and strerror text", () => {
  const missing = `/nonexistent-jktest-${Deno.pid}`;
  const before = Deno.cwd();
  try {
    chdir(missing);
    assert.fail("chdir to a missing directory succeeded");
  } catch (e) {
    assert.ok(e instanceof LibcError && e instanceof JkError);
    assert.equal(e.errno, 2);
    assert.equal(e.code, "ENOENT");
    assert.equal(e.message, `chdir("${missing}"): ENOENT (No such file or directory)`);
    assert.equal(e.exitCode, 1);
  }
  assert.equal(Deno.cwd(), before);
  assert.equal(strerror(1), "Operation not permitted");
  assert.equal(errnoName(13), "EACCES");
});

Deno.test("a string with a NUL byte is refused before C sees it", () => {
  // C would stop at the NUL and chdir to /tmp; the runner's cwd must not move.
  const before = Deno.cwd();
  assert.throws(() => chdir("/tmp\0/nonexistent"), (e) => {
    assert.ok(e instanceof JkError && !(e instanceof LibcError));
    assert.match(e.message, /contains a NUL byte/);
    return true;
  });
  assert.equal(Deno.cwd(), before);
});

Deno.test("passwd and group lookups match the files", () => {
  const root = getpwnam("root");
  assert.ok(root);
  const line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) => l.startsWith("root:"))!;
  const [name, , uid, gid, gecos, dir, shell] = line.split(":");
  assert.deepEqual(root, { name, uid: Number(uid), gid: Number(gid), gecos, dir, shell });
  assert.deepEqual(getpwuid(0), root);
  assert.equal(getgrgid(0)?.name, "root");
  assert.equal(getgrgid(0)?.gid, 0);
  assert.deepEqual(getgrnam("root"), getgrgid(0));
  assert.equal(getpwnam(`nosuchuser${Deno.pid}`), null);
  assert.equal(getgrnam(`nosuchgroup${Deno.pid}`), null);
  assert.equal(getpwuid(4_000_000_000), null);
});

Deno.test({
  name: "getgrouplist, getgrnam members and large entries for a real user in 70 groups",
  ignore: !isRoot,
  async fn() {
    const tag = `jkl${Deno.pid % 100000}`;
    const user = `${tag}u`;
    const groups = Array.from({ length: 70 }, (_, i) => `${tag}g${i}`);
    const gecos = "x".repeat(5000); // more than the first 4096-byte lookup buffer
    const created: string[] = [];
    try {
      for (const g of groups) {
        await run("groupadd", g);
        created.push(g);
      }
      await run(
        "useradd",
        "-M",
        "-N",
        "-g",
        groups[0],
        "-G",
        groups.slice(1).join(","),
        "-c",
        gecos,
        user,
      );
      const pw = getpwnam(user);
      assert.ok(pw);
      assert.equal(pw.gecos, gecos);
      assert.deepEqual(getpwuid(pw.uid), pw);
      const expected = groups.map((g) => getgrnam(g)!.gid);
      const list = getgrouplist(user, pw.gid); // 70 > the first buffer of 64: retries
      assert.equal(list[0], pw.gid);
      assert.deepEqual([...list].sort((a, b) => a - b), [...expected].sort((a, b) => a - b));
      assert.deepEqual(getgrnam(groups[5])?.members, [user]);
      assert.deepEqual(getgrgid(expected[5]), getgrnam(groups[5]));
    } finally {
      await run("userdel", user).catch(() => {});
      for (const g of created) await run("groupdel", g).catch(() => {});
    }
  },
});

/** Copies `program` and the libraries ldd lists for it into `jail` (test only). */
async function copyWithLibraries(jail: string, program: string): Promise<void> {
  const paths = [program];
  for (const line of (await run("ldd", program)).split("\n")) {
    const m = /(\/\S+) \(0x/.exec(line);
    if (m) paths.push(m[1]);
  }
  for (const path of paths) {
    await Deno.mkdir(`${jail}${dirname(path)}`, { recursive: true, mode: 0o755 });
    await Deno.copyFile(path, `${jail}${path}`);
  }
}

Deno.test({
  name: "chroot, setgroups, setresgid, setresuid, no_new_privs, signals, execve in a child",
  ignore: !isRoot,
  async fn() {
    const tag = `jkx${Deno.pid % 100000}`;
    const user = `${tag}u`;
    const groups = [`${tag}a`, `${tag}b`, `${tag}c`];
    const jail = await scratchDir("libc-jail");
    const created: string[] = [];
    try {
      for (const g of groups) {
        await run("groupadd", g);
        created.push(g);
      }
      await run("useradd", "-M", "-N", "-g", groups[0], "-G", groups.slice(1).join(","), user);
      await copyWithLibraries(jail, "/bin/cat");
      await Deno.mkdir(`${jail}/proc`, { mode: 0o555 });
      const pw = getpwnam(user)!;
      const gids = getgrouplist(user, pw.gid).sort((a, b) => a - b);

      // /proc is mounted in a private mount namespace, so it goes away with the child.
      // fd 5 is an inherited descriptor that closeFrom(3) must close before execve.
      const shell = `mount -t proc proc ${jail}/proc && exec 5</etc/hostname && exec "$@"`;
      const out = await runChild(
        `
        const pw = L.getpwnam(${JSON.stringify(user)});         // NSS before chroot
        const groups = L.getgrouplist(pw.name, pw.gid);
        L.signal(L.SIGUSR1, L.SIG_IGN);                           // state to be reset below
        L.setSignalMask([L.SIGUSR2]);
        const previousUmask = L.umask(0o027);
        const jail = L.open(${JSON.stringify(jail)}, L.O_PATH | L.O_DIRECTORY | L.O_NOFOLLOW);
        L.fchdir(jail);
        L.chroot(".");
        L.chdir("/");
        const root = L.open("/", L.O_PATH | L.O_DIRECTORY);
        const same = L.fstat(root).ino === L.fstat(jail).ino && L.fstat(root).dev === L.fstat(jail).dev;
        L.close(root);
        L.close(jail);
        L.setgroups(groups);
        L.setresgid(pw.gid, pw.gid, pw.gid);
        L.setresuid(pw.uid, pw.uid, pw.uid);
        let regain = "succeeded";
        try { L.setresuid(0, 0, 0); } catch (e) { regain = e.code; }
        let regroup = "succeeded";
        try { L.setgroups([0]); } catch (e) { regroup = e.code; }
        L.clearAmbientCapabilities();
        L.clearCapabilities();
        L.setNoNewPrivs();
        L.setrlimit(L.RLIMIT_CORE, 0n, 0n);
        const sid = L.setsid();
        const caps = L.capabilities();
        console.log(JSON.stringify({
          same, regain, regroup, previousUmask, sidIsPid: sid === Deno.pid,
          uid: L.getresuid(), gid: L.getresgid(), groups: L.getgroups(),
          caps: [caps.effective, caps.permitted, caps.inheritable].map(String),
          nnp: L.getNoNewPrivs(), fd5Open: L.fstat(5).ino > 0n,
        }));
        L.resetAllSignals();
        L.setSignalMask([]);
        L.closeFrom(3);
        try {
          L.execve("/bin/cat", ["cat", "/proc/self/status", "/proc/self/limits",
            "/proc/self/fdinfo/5"], ["PATH=/bin"]);
        } catch (e) {
          L.write(2, new TextEncoder().encode(String(e) + "\\n"));
        }
        L.exitNow(127);
        `,
        { shell, wrapper: ["unshare", "--mount", "--propagation", "private"] },
      );
      const [json, ...rest] = out.stdout.split("\n");
      const report = JSON.parse(json);
      assert.deepEqual(report, {
        same: true,
        regain: "EPERM",
        regroup: "EPERM",
        previousUmask: 0o022,
        sidIsPid: true,
        uid: { real: pw.uid, effective: pw.uid, saved: pw.uid },
        gid: { real: pw.gid, effective: pw.gid, saved: pw.gid },
        groups: gids,
        caps: ["0", "0", "0"],
        nnp: true,
        fd5Open: true,
      });
      // cat printed status and limits, then failed on fdinfo/5: fd 5 did not survive.
      assert.equal(out.code, 1, out.stderr);
      assert.match(out.stderr, /fdinfo\/5: No such file or directory/);
      const status = statusFields(rest.join("\n"));
      assert.equal(status.Uid, `${pw.uid}\t${pw.uid}\t${pw.uid}\t${pw.uid}`);
      assert.equal(status.Gid, `${pw.gid}\t${pw.gid}\t${pw.gid}\t${pw.gid}`);
      assert.deepEqual(status.Groups!.split(/\s+/).map(Number), gids);
      assert.equal(status.NoNewPrivs, "1");
      for (const set of ["CapInh", "CapPrm", "CapEff", "CapAmb"]) {
        assert.equal(status[set], "0000000000000000", set);
      }
      assert.equal(status.SigIgn, "0000000000000000"); // Deno's SIGPIPE and our SIGUSR1
      assert.equal(status.SigBlk, "0000000000000000"); // our SIGUSR2
      assert.equal(status.Umask, "0027");
      assert.match(rest.join("\n"), /^Max core file size\s+0\s+0\s+bytes/m);
    } finally {
      await Deno.remove(jail, { recursive: true });
      await run("userdel", user).catch(() => {});
      for (const g of created) await run("groupdel", g).catch(() => {});
    }
  },
});

Deno.test({
  name: "no_new_privs is inherited by Deno.Command children; a failed execve throws",
  ignore: !isRoot,
  async fn() {
    const out = await runChild(
      `
      L.setNoNewPrivs();
      const out = new Deno.Command("/bin/grep", { args: ["NoNewPrivs", "/proc/self/status"] })
        .outputSync();
      console.log(new TextDecoder().decode(out.stdout).trim());
      try { L.execve("/nonexistent/sh", ["sh"], []); } catch (e) { console.log(e.message); }
      `,
      { flags: ["--allow-ffi", "--allow-run=/bin/grep"] },
    );
    assert.equal(out.stderr, "");
    assert.equal(
      out.stdout,
      'NoNewPrivs:\t1\nexecve("/nonexistent/sh"): ENOENT (No such file or directory)\n',
    );
  },
});

Deno.test({
  name: "mknod creates a character device (1,3) with the right rdev; lchown and errors",
  ignore: !isRoot,
  async fn() {
    const dir = await scratchDir("libc-mknod");
    try {
      const node = `${dir}/null`;
      mknod(node, S_IFCHR | 0o600, makedev(1, 3));
      const info = Deno.lstatSync(node);
      assert.ok(info.isCharDevice);
      assert.equal(info.rdev, Number(makedev(1, 3)));
      assert.equal(info.mode! & 0o777, 0o600);
      const fd = open(node, O_RDONLY);
      const status = fstat(fd);
      assert.equal(status.mode & S_IFMT, S_IFCHR);
      assert.equal(status.rdev, makedev(1, 3));
      assert.equal(Deno.readFileSync(node).length, 0); // it really is /dev/null
      lchown(node, 65534, 65534);
      assert.equal(Deno.lstatSync(node).uid, 65534);
      assert.throws(() => mknod(node, S_IFCHR | 0o600, makedev(1, 3)), (e) => {
        assert.ok(e instanceof LibcError);
        assert.equal(e.errno, EEXIST);
        assert.equal(e.message, `mknod("${node}", 0o20600, 259): EEXIST (File exists)`);
        return true;
      });
      close(fd);
      // Numbers beyond 8 bits each use glibc's split encoding; the kernel must agree.
      mknod(`${dir}/big`, S_IFCHR | 0o600, makedev(4095, 1048575));
      assert.equal(Deno.lstatSync(`${dir}/big`).rdev, Number(makedev(4095, 1048575)));
      assert.equal(Deno.statSync("/dev/null").rdev, Number(makedev(1, 3)));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "openat2 with RESOLVE_IN_ROOT keeps .. and absolute symlinks inside the jail",
  ignore: !isRoot,
  async fn() {
    const jail = await scratchDir("libc-openat2");
    try {
      await Deno.mkdir(`${jail}/etc`);
      await Deno.writeTextFile(`${jail}/etc/hostname`, "inside\n");
      await Deno.symlink("/etc/hostname", `${jail}/absolute`);
      await Deno.symlink("../../../../../../etc/hostname", `${jail}/etc/relative`);
      const root = open(jail, O_PATH);
      const readAt = (path: string) => {
        const fd = openat2(root, path, {
          flags: O_RDONLY,
          resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        });
        try {
          const buf = new Uint8Array(64);
          return decoder.decode(buf.subarray(0, read(fd, buf)));
        } finally {
          close(fd);
        }
      };
      assert.equal(readAt("absolute"), "inside\n");
      assert.equal(readAt("etc/relative"), "inside\n");
      assert.equal(readAt("../../../etc/hostname"), "inside\n");
      assert.throws(() => readAt("missing"), (e) => e instanceof LibcError && e.code === "ENOENT");
      close(root);
      const hostRoot = open("/", O_PATH);
      try {
        assert.throws(
          () =>
            openat2(hostRoot, "proc/self/root/etc/hostname", {
              flags: O_RDONLY,
              resolve: RESOLVE_NO_MAGICLINKS,
            }),
          (e) => e instanceof LibcError && e.code === "ELOOP",
        );
      } finally {
        close(hostRoot);
      }
    } finally {
      await Deno.remove(jail, { recursive: true });
    }
  },
});

/**
 * Runs a child whose fd 3 is set up by `shell` (a sh script ending in
 * `exec "$@"`), printing what readTrampolineEnvironment returned and whether fd
 * 3 is still open, then running `extra`.
 */
function childWithFd3(shell: string, extra = ""): Promise<RunResult> {
  return runChild(
    `
    const env = L.readTrampolineEnvironment();
    console.log(JSON.stringify(env === null ? null : [...env]));
    let fd3 = "closed";
    try { L.fstat(3); fd3 = "open"; } catch (e) { if (e.code !== "EBADF") throw e; }
    console.log(fd3);
    ${extra}
    `,
    { shell },
  );
}

Deno.test("readTrampolineEnvironment parses a JKENV1 file on fd 3 and closes it", async () => {
  const dir = await scratchDir("libc-env");
  try {
    const file = `${dir}/env`;
    const enc = new TextEncoder();
    const bad = new Uint8Array([0x42, 0x41, 0x44, 0x3d, 0xff, 0xfe, 0]); // BAD=<invalid UTF-8>
    const body = [
      enc.encode("JKENV1\nTERM=xterm\0PATH=/evil\0A=x=y\0=noname\0noequals\0"),
      bad,
      enc.encode("TERM=second\0EMPTY=\0LAST=unterminated"),
    ];
    await Deno.writeFile(file, new Uint8Array(body.flatMap((b) => [...b])));
    const out = await childWithFd3(`exec 3<${file}; exec "$@"`);
    assert.equal(out.stderr, "");
    assert.equal(
      out.stdout,
      JSON.stringify([["TERM", "xterm"], ["PATH", "/evil"], ["A", "x=y"], ["EMPTY", ""]]) +
        "\nclosed\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readTrampolineEnvironment leaves a foreign fd 3 alone", async (t) => {
  const dir = await scratchDir("libc-env");
  try {
    await t.step("a regular file without the magic: not closed, offset not moved", async () => {
      await Deno.writeTextFile(`${dir}/plain`, "JKENV2\nTERM=x\0");
      const out = await childWithFd3(
        `exec 3<${dir}/plain; exec "$@"`,
        `const b = new Uint8Array(64); const n = L.read(3, b);
         console.log(JSON.stringify(new TextDecoder().decode(b.subarray(0, n))));`,
      );
      assert.equal(out.stdout, `null\nopen\n${JSON.stringify("JKENV2\nTERM=x\0")}\n`);
    });
    await t.step("a pipe that starts with the magic: not read, not closed", async () => {
      const out = await childWithFd3(
        `printf 'JKENV1\\n' | { exec 3<&0 </dev/null; exec "$@"; }`,
        `const b = new Uint8Array(64); const n = L.read(3, b);
         console.log(JSON.stringify(new TextDecoder().decode(b.subarray(0, n))));`,
      );
      assert.equal(out.stdout, `null\nopen\n${JSON.stringify("JKENV1\n")}\n`);
    });
    await t.step("no fd 3 inherited: the runtime's own fd is untouched", async () => {
      const out = await childWithFd3(
        `exec 3<&-; exec "$@"`,
        `await new Promise((r) => setTimeout(r, 10)); console.log("event loop alive");`,
      );
      assert.equal(out.stderr, "");
      assert.match(out.stdout, /^null\n(open|closed)\nevent loop alive\n$/);
    });
    await t.step("more than 256 KiB: the tail is dropped", async () => {
      const big = "JKENV1\nFIRST=1\0" + "X=" + "y".repeat(300 * 1024) + "\0LATE=1\0";
      await Deno.writeTextFile(`${dir}/big`, big);
      const out = await childWithFd3(`exec 3<${dir}/big; exec "$@"`);
      assert.equal(out.stdout, `${JSON.stringify([["FIRST", "1"]])}\nclosed\n`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "readTrampolineEnvironment reads the memfd of the real trampoline (shells/trampoline.c)",
  ignore: !isRoot,
  async fn() {
    const dir = await scratchDir("libc-tramp");
    try {
      const script = `${dir}/target.ts`;
      await Deno.writeTextFile(
        script,
        `import * as L from "${LIBC}";
         const env = L.readTrampolineEnvironment();
         console.log(JSON.stringify(env && Object.fromEntries([...env].filter(([k]) =>
           k.startsWith("JKT_")))));`,
      );
      const tool = `${dir}/jk_envprobe`;
      await compileLauncher(
        {
          tool: "jk_envprobe",
          target: DENO,
          args: ["run", "--no-config", "--no-lock", "--no-prompt", "--allow-ffi", script],
          env: [`DENO_DIR=${dir}/cache`, "NO_COLOR=1"],
          privileged: true,
          caps: false,
        },
        new URL("../shells/trampoline.c", import.meta.url).pathname,
        tool,
      );
      const out = await new Deno.Command(tool, {
        clearEnv: true,
        env: { JKT_TERM: "vt100", JKT_NL: "a\nb", PATH: "/usr/bin:/bin" },
        stdin: "null",
      }).output();
      assert.equal(decoder.decode(out.stderr), "");
      assert.deepEqual(JSON.parse(decoder.decode(out.stdout)), {
        JKT_TERM: "vt100",
        JKT_NL: "a\nb",
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
