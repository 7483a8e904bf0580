/**
 * `sluice forget -c FILE --source S --subject ID [--execute]`: erases one data subject's personal
 * columns (docs/governance.md). In order, each step safe to repeat, so a run cut short (kill -9)
 * is finished by running it again:
 *   1. audit "started" in <deployment>.sluice.erasures;
 *   2. the subject's key is destroyed (a tombstone in the key topic): every copy of its values in
 *      the topics is unreadable from then on, and capture encrypts its later changes with a new key;
 *   3. every sink holding the source's personal tables nulls the subject's personal columns in
 *      rows already applied (through the running daemon when it runs the sink, else here);
 *   4. audit "completed" with the sinks that confirmed.
 * `sluice rotate-master-key` rewraps every subject key with the current master key.
 */
import { randomUUID } from "node:crypto";
import type { SluiceConfig } from "../config/schema.ts";
import type { TopicLog } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { lostTopicPolicyOf, openTopicLogForCommand } from "../connectors/topics/open.ts";
import type { Logger } from "../runtime/logger.ts";
import { createSink } from "./components.ts";
import { callDaemon, daemonBusyMessage, daemonRunning, refusalHint } from "./daemon-client.ts";
import type { DaemonAnswer } from "./daemon-client.ts";
import { ErasureAudit, eraseInSink, erasingSinks, erasureAuditTopic, erasureRequests, operator } from "./governance/erasure.ts";
import type { ErasureAuditEntry } from "./governance/erasure.ts";
import { KEY_CATCH_UP_MS, masterKeys, personalTables } from "./governance/personal-data.ts";
import { sleep } from "../runtime/backoff.ts";
import { durationFromEnv } from "../runtime/env-duration.ts";
import { SubjectKeyStore, subjectKeyTopic } from "./governance/subject-keys.ts";
import { oneLine } from "./terminal-text.ts";

export interface ForgetIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface ForgetArgs {
  readonly source: string;
  readonly subject: string;
  readonly execute: boolean;
}

/** Key operations (forget, rotation) of one deployment run one at a time: a rotation must not rewrap a key a forget is destroying. */
export function keyAdminLease(deployment: string): string {
  return `${subjectKeyTopic(deployment)}.admin`;
}
/**
 * Short, and renewed while the command runs: a command killed with -9 blocks the next one for half
 * a minute at most. SLUICE_KEY_ADMIN_LEASE_MS changes it (docs/governance.md).
 */
export function keyAdminLeaseTtlMs(env: NodeJS.ProcessEnv = process.env): number {
  return durationFromEnv("SLUICE_KEY_ADMIN_LEASE_MS", 30_000, { min: 1_000, max: 3_600_000 }, env);
}

/** "30 seconds", "1.5 seconds": how long a killed command's lease blocks the next, for refusals. */
function leaseWait(ttlMs: number): string {
  return `${ttlMs / 1000} second${ttlMs === 1000 ? "" : "s"}`;
}

/** Takes the deployment's key admin lease and keeps renewing it; null when another command holds it. */
async function holdLease(log: TopicLog, lease: string, owner: string, ttlMs: number): Promise<{ release(): Promise<void> } | null> {
  if (!(await log.acquireLease(lease, owner, ttlMs))) return null;
  const renewing = setInterval(() => void log.acquireLease(lease, owner, ttlMs).catch(() => undefined), ttlMs / 4);
  return {
    async release() {
      clearInterval(renewing);
      await log.releaseLease(lease, owner).catch(() => undefined);
    },
  };
}

