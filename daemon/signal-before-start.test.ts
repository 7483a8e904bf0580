/**
 * `sluice run` as PID 1 of a container: a SIGTERM that comes while its modules load stops it.
 *
 * PID 1 of a PID namespace never gets a signal it has no handler for (the kernel drops it instead of
 * killing the process), so a stop sent in the first seconds of a container, before `run` installed its
 * listeners, was lost: the daemon started and ran on until the orchestrator's SIGKILL (found with
 * `podman stop` right after `podman run`: killed after the whole grace period, exit 137). Here the
 * daemon is PID 1 of a new PID namespace (unshare), its loading is held by a module hook until the
 * test has sent SIGTERM (at cli.ts, or before the re-exec with the main thread's heap flags, which
 * drops a signal not yet dispatched), and it must then exit 0 without starting (its HTTP server never
 * answers). Its source is a closed port: nothing outside is touched.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, test } from "node:test";
import { freePort } from "../test/deploy/daemon-process.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-signal-before-start-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const HOOKS = `import { existsSync, writeFileSync } from "node:fs";
export async function resolve(specifier, context, next) {
  if (specifier === process.env.GATE_SPECIFIER) {
    writeFileSync(process.env.GATE_WAITING, "");
    while (!existsSync(process.env.GATE_OPEN)) await new Promise((r) => setTimeout(r, 20));
  }
  return next(specifier, context);
}
`;

function childPidOf(pid: number): number | undefined {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    return children === "" ? undefined : Number(children.split(" ")[0]);
  } catch {
    return undefined;
  }
}

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, exited: () => boolean): Promise<T> {
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    assert.ok(!exited(), `the daemon exited while waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs `sluice run` as PID 1, holds its loading at the import of `gated` (in sluice.js) until SIGTERM is sent, and expects an exit 0 without a start. */
async function signalWhileLoading(gated: string): Promise<void> {
  const run = join(dir, gated.replace(/\W/g, "_"));
  mkdirSync(run);
  const httpPort = await freePort();
  const closedPort = await freePort();
  const config = join(run, "sluice.yaml");
  writeFileSync(
    config,
    `name: sigload
sources:
  - name: src
    kind: postgres
    host: 127.0.0.1
    port: ${closedPort}
    database: none
    user: none
    password: none
    tables: ["never.*"]
topics:
  kind: embedded
  path: ${join(run, "sluice.db")}
sinks: []
http:
  listen: 127.0.0.1:${httpPort}
`,
  );
  const waiting = join(run, "waiting");
  const open = join(run, "open");

  const child = spawn(
    "unshare",
    ["--pid", "--fork", "--kill-child", process.execPath, "--import", pathToFileURL(join(dir, "register.mjs")).href, join(import.meta.dirname, "sluice.js"), "run", "-c", config],
    { env: { ...process.env, GATE_SPECIFIER: gated, GATE_WAITING: waiting, GATE_OPEN: open, NODE_DISABLE_COMPILE_CACHE: "1" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let exited = false;
  void exit.then(() => (exited = true));
  try {
    // The daemon's process (PID 1 inside) is held at the import: send SIGTERM there, then let it load on.
    const daemonPid = await until("the daemon's process", () => childPidOf(child.pid!), () => exited);
    await until(`the daemon to import ${gated}`, () => (existsSync(waiting) ? true : undefined), () => exited);
    process.kill(daemonPid, "SIGTERM");
    writeFileSync(open, "");
    // Either it exits (the signal was heard), or its HTTP server answers (it started although told to stop).
    const started = until(
      "an answer",
      async () => ((await fetch(`http://127.0.0.1:${httpPort}/healthz`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined))?.status === 200 ? true : undefined),
      () => exited,
    ).catch(() => undefined);
    const outcome = await Promise.race([exit.then((code) => ({ code })), started.then((answered) => (answered ? ("started" as const) : undefined))]);
    assert.notEqual(outcome, "started", `the daemon started although it was sent SIGTERM while loading:\n${output}`);
    assert.deepEqual(outcome, { code: 0 }, output);
    assert.match(output, /signal before the start: not starting/);
  } finally {
    if (!exited) child.kill("SIGKILL");
    await exit;
  }
}

writeFileSync(join(dir, "hooks.mjs"), HOOKS);
writeFileSync(join(dir, "register.mjs"), `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(join(dir, "hooks.mjs")).href)});\n`);

test("SIGTERM to sluice run as PID 1 while it loads the daemon's modules (after the heap-flags re-exec): it exits 0 and does not start", { timeout: 60_000 }, async () => {
  await signalWhileLoading("./cli.ts");
});

test("SIGTERM to sluice run as PID 1 before its heap-flags re-exec: it exits 0 and does not start", { timeout: 60_000 }, async () => {
  await signalWhileLoading("./memory-exec-start.ts");
});
