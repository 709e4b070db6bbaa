/**
 * jk_chrootsh for real: two dev installs of the suite (setuid root and
 * `--caps`), each logging to a datagram listener configured as the site's log
 * socket (`--log-socket`: site level, never the environment), real jails built
 * from host programs, real users, and the trampoline started by those users
 * as sshd or login would (`-c CMD`, or a login `-` in argv[0]). The jailed
 * process is inspected from outside through /proc.
 */
import assert from "node:assert/strict";
import { install } from "../src/install.ts";
import { findTool, runArgs } from "../src/tools.ts";
import {
  copyWithLibs,
  createGroup,
  createUser,
  DatagramListener,
  finishChild,
  observeInJail,
  runCommand,
  scratchDir,
  type TestGroup,
  type TestUser,
} from "./harness.ts";

// ---------------------------------------------------------------------------
// Installs and their logs (module level: the listeners outlive single tests)

interface Site {
  prefix: string;
  chrootsh: string;
  ini: string;
  /** Every datagram received on the site's log socket, in order. */
  logs: string[];
}

async function installSite(caps: boolean): Promise<Site> {
  const prefix = await scratchDir(caps ? "chcaps" : "chsuid");
  const logSocket = `${prefix}/log.sock`;
  const opened: { listener?: DatagramListener } = {};
  globalThis.addEventListener("unload", () => {
    opened.listener?.close();
    Deno.removeSync(prefix, { recursive: true });
  });
  await install({
    site: { prefix, sysconfdir: `${prefix}/etc/jailkit`, logSocket },
    dev: true,
    caps,
    log: () => {},
  });
  // 0666: a --caps jk_chrootsh connects as the user, like to /dev/log.
  const listener = opened.listener = new DatagramListener(logSocket, { mode: 0o666 });
  return {
    prefix,
    chrootsh: `${prefix}/usr/sbin/jk_chrootsh`,
    ini: `${prefix}/etc/jailkit/jk_chrootsh.ini`,
    logs: listener.lines,
  };
}

const SITES = { setuid: await installSite(false), caps: await installSite(true) };
const SETUID = SITES.setuid;

/** The log lines that arrived after `from` once the socket has been quiet for a moment. */
async function logsFrom(site: Site, from: number): Promise<string[]> {
  let seen = -1;
  while (seen !== site.logs.length) {
    seen = site.logs.length;
    await new Promise((r) => setTimeout(r, 60));
  }
  return site.logs.slice(from);
}

// ---------------------------------------------------------------------------
// Jails and users

interface Jail {
  site: Site;
  dir: string;
  user: TestUser;
  /** The extra group the user is in on the host. */
  group: TestGroup;
  /** Host path of the home: `dir/home/user`. */
  home: string;
}

interface JailOptions {
  /** Shell in the jail's passwd (default /bin/sh). */
  shell?: string;
  /** Contents of the site's jk_chrootsh.ini during the test (default: as installed). */
  ini?: string;
}

const PROGRAMS = [
  "/bin/sh",
  "/bin/bash",
  "/usr/bin/id",
  "/usr/bin/cat",
  "/usr/bin/env",
  "/usr/bin/ls",
  "/usr/bin/sort",
];