export async function runForgetCommand(config: SluiceConfig, args: ForgetArgs, io: ForgetIo, logger: Logger): Promise<number> {
  const source = config.sources.find((s) => s.name === args.source);
  if (!source) {
    io.stderr(`sluice forget: no source "${args.source}"; sources: ${config.sources.map((s) => s.name).join(", ")}\n`);
    return 2;
  }
  const tables = personalTables(source);
  if (tables.size === 0) {
    io.stderr(`sluice forget: source "${args.source}" has no personal columns (governance.tables.<table>.personal); nothing to erase\n`);
    return 2;
  }
  const sinks = erasingSinks(config, args.source);
  const running = await daemonRunning(config);
  if (typeof running === "object") {
    io.stderr(`sluice forget: ${daemonBusyMessage(config, running)}\n`);
    return 1;
  }
  const { master, previous } = masterKeys(config);
  if (!args.execute) {
    const log = await openTopicLogForCommand(config.topics, config.name, logger, "read-only");
    try {
      const keys = await SubjectKeyStore.open(log, subjectKeyTopic(config.name), master, { previous, create: false });
      const history = await new ErasureAudit(log, config.name).entries({ source: args.source, subject: args.subject });
      await keys.close();
      const key = keys.hasKey(args.source, args.subject) ? "has a key: it would be destroyed" : keys.wasDestroyed(args.source, args.subject) ? "has no key any more (destroyed before)" : "has no key (never captured, or destroyed long ago)";
      const last = history.at(-1);
      io.stdout(
        `Forget subject ${JSON.stringify(args.subject)} of source "${args.source}":\n` +
          `  the subject ${key}\n` +
          [...tables].map(([table, p]) => `  table ${table}: columns ${p.columns.join(", ")} of the rows whose ${p.subject} is ${JSON.stringify(args.subject)}\n`).join("") +
          `  sinks that would null them: ${sinks.map((s) => s.name).join(", ") || "(none)"}${running ? " (through the running daemon where it runs them)" : ""}\n` +
          (last ? `  earlier erasure of this subject: ${last.event} at ${last.at} by ${last.by}${last.event === "completed" ? "" : " (not completed: run again with --execute)"}\n` : "") +
          "Dry run: nothing changed. Run again with --execute.\n",
      );
      return 0;
    } finally {
      await log.close();
    }
  }

  // Read before the log is opened: a bad value is refused with nothing left open.
  const leaseTtlMs = keyAdminLeaseTtlMs();
  const log = await openTopicLogForCommand(config.topics, config.name, logger, "write", lostTopicPolicyOf(config));
  const owner = `sluice forget (${operator()}:${process.pid})`;
  const lease = keyAdminLease(config.name);
  const audit = new ErasureAudit(log, config.name);
  const base = { id: randomUUID(), source: args.source, subject: args.subject, by: operator() };
  const entry = (event: ErasureAuditEntry["event"], more: Partial<ErasureAuditEntry> = {}): Promise<void> => audit.record({ ...base, event, at: new Date().toISOString(), ...more });
  let held: { release(): Promise<void> } | null = null;
  try {
    held = await holdLease(log, lease, owner, leaseTtlMs);
    if (!held) {
      io.stderr(`sluice forget: refused: another forget or a master key rotation of this deployment runs now (or one was killed less than ${leaseWait(leaseTtlMs)} ago); nothing changed. Try again when it is done.\n`);
      return 1;
    }
    await audit.open();
    await entry("started");
    const keys = await SubjectKeyStore.open(log, subjectKeyTopic(config.name), master, { previous });
    try {
      const had = await keys.destroy(args.source, args.subject);
      await entry("key-destroyed");
      io.stdout(`key of subject ${JSON.stringify(args.subject)} ${had ? "destroyed" : "was already gone (tombstone written again)"}\n`);
    } finally {
      await keys.close();
    }
    const confirmed = new Set<string>();
    // With Kafka, several processes may apply one sink; one that has not read the tombstone yet can
    // still decrypt values it applies: a second pass, once every process has read the key topic again.
    const passes = config.topics.kind === "kafka" ? 2 : 1;
    for (let pass = 1; pass <= passes; pass++) {
      if (pass > 1) {
        io.stdout(`second pass in ${(2 * KEY_CATCH_UP_MS) / 1000} s (other processes applying these sinks read the key topic again meanwhile)\n`);
        await sleep(2 * KEY_CATCH_UP_MS);
      }
      // A sink that fails does not keep the others from erasing: each erases what it can, the command then fails.
      const failed: string[] = [];
      for (const sink of sinks) {
        try {
          const rows = await eraseInOneSink(config, sink.name, args, running, logger);
          await entry("sink-erased", { sink: sink.name, rows });
          confirmed.add(sink.name);
          io.stdout(`sink ${sink.name}: personal columns of the subject nulled${rows === null ? "" : ` (${rows} row${rows === 1 ? "" : "s"})`}\n`);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          await entry("failed", { sink: sink.name, sinks: [...confirmed], error: message }).catch(() => undefined);
          io.stderr(`sluice forget: sink ${sink.name} could not erase: ${message}\n`);
          failed.push(sink.name);
        }
      }
      if (failed.length > 0) {
        io.stderr(`The key is destroyed; sinks confirmed: ${[...confirmed].join(", ") || "none"}; not confirmed: ${failed.join(", ")}. Run the same command again once what failed is fixed (every step is safe to repeat).\n`);
        return 1;
      }
    }
    await entry("completed", { sinks: [...confirmed] });
    io.stdout(`Done: recorded in ${erasureAuditTopic(config.name)}.\n`);
    return 0;
  } finally {
    await held?.release();
    await log.close();
  }
}

