import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { heapFlagsForRun } from "./memory-exec.ts";
import { REEXEC_MARK, reexecForRun, REMEMBERED_MARK, shapeOf } from "./memory-exec-start.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-memory-exec-start-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string, memory: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, [`name: ${name}`, `memory: ${memory}`, "sources:", "  - {name: pg, kind: postgres, database: shop, user: sluice, tables: [public.*]}"].join("\n"));
  return file;
}

let caches = 0;
const emptyCache = () => mkdtempSync(join(dir, `cache-${++caches}-`));

describe("sluice run's first process and the flags of earlier starts", () => {
  test("a first start plans and remembers the flags; the next start with the same command line starts at once with them, marked to be checked", async () => {
    const cache = emptyCache();
    const file = config("first", "384MiB");
    const planned = heapFlagsForRun(["-c", file], {}, [])!;
    const first = await reexecForRun(["-c", file], {}, [], cache);
    assert.deepEqual(first?.flags, planned);
    assert.equal(first?.env[REEXEC_MARK], planned.join(" "));
    assert.equal(first?.env[REMEMBERED_MARK], undefined, "planned for this config: nothing to check");
    const next = await reexecForRun(["-c", file], {}, [], cache);
    assert.deepEqual(next?.flags, planned);
    assert.equal(next?.env[REMEMBERED_MARK], "1");
  });

  test("a start with another command line starts with the flags of the last start of a config of the same shape, to be checked; of another shape, it plans", async () => {
    const cache = emptyCache();
    const one = config("one", "384MiB");
    const other = config("other", "384MiB");
    const large = config("large", "1GiB");
    await reexecForRun(["-c", one], {}, [], cache);
    const same = await reexecForRun(["-c", other], {}, [], cache);
    assert.deepEqual(same?.flags, heapFlagsForRun(["-c", one], {}, []));
    assert.equal(same?.env[REMEMBERED_MARK], "1");
    const planned = await reexecForRun(["-c", large], {}, [], cache);
    assert.deepEqual(planned?.flags, heapFlagsForRun(["-c", large], {}, []));
    assert.equal(planned?.env[REMEMBERED_MARK], undefined);
  });

  test("a config's shape: its kinds, memory setting and personal columns, read from its text", () => {
    const shape = (name: string, text: string) => {
      const file = join(dir, `${name}.yaml`);
      writeFileSync(file, text);
      return shapeOf(["-c", file], {});
    };
    const embedded = shape("shape_embedded", "name: a\nsources:\n  - {name: pg, kind: postgres}\ntopics: {kind: embedded, path: a.db}\n");
    assert.equal(shape("shape_embedded2", "name: b\nsources:\n  - {name: pg, kind: postgres}\ntopics: {kind: embedded, path: b.db}\n"), embedded);
    assert.notEqual(shape("shape_kafka", JSON.stringify({ name: "a", sources: [{ name: "pg", kind: "postgres" }], topics: { kind: "kafka" } })), embedded);
    assert.notEqual(shape("shape_memory", "name: a\nmemory: 512MiB\nsources:\n  - {name: pg, kind: postgres}\ntopics: {kind: embedded, path: a.db}\n"), embedded);
    assert.equal(shapeOf(["-c", join(dir, "missing.yaml")], {}), "");
  });

  test("a config that is a FIFO has no shape and is not waited on (sluice run -c FIFO hung before its first log line)", () => {
    const fifo = join(dir, "fifo.yaml");
    assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
    const script = `const { shapeOf } = await import(${JSON.stringify(new URL("./memory-exec-start.ts", import.meta.url).href)}); console.log(JSON.stringify(shapeOf(["-c", process.argv[1]], {})));`;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script, fifo], { timeout: 30_000, encoding: "utf8" });
    assert.equal(child.signal, null, "shapeOf did not return: it waited on the FIFO");
    assert.equal(child.stdout.trim(), '""', child.stderr);
  });

  test("the started process checks remembered flags against its config: the same run as they are, others start it again with the planned ones, which are remembered", async () => {
    const cache = emptyCache();
    const small = config("check_small", "384MiB");
    const large = config("check_large", "1GiB");
    const smallFlags = heapFlagsForRun(["-c", small], {}, [])!;
    const largeFlags = heapFlagsForRun(["-c", large], {}, [])!;
    assert.notDeepEqual(smallFlags, largeFlags);
    const startedWith = (flags: readonly string[]) => ({ env: { PATH: "/bin", [REEXEC_MARK]: flags.join(" "), [REMEMBERED_MARK]: "1" }, execArgv: ["--enable-source-maps", ...flags] });

    const right = startedWith(smallFlags);
    assert.equal(await reexecForRun(["-c", small], right.env, right.execArgv, cache), null);

    const wrong = startedWith(smallFlags);
    const again = await reexecForRun(["-c", large], wrong.env, wrong.execArgv, cache);
    assert.deepEqual(again?.flags, largeFlags);
    assert.deepEqual(again?.execArgv, ["--enable-source-maps"], "node's own flags, without the remembered ones");
    assert.equal(again?.env[REEXEC_MARK], largeFlags.join(" "));
    assert.equal(again?.env[REMEMBERED_MARK], undefined, "planned: the next process runs as it is");
    assert.equal(again?.env["PATH"], "/bin");
    assert.equal(await reexecForRun(["-c", large], again!.env, [...again!.execArgv, ...again!.flags], cache), null);
    // Remembered for this command line now.
    assert.deepEqual((await reexecForRun(["-c", large], {}, [], cache))?.flags, largeFlags);
    assert.deepEqual((await reexecForRun(["-c", small], {}, [], cache))?.flags, smallFlags);
  });

  test("remembered entries other than plain heap flags are ignored: the start plans", async () => {
    const cache = emptyCache();
    const file = config("planted", "384MiB");
    const key = JSON.stringify([process.cwd(), ["-c", file], null]);
    writeFileSync(join(cache, "sluice-run-heap-flags.json"), JSON.stringify([[key, "", ["--max-old-space-size=100", "--require=/tmp/planted.js"]]]));
    const start = await reexecForRun(["-c", file], {}, [], cache);
    assert.deepEqual(start?.flags, heapFlagsForRun(["-c", file], {}, []));
    assert.equal(start?.env[REMEMBERED_MARK], undefined);
    writeFileSync(join(cache, "sluice-run-heap-flags.json"), "not json");
    assert.equal((await reexecForRun(["-c", file], {}, [], cache))?.env[REMEMBERED_MARK], undefined);
  });

  test("heap flags the user gave win; without a cache directory every start plans; a process not marked as remembered runs as it is", async () => {
    const cache = emptyCache();
    const file = config("user", "384MiB");
    await reexecForRun(["-c", file], {}, [], cache);
    assert.equal(await reexecForRun(["-c", file], { NODE_OPTIONS: "--max-old-space-size=500" }, [], cache), null);
    assert.equal(await reexecForRun(["-c", file], {}, ["--max-semi-space-size=16"], cache), null);
    assert.equal((await reexecForRun(["-c", file], {}, [], undefined))?.env[REMEMBERED_MARK], undefined);
    assert.equal(await reexecForRun(["-c", file], { [REEXEC_MARK]: "--max-old-space-size=100" }, ["--max-old-space-size=100"], cache), null);
    // A growing factor the user gave stays theirs with remembered flags too.
    const growing = await reexecForRun(["-c", file], {}, ["--heap-growing-percent=50"], cache);
    assert.equal(growing?.env[REMEMBERED_MARK], "1");
    assert.deepEqual(growing?.flags.filter((flag) => flag.includes("growing")), []);
  });
});

