/**
 * Adversarial: a transfer-only account (jk_init jk_lsh sftp scp rsync,
 * jk_jailuser, jk_lsh as the jailed shell) attacked through a real sshd, the
 * way a client would: every argument trick of peers-and-threats §2.12 for
 * scp, rsync, sftp-server and git, shell syntax, control characters,
 * non-UTF-8 bytes, over-long commands, and environment variables pushed with
 * SendEnv/SetEnv into an sshd that accepts them all.
 *
 * jk_lsh's own tests (tests/jk_lsh_test.ts) prove each refusal as a unit and
 * once through the installed tool; here each trick names a payload that
 * would leave a mark if anything ran: a script in the user's home that
 * appends to ~/PWNED, a preload library that does the same, an rsyncd.conf
 * whose log file would appear. A control shows each payload does work when
 * started directly. After every attack: the refusal's exit code, no mark, and
 * the host's account files unchanged.
 *
 * Needs root, Debian's openssh-server, openssh-client, rsync and cc.
 *
 * @module
 */

import assert from "node:assert/strict";
import { copyWithLibs, runCommand, type RunResult, testSite } from "../harness.ts";
import {
  type JailedAccount,
  jailedAccount,
  SFTP_SERVER,
  sshdAvailable,
  startSshd,
  type TestSshd,
  transferSection,
} from "../login_fixture.ts";
import { hostFilesDigest, shq } from "./attack_fixture.ts";

const root = Deno.uid() === 0;
const haveSshd = root && await sshdAvailable();

/** What a test gets: the account, its sshd, and the ways to attack through it. */
interface Target {
  account: JailedAccount;
  sshd: TestSshd;
  /** The jailed home as the user sees it, e.g. `/home/jkt1234`. */
  home: string;
  /** `ssh user@host WORD`, where WORD is bash syntax (so `$'\xff'` can carry raw bytes). */
  ssh(bashWord: string, options?: string[]): Promise<RunResult>;
  /** Names of the marks payloads left in the home. */
  marks(): Promise<string[]>;
}

/** A preload library that leaves a mark from its constructor. */
function preloadSource(mark: string): string {
  return `#include <fcntl.h>\n#include <unistd.h>\n` +
    `__attribute__((constructor)) static void f(void) {\n` +
    `  int fd = open("${mark}", O_WRONLY | O_CREAT | O_APPEND, 0644);\n` +
    `  if (fd >= 0) { write(fd, "preload\\n", 8); close(fd); }\n}\n`;
}

/** The fixture standing in for git-upload-pack: prints its environment when asked. */
const ENV_DUMP = `#!/bin/sh\ncase "$1" in env) export -p ;; esac\n`;

/**
 * Builds the account, plants the payloads in its home, proves each payload
 * works when started directly in the jail, starts sshd, runs `fn`, and checks
 * that no mark appeared and no host account file changed.
 */