/** Erases in one sink: through the running daemon when it runs the sink (it holds the target, e.g. the DuckDB file), else by opening the sink here. */
async function eraseInOneSink(config: SluiceConfig, sinkName: string, args: ForgetArgs, running: boolean, logger: Logger): Promise<number | null> {
  if (running) {
    const response: DaemonAnswer = await callDaemon(config, `/sinks/${encodeURIComponent(sinkName)}/erase`, {
      method: "POST",
      body: JSON.stringify({ source: args.source, subject: args.subject }),
      timeoutMs: 3_600_000,
    });
    const body = (() => {
      try {
        return response.json() as { rows?: number | null; error?: string };
      } catch {
        return { error: response.statusText };
      }
    })();
    if (response.ok) return body.rows ?? null;
    if (response.status !== 404) throw new SluiceError(`the daemon answered ${response.status}: ${oneLine(body.error ?? response.statusText)}${refusalHint(response)}`, { code: "FORGET_FAILED", context: { component: "forget", sink: sinkName } });
    // 404: the sink runs in another process (or nowhere): its target is reached from here.
  }
  const sinkConfig = config.sinks.find((s) => s.name === sinkName)!;
  const sink = await createSink(sinkConfig, logger);
  const signal = AbortSignal.timeout(3_600_000);
  await sink.open(signal);
  try {
    return await eraseInSink(sink, erasureRequests(config, sinkConfig, args.source, args.subject), signal);
  } finally {
    await sink.close();
  }
}

/** `sluice rotate-master-key`: rewraps every subject key not wrapped by personal_data.master_key_file with it. */
export async function runRotateCommand(config: SluiceConfig, execute: boolean, io: ForgetIo, logger: Logger): Promise<number> {
  const { master, previous } = masterKeys(config);
  const leaseTtlMs = keyAdminLeaseTtlMs();
  const log = await openTopicLogForCommand(config.topics, config.name, logger, execute ? "write" : "read-only", lostTopicPolicyOf(config));
  const owner = `sluice rotate-master-key (${operator()}:${process.pid})`;
  const lease = keyAdminLease(config.name);
  let held: { release(): Promise<void> } | null = null;
  try {
    if (execute) {
      held = await holdLease(log, lease, owner, leaseTtlMs);
      if (!held) {
        io.stderr(`sluice rotate-master-key: refused: a forget or another rotation of this deployment runs now (or one was killed less than ${leaseWait(leaseTtlMs)} ago); nothing changed. Try again when it is done.\n`);
        return 1;
      }
    }
    const keys = await SubjectKeyStore.open(log, subjectKeyTopic(config.name), master, { previous, create: execute });
    try {
      const stale = await keys.wrappedByOthers();
      if (!execute) {
        const next = stale === 0 ? "Nothing to rewrap: every key is wrapped by the current master key." : "Run again with --execute to rewrap them.";
        io.stdout(`${keys.size} subject keys, ${stale} wrapped by another master key than personal_data.master_key_file.\nDry run: nothing changed. ${next}\n`);
        return 0;
      }
      const rewrapped = await keys.rewrapAll();
      io.stdout(
        `Rewrapped ${rewrapped} of ${keys.size} subject keys with the current master key. Every key is wrapped by it now: remove previous_master_key_files from the config, restart the daemon, then destroy the old key file.\n`,
      );
      return 0;
    } finally {
      await keys.close();
    }
  } catch (error) {
    if (error instanceof SluiceError && error.code === "GOVERNANCE_KEY_INVALID") {
      io.stderr(`sluice rotate-master-key: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await held?.release();
    await log.close();
  }
}
