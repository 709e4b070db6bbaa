/**
 * Races against the root tools (peers-and-threats §2.11): while jk_cp,
 * jk_init, jk_update and jk_jailuser run again and again, a helper process
 * flips a path the user may write — between a directory and a symlink to a
 * directory outside the jail, tens of thousands of times a second or timed
 * by inotify to the moment root opens it — or swaps a jail file for a hard
 * link of an outside file. Whatever the tools meet, nothing outside the jail
 * may change: the outside trees are digested before and after (contents,
 * modes, owners, link counts, the directories themselves), and a root-only
 * secret must never show up where the user can read it.
 *
 * Both sides are attacked: the part of the jail a user can write, and a host
 * tree a user can write that the admin copies in (there a swapped directory
 * once made root copy a 0644 file of a 0700 directory into the jail; host
 * entries are now opened relative to their listed directory, and by path only
 * through symlinks root alone could have made: `openHostFile`).
 *
 * The flipper is a small C program compiled here. It runs as the user
 * wherever the user could do the same; the hard-link swaps run as root,
 * standing in for a host without `fs.protected_hardlinks` (with it, a user
 * cannot link a file they do not own), so the tools are tested, not the
 * sysctl.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  compileProgram,
  createUser,
  Rng,
  runCommand,
  type RunResult,
  runTool,
  scratchDir,
  testSeed,
  testSite,
  type TestUser,
} from "../harness.ts";
import { openHostFile } from "../../src/jailfs.ts";
import { close, fstat, O_RDONLY } from "../../src/libc.ts";
import { freshJail, treeDigest } from "../jailfixtures.ts";

const root = Deno.uid() === 0;

/** How long each scenario keeps the tools running against the flipper. */
const RACE_MS = 8000;

const FLIPPER_SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

/* Sleeps a random 0..pace microseconds (pace 0: never), so both quick
 * flips and states that last a little happen. */
static void pause_some(unsigned pace) {
  if (pace == 0) return;
  struct timespec ts = {0, (long)(rand() % pace) * 1000L};
  nanosleep(&ts, NULL);
}

static int open_dir(const char *dir) {
  int fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (fd < 0) { perror(dir); exit(2); }
  return fd;
}