async function withTarget(
  fn: (t: Target) => Promise<void>,
  sshdConfig: string[] = [],
): Promise<void> {
  const account = await jailedAccount(await testSite());
  let sshd: TestSshd | undefined;
  try {
    const { jail, user } = account;
    const home = `/home/${user.name}`;
    const inJail = (path: string) => `${jail}${path}`;
    // /bin/sh runs the payload scripts and the env-dumping fixture (test fixtures only).
    await copyWithLibs(jail, ["/bin/sh"]);
    await Deno.writeTextFile(inJail("/usr/bin/git-upload-pack"), ENV_DUMP, { mode: 0o755 });
    await Deno.chmod(inJail("/usr/bin/git-upload-pack"), 0o755);
    const ini = await Deno.readTextFile(account.lshIni);
    const section = transferSection(user.name);
    assert.ok(ini.endsWith(section), ini);
    await Deno.writeTextFile(
      account.lshIni,
      ini.replace(
        section,
        section.replace("/usr/bin/rsync", "/usr/bin/rsync, /usr/bin/git-upload-pack"),
      ),
    );

    // The payloads, owned by the user as if uploaded.
    const mark = `${home}/PWNED`;
    const files: [string, string, number][] = [
      ["evil", `#!/bin/sh\necho "$0 $*" >> ${mark}\n`, 0o755],
      [
        "rsyncd.conf",
        `log file = ${mark}-daemon\n[m]\npath = /\npre-xfer exec = ${home}/evil\n`,
        0o644,
      ],
      ["ssh_config", `Host *\n  ProxyCommand ${home}/evil proxy\n`, 0o644],
      ["evil.c", preloadSource(mark), 0o644],
    ];
    for (const [name, text, mode] of files) {
      await Deno.writeTextFile(inJail(`${home}/${name}`), text, { mode });
      await Deno.chmod(inJail(`${home}/${name}`), mode);
      await Deno.chown(inJail(`${home}/${name}`), user.uid, user.gid);
    }
    const cc = await runCommand("cc", [
      "-shared",
      "-fPIC",
      "-o",
      inJail(`${home}/evil.so`),
      inJail(`${home}/evil.c`),
    ]);
    assert.equal(cc.code, 0, cc.stderr);
    await Deno.chown(inJail(`${home}/evil.so`), user.uid, user.gid);

    const marks = async () => {
      const names = [];
      for await (const e of Deno.readDir(inJail(home))) {
        if (e.name.startsWith("PWNED")) names.push(e.name);
      }
      return names.sort();
    };
    // Controls: started directly in the jail as the user, each payload leaves its mark.
    const direct = (args: string[], env: Record<string, string> = {}) =>
      runCommand("/usr/sbin/chroot", [`--userspec=${user.uid}:${user.gid}`, jail, ...args], {
        env: { PATH: "/usr/bin:/bin", HOME: home, ...env },
      });
    await direct([`${home}/evil`, "control"]);
    await direct(["/usr/bin/git-upload-pack", "x"], { LD_PRELOAD: `${home}/evil.so` });
    await direct(["/usr/bin/rsync", "--server", "--daemon", `--config=${home}/rsyncd.conf`, "."]);
    assert.deepEqual(await marks(), ["PWNED", "PWNED-daemon"], "a payload does not work");
    assert.equal(
      await Deno.readTextFile(inJail(mark)),
      `${home}/evil control\npreload\n`,
      "script and preload controls",
    );
    for (const name of await marks()) await Deno.remove(inJail(`${home}/${name}`));

    sshd = await startSshd(account, { extraConfig: sshdConfig });
    const target = `${user.name}@127.0.0.1`;
    const clientOptions = sshd.clientOptions.map(shq).join(" ");
    const hostBefore = await hostFilesDigest(["root", user.name]);
    await fn({
      account,
      sshd,
      home,
      ssh: (word, options = []) =>
        runCommand("/usr/bin/bash", [
          "-c",
          `exec ssh -T ${clientOptions} ${options.map(shq).join(" ")} -- ${target} ${word}`,
        ]),
      marks,
    });
    assert.deepEqual(await marks(), [], "a payload ran");
    assert.equal(await hostFilesDigest(["root", user.name]), hostBefore, "a host account changed");
  } finally {
    await sshd?.stop();
    await account.remove();
  }
}

/** One attack: the command (bash syntax), the exit code and message jk_lsh must give. */
type Attack = [word: string, code: number, message: RegExp];

/**
 * Sends every attack through ssh, four at a time, and checks each refusal.
 * The marks are checked by `withTarget` once all have run, and here after
 * each batch so a mark names the batch that made it.
 */
async function refuseAll(t: Target, attacks: Attack[]): Promise<void> {
  for (let i = 0; i < attacks.length; i += 4) {
    const batch = attacks.slice(i, i + 4);
    const results = await Promise.all(batch.map(([word]) => t.ssh(word)));
    batch.forEach(([word, code, message], k) => {
      const r = results[k];
      assert.equal(
        r.code,
        code,
        `${word}: exit ${r.code}\n${r.stderr}${t.sshd.log().slice(-2000)}`,
      );
      assert.match(r.stderr, message, word);
    });
    assert.deepEqual(await t.marks(), [], `a payload ran in: ${batch.map((a) => a[0])}`);
  }
}

/** A command word for bash: single-quoted. */
const q = shq;