/** A jail with a shell and a few programs, and a host user whose home is JAIL/./home/user. */
async function withJail(
  site: Site,
  options: JailOptions,
  fn: (j: Jail) => Promise<void>,
): Promise<void> {
  const dir = await scratchDir("chjail");
  const shipped = await Deno.readTextFile(site.ini);
  let user: TestUser | undefined;
  let group: TestGroup | undefined;
  try {
    await copyWithLibs(dir, PROGRAMS);
    await Deno.mkdir(`${dir}/etc`, { mode: 0o755 });
    await Deno.mkdir(`${dir}/home`, { mode: 0o755 });
    group = await createGroup();
    user = await createUser({
      home: `${dir}/./home/user`,
      shell: site.chrootsh,
      groups: [group.name],
    });
    await Deno.writeTextFile(
      `${dir}/etc/passwd`,
      `root:x:0:0:root:/root:/bin/sh\n` +
        `${user.name}:x:${user.uid}:${user.gid}::/home/user:${options.shell ?? "/bin/sh"}\n`,
    );
    await Deno.writeTextFile(
      `${dir}/etc/group`,
      `root:x:0:\n${user.name}:x:${user.gid}:\n${group.name}:x:${group.gid}:${user.name}\n`,
    );
    if (options.ini !== undefined) await Deno.writeTextFile(site.ini, options.ini);
    await fn({ site, dir, user, group, home: `${dir}/home/user` });
  } finally {
    await Deno.writeTextFile(site.ini, shipped);
    await Deno.chmod(site.ini, 0o644);
    await user?.remove();
    await group?.remove();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs a bash script as the user; the script execs the trampoline like a login would. */
function asUser(j: Jail, script: string, opts: { stdin?: string; gid?: number } = {}) {
  return runCommand("/usr/bin/bash", ["-c", script], {
    uid: j.user.uid,
    gid: opts.gid ?? j.user.gid,
    env: { PATH: "/usr/bin:/bin", LANG: "C" },
    stdin: opts.stdin,
  });
}

/** `jk_chrootsh -c CMD` as the user. */
function login(j: Jail, command: string) {
  return asUser(j, `exec ${j.site.chrootsh} -c '${command}'`);
}

/** Ends a child blocked in `read` and collects its output. */
function finish(child: Deno.ChildProcess) {
  return finishChild(child, "\n");
}

// ---------------------------------------------------------------------------
// The jailed process

for (const mode of ["setuid", "caps"] as const) {
  Deno.test(`jk_chrootsh (${mode}): the jailed shell is the user, in the jail, with nothing more`, async () => {
    const site = SITES[mode];
    await withJail(site, {}, async (j) => {
      const from = site.logs.length;
      // As a privileged parent could leave it: an fd on /etc/shadow, ignored and
      // blocked signals, no supplementary groups, a hostile environment.
      const script = `trap '' INT PIPE; exec 7</etc/shadow; ` +
        `exec setpriv --reuid=${j.user.uid} --regid=${j.user.gid} --clear-groups ` +
        `env USER=root LD_PRELOAD=/nonexistent.so ${site.chrootsh} -c 'read x'`;
      const child = new Deno.Command("/usr/bin/bash", {
        args: ["-c", script],
        clearEnv: true,
        env: { PATH: "/usr/bin:/bin" },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const seen = await observeInJail(child, j.dir);
      const result = await finish(child);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(seen, `never ran inside the jail: ${result.stderr}`);

      const ids = (name: string) => seen.status[name]!.split(/\s+/).map(Number);
      assert.deepEqual(ids("Uid"), Array(4).fill(j.user.uid));
      assert.deepEqual(ids("Gid"), Array(4).fill(j.user.gid));
      assert.deepEqual(ids("Groups").sort((a, b) => a - b), [j.user.gid, j.group.gid].sort());
      assert.equal(seen.status.NoNewPrivs, "1");
      for (const set of ["CapInh", "CapPrm", "CapEff", "CapAmb"]) {
        assert.equal(BigInt("0x" + seen.status[set]), 0n, `${set} ${seen.status[set]}`);
      }
      assert.equal(BigInt("0x" + seen.status.SigIgn), 0n);
      assert.equal(BigInt("0x" + seen.status.SigBlk), 0n);
      assert.deepEqual(seen.fds, [0, 1, 2], "fd 7 on /etc/shadow must not reach the jail");
      assert.equal(seen.root, j.dir);
      assert.equal(seen.cwd, j.home);
      // The same pid went trampoline -> deno -> shell: no Deno process stays behind.
      assert.match(seen.exe, /\/(dash|sh)$/);
      assert.deepEqual(seen.cmdline, ["/bin/sh", "-c", "read x"]);
      assert.deepEqual(seen.environ, [
        "HOME=/home/user",
        `USER=${j.user.name}`,
        `USERNAME=${j.user.name}`,
        "SHELL=/bin/sh",
      ]);
      const logs = await logsFrom(site, from);
      assert.equal(logs.length, 1, logs.join("\n"));
      assert.match(
        logs[0],
        new RegExp(
          `^<38>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d jk_chrootsh\\[${child.pid}\\]: now entering ` +
            `jail ${j.dir} for user ${j.user.name} \\(${j.user.uid}\\) with arguments -c read x$`,
        ),
      );
    });
  });

  Deno.test(`jk_chrootsh (${mode}): a login "-" reaches the jailed shell, -c keeps working`, async () => {
    await withJail(SITES[mode], {}, async (j) => {
      const chrootsh = j.site.chrootsh;
      const loginShell = await asUser(j, `exec -a -jk_chrootsh ${chrootsh} -c 'echo "$0"; id -un'`);
      assert.equal(loginShell.code, 0, loginShell.stderr);
      assert.equal(loginShell.stdout, `-sh\n${j.user.name}\n`);
      const command = await login(j, 'echo "$0"; pwd');
      assert.equal(command.stdout, "/bin/sh\n/home/user\n");
      // Interactive use without arguments: the shell reads its commands from stdin.
      const session = await asUser(j, `exec -a -jk_chrootsh ${chrootsh}`, {
        stdin: "echo hello from $HOME; exit 3\n",
      });
      assert.equal(session.code, 3, session.stderr);
      assert.equal(session.stdout, "hello from /home/user\n");
    });
  });
}

Deno.test("jk_chrootsh: arguments reach the jailed shell byte for byte, also when not UTF-8", async () => {
  await withJail(SETUID, {}, async (j) => {
    // A Latin-1 file name: Deno.args would read it as U+FFFD; the shell must get 0xE9.
    const r = await asUser(j, `exec ${j.site.chrootsh} -c $'printf %s caf\\xe9 > /home/user/name'`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...await Deno.readFile(`${j.home}/name`)], [
      ...new TextEncoder().encode("caf"),
      0xe9,
    ]);
  });
});

Deno.test("jk_chrootsh: the user sees only the jail, and no_new_privs makes setuid files inert", async () => {
  await withJail(SETUID, {}, async (j) => {
    await Deno.copyFile(`${j.dir}/usr/bin/id`, `${j.dir}/usr/bin/id-suid`);
    await Deno.chmod(`${j.dir}/usr/bin/id-suid`, 0o4755);
    // Outside a jail the copy really is setuid root...
    const outside = await runCommand(`${j.dir}/usr/bin/id-suid`, ["-u"], j.user);
    assert.equal(outside.stdout.trim(), "0");
    // ...inside, it runs with the user's rights.
    const inside = await login(j, "/usr/bin/id-suid -u; ls -a /");
    assert.equal(inside.code, 0, inside.stderr);
    const [euid, ...entries] = inside.stdout.trim().split("\n");
    assert.equal(euid, String(j.user.uid));
    const jailEntries = [".", "..", ...[...Deno.readDirSync(j.dir)].map((e) => e.name)];
    assert.deepEqual(entries.sort(), jailEntries.sort());
  });
});

// ---------------------------------------------------------------------------
// Hostile callers

Deno.test("jk_chrootsh: a hostile environment, argv[0] and cwd have no effect", async () => {
  const evil = await scratchDir("chevil");
  try {
    const marks = `${evil}/marks`;
    await Deno.mkdir(marks, { mode: 0o777 });
    await Deno.chmod(marks, 0o777);
    const so = `${evil}/evil.c`;
    await Deno.writeTextFile(
      so,
      `#include <fcntl.h>\n#include <unistd.h>\n#include <stdio.h>\n` +
        `__attribute__((constructor)) static void f(void) { char p[256];\n` +
        ` snprintf(p, sizeof p, "${marks}/so-%d", (int)geteuid()); close(open(p, O_CREAT|O_WRONLY, 0666)); }\n`,
    );
    assert.equal(
      (await runCommand("cc", ["-shared", "-fPIC", "-o", `${evil}/evil.so`, so])).code,
      0,
    );
    await Deno.writeTextFile(
      `${evil}/evil.cjs`,
      `require("fs").writeFileSync("${marks}/cjs-" + process.geteuid(), "");\n`,
    );
    await Deno.writeTextFile(
      `${evil}/evil.ts`,
      `Deno.writeTextFileSync("${marks}/ts-" + Deno.uid(), "");\n`,
    );
    await Deno.writeTextFile(`${evil}/evil.sh`, `#!/bin/sh\ntouch ${marks}/sh-$(id -u)\n`);
    await Deno.chmod(`${evil}/evil.sh`, 0o755);
    await Deno.writeTextFile(
      `${evil}/package.json`,
      JSON.stringify({ name: "evil", bin: { run: "./evil.sh" } }),
    );
    for (const f of ["evil.so", "evil.cjs", "evil.ts", "package.json"]) {
      await Deno.chmod(`${evil}/${f}`, 0o644);
    }

    await withJail(SETUID, { shell: "/bin/bash" }, async (j) => {
      // BASH_ENV names a file inside the jail that bash would source before -c.
      await Deno.writeTextFile(`${j.dir}/bash_env`, `echo SOURCED\n`);
      const hostile = [
        `LD_PRELOAD=${evil}/evil.so`,
        `NODE_OPTIONS=--require=${evil}/evil.cjs`,
        `DENO_INTERNAL_CHILD_ENTRYPOINT=${evil}/evil.ts`,
        "NODE_CHANNEL_FD=0",
        "DENO_V8_FLAGS=--no-such-v8-flag",
        `DENO_DIR=${evil}`,
        `TMPDIR=${evil}`,
        "BASH_ENV=/bash_env",
        "USER=root",
      ].map((v) => `export ${v};`).join(" ");
      // argv[0] "dx" would turn the Deno CLI into `deno x`, which runs the
      // package.json bin of the cwd: the trampoline must not pass it on.
      const r = await asUser(
        j,
        `cd ${evil}; ${hostile} exec -a dx ${j.site.chrootsh} -c 'echo "$USER"; env | sort'`,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        r.stdout,
        [
          j.user.name,
          "HOME=/home/user",
          "PWD=/home/user", // bash adds PWD, SHLVL and _
          "SHELL=/bin/bash",
          "SHLVL=1",
          `USER=${j.user.name}`,
          `USERNAME=${j.user.name}`,
          "_=/usr/bin/env",
          "",
        ].join("\n"),
      );
      assert.deepEqual([...Deno.readDirSync(marks)].map((e) => e.name), [], "evil code ran");

      // Control: once the admin allows BASH_ENV, bash does source it, so the
      // check above could have failed.
      await Deno.writeTextFile(j.site.ini, "[DEFAULT]\nenv = BASH_ENV\n");
      const allowed = await asUser(
        j,
        `export BASH_ENV=/bash_env; exec ${j.site.chrootsh} -c 'true'`,
      );
      assert.equal(allowed.stdout, "SOURCED\n");
    });
  } finally {
    await Deno.remove(evil, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// Refusals: exit code, stderr and the log line

/**
 * Runs `-c 'echo ran'` and checks the refusal: no output, the exit code, the
 * message on stderr, and an auth.err log line matching `logged` (by default
 * the same message after jailkit's "abort, ").
 */
async function refused(
  j: Jail,
  code: number,
  message: RegExp,
  opts: { gid?: number; logged?: RegExp } = {},
) {
  const from = j.site.logs.length;
  const r = await asUser(j, `exec ${j.site.chrootsh} -c 'echo ran'`, opts);
  assert.equal(r.stdout, "", "the shell must not run");
  assert.equal(r.code, code, r.stderr);
  assert.match(r.stderr, message);
  const logs = await logsFrom(j.site, from);
  const logged = opts.logged ?? new RegExp(`abort, .*${message.source}`);
  const line = logs.find((l) => logged.test(l));
  assert.ok(line, `no log line matches ${logged}:\n${logs.join("\n")}`);
  assert.match(line, /^<35>/, "auth.err");
  return logs;
}

Deno.test("jk_chrootsh refuses: root, a home without /./, a gid that is not the passwd one", async () => {
  await withJail(SETUID, {}, async (j) => {
    const from = SETUID.logs.length;
    const root = await runCommand(SETUID.chrootsh, ["-c", "echo ran"]);
    assert.equal(root.code, 12);
    assert.match(root.stderr, /jk_chrootsh is run by root/);
    assert.ok((await logsFrom(SETUID, from)).some((l) => l.includes("is run by root")));

    await refused(j, 15, /group ID from \/etc\/passwd \(\d+\) does not match .* \(\d+\)/, {
      gid: j.group.gid,
    });
    await runCommand("usermod", ["-d", j.home, j.user.name]);
    await refused(j, 17, /does not contain the jail separator <jail>\/.\/<home>/);
  });
});

Deno.test("jk_chrootsh refuses: a wrong name, no privileges, a uid without a passwd entry", async () => {
  await withJail(SETUID, {}, async (j) => {
    // Without the trampoline: the tool's own deno run, started as the user.
    const lib = `${SETUID.prefix}/usr/lib/jailkit`;
    const site = { prefix: SETUID.prefix, sysconfdir: `${SETUID.prefix}/etc/jailkit` };
    const direct = [
      `${lib}/deno`,
      ...runArgs(findTool("jk_chrootsh")!, site, `${lib}/shells/jk_chrootsh.ts`),
    ]
      .join(" ");
    const env = `DENO_DIR=${lib}/cache DENO_NO_UPDATE_CHECK=1 NO_COLOR=1`;
    const wrongName = await asUser(j, `${env} exec -a /tmp/bash ${direct} -c 'echo ran'`);
    assert.equal(wrongName.code, 1, wrongName.stderr);
    assert.match(wrongName.stderr, /abort, jk_chrootsh is called as \/tmp\/bash/);
    const unprivileged = await asUser(j, `${env} exec -a -jk_chrootsh ${direct} -c 'echo ran'`);
    assert.equal(unprivileged.code, 11, unprivileged.stderr);
    assert.match(
      unprivileged.stderr,
      /effective user ID is not 0, possibly jk_chrootsh is not setuid/,
    );
    assert.equal(unprivileged.stdout, "");
  });
  const from = SETUID.logs.length;
  const nobody = await runCommand(SETUID.chrootsh, ["-c", "echo ran"], {
    uid: 4_000_000,
    gid: 4_000_000,
  });
  assert.equal(nobody.code, 13, nobody.stderr);
  assert.match(nobody.stderr, /failed to get user information for user ID 4000000/);
  assert.ok((await logsFrom(SETUID, from)).some((l) => l.includes("user ID 4000000")));
});

Deno.test("jk_chrootsh refuses unsafe jails: the jail, a system dir, an ancestor (jailkit did not)", async () => {
  await withJail(SETUID, {}, async (j) => {
    await Deno.chmod(j.dir, 0o775);
    const logs = await refused(j, 53, /is not a safe jail, check ownership and permissions/);
    assert.ok(logs.some((l) => l.endsWith(`${j.dir} is writable by group`)), logs.join("\n"));
    await Deno.chmod(j.dir, 0o755);
    await Deno.chmod(`${j.dir}/etc`, 0o777);
    await refused(j, 53, /is not a safe jail/);
    await Deno.chmod(`${j.dir}/etc`, 0o755);
    await Deno.chmod(`${j.dir}/home`, 0o777);
    await refused(j, 53, /home is writable by group or others/);
    await Deno.chmod(`${j.dir}/home`, 0o755);
    assert.equal((await login(j, "echo ran")).stdout, "ran\n");
  });
  // A jail below a world-writable directory: anyone could swap it.
  const parent = await scratchDir("chparent");
  try {
    await Deno.chmod(parent, 0o777);
    await withJail(SETUID, {}, async (j) => {
      await Deno.rename(j.dir, `${parent}/jail`);
      await Deno.symlink(`${parent}/jail`, j.dir); // keep the fixture's cleanup path working
      await runCommand("usermod", ["-d", `${parent}/jail/./home/user`, j.user.name]);
      const logs = await refused(j, 53, /is not a safe jail/);
      assert.ok(logs.some((l) => l.endsWith(`${parent} is writable by others`)), logs.join("\n"));
    });
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("jk_chrootsh refuses a missing or non-canonical jail", async () => {
  await withJail(SETUID, {}, async (j) => {
    await runCommand("usermod", ["-d", `${j.dir}-gone/./home/user`, j.user.name]);
    await refused(j, 19, /chdir\(.*-gone\) failed/);
    const detour = `${j.dir}/../${j.dir.split("/").pop()}/./home/user`;
    await runCommand("usermod", ["-d", detour, j.user.name]);
    await refused(j, 21, /is not a canonical path/);
  });
});

Deno.test("jk_chrootsh: home checks and the relax_* keys of user, group and DEFAULT sections", async () => {
  await withJail(SETUID, {}, async (j) => {
    await Deno.chown(j.home, 0, j.user.gid);
    await refused(j, 53, /path .*home\/user is not owned by \d+/);
    await Deno.writeTextFile(j.site.ini, "[DEFAULT]\nrelax_home_owner = 1\n");
    assert.equal((await login(j, "echo ran")).stdout, "ran\n");
    await Deno.chown(j.home, j.user.uid, j.user.gid);

    await Deno.chmod(j.home, 0o775);
    await refused(j, 53, /is group writable, set option 'relax_home_group_permissions'/);
    // The primary group's section wins over DEFAULT.
    await Deno.writeTextFile(
      j.site.ini,
      `[DEFAULT]\nrelax_home_owner = 1\n[group ${j.user.name}]\nrelax_home_group_permissions = yes\n`,
    );
    assert.equal((await login(j, "echo ran")).stdout, "ran\n");

    await Deno.chmod(j.home, 0o757);
    await refused(j, 53, /is writable for other, set option 'relax_home_other_permissions'/);
    // The user's own section wins over the group's; sections are never merged.
    await Deno.writeTextFile(
      j.site.ini,
      `[${j.user.name}]\nrelax_home_other_permissions = 1\n` +
        `[group ${j.user.name}]\nrelax_home_group_permissions = 1\n`,
    );
    assert.equal((await login(j, "echo ran")).stdout, "ran\n");
    await Deno.chmod(j.home, 0o777);
    await refused(j, 53, /is group writable/);

    await Deno.chmod(j.home, 0o755);
    await Deno.remove(j.home, { recursive: true });
    await Deno.symlink("/tmp", j.home);
    await refused(j, 53, /path .*home\/user is not a directory/);
  });
});

Deno.test("jk_chrootsh: the jail's passwd and group files must agree with the host", async () => {
  await withJail(SETUID, {}, async (j) => {
    const passwd = `${j.dir}/etc/passwd`;
    const good = await Deno.readTextFile(passwd);
    await Deno.writeTextFile(passwd, "root:x:0:0:root:/root:/bin/sh\n");
    await refused(j, 35, /failed to get user information in the jail for user ID \d+/);
    await Deno.writeTextFile(passwd, good.replace(`${j.user.name}:`, "someoneelse:"));
    await refused(j, 37, /username \S+ differs from jail username someoneelse/);
    await Deno.writeTextFile(passwd, good.replace(":/home/user:", ":/home/other:"));
    await refused(
      j,
      39,
      /home directory \/home\/user differs from jail home directory \/home\/other/,
    );
    await Deno.writeTextFile(passwd, good);
    const group = `${j.dir}/etc/group`;
    const groups = await Deno.readTextFile(group);
    await Deno.writeTextFile(
      group,
      groups.replace(`${j.user.name}:x:${j.user.gid}`, `x:x:${j.user.gid}`),
    );
    await refused(j, 37, /groupname \S+ differs from jail groupname x/);
    await Deno.remove(group);
    await refused(j, 35, /failed to read .*\/etc\/group/);
  });
});

Deno.test("jk_chrootsh refuses a broken or unsafe ini", async () => {
  await withJail(SETUID, { ini: "[DEFAULT\nenv = TERM\n" }, async (j) => {
    await refused(
      j,
      14,
      /configuration file unusable: .*jk_chrootsh.ini:1: unterminated section header/,
    );
    await Deno.writeTextFile(j.site.ini, "[DEFAULT]\nrelax_home_owner = maybe\n");
    await refused(
      j,
      14,
      /jk_chrootsh.ini:2: key "relax_home_owner" in section \[DEFAULT\] must be/,
    );
    await Deno.writeTextFile(j.site.ini, "[DEFAULT]\nenv = TERM\n");
    await Deno.chmod(j.site.ini, 0o666);
    await refused(j, 14, /configuration file .* is not safe: .* is writable by others/);
    await Deno.chmod(j.site.ini, 0o644);
    // An unknown key is logged and ignored.
    await Deno.writeTextFile(j.site.ini, "[DEFAULT]\nrelax_home_ownr = 1\n");
    const from = j.site.logs.length;
    assert.equal((await login(j, "echo ran")).stdout, "ran\n");
    const logs = await logsFrom(j.site, from);
    assert.ok(logs.some((l) => /^<36>.*unknown key "relax_home_ownr"/.test(l)), logs.join("\n"));
  });
});

Deno.test("jk_chrootsh refuses an unsafe shell and reports one it cannot execute", async () => {
  await withJail(SETUID, { shell: "/usr/bin/sh-unsafe" }, async (j) => {
    const shell = `${j.dir}/usr/bin/sh-unsafe`;
    await Deno.copyFile(`${j.dir}/usr/bin/dash`, shell);
    await Deno.chmod(shell, 0o4755);
    await refused(j, 40, /shell .*sh-unsafe is setuid/);
    await Deno.chmod(shell, 0o757);
    await refused(j, 40, /shell .*sh-unsafe is writable by group or others/);
    await Deno.chmod(shell, 0o755);
    await Deno.chown(shell, j.user.uid, j.user.gid);
    await refused(j, 40, /shell .*sh-unsafe is not owned by root/);
    await Deno.chown(shell, 0, 0);
    assert.equal((await login(j, "echo ran")).stdout, "ran\n");
    await Deno.remove(shell);
    await refused(j, 111, /cannot execute \/usr\/bin\/sh-unsafe: .*ENOENT/, {
      logged: new RegExp(
        "ERROR: failed to execute shell /usr/bin/sh-unsafe for user .* check the " +
          `permissions and libraries of ${j.dir}/usr/bin/sh-unsafe`,
      ),
    });
    await Deno.writeTextFile(j.site.ini, "[DEFAULT]\ninjail_shell = bin/sh\n");
    await refused(j, 40, /shell 'bin\/sh' in .* is not an absolute path/);
  });
});

// ---------------------------------------------------------------------------
// Configuration that changes what runs

Deno.test("jk_chrootsh: env allowlist, injail_shell with skip_injail_passwd_check, injail_login_shell", async () => {
  await withJail(SETUID, { ini: "[DEFAULT]\nenv = TERM, LANG\n" }, async (j) => {
    const env = await asUser(
      j,
      `export TERM=vt100 LANG=C.UTF-8 LC_ALL=C EDITOR=vi; exec ${j.site.chrootsh} -c 'env | sort'`,
    );
    assert.equal(
      env.stdout,
      "HOME=/home/user\nLANG=C.UTF-8\nPWD=/home/user\nSHELL=/bin/sh\nTERM=vt100\n" +
        `USER=${j.user.name}\nUSERNAME=${j.user.name}\n`,
    );

    await Deno.writeTextFile(
      j.site.ini,
      "[DEFAULT]\ninjail_shell = /bin/bash\nskip_injail_passwd_check = 1\n",
    );
    await Deno.writeTextFile(`${j.dir}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
    const skipped = await login(j, 'echo "$0 $SHELL"');
    assert.equal(skipped.stdout, "/bin/bash /bin/bash\n", skipped.stderr);

    // jailkit dropped the arguments with injail_login_shell; here -c still works.
    await Deno.writeTextFile(
      j.site.ini,
      "[DEFAULT]\ninjail_shell = /bin/bash\nskip_injail_passwd_check = 1\ninjail_login_shell = 1\n",
    );
    const loginShell = await login(j, "shopt -q login_shell && echo login shell");
    assert.equal(loginShell.stdout, "login shell\n", loginShell.stderr);
  });
});