int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) {
    fprintf(stderr, "usage: flip swap|churn DIR NAME TARGET PACE_US [FOR_MS]\n"
                    "       flip ontouch DIR NAME TARGET HOLD_US [FOR_MS]\n"
                    "       flip hardlink PATH VICTIM REGULAR PACE_US [FOR_MS]\n");
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  srand((unsigned)getpid());
  const char *mode = argv[1];
  unsigned pace = (unsigned)atoi(argv[5]);
  if (argc == 7) {
    /* Stop by itself after FOR_MS milliseconds. */
    struct itimerval limit;
    memset(&limit, 0, sizeof limit);
    long ms = atol(argv[6]);
    limit.it_value.tv_sec = ms / 1000;
    limit.it_value.tv_usec = (ms % 1000) * 1000 + 1;
    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &limit, NULL);
  }
  unsigned long flips = 0;
  char alt[4096];

  if (strcmp(mode, "swap") == 0 || strcmp(mode, "churn") == 0) {
    /* DIR/NAME alternates between a directory and a symlink to TARGET. */
    int dfd = open_dir(argv[2]);
    const char *name = argv[3];
    snprintf(alt, sizeof alt, ".%s.alt", name);
    if (mkdirat(dfd, name, 0755) != 0 && errno != EEXIST) { perror("mkdirat"); return 2; }
    if (strcmp(mode, "swap") == 0) {
      /* Atomic: the name is always there, a directory or the link. */
      unlinkat(dfd, alt, 0);
      if (symlinkat(argv[4], dfd, alt) != 0) { perror("symlinkat"); return 2; }
      while (!stop) {
        if (renameat2(dfd, name, dfd, alt, RENAME_EXCHANGE) == 0) flips++;
        pause_some(pace);
      }
    } else {
      /* Step by step, with moments where the name is missing. */
      while (!stop) {
        if (renameat(dfd, name, dfd, alt) != 0) {
          /* Someone made the name again (root's directory): keep it as ours. */
          renameat2(dfd, name, dfd, alt, RENAME_EXCHANGE);
        }
        pause_some(pace);
        if (symlinkat(argv[4], dfd, name) == 0) flips++;
        pause_some(pace);
        unlinkat(dfd, name, 0);
        if (renameat(dfd, alt, dfd, name) != 0) renameat2(dfd, alt, dfd, name, RENAME_EXCHANGE);
        pause_some(pace);
      }
    }
  } else if (strcmp(mode, "ontouch") == 0) {
    /* DIR/NAME is a directory until someone opens it (inotify), say root
     * listing it to copy its entries; then, for PACE_US, it is a symlink to
     * TARGET, so the entries' paths lead there. The classic way to win a
     * race that is only microseconds wide. */
    int dfd = open_dir(argv[2]);
    const char *name = argv[3];
    snprintf(alt, sizeof alt, ".%s.alt", name);
    unlinkat(dfd, alt, 0);
    if (symlinkat(argv[4], dfd, alt) != 0) { perror("symlinkat"); return 2; }
    char watched[4096];
    snprintf(watched, sizeof watched, "%s/%s", argv[2], name);
    int in = inotify_init1(0);
    if (in < 0 || inotify_add_watch(in, watched, IN_OPEN) < 0) { perror("inotify"); return 2; }
    char events[4096];
    while (!stop) {
      if (read(in, events, sizeof events) <= 0) continue;
      if (renameat2(dfd, name, dfd, alt, RENAME_EXCHANGE) != 0) continue;
      flips++;
      struct timespec ts = {0, (long)pace * 1000L};
      nanosleep(&ts, NULL);
      renameat2(dfd, name, dfd, alt, RENAME_EXCHANGE);
    }
  } else if (strcmp(mode, "hardlink") == 0) {
    /* PATH alternates between a hard link of VICTIM and one of REGULAR. */
    const char *path = argv[2];
    snprintf(alt, sizeof alt, "%s.hl", path);
    while (!stop) {
      unlink(alt);
      if (link(argv[3], alt) == 0 && rename(alt, path) == 0) flips++;
      pause_some(pace);
      unlink(alt);
      if (link(argv[4], alt) == 0) rename(alt, path);
      pause_some(pace);
    }
    unlink(alt);
  } else {
    fprintf(stderr, "flip: unknown mode %s\n", mode);
    return 2;
  }
  printf("%lu\n", flips);
  return 0;
}
`;

let flipperBuilt: Promise<string> | undefined;

/** Compiles the flipper once per test process; returns its path (root-owned, 0755). */
function flipperProgram(): Promise<string> {
  flipperBuilt ??= compileProgram("flip", FLIPPER_SOURCE, ["-O2", "-Wall", "-Werror"]);
  return flipperBuilt;
}

/** A running flipper. */
interface Flipper {
  /** Stops it; resolves to the number of flips it made. */
  stop(): Promise<number>;
}

/** Starts the flipper with `args`, as `as` (a user) or as root. */
async function startFlipper(args: string[], as?: TestUser): Promise<Flipper> {
  const child = new Deno.Command(await flipperProgram(), {
    args,
    uid: as?.uid,
    gid: as?.gid,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  return {
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // it already ended: its output says why
      }
      const out = await output;
      const dec = new TextDecoder();
      assert.equal(out.code, 0, `flip ${args.join(" ")}: ${dec.decode(out.stderr)}`);
      return Number(dec.decode(out.stdout).trim());
    },
  };
}

/** Stops every flipper, whatever happens to the others. */
async function stopAll(flippers: Flipper[]): Promise<number[]> {
  const results = await Promise.allSettled(flippers.map((f) => f.stop()));
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return results.map((r) => (r as PromiseFulfilledResult<number>).value);
}

/**
 * What the race may change nothing of: `outside/` mirrors the tree the tools
 * copy (so a write through the link would land on a matching name), `secret/`
 * is root's 0700 directory with a world-readable file, `victim` is an outside
 * file to hard-link into the jail.
 */
interface Victims {
  dir: string;
  outside: string;
  secret: string;
  victim: string;
  token: string;
  digest(): Promise<string>;
}

/** Writes `dir/rel` for each of `rels` (directories on the way included) with `content(rel)`. */
async function writeFiles(dir: string, rels: string[], content: (rel: string) => string) {
  for (const rel of rels) {
    const path = `${dir}/${rel}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, content(rel), { mode: 0o644 });
  }
}