Deno.test({
  name: "through sshd: scp tricks (-S, -D, -o, -F, -J, -3, -P, remote targets) run nothing",
  ignore: !haveSshd,
  fn: () =>
    withTarget((t) => {
      const evil = `${t.home}/evil`;
      return refuseAll(t, [
        [q(`scp -S ${evil} -t .`), 4, /scp: option -S/],
        [q(`scp -tS${evil} .`), 4, /scp: option -S/],
        [q(`scp -S ${evil} x localhost:y`), 4, /scp: option -S/],
        [q(`scp -D ${evil} x y`), 4, /scp: option -D/],
        [q(`scp -o ProxyCommand=${evil} -f x`), 4, /scp: option -o/],
        [q(`scp -F ${t.home}/ssh_config x localhost:y`), 4, /scp: option -F/],
        [q(`scp -J localhost -t .`), 4, /scp: option -J/],
        [q(`scp -3 localhost:x localhost:y`), 4, /scp: option -3/],
        [q(`scp -P 22 -t .`), 4, /scp: option -P/],
        [q("scp x localhost:y"), 4, /exactly one of -t/],
        [q("scp -t localhost:y"), 4, /remote target/],
        [q("scp -f u@localhost:/etc/passwd"), 4, /remote target/],
        [q("scp -r -f localhost:x"), 4, /remote target/],
      ]);
    }),
});

Deno.test({
  name: "through sshd: rsync tricks (-e, --rsh and abbreviations, --rsync-path, --daemon, " +
    "--log-file, batches, -s, -M, devices) run nothing",
  ignore: !haveSshd,
  fn: () =>
    withTarget((t) => {
      const evil = `${t.home}/evil`;
      const mark = `${t.home}/PWNED`;
      const server = "rsync --server -vlogDtpre.iLsfxCIvu";
      return refuseAll(t, [
        [q(`rsync --server -e ${evil} . x`), 4, /rsync: option -e/],
        [q(`rsync --server -ve${evil} . x`), 4, /rsync: option -/],
        [q(`${server} --rsh=${evil} . x`), 4, /option --rsh/],
        [q(`${server} --rsh ${evil} . x`), 4, /option --rsh/],
        [q(`${server} --rs=${evil} . x`), 4, /option --rs /],
        [q(`${server} --rsync-path=${evil} . x`), 4, /option --rsync-path/],
        [q(`${server} --rsync-p=${evil} . x`), 4, /option --rsync-p /],
        [q(`rsync -e ${evil} x localhost:y`), 4, /only the server side/],
        [q(`rsync --rsh=${evil} x localhost:y`), 4, /only the server side/],
        [q(`rsync --daemon --config=${t.home}/rsyncd.conf`), 4, /only the server side/],
        [q(`rsync --server --daemon --config=${t.home}/rsyncd.conf .`), 4, /option --daemon/],
        [q(`rsync --server --dae --config=${t.home}/rsyncd.conf .`), 4, /option --dae /],
        [q(`${server} --log-file=${mark}-log . x`), 4, /option --log-file/],
        [q(`${server} --log-f=${mark}-log . x`), 4, /option --log-f /],
        [q(`${server} --write-batch=${mark}-batch . x`), 4, /option --write-batch/],
        [q(`${server} --only-write-batch=${mark}-b . x`), 4, /option --only-write-batch/],
        [q(`${server} --read-batch=${mark} . x`), 4, /option --read-batch/],
        [q(`rsync --server -svlogDtpre.iLsfxCIvu . x`), 4, /option -s/],
        [q(`${server} --protect-args . x`), 4, /option --protect-args/],
        [q(`${server} --secluded-args . x`), 4, /option --secluded-args/],
        [q(`${server} -M--rsh=${evil} . x`), 4, /option -M/],
        [q(`${server} --remote-option=--log-file=${mark} . x`), 4, /option --remote-option/],
        [q(`${server} --copy-devices --sender . /dev/zero`), 4, /option --copy-devices/],
        [q(`${server} --write-devices . x`), 4, /option --write-devices/],
        [q(`${server} --no-munge-links . x`), 4, /option --no-munge-links/],
        [q(`${server} --early-input=${evil} . x`), 4, /option --early-input/],
        [q(`${server} --password-file=${evil} . x`), 4, /option --password-file/],
        [q(`rsync --version --log-file=${mark}-log`), 4, /only the server side/],
        [q(`${server} . a b`), 4, /exactly one destination/],
      ]);
    }),
});

