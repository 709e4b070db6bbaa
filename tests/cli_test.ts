/** src/cli.ts parses like node:util's parseArgs (the oracle here) for the forms the tools accept. */
import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { type OptionSpec, parseCommandLine } from "../src/cli.ts";
import { Rng, testSeed } from "./harness.ts";

const OPTIONS: OptionSpec = {
  jail: { type: "string", short: "j" },
  verbose: { type: "boolean", short: "v" },
  force: { type: "boolean", short: "f" },
  skip: { type: "string", short: "s", multiple: true },
  help: { type: "boolean", short: "h" },
  config: { type: "string" },
};

const WORDS = [
  "-j",
  "-v",
  "-f",
  "-s",
  "-h",
  "-vf",
  "-fv",
  "-vj",
  "-js",
  "-jX",
  "-sY",
  "-x",
  "-vx",
  "--jail",
  "--jail=/srv",
  "--jail=",
  "--verbose",
  "--verbose=1",
  "--skip",
  "--skip=a",
  "--config",
  "--config=c",
  "--bogus",
  "--",
  "-",
  "/srv/jail",
  "sftp",
  "a b",
  "",
  "-j-",
];

/** What node:util says: values and positionals, or that it refuses. */
function oracle(args: string[], positionals: boolean) {
  try {
    const r = parseArgs({ args, options: OPTIONS, allowPositionals: positionals, strict: true });
    return { values: { ...r.values }, positionals: r.positionals };
  } catch {
    return "error";
  }
}

function ours(args: string[], positionals: boolean) {
  try {
    const r = parseCommandLine(args, OPTIONS, { positionals });
    return { values: { ...r.values }, positionals: r.positionals };
  } catch (e) {
    assert.match((e as Error).message, /; try --help$/);
    return "error";
  }
}

Deno.test("cli: parseCommandLine agrees with node:util parseArgs on random command lines", () => {
  const rng = new Rng(testSeed(20261129));
  for (let i = 0; i < 20000; i++) {
    const args = Array.from({ length: rng.int(6) }, () => WORDS[rng.int(WORDS.length)]);
    const positionals = rng.chance(0.7);
    assert.deepEqual(ours(args, positionals), oracle(args, positionals), JSON.stringify(args));
  }
});

Deno.test("cli: the forms jailkit's getopt accepted, and one-line errors", () => {
  const parse = (args: string[]) => parseCommandLine(args, OPTIONS);
  assert.deepEqual({ ...parse(["-vfj/srv/jail", "x"]).values }, {
    verbose: true,
    force: true,
    jail: "/srv/jail",
  });
  assert.deepEqual({ ...parse(["--jail", "/srv", "-s", "a", "--skip=b"]).values }, {
    jail: "/srv",
    skip: ["a", "b"],
  });
  assert.deepEqual(parse(["--", "-v"]).positionals, ["-v"]);
  assert.throws(
    () => parse(["--bogus"]),
    /^Error: Unknown option '--bogus'; try --help$|Unknown option '--bogus'; try --help/,
  );
  assert.throws(() => parse(["-j"]), /Option '-j, --jail' argument missing; try --help/);
  assert.throws(() => parse(["--verbose=yes"]), /does not take an argument/);
  assert.throws(
    () => parseCommandLine(["x"], OPTIONS, { positionals: false, usageExit: 2 }),
    (e: unknown) => (e as { exitCode: number }).exitCode === 2,
  );
});