/** A TCP port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts `sluice run -c file` with `cache` as its compile cache; resolves with node's command line once the daemon logged its memory plan. */
async function startedCommandLine(file: string, cache: string): Promise<{ execArgv: string[]; log: string }> {
  const sluice = new URL("./sluice.js", import.meta.url).pathname;
  const env: Record<string, string | undefined> = { ...process.env, NODE_COMPILE_CACHE: cache };
  for (const name of [REEXEC_MARK, REMEMBERED_MARK, "NODE_OPTIONS", "SLUICE_CONFIG"]) delete env[name];
  const child = spawn(process.execPath, [sluice, "run", "-c", file], { env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (chunk: Buffer) => (log += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (log += chunk.toString("utf8")));
  try {
    const deadline = Date.now() + 60_000;
    while (!log.includes('"msg":"memory budget"')) {
      assert.ok(child.exitCode === null && Date.now() < deadline, `sluice run did not log its memory plan: ${log}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const argv = readFileSync(`/proc/${child.pid}/cmdline`, "utf8").split("\0");
    return { execArgv: argv.slice(1, argv.indexOf(sluice)), log };
  } finally {
    child.kill("SIGKILL");
    await new Promise((resolve) => (child.exitCode === null ? child.once("exit", resolve) : resolve(undefined)));
  }
}

test("sluice run starts with the flags planned for its config: at a first start, with the remembered flags, and when those no longer fit", { timeout: 180_000 }, async () => {
  const cache = emptyCache();
  const port = await closedPort();
  const httpPort = await closedPort();
  const write = (memory: string) => {
    const file = join(dir, "daemon.yaml");
    writeFileSync(file, JSON.stringify({
      name: "memory_exec_start",
      memory,
      // Nothing listens there: capture waits it out, the process stays up.
      sources: [{ name: "pg", kind: "postgres", host: "127.0.0.1", port, database: "shop", user: "sluice", password: "x", tables: ["public.*"] }],
      topics: { kind: "embedded", path: join(dir, "daemon.db") },
      http: { listen: `127.0.0.1:${httpPort}` },
    }));
    return file;
  };
  for (const memory of ["384MiB", "384MiB", "1GiB"]) {
    const file = write(memory);
    const { execArgv, log } = await startedCommandLine(file, cache);
    assert.deepEqual(execArgv, heapFlagsForRun(["-c", file], {}, []), `started with ${memory}`);
    assert.doesNotMatch(log, /heap limit is \d+MiB, not the/);
  }
});