Deno.test({
  name: "through sshd: sftp-server and git-upload-pack tricks are refused",
  ignore: !haveSshd,
  fn: () =>
    withTarget((t) => {
      const evil = `${t.home}/evil`;
      return refuseAll(t, [
        [q(`${SFTP_SERVER} -d /`), 4, /sftp-server: option -d/],
        [q(`${SFTP_SERVER} -u 000`), 4, /sftp-server: option -u/],
        [q(`${SFTP_SERVER} -P ''`), 4, /sftp-server: option -P/],
        [q(`${SFTP_SERVER} -l DEBUG3 ${evil}`), 4, /unexpected argument/],
        [q(`${SFTP_SERVER} -l '$(id)'`), 4, /bad or missing value for -l/],
        [q(`${SFTP_SERVER} -f 'LOCAL0 -d /'`), 4, /bad or missing value for -f/],
        [q(`git-upload-pack --upload-pack=${evil}`), 4, /bad repository path/],
        [q(`git-upload-pack -c core.sshCommand=${evil} r`), 4, /exactly one repository/],
        [q(`git-upload-pack '--config=core.fsmonitor=${evil}'`), 4, /bad repository path/],
      ]);
    }),
});

Deno.test({
  name: "through sshd: shell syntax never runs a second command",
  ignore: !haveSshd,
  fn: () =>
    withTarget((t) => {
      const evil = `${t.home}/evil`;
      return refuseAll(t, [
        [q(`rsync --version $(${evil})`), 6, /command substitution/],
        [q(`rsync --version "$(${evil})"`), 6, /command substitution/],
        [q(`rsync --version \`${evil}\``), 6, /command substitution/],
        [q(`rsync --version $((1))`), 6, /command substitution/],
        [q(`rsync --version; ${evil}`), 6, /illegal word expansion/],
        [q(`rsync --version;${evil}`), 6, /illegal word expansion/],
        [q(`rsync --version | ${evil}`), 6, /illegal word expansion/],
        [q(`rsync --version && ${evil}`), 6, /illegal word expansion/],
        [q(`rsync --version || ${evil}`), 6, /illegal word expansion/],
        [q(`rsync --version & ${evil}`), 6, /illegal word expansion/],
        [q(`rsync --version > ${t.home}/PWNED-redirect`), 6, /illegal word expansion/],
        [q(`rsync --version < ${evil}`), 6, /illegal word expansion/],
        [q(`(${evil})`), 6, /illegal word expansion/],
        [q(`rsync --version $IFS${evil}`), 6, /word expansion is not enabled/],
        [q(`rsync --version \${IFS}${evil}`), 6, /word expansion is not enabled/],
        [q(`${evil} control`), 4, /not allowed/],
        [q(`${t.home}/ev?l`), 4, /not allowed/], // no globbing: a literal name
        [q("~/evil"), 4, /not allowed/], // no tilde: a relative name
        [q("./evil"), 4, /not allowed/],
        [q("evil"), 4, /not allowed/],
        [q(`/usr/bin/../..${evil}`), 4, /not allowed/],
        [q(`sh -c ${evil}`), 4, /not allowed/],
        [q(`'rsync --version; ${evil}'`), 4, /not allowed/], // one quoted word: no program
        [q(`rsync --version #; ${evil}`), 6, /illegal word expansion/], // "#" is no comment
        [q(`-c ${evil}`), 4, /not allowed/],
      ]);
    }),
});

Deno.test({
  name: "through sshd: control characters, non-UTF-8 bytes and over-long commands are refused",
  ignore: !haveSshd,
  fn: () =>
    withTarget(async (t) => {
      const evil = `${t.home}/evil`;
      await refuseAll(t, [
        [`$'rsync --version\\n${evil}'`, 6, /control character U\+000A/],
        [`$'rsync --version\\r${evil}'`, 6, /control character U\+000D/],
        [`$'rsync\\t--version'`, 6, /control character U\+0009/],
        [`$'rsync --version \\x1b]0;title\\x07'`, 6, /control character U\+001B/],
        [`$'rsync --version \\x7f'`, 6, /control character U\+007F/],
        [`$'rsync --version \\xc2\\x85${evil}'`, 6, /control character U\+0085/],
        [`$'rsync --version \\xe2\\x80\\xa8${evil}'`, 6, /control character U\+2028/],
        [`$'scp -t \\xff\\xfe'`, 6, /not valid UTF-8/],
        [`$'rsync --version \\xc0\\xbb ${evil}'`, 6, /not valid UTF-8/], // overlong ";"
        [q(`rsync --server . ${"a".repeat(40_000)}`), 6, /limit of 32768/],
      ]);
      // Beyond the kernel's 128 KiB argument limit sshd cannot even start the login shell.
      // (ssh joins its words with spaces; each word stays below the client's own limit.)
      const half = `"$(head -c 70000 /dev/zero | tr '\\0' a)"`;
      const huge = await t.ssh(`${q(`rsync --version; ${evil}`)} ${half} ${half}`);
      assert.notEqual(huge.code, 0);
      assert.equal(huge.stdout, "");
    }),
});

