/**
 * Load: 50 sftp sessions at once through the real chain (a private sshd →
 * the setuid jk_chrootsh → jk_lsh in the jail → sftp-server) into one jail,
 * each uploading and downloading its own file. Every transfer must arrive
 * byte for byte, all 50 sessions must be open at the same moment, and once
 * they end no process of the account, and no sshd session for it, may be
 * left.
 *
 * sshd drops connections that are still authenticating beyond MaxStartups
 * (10 by default), so sessions are opened a few at a time; each stays open
 * until all 50 are, which makes them concurrent whatever the order.
 *
 * Needs root and Debian's openssh-server, openssh-client.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Rng, scratchDir, testSeed, testSite } from "../harness.ts";
import { jailedAccount, sshdAvailable, startSshd, type TestSshd } from "../login_fixture.ts";

const root = Deno.uid() === 0;
const haveSshd = root && await sshdAvailable();

const SESSIONS = 50;
/** Sessions still logging in at one time (sshd's MaxStartups starts dropping at 10). */
const CONNECTING = 6;
/** The whole test gives up after this long. */
const DEADLINE_MS = 150_000;

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** One `sftp -b -` client, fed commands on stdin, its output collected. */
class Session {
  readonly child: Deno.ChildProcess;
  #out = "";
  #err = "";
  #waiters: (() => void)[] = [];
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly done: Promise<Deno.CommandStatus>;

  constructor(readonly index: number, sshd: TestSshd, target: string, cwd: string) {
    this.child = new Deno.Command("sftp", {
      args: [...sshd.copyOptions, "-b", "-", target],
      cwd,
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin", LANG: "C" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    const read = async (stream: ReadableStream<Uint8Array>, into: "out" | "err") => {
      const dec = new TextDecoder();
      for await (const chunk of stream) {
        if (into === "out") this.#out += dec.decode(chunk, { stream: true });
        else this.#err += dec.decode(chunk, { stream: true });
        this.#waiters.splice(0).forEach((w) => w());
      }
    };
    const streams = Promise.all([read(this.child.stdout, "out"), read(this.child.stderr, "err")]);
    this.done = streams.then(() => this.child.status);
    // An exit wakes every waiter too.
    this.done.then(() => this.#waiters.splice(0).forEach((w) => w()));
  }

  send(commands: string): Promise<void> {
    return this.#writer.write(new TextEncoder().encode(commands));
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
  }

  /** Resolves once stdout matches `pattern`; fails when the client ends first or at `deadline`. */
  async waitFor(pattern: RegExp, deadline: number): Promise<void> {
    let ended = false;
    this.done.then(() => ended = true);
    while (!pattern.test(this.#out)) {
      if (ended) throw new Error(`session ${this.index} ended:\n${this.#out}\n${this.#err}`);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`session ${this.index} timed out:\n${this.#out}\n${this.#err}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  output(): string {
    return `${this.#out}\n${this.#err}`;
  }
}

/** Processes of `uid`, and sshd processes serving `name`: [pid, comm, cmdline]. */
function processesOf(uid: number, name: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const status = Deno.readTextFileSync(`/proc/${entry.name}/status`);
      const real = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      const comm = Deno.readTextFileSync(`/proc/${entry.name}/comm`).trim();
      if (real === uid || cmdline.startsWith(`sshd: ${name}`)) {
        found.push(`${entry.name} ${comm} ${cmdline.trim()}`);
      }
    } catch {
      // the process ended meanwhile
    }
  }
  return found;
}

Deno.test({
  name: "LOAD 50 concurrent sftp sessions through sshd into one jail: every file arrives " +
    "intact both ways, all 50 are open at once, none leaves a process behind",
  ignore: !haveSshd,
  fn: async () => {
    const deadline = Date.now() + DEADLINE_MS;
    const rng = new Rng(testSeed(5050));
    const account = await jailedAccount(await testSite());
    const local = await scratchDir("load-local");
    const sshd = await startSshd(account, { extraConfig: ["MaxStartups 100:30:200"] });
    const sessions: Session[] = [];
    try {
      const target = `${account.user.name}@127.0.0.1`;
      const sums: string[] = [];
      for (let i = 0; i < SESSIONS; i++) {
        const bytes = randomBytes(16 * 1024 + rng.int(496 * 1024));
        await Deno.writeFile(`${local}/up-${i}.bin`, bytes);
        sums.push(sha256(bytes));
      }

      // Open the sessions a few at a time; each transfers, then waits for the others.
      const connecting = new Set<Promise<void>>();
      for (let i = 0; i < SESSIONS; i++) {
        while (connecting.size >= CONNECTING) await Promise.race(connecting);
        const session = new Session(i, sshd, target, local);
        sessions.push(session);
        await session.send(
          `put up-${i}.bin up-${i}.bin\nget up-${i}.bin back-${i}.bin\n!echo SYNC-${i}\n`,
        );
        // A session that fails to log in is reported by the wait below, with its output.
        const loggedIn = session.waitFor(/sftp> /, deadline).catch(() => {})
          .finally(() => connecting.delete(loggedIn));
        connecting.add(loggedIn);
      }
      await Promise.all(
        sessions.map((s) => s.waitFor(new RegExp(`^SYNC-${s.index}$`, "m"), deadline)),
      );

      // All 50 transferred and are still connected: 50 sftp-servers in the jail at once.
      const running = processesOf(account.user.uid, account.user.name)
        .filter((p) => p.split(" ")[1] === "sftp-server");
      assert.equal(running.length, SESSIONS, running.join("\n"));
      for (const process of running) {
        const pid = process.split(" ")[0];
        // Each in the jail, started by jk_lsh (which runs as the user too).
        assert.equal(Deno.readLinkSync(`/proc/${pid}/root`), account.jail, process);
        const parent = /^PPid:\s+(\d+)/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1];
        assert.match(Deno.readTextFileSync(`/proc/${parent}/cmdline`), /jk_lsh/, process);
      }

      for (const s of sessions) await s.send("bye\n");
      await Promise.all(sessions.map((s) => s.close()));
      const statuses = await Promise.all(sessions.map((s) => s.done));
      statuses.forEach((status, i) => {
        assert.equal(status.code, 0, `session ${i}: ${sessions[i].output()}\n${sshd.log()}`);
      });
      for (let i = 0; i < SESSIONS; i++) {
        assert.equal(
          sha256(await Deno.readFile(`${account.home}/up-${i}.bin`)),
          sums[i],
          `up ${i}`,
        );
        assert.equal(sha256(await Deno.readFile(`${local}/back-${i}.bin`)), sums[i], `back ${i}`);
      }

      // Nothing of the account outlives its sessions.
      let left = processesOf(account.user.uid, account.user.name);
      for (let tries = 0; left.length > 0 && tries < 50; tries++) {
        await new Promise((r) => setTimeout(r, 100));
        left = processesOf(account.user.uid, account.user.name);
      }
      assert.deepEqual(left, [], "processes left after the sessions ended");
    } finally {
      for (const s of sessions) {
        try {
          s.child.kill("SIGKILL");
        } catch {
          // already ended
        }
        await s.done.catch(() => {});
      }
      await sshd.stop();
      await Deno.remove(local, { recursive: true });
      await account.remove();
    }
  },
});