async function makeVictims(base: string, mirror: string[]): Promise<Victims> {
  const dir = `${base}/victims`;
  const outside = `${dir}/outside`, secret = `${dir}/secret`, victim = `${dir}/victim`;
  const token = `root-only-${crypto.randomUUID()}`;
  await Deno.mkdir(outside, { recursive: true });
  await writeFiles(outside, mirror, (rel) => `outside ${rel}\n`);
  await Deno.mkdir(secret, { mode: 0o700 });
  await Deno.chmod(secret, 0o700);
  await writeFiles(secret, mirror, () => `${token}\n`);
  await Deno.writeTextFile(victim, `outside victim ${token}\n`);
  return { dir, outside, secret, victim, token, digest: () => treeDigest(dir) };
}

/** Paths of regular files under `dir` whose content holds `token`. */
async function filesHolding(dir: string, token: string): Promise<string[]> {
  const found: string[] = [];
  const needle = new TextEncoder().encode(token);
  const walk = async (path: string) => {
    for await (const e of Deno.readDir(path)) {
      const child = `${path}/${e.name}`;
      if (e.isDirectory) await walk(child);
      else if (e.isFile) {
        const bytes = await Deno.readFile(child);
        if (indexOf(bytes, needle) >= 0) found.push(child);
      }
    }
  };
  await walk(dir);
  return found;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let k = 0; k < needle.length; k++) if (haystack[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

/** A failed run must still be a one-line refusal, never a crash. */
function assertNoCrash(r: RunResult, what: string): void {
  assert.doesNotMatch(
    r.stderr,
    /Uncaught|panicked|^\s+at /m,
    `${what} crashed (exit ${r.code}):\n${r.stderr}`,
  );
}

/** Runs `step` again and again for `ms`, returning how often each exit code came. */
async function repeatFor(
  ms: number,
  step: (round: number) => Promise<RunResult>,
  allowed: number[],
  what: string,
): Promise<Map<number, number>> {
  const codes = new Map<number, number>();
  const deadline = Date.now() + ms;
  for (let round = 0; Date.now() < deadline; round++) {
    const r = await step(round);
    assertNoCrash(r, what);
    assert.ok(allowed.includes(r.code), `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
  }
  return codes;
}

/** The tree the root tools copy: SRC/bin/tool, SRC/data/{sub,churn,rel}/... */
const SOURCE_FILES = ["a.txt", "b.txt", "deeper/c.txt", "deeper/d.txt"];

async function makeSource(base: string): Promise<string> {
  const src = `${base}/src`;
  for (const dir of ["sub", "churn", "rel"]) {
    await writeFiles(`${src}/data/${dir}`, SOURCE_FILES, (rel) => `host ${dir}/${rel}\n`);
  }
  await Deno.mkdir(`${src}/bin`, { recursive: true });
  await Deno.copyFile("/usr/bin/true", `${src}/bin/tool`);
  await Deno.chmod(`${src}/bin/tool`, 0o755);
  return src;
}

/** The source tree and the victims beside the jail, and a first, undisturbed copy of the source. */
async function sourceCopiedIn(base: string, jail: string) {
  const src = await makeSource(base);
  const victims = await makeVictims(base, SOURCE_FILES);
  const first = await runTool("jk_cp", ["-j", jail, src]);
  assert.equal(first.code, 0, first.stderr);
  return { src, victims };
}

/** What a race scenario works with; `flippers` started into it are stopped afterwards. */
interface Scene {
  /** The scratch directory: the jail, the source and the victims are in it. */
  base: string;
  jail: string;
  /** A host user who runs the flippers that act as a user. */
  user: TestUser;
  flippers: Flipper[];
}

/** Runs `fn` with a fresh jail and user; afterwards stops every flipper and removes it all. */
async function raceScene(label: string, fn: (scene: Scene) => Promise<void>): Promise<void> {
  const { base, jail, remove } = await freshJail(label);
  const user = await createUser();
  const flippers: Flipper[] = [];
  try {
    await fn({ base, jail, user, flippers });
  } finally {
    await stopAll(flippers).catch(() => {});
    await user.remove();
    await remove();
  }
}

Deno.test({
  name: "RACE jk_cp and jk_init: a jail directory flipped to a link out while they copy " +
    "into it: nothing outside changes, no root-only file is copied in",
  ignore: !root,
  fn: () =>
    raceScene("race-cp", async ({ base, jail, user, flippers }) => {
      const { src, victims } = await sourceCopiedIn(base, jail);
      // The user owns the jail's copy of data/: the part of the jail they can write.
      const data = `${jail}${src}/data`;
      await Deno.chown(data, user.uid, user.gid);
      for (const dir of ["sub", "churn", "rel"]) {
        await runCommand("chown", ["-R", `${user.uid}:${user.gid}`, `${data}/${dir}`]);
      }
      const before = await victims.digest();
      const hostBefore = await treeDigest(src);
      const config = `${base}/jk_init.ini`;
      await Deno.writeTextFile(config, `[racy]\npaths = ${src}\n`);

      const climb = "../".repeat(src.split("/").length + 2) + victims.outside.slice(1);
      flippers.push(
        await startFlipper(["swap", data, "sub", victims.outside, "0"], user),
        await startFlipper(["churn", data, "churn", victims.secret, "50"], user),
        await startFlipper(["swap", data, "rel", climb, "20"], user),
      );
      const runs: [string, string[]][] = [
        ["jk_cp", ["-f", "-j", jail, src]],
        ["jk_cp", ["-j", jail, src]],
        ["jk_cp", ["-f", "-k", "-j", jail, src]],
        ["jk_init", ["-f", "-c", config, "-j", jail, "racy"]],
      ];
      const codes = await repeatFor(
        RACE_MS,
        (round) => {
          const [tool, args] = runs[round % runs.length];
          return runTool(tool, args);
        },
        [0, 3, 6, 7],
        "jk_cp/jk_init",
      );
      const flips = await stopAll(flippers.splice(0));

      assert.ok(flips.every((n) => n > 0), `the flippers ran: ${flips}`);
      // The tools met the links (exit 6 for jk_cp, 3 for jk_init): the race was live.
      assert.ok((codes.get(6) ?? 0) + (codes.get(3) ?? 0) > 0, `codes ${[...codes]}`);
      assert.equal(await victims.digest(), before, "nothing outside the jail changed");
      assert.deepEqual(await filesHolding(jail, victims.token), [], "no root-only file copied in");
      // -k links host files into the jail; their link counts are back once it is gone.
      await Deno.remove(jail, { recursive: true });
      assert.equal(await treeDigest(src), hostBefore, "the host's source is untouched");
    }),
});

Deno.test({
  name: "RACE jk_cp and jk_update reading a host tree the user can write: a directory " +
    "swapped for a link to a root-only directory mid-copy never brings its files in",
  ignore: !root,
  fn: () =>
    raceScene("race-host", async ({ base, jail, user, flippers }) => {
      // The admin copies a tree the user owns (a web root, say) into the jail.
      const pub = `${base}/pub`;
      for (const dir of ["sub", "touched"]) {
        await writeFiles(`${pub}/${dir}`, SOURCE_FILES, (rel) => `public ${dir}/${rel}\n`);
      }
      await runCommand("chown", ["-R", `${user.uid}:${user.gid}`, pub]);
      const victims = await makeVictims(base, SOURCE_FILES);
      const before = await victims.digest();
      const first = await runTool("jk_cp", ["-j", jail, pub]);
      assert.equal(first.code, 0, first.stderr);

      flippers.push(
        // Free running, and timed by inotify to the moment root lists the directory.
        await startFlipper(["swap", pub, "sub", victims.secret, "30"], user),
        await startFlipper(["ontouch", pub, "touched", victims.secret, "3000"], user),
      );
      const codes = await repeatFor(
        RACE_MS,
        (round) =>
          runTool(
            round % 2 ? "jk_update" : "jk_cp",
            round % 2 ? ["-j", jail, pub] : ["-f", "-j", jail, pub],
          ),
        [0, 6, 7],
        "jk_cp/jk_update",
      );
      const flips = await stopAll(flippers.splice(0));
      assert.ok(flips.every((n) => n > 0), `the flippers ran: ${flips} (codes ${[...codes]})`);

      // The link itself is copied as a link, and its target with the host's
      // modes: root-only files may sit in the jail's copy of the 0700
      // directory, and nowhere else.
      const mirror = `${jail}${victims.secret}`;
      const holding = await filesHolding(jail, victims.token);
      assert.deepEqual(holding.filter((f) => !f.startsWith(`${mirror}/`)), [], "copied in");
      if (holding.length > 0) assert.equal((await Deno.stat(mirror)).mode! & 0o777, 0o700);
      assert.equal(await victims.digest(), before, "nothing outside the jail changed");
    }),
});

Deno.test({
  name: "RACE jk_cp -f: a jail file swapped for a hard link of an outside file mid-run " +
    "is replaced by name; the outside file is never written",
  ignore: !root,
  fn: () =>
    raceScene("race-cp-hl", async ({ base, jail, flippers }) => {
      const { src, victims } = await sourceCopiedIn(base, jail);
      // An old version of a.txt to swap back in, so -f always finds a file that differs.
      const stale = `${base}/stale-a.txt`;
      await Deno.writeTextFile(stale, "stale\n");
      const before = await victims.digest();
      const target = `${jail}${src}/data/sub/a.txt`;
      const tool = `${jail}${src}/bin/tool`;
      flippers.push(
        await startFlipper(["hardlink", target, victims.victim, stale, "0"]),
        await startFlipper(["hardlink", tool, victims.victim, stale, "30"]),
      );
      await repeatFor(
        RACE_MS / 2,
        () => runTool("jk_cp", ["-f", "-j", jail, src]),
        [0, 7],
        "jk_cp",
      );
      const flips = await stopAll(flippers.splice(0));
      assert.ok(flips.every((n) => n > 0), `the swappers ran: ${flips}`);
      // The jail goes first: its links would change the victim's link count.
      await Deno.remove(jail, { recursive: true });
      assert.equal(await victims.digest(), before, "the outside file was never written");
    }),
});

Deno.test({
  name: "RACE jk_update: a user's directory in a scanned tree flipped to a link out, and a " +
    "root file swapped for a hard link of an outside file: nothing outside changes",
  ignore: !root,
  fn: () =>
    raceScene("race-up", async ({ base, jail, user, flippers }) => {
      const { src, victims } = await sourceCopiedIn(base, jail);
      const data = `${jail}${src}/data`;
      await runCommand("chown", ["-R", `${user.uid}:${user.gid}`, data]);
      // Something for jk_update to do in the root-owned part every round.
      const stale = `${base}/stale-tool`;
      await Deno.writeTextFile(stale, "an old tool\n", { mode: 0o755 });
      const before = await victims.digest();
      flippers.push(
        await startFlipper(["swap", data, "sub", victims.outside, "0"], user),
        await startFlipper(["churn", data, "churn", victims.secret, "50"], user),
        await startFlipper(["hardlink", `${jail}${src}/bin/tool`, victims.victim, stale, "40"]),
      );
      const codes = await repeatFor(
        RACE_MS,
        (round) =>
          runTool("jk_update", round % 3 === 2 ? ["-d", "-j", jail, src] : ["-j", jail, src]),
        [0, 7],
        "jk_update",
      );
      const flips = await stopAll(flippers.splice(0));
      assert.ok(flips.every((n) => n > 0), `the flippers ran: ${flips}`);
      assert.ok((codes.get(0) ?? 0) > 0, `codes ${[...codes]}`);
      assert.deepEqual(await filesHolding(jail, victims.token), [], "no outside file copied in");
      await Deno.remove(jail, { recursive: true });
      assert.equal(await victims.digest(), before, "nothing outside the jail changed");
    }),
});

Deno.test({
  name: "RACE jk_jailuser -m: the user flips parts of the home being moved to links out; " +
    "nothing outside changes and no root-only file reaches the jail",
  ignore: !root,
  fn: () =>
    raceScene("race-ju", async ({ base, jail, user, flippers }) => {
      await testSite(); // the install, before the clock starts
      await Deno.mkdir(`${jail}/etc`, { mode: 0o755 });
      await Deno.writeTextFile(`${jail}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
      await Deno.writeTextFile(`${jail}/etc/group`, "root:x:0:\n");
      await Deno.mkdir(`${jail}/bin`, { mode: 0o755 });
      await Deno.writeTextFile(`${jail}/bin/sh`, "#!/bin/false\n", { mode: 0o755 });
      const victims = await makeVictims(base, SOURCE_FILES);
      const before = await victims.digest();
      const home = user.home;
      const asUser = (script: string) =>
        runCommand("/bin/sh", ["-c", script], { uid: user.uid, gid: user.gid, cwd: "/" });

      const rng = new Rng(testSeed(7001));
      const codes = new Map<number, number>();
      let totalFlips = 0;
      const deadline = Date.now() + RACE_MS;
      for (let round = 0; Date.now() < deadline; round++) {
        // Back to a host account with a home outside the jail.
        await runCommand("usermod", ["-d", home, "-s", "/bin/sh", user.name]);
        await Deno.remove(`${jail}/home`, { recursive: true }).catch(() => {});
        await Deno.mkdir(home, { recursive: true });
        await Deno.chown(home, user.uid, user.gid);
        const made = await asUser(
          `cd ${home} && mkdir -p keep/deeper && echo mine > keep/a.txt && ` +
            `echo mine > keep/deeper/c.txt && echo notes > notes.txt`,
        );
        assert.equal(made.code, 0, made.stderr);
        // Some rounds the flippers stop partway, so the move also gets past the
        // user's processes (usermod refuses to change an account in use).
        const limit = String(rng.int(500));
        flippers.push(
          await startFlipper(
            ["swap", home, "x", victims.outside, rng.pick(["0", "30"]), limit],
            user,
          ),
          await startFlipper(["churn", home, "y", victims.secret, "20", limit], user),
          await startFlipper(["swap", `${home}/keep`, "deeper", victims.secret, "0", limit], user),
        );
        const moveHome = ["-n", "-m", "-s", "/bin/sh", "-j", jail, user.name];
        const r = await runTool("jk_jailuser", moveHome);
        assertNoCrash(r, "jk_jailuser");
        assert.ok(
          [0, 1].includes(r.code),
          `jk_jailuser exit ${r.code}: ${r.stderr} (seed ${rng.seed})`,
        );
        codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
        totalFlips += (await stopAll(flippers.splice(0))).reduce((a, b) => a + b, 0);
        if (r.code === 0) {
          const moved = `${jail}${home}`;
          assert.equal(await Deno.readTextFile(`${moved}/notes.txt`), "notes\n", r.stderr);
          assert.equal((await Deno.stat(moved)).uid, user.uid);
        }
        await Deno.remove(home, { recursive: true }).catch(() => {});
      }
      assert.ok(totalFlips > 0, "the flippers ran");
      assert.ok((codes.get(1) ?? 0) > 0, `some moves met the flips: codes ${[...codes]}`);
      assert.ok((codes.get(0) ?? 0) > 0, `some moves completed: codes ${[...codes]}`);
      assert.deepEqual(await filesHolding(jail, victims.token), [], "no root-only file moved in");
      assert.equal(await victims.digest(), before, "nothing outside the jail changed");
    }),
});

Deno.test({
  name: "openHostFile follows symlinks only root could have made: merged /usr yes, a link " +
    "in a directory a user can write no",
  ignore: !root,
  fn: async () => {
    const dir = await scratchDir("race-open");
    const user = await createUser();
    try {
      // /lib -> usr/lib is root's: followed, the same file as the real path.
      const viaLink = openHostFile("/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY);
      const real = openHostFile("/usr/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY);
      try {
        assert.equal(fstat(viaLink).ino, fstat(real).ino);
      } finally {
        close(viaLink);
        close(real);
      }
      // The same kind of link in a directory the user owns: refused, named.
      await Deno.mkdir(`${dir}/secret`, { mode: 0o700 });
      await Deno.writeTextFile(`${dir}/secret/file`, "root only\n", { mode: 0o644 });
      await Deno.mkdir(`${dir}/pub`);
      await Deno.chown(`${dir}/pub`, user.uid, user.gid);
      await Deno.symlink(`${dir}/secret`, `${dir}/pub/sub`);
      assert.throws(
        () => openHostFile(`${dir}/pub/sub/file`, O_RDONLY),
        new RegExp(`^JkError: ${dir}/pub/sub is a symlink in a directory others can write`),
      );
      // A root-owned directory without links is opened as usual; the last component is
      // never followed.
      await Deno.symlink("secret/file", `${dir}/last`);
      close(openHostFile(`${dir}/secret/file`, O_RDONLY));
      assert.throws(() => openHostFile(`${dir}/last`, O_RDONLY), /ELOOP|symbolic links/);
    } finally {
      await user.remove();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