Deno.test({
  name: "through sshd accepting every variable: LD_PRELOAD, BASH_ENV, ENV, RSYNC_RSH, GIT_SSH*, " +
    "LC_* and USER=root never reach the program",
  ignore: !haveSshd,
  fn: () =>
    withTarget(
      async (t) => {
        const { account, home } = t;
        const hostile: Record<string, string> = {
          LD_PRELOAD: `${home}/evil.so`,
          LD_LIBRARY_PATH: home,
          LD_AUDIT: `${home}/evil.so`,
          BASH_ENV: `${home}/evil`,
          ENV: `${home}/evil`,
          RSYNC_RSH: `${home}/evil`,
          RSYNC_CONNECT_PROG: `${home}/evil`,
          GIT_SSH: `${home}/evil`,
          GIT_SSH_COMMAND: `${home}/evil`,
          GIT_EXEC_PATH: home,
          GIT_CONFIG_PARAMETERS: `core.fsmonitor=${home}/evil`,
          LC_ALL: `${home}/locale`,
          LANG: "C.UTF-8",
          PATH: `${home}:/usr/bin:/bin`,
          USER: "root",
          HOME: "/root",
          IFS: "/",
        };
        const setEnv = Object.entries(hostile).map(([k, v]) => `${k}="${v}"`).join(" ");
        const options = ["-o", `SetEnv=${setEnv}`];

        const dump = await t.ssh(q("git-upload-pack env"), options);
        assert.equal(dump.code, 0, dump.stderr + t.sshd.log().slice(-2000));
        const names = [...dump.stdout.matchAll(/^export (\w+)=/gm)].map((m) => m[1]).sort();
        assert.deepEqual(names, ["HOME", "LOGNAME", "PATH", "PWD", "USER"], dump.stdout);
        assert.match(dump.stdout, new RegExp(`^export USER='${account.user.name}'$`, "m"));
        assert.match(dump.stdout, /^export HOME='\/'$/m);
        assert.match(dump.stdout, /^export PATH='\/usr\/bin:\/bin'$/m);
        // The transfer programs themselves start under the same variables, and run.
        const version = await t.ssh(q("rsync --version"), options);
        assert.equal(version.code, 0, version.stderr);
        assert.match(version.stdout, /^rsync +version/);
        const scp = await t.ssh(q("scp -f /nonexistent"), options);
        assert.equal(scp.code, 1, scp.stderr);
        // sshd did accept them: its log shows them set for the session.
        assert.match(t.sshd.log(), /Setting env \d+: LD_PRELOAD=/);
      },
      ["AcceptEnv *", "LogLevel DEBUG2"],
    ),
});

Deno.test({
  name: "through sshd: a ~/.ssh/rc written by the jailed user runs nothing",
  ignore: !haveSshd,
  fn: () =>
    withTarget(async (t) => {
      // sshd runs ~/.ssh/rc through the login shell before the command: jk_chrootsh
      // then jk_lsh, which refuses /bin/sh; the session itself goes on.
      const rc = `${t.account.home}/.ssh/rc`;
      await Deno.writeTextFile(rc, `${t.home}/evil rc\n`);
      await Deno.chown(rc, t.account.user.uid, t.account.user.gid);
      const r = await t.ssh(q("rsync --version"));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^rsync +version/);
      // sshd did try it: jk_lsh's refusal of "/bin/sh ~/.ssh/rc" reached the client.
      assert.match(r.stderr, /tried to run '\/bin\/sh [^']*\/\.ssh\/rc', which is not allowed/);
    }),
});
