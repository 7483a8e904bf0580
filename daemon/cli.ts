/**
 * The `sluice` command line. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error; `sluice status`
 * 3 when the daemon answered but shows something NOT READY (EXIT_NOT_READY).
 */
import { Socket } from "node:net";
import { parseArgs } from "node:util";
import type { ParseArgsConfig } from "node:util";
import { ConfigValidationError, nearest } from "../config/issues.ts";
import { dataPaths, unreadableFiles } from "../config/file-paths.ts";
import { loadConfigFile } from "../config/load.ts";
import { redact } from "../config/redact.ts";
import type { SluiceConfig } from "../config/schema.ts";
import { SluiceError } from "../connectors/errors.ts";
import { openTopicLogForCommand } from "../connectors/topics/open.ts";
import { runSchemaCommand, SCHEMA_USAGE } from "../schema-registry/index.ts";
import { CHECK_MIGRATION_USAGE, runCheckMigration } from "./check-migration-command.ts";
import { openRegistry } from "./components.ts";
import { Daemon } from "./daemon.ts";
import { callDaemon, callFailure, daemonUrl, foreignAnswer, refusalHint } from "./daemon-client.ts";
import type { DaemonAnswer } from "./daemon-client.ts";
import { DEAD_LETTERS_DETAILS, DEAD_LETTERS_USAGE, runDeadLettersCommand } from "./dead-letters-command.ts";
import { HALTED_DETAILS, HALTED_USAGE, runHaltedCommand } from "./halted-command.ts";
import { runSnapshotCommand, SNAPSHOT_DETAILS, SNAPSHOT_USAGE } from "./snapshot-command.ts";
import { createLogger, stdoutDestination } from "../runtime/logger.ts";
import type { Logger } from "../runtime/logger.ts";
import { ProgressDisplay } from "./progress-display.ts";
import { runAbandonRebuildCommand, runRebuildCommand } from "./rebuild-command.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";
import { runForgetCommand, runRotateCommand } from "./forget-command.ts";
import { masterKeyFileProblems } from "./governance/master-key-check.ts";
import { httpTlsProblems } from "./http-tls.ts";
import { runReplayCommand } from "./replay.ts";
import { formatRows, queryDuckDbFile } from "./sink-query.ts";
import { formatStatus, notReadyParts } from "./status-table.ts";
import { oneLine, terminalText } from "./terminal-text.ts";
import { parseRoles, RoleError, selectParts } from "./roles.ts";
import type { RunSelection } from "./roles.ts";
import { SLUICE_VERSION } from "./version.ts";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** `sluice status`: the daemon answered, and this process or a part another process runs is not ready (scripts and probes tell it from 1, no answer). */
export const EXIT_NOT_READY = 3;

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Whether stdout's reader went away (`sluice status | head -3`): what is left to print is dropped, the command goes on. */
let stdoutGone = false;

const processIo: Io = {
  stdout: (text) => {
    if (!stdoutGone) process.stdout.write(text);
  },
  stderr: (text) => process.stderr.write(text),
};

type Options = NonNullable<ParseArgsConfig["options"]>;

interface Command {
  summary: string;
  usage: string;
  details: string;
  options: Options;
  /** Whether it takes arguments besides its options (subcommands, SQL); others refuse a stray one. */
  readonly positionals?: true;
  run(values: Record<string, unknown>, positionals: string[], io: Io): Promise<number>;
}

const configOption: Options = {
  config: { type: "string", short: "c" },
};

const CONFIG_HELP = "  -c, --config FILE   the deployment's YAML file (default: $SLUICE_CONFIG)";

const roleOptions: Options = {
  role: { type: "string", multiple: true },
  source: { type: "string", multiple: true },
  sink: { type: "string", multiple: true },
};

const ROLE_HELP = [
  "  --role ROLE         capture, sinks or all (default); repeat or comma-separate for several",
  "  --source NAME       with capture: capture only these sources (repeatable; default: all)",
  "  --sink NAME         with sinks: run only these sinks (repeatable; default: all)",
].join("\n");

/** The config as a process with these role options needs it: sources it does not capture may lack their secrets. */
function loadForRoles(values: Record<string, unknown>, checkFiles = false): { config: SluiceConfig; selection: RunSelection } {
  let parsed: ReturnType<typeof parseRoles>;
  try {
    parsed = parseRoles({ role: values["role"] as string[] | undefined, source: values["source"] as string[] | undefined, sink: values["sink"] as string[] | undefined });
  } catch (error) {
    throw error instanceof RoleError ? new UsageError(error.message) : error;
  }
  const captures = (name: string) => parsed.roles.has("capture") && (parsed.sources.length === 0 || parsed.sources.includes(name));
  const runsSink = (name: string) => parsed.roles.has("sinks") && (parsed.sinks.length === 0 || parsed.sinks.includes(name));
  // The files the config names are read as the daemon's start reads them: one it cannot use is a config problem at its key.
  const check = (config: SluiceConfig) => {
    const unreadable = unreadableFiles(config, { captures, runsSink });
    // http.tls's files' content (a file that is no PEM, a key that is not the certificate's), once they can be read.
    const tls = unreadable.some((p) => p.path[0] === "http") ? [] : httpTlsProblems(config);
    return [...masterKeyFileProblems(config), ...unreadable, ...tls];
  };
  const config = loadConfigFile(configPath(values), { captures, runsSink, checkMemory: true, ...(checkFiles ? { check } : {}) });
  try {
    return { config, selection: selectParts(config, parsed) };
  } catch (error) {
    throw error instanceof RoleError ? new UsageError(error.message) : error;
  }
}

const commands: Record<string, Command> = {
  run: {
    summary: "run the daemon",
    usage: "sluice run -c FILE [--role capture|sinks|all] [--source NAME]... [--sink NAME]... [--accept-lost-topics]",
    details: `${CONFIG_HELP}\n${ROLE_HELP}\n  --accept-lost-topics  Kafka: create again internal topics deleted while Sluice was stopped (the schema\n                      registry's journal, the checkpoints), accepting that what they held is lost; without it\n                      such a start is refused (INTERNAL_TOPIC_LOST, docs/operations.md)\n\nRuns the config's sources and sinks (all of them by default, or those the roles select) until SIGINT\nor SIGTERM, then drains and stops. A process needs no secrets of the sources and sinks it does not run.\nWith Kafka, several processes may capture the same sources: one leads, the others stand by and take\nover when it dies; several processes running a sink share its topics' partitions (docs/operations.md).`,
    options: { ...configOption, ...roleOptions, "accept-lost-topics": { type: "boolean" } },
    run: runDaemon,
  },
  validate: {
    summary: "check a config file and report every problem",
    usage: "sluice validate -c FILE [--role ROLE] [--source NAME]... [--sink NAME]...",
    details: `${CONFIG_HELP}\n${ROLE_HELP}\n\nPrints "ok" when the file is valid (for a process with these roles); otherwise every problem with its file, line, column and key.`,
    options: { ...configOption, ...roleOptions },
    async run(values, _positionals, io) {
      const file = configPath(values);
      const { config, selection } = loadForRoles(values, true);
      const runs = values["role"] || values["source"] || values["sink"] ? `; this process: ${plural(selection.sources.length, "source")} captured, ${plural(selection.sinks.length, "sink")}` : "";
      io.stdout(`ok: ${file} (deployment "${config.name}", ${plural(config.sources.length, "source")}, ${plural(config.sinks.length, "sink")}, topics: ${config.topics.kind}${runs})\n`);
      // Data paths are opened from the working directory, not the config file's folder: shown so that an operator sees where.
      for (const data of dataPaths(config)) {
        const relative = data.written === data.resolved ? "" : ` ("${data.written}" from this working directory; the daemon reads it from its own)`;
        io.stdout(`  ${data.key}${data.sink === undefined ? "" : ` (sink "${data.sink}")`}: ${data.resolved}${relative}\n`);
      }
      return EXIT_OK;
    },
  },
  status: {
    summary: "show the running daemon's sources, sinks, positions, lag and halted tables",
    usage: "sluice status -c FILE [--json]",
    details: `${CONFIG_HELP}\n  --json              print the daemon's /status document as it is\n\nAsks the daemon at the config's http.listen address. A sink's lag the daemon could not read from the\ntopic log within 0.75 s shows as "~N (Ts ago)": the last lag read, T seconds old.\n\nExit codes: 0 ready; ${EXIT_NOT_READY} the daemon answered but is NOT READY, or a source or sink another\nprocess runs is (with --json too); 1 no daemon answered (or another server did); 2 usage or config error.`,
    options: { ...configOption, json: { type: "boolean" } },
    async run(values, _positionals, io) {
      // It only asks the daemon: the sources' credentials may be absent (a sink-only deployment's config).
      const config = loadConfigFile(configPath(values), { captures: () => false, runsSink: () => false });
      let response: DaemonAnswer;
      try {
        response = await callDaemon(config, "/status", { timeoutMs: 5_000 });
      } catch (error) {
        const failure = callFailure(daemonUrl(config, "/status"), error, 5_000);
        io.stderr(`sluice status: ${failure.text}${failure.nobody ? '; is "sluice run" running with this config?' : ""}\n`);
        return EXIT_FAILURE;
      }
      const foreign = foreignAnswer(config, response);
      if (foreign !== null) {
        io.stderr(`sluice status: something answers at ${daemonUrl(config, "/status")}, but ${foreign}: is http.listen (${config.http.listen}) this deployment's daemon's address?\n`);
        return EXIT_FAILURE;
      }
      if (!response.ok) {
        io.stderr(`sluice status: the daemon answered ${response.status}: ${errorOf(response)}${refusalHint(response)}\n`);
        return EXIT_FAILURE;
      }
      const status = response.json() as Record<string, unknown>;
      io.stdout(values["json"] ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
      return notReadyParts(status).length > 0 ? EXIT_NOT_READY : EXIT_OK;
    },
  },
  schema: {
    positionals: true,
    summary: "list, show and check the Avro schemas of the deployment's registry",
    usage: "sluice schema -c FILE (list | show SUBJECT [VERSION] | check SUBJECT FILE | check-migration [--source NAME] [--database NAME] [--mariadb] [--json] MIGRATION.sql...)",
    details: `${CONFIG_HELP}\n\n${SCHEMA_USAGE}\n${CHECK_MIGRATION_USAGE}`,
    options: { ...configOption, source: { type: "string" }, database: { type: "string" }, mariadb: { type: "boolean" }, json: { type: "boolean" } },
    async run(values, positionals, io) {
      const config = loadConfigFile(configPath(values));
      // Checked before the topic log is opened: a typo said "no embedded topic log ..." (exit 1) where none was yet.
      if (positionals[0] === undefined) throw new UsageError("give a schema command: list, show, check or check-migration");
      if (!["list", "show", "check", "check-migration", "help"].includes(positionals[0])) throw new UsageError(`unknown schema command "${positionals[0]}"; the commands: list, show, check, check-migration`);
      const checkMigration = positionals[0] === "check-migration";
      if (!checkMigration && ["source", "database", "mariadb", "json"].some((option) => values[option] !== undefined)) throw new UsageError("--source, --database, --mariadb and --json go with check-migration");
      // Read-only: a command never uses the daemon's producer (that would fence it) and writes nothing.
      const log = config.schema_registry.kind === "remote" ? null : await openTopicLogForCommand(config.topics, config.name, createLogger("warn", process.stderr), "read-only");
      try {
        const { registry } = await openRegistry(config, log);
        if (checkMigration) {
          const args = { files: positionals.slice(1), json: values["json"] === true, mariadb: values["mariadb"] === true, ...(typeof values["source"] === "string" ? { source: values["source"] } : {}), ...(typeof values["database"] === "string" ? { database: values["database"] } : {}) };
          return await runCheckMigration(config, registry, args, io);
        }
        return await runSchemaCommand(positionals, registry, io);
      } finally {
        await log?.close();
      }
    },
  },
  replay: {
    summary: "move a sink back (or forward) in its topics; a dry run unless --execute",
    usage: "sluice replay -c FILE --sink NAME (--from-beginning [--rebuild [--table T]...] | --from-time ISO8601 | --from-offset TOPIC:PARTITION:OFFSET | --abandon-rebuild [--table T]...) [--execute]",
    details: `${CONFIG_HELP}\n  --sink NAME         the sink to replay\n  --from-beginning    from the earliest record kept\n  --from-time T       from the first record at or after T (ISO 8601)\n  --from-offset T:P:O from offset O of partition P of topic T\n  --execute           do it (refused while the sink runs elsewhere)\n  --rebuild           with --from-beginning: fill new tables/indexes while the old ones serve, then swap\n                      (refused when retention removed a topic's first records, or when a rebuilt\n                      table's row count is off: docs/operations.md "Rebuilds need complete history")\n  --table T           with --rebuild: rebuild only this table (schema.table, as "sluice halted list"\n                      shows it, or its topic; repeat for more); the others are left as they are\n  --abandon-rebuild   drop the half-built tables a rebuild left when it was stopped or killed before\n                      its swap (sluice status shows it "interrupted"); the live ones are left as\n                      they are (with --table: only those tables')\n\nPrints, per topic and partition, where the sink is and where it would move.`,
    options: {
      ...configOption,
      sink: { type: "string" },
      "from-beginning": { type: "boolean" },
      "from-time": { type: "string" },
      "from-offset": { type: "string" },
      execute: { type: "boolean" },
      rebuild: { type: "boolean" },
      "abandon-rebuild": { type: "boolean" },
      table: { type: "string", multiple: true },
    },
    async run(values, _positionals, io) {
      const config = loadConfigFile(configPath(values));
      if (values["abandon-rebuild"]) {
        if (values["rebuild"] || values["from-beginning"] || values["from-time"] !== undefined || values["from-offset"] !== undefined) throw new UsageError("--abandon-rebuild takes no start and no --rebuild: give --sink NAME [--table T]... [--execute]");
        if (typeof values["sink"] !== "string") throw new UsageError("missing --sink NAME");
        return runAbandonRebuildCommand(config, values["sink"], (values["table"] as string[] | undefined) ?? [], values["execute"] === true, io, createLogger("warn", process.stderr));
      }
      if (values["rebuild"]) {
        if (!values["from-beginning"] || values["from-time"] !== undefined || values["from-offset"] !== undefined) throw new UsageError("--rebuild rebuilds from the beginning: give --from-beginning and no other start");
        if (typeof values["sink"] !== "string") throw new UsageError("missing --sink NAME");
        const tables = (values["table"] as string[] | undefined) ?? [];
        const display = process.stderr.isTTY ? new ProgressDisplay(process.stderr) : null;
        const withProgress = display === null ? io : { ...io, progress: (progress: RebuildProgress) => display.rebuild(progress) };
        return runRebuildCommand(config, values["sink"], values["execute"] === true, withProgress, createLogger("warn", process.stderr), tables);
      }
      if (values["table"] !== undefined) throw new UsageError("--table takes a rebuild's tables: give --from-beginning --rebuild, or --abandon-rebuild");
      const args = Object.entries(values).flatMap(([key, value]) => (key === "config" || key === "help" || value === undefined ? [] : value === true ? [`--${key}`] : [`--${key}`, String(value)]));
      return runReplayCommand(args, config, io);
    },
  },
  query: {
    positionals: true,
    summary: "run a read-only SQL query on a DuckDB sink",
    usage: 'sluice query -c FILE [--sink NAME] [--json] "SELECT ..."',
    details: `${CONFIG_HELP}\n  --sink NAME         the DuckDB sink (default: the only one)\n  --json              rows as JSON\n\nAsks the running daemon (which holds the DuckDB file); when nothing listens at http.listen, opens the\nfile read-only. A daemon that does not answer (busy, TLS refused) is a failure: the file is not read.\nOne SELECT only, no file access; the answer is cut at the sink's query.max_rows / query.max_bytes\n(said on standard error) and the query interrupted after query.timeout.`,
    options: { ...configOption, sink: { type: "string" }, json: { type: "boolean" } },
    async run(values, positionals, io) {
      const config = loadConfigFile(configPath(values));
      if (positionals.length !== 1) throw new UsageError("give the SQL as one argument, quoted");
      const duckdbSinks = config.sinks.filter((s) => s.kind === "duckdb");
      const name = values["sink"] as string | undefined;
      const sink = name ? duckdbSinks.find((s) => s.name === name) : duckdbSinks.length === 1 ? duckdbSinks[0] : undefined;
      if (!sink || sink.kind !== "duckdb") {
        throw new UsageError(name ? `no DuckDB sink "${name}"; DuckDB sinks: ${duckdbSinks.map((s) => s.name).join(", ") || "(none)"}` : "say which DuckDB sink with --sink NAME");
      }
      const sql = positionals[0]!;
      const limits = { maxRows: sink.query.max_rows, maxBytes: sink.query.max_bytes, timeoutMs: sink.query.timeout };
      let rows: Record<string, unknown>[];
      let truncated: string | null = null;
      // The daemon interrupts a query at its timeout: wait a little longer for its answer.
      let unreachable: ReturnType<typeof callFailure> | undefined;
      const response = await callDaemon(config, `/sinks/${encodeURIComponent(sink.name)}/query`, { method: "POST", body: sql, contentType: "text/plain", timeoutMs: limits.timeoutMs + 30_000 }).catch((error: unknown) => {
        // Another deployment's daemon (or another server) at http.listen: its file is not this one's to open, nor this query its to answer.
        if (error instanceof SluiceError && error.code === "DAEMON_FOREIGN") return error;
        unreachable = callFailure(daemonUrl(config, "/status").replace(/\/status$/, ""), error, limits.timeoutMs + 30_000);
        return undefined;
      });
      if (response instanceof SluiceError) {
        io.stderr(`sluice query: ${response.message}\n`);
        return EXIT_FAILURE;
      }
      // Something listens but did not answer (busy, TLS refused, cut off): a daemon that runs holds the file, and what the
      // file holds apart from it would be stale, so it is read only when nothing listens at all.
      if (unreachable !== undefined && !unreachable.nobody) {
        io.stderr(`sluice query: ${unreachable.text}. Sink ${sink.name}'s file was not read instead: a daemon may run there, holding it.\n`);
        return EXIT_FAILURE;
      }
      if (response) {
        if (!response.ok) {
          io.stderr(`sluice query: ${errorOf(response)}${refusalHint(response)}\n`);
          return EXIT_FAILURE;
        }
        const body = response.json() as { rows?: Record<string, unknown>[]; truncated?: string | null };
        rows = body.rows ?? [];
        truncated = body.truncated ?? null;
      } else {
        try {
          ({ rows, truncated } = await queryDuckDbFile(sink.path, sql, limits));
        } catch (error) {
          // Said first: the file is only the fallback, and "cannot open DuckDB file" alone hid that no daemon answered.
          io.stderr(`sluice query: ${unreachable?.text ?? "the daemon was not asked"}; is "sluice run" running with this config? Reading sink ${sink.name}'s file without it failed: ${(error as Error).message}\n`);
          return EXIT_FAILURE;
        }
      }
      io.stdout(values["json"] ? `${JSON.stringify(rows)}\n` : formatRows(rows));
      if (truncated) io.stderr(`sluice query: ${truncated}\n`);
      return EXIT_OK;
    },
  },
  halted: {
    positionals: true,
    summary: "list halted tables; release one (retry, or skip its poison record to the dead-letter topic); a dry run unless --execute",
    usage: HALTED_USAGE,
    details: `${CONFIG_HELP}\n${HALTED_DETAILS}`,
    options: { ...configOption, sink: { type: "string" }, source: { type: "string" }, table: { type: "string" }, through: { type: "string" }, "all-pending": { type: "boolean" }, force: { type: "boolean" }, execute: { type: "boolean" }, json: { type: "boolean" } },
    async run(values, positionals, io) {
      const config = loadConfigFile(configPath(values));
      const options = {
        sink: values["sink"] as string | undefined,
        source: values["source"] as string | undefined,
        table: values["table"] as string | undefined,
        through: values["through"] as string | undefined,
        allPending: values["all-pending"] === true,
        force: values["force"] === true,
        execute: values["execute"] === true,
        json: values["json"] === true,
      };
      return runHaltedCommand(config, positionals, options, io);
    },
  },
  "dead-letters": {
    summary: "read a sink's or a source's dead-letter topic: per record its table, key and reason (values only with --values)",
    usage: DEAD_LETTERS_USAGE,
    details: `${CONFIG_HELP}\n${DEAD_LETTERS_DETAILS}`,
    options: { ...configOption, sink: { type: "string" }, source: { type: "string" }, table: { type: "string" }, from: { type: "string" }, limit: { type: "string" }, values: { type: "boolean" }, messages: { type: "boolean" } },
    async run(values, _positionals, io) {
      // Neither the sources' nor the sinks' credentials are needed: only the topic log and the registry.
      const config = loadConfigFile(configPath(values), { captures: () => false, runsSink: () => false });
      const args = { sink: values["sink"] as string | undefined, source: values["source"] as string | undefined, table: values["table"] as string | undefined, from: values["from"] as string | undefined, limit: values["limit"] as string | undefined, values: values["values"] === true, messages: values["messages"] === true };
      return runDeadLettersCommand(config, args, io, createLogger("warn", process.stderr));
    },
  },
  forget: {
    summary: "erase one data subject's personal columns: destroy its key, null them in every sink, audit it; a dry run unless --execute",
    usage: "sluice forget -c FILE --source NAME --subject ID [--execute]",
    details: `${CONFIG_HELP}\n  --source NAME       the source whose personal tables hold the subject (governance.tables.<table>.personal)\n  --subject ID        the subject, as the value of the tables' subject column (e.g. a customer id)\n  --execute           do it\n\nDestroys the subject's key (every copy of its personal values in the topics becomes unreadable, in\nevery replay and rebuild), then has each sink null the subject's personal columns in rows already\napplied (through the running daemon, else directly), and records the erasure in\n<deployment>.sluice.erasures. Safe to run again; a run cut short is finished by running it again.\nSee docs/governance.md for what erasure does not reach.`,
    options: { ...configOption, source: { type: "string" }, subject: { type: "string" }, execute: { type: "boolean" } },
    async run(values, _positionals, io) {
      if (typeof values["source"] !== "string") throw new UsageError("missing --source NAME");
      if (typeof values["subject"] !== "string" || values["subject"] === "") throw new UsageError("missing --subject ID");
      // The sources' credentials are not needed: only their governance section.
      const config = loadConfigFile(configPath(values), { captures: () => false });
      return runForgetCommand(config, { source: values["source"], subject: values["subject"], execute: values["execute"] === true }, io, createLogger("warn", process.stderr));
    },
  },
  "rotate-master-key": {
    summary: "rewrap every data subject's key with personal_data.master_key_file; a dry run unless --execute",
    usage: "sluice rotate-master-key -c FILE [--execute]",
    details: `${CONFIG_HELP}\n  --execute           do it\n\nProcedure (docs/governance.md): put the new key in master_key_file and the old one in\nprevious_master_key_files, restart the daemon, run this with --execute, then remove\nprevious_master_key_files and restart again. Safe to run again.`,
    options: { ...configOption, execute: { type: "boolean" } },
    async run(values, _positionals, io) {
      const config = loadConfigFile(configPath(values), { captures: () => false, runsSink: () => false });
      return runRotateCommand(config, values["execute"] === true, io, createLogger("warn", process.stderr));
    },
  },
  snapshot: {
    positionals: true,
    summary: "read one table again online (in key-ordered chunks while capture goes on), or list the snapshots in progress; a dry run unless --execute",
    usage: SNAPSHOT_USAGE,
    details: `${CONFIG_HELP}\n${SNAPSHOT_DETAILS}`,
    options: { ...configOption, table: { type: "string" }, where: { type: "string" }, source: { type: "string" }, execute: { type: "boolean" }, json: { type: "boolean" } },
    async run(values, positionals, io) {
      const config = loadConfigFile(configPath(values));
      const options = { table: values["table"] as string | undefined, where: values["where"] as string | undefined, source: values["source"] as string | undefined, execute: values["execute"] === true, json: values["json"] === true };
      return runSnapshotCommand(config, positionals, options, io);
    },
  },
  version: {
    summary: "print the version",
    usage: "sluice version",
    details: "",
    options: {},
    async run(_values, _positionals, io) {
      io.stdout(`sluice ${SLUICE_VERSION} (node ${process.version})\n`);
      return EXIT_OK;
    },
  },
};

/** The error a daemon's answer gives, or its status text, on one line (it may quote a table's name, line breaks and all). */
function errorOf(answer: DaemonAnswer): string {
  try {
    const error = (answer.json() as { error?: unknown }).error;
    // Another server's error may be an object (Elasticsearch's): it printed "[object Object]".
    return oneLine(typeof error === "string" ? error : answer.statusText);
  } catch {
    return oneLine(answer.statusText);
  }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

class UsageError extends Error {}

function configPath(values: Record<string, unknown>): string {
  const file = (values["config"] as string | undefined) ?? process.env["SLUICE_CONFIG"];
  if (!file) throw new UsageError("missing -c FILE (or set SLUICE_CONFIG)");
  return file;
}

function topHelp(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}   ${c.summary}`);
  return `Sluice ${SLUICE_VERSION}: change data capture from PostgreSQL and MySQL into Avro topics, DuckDB, ClickHouse and Elasticsearch.\n\nUsage: sluice COMMAND [options]\n\nCommands:\n${lines.join("\n")}\n\nRun "sluice COMMAND --help" for a command's options.\n`;
}

function commandHelp(name: string, command: Command): string {
  return `Usage: ${command.usage}\n\n${command.summary[0]!.toUpperCase()}${command.summary.slice(1)}.\n${command.details ? `\n${command.details}\n` : ""}`;
}

/**
 * An error nothing caught is printed without the config's secrets (a driver's error may carry its
 * connection settings) and ends the process with exit code 1, as Node.js would.
 */
export function installCrashHandler(): void {
  // A reader that closed the pipe early ended the command with EPIPE as an unexpected failure (exit 1, a stack trace),
  // possibly in the middle of what it was doing (--execute); now the rest of its output is dropped and it finishes.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    stdoutGone = true;
  });
  process.on("uncaughtException", (error: unknown) => {
    process.stderr.write(crashText(error));
    process.exit(EXIT_FAILURE);
  });
}

/** What an error nothing caught prints: without the config's secrets, its control characters escaped (it may quote a table's name). */
export function crashText(error: unknown): string {
  return terminalText(redact(`sluice: unexpected failure: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`));
}

/** The command of that name; an object's own properties only ("constructor", "__proto__" and "toString" are none). */
function commandNamed(name: string): Command | undefined {
  return Object.hasOwn(commands, name) ? commands[name] : undefined;
}

/** Runs a command; whatever it prints goes through `redact`, so the config's secrets never show, and `terminalText` (table names are anyone's). */
export async function main(argv: readonly string[], given: Io = processIo): Promise<number> {
  const io: Io = { stdout: (text) => given.stdout(terminalText(redact(text))), stderr: (text) => given.stderr(terminalText(redact(text))) };
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    const topic = name === "help" ? rest[0] : undefined;
    const command = topic ? commandNamed(topic) : undefined;
    if (topic !== undefined && !command) {
      io.stderr(`sluice help: unknown command "${topic}"${suggestCommand(topic)}\nRun "sluice --help" for the list of commands.\n`);
      return EXIT_USAGE;
    }
    io.stdout(command ? commandHelp(topic!, command) : topHelp());
    return EXIT_OK;
  }
  if (name === "--version" || name === "-V") return commands["version"]!.run({}, [], io);
  const command = commandNamed(name);
  if (!command) {
    io.stderr(`sluice: unknown command "${name}"${suggestCommand(name)}\nRun "sluice --help" for the list of commands.\n`);
    return EXIT_USAGE;
  }
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...rest], options: { ...command.options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true }));
  } catch (error) {
    io.stderr(`sluice ${name}: ${optionProblem(error as NodeJS.ErrnoException, command)}\nUsage: ${command.usage}\n`);
    return EXIT_USAGE;
  }
  if (values["help"]) {
    io.stdout(commandHelp(name, command));
    return EXIT_OK;
  }
  const stray = command.positionals ? undefined : positionals[0];
  if (stray !== undefined) {
    const hint = /\.ya?ml$/i.test(stray) ? ` (give the config file as -c ${stray})` : "";
    io.stderr(`sluice ${name}: unexpected argument "${stray}"${hint}\nUsage: ${command.usage}\n`);
    return EXIT_USAGE;
  }
  try {
    return await command.run(values, positionals, io);
  } catch (error) {
    return reportFailure(name, command, error, io);
  }
}

/**
 * What parseArgs refused, said as the other usage errors are. An unknown option was Node's text, "Unknown option
 * '--bogus'. To specify a positional argument starting with a '-', place it at the end of the command after '--',
 * as in '-- "--bogus"" (its quote unbalanced), offered for every command, naming none of the command's options.
 */
function optionProblem(error: NodeJS.ErrnoException, command: Command): string {
  const unknown = error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ? /^Unknown option '([^']*)'/.exec(error.message)?.[1] : undefined;
  if (unknown === undefined) return error.message;
  const names = Object.entries({ ...command.options, help: { type: "boolean", short: "h" } }).map(([long, option]) => ({ long: `--${long}`, short: option.short === undefined ? undefined : `-${option.short}` }));
  const given = unknown.split("=")[0]!;
  const close = names.find((n) => n.long.startsWith(given) && given.length > 3) ?? names.find((n) => n.long === nearest(given, names.map((m) => m.long)));
  const listed = names.map((n) => (n.short ? `${n.short}/${n.long}` : n.long)).join(", ");
  const positional = command.positionals ? `; an argument starting with "-" goes after "--"` : "";
  return `unknown option "${unknown}"${close ? `; did you mean "${close.long}"?` : ""} (its options: ${listed}${positional})`;
}

function suggestCommand(name: string): string {
  const match = nearest(name, Object.keys(commands));
  return match ? `; did you mean "${match}"?` : "";
}

function reportFailure(name: string, command: Command, error: unknown, io: Io): number {
  if (error instanceof UsageError) {
    io.stderr(`sluice ${name}: ${error.message}\nUsage: ${command.usage}\n`);
    return EXIT_USAGE;
  }
  if (error instanceof ConfigValidationError) {
    io.stderr(`${error.message}\n`);
    return EXIT_USAGE;
  }
  if (error instanceof SluiceError) {
    io.stderr(`sluice ${name}: ${error.message}\n`);
    return error.code.startsWith("CONFIG") ? EXIT_USAGE : EXIT_FAILURE;
  }
  io.stderr(`sluice ${name}: unexpected failure: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return EXIT_FAILURE;
}

/** Stops daemon/sluice.js's first listeners and says the signal they noted, if any; by default there were none. */
let releaseEarlySignals: () => NodeJS.Signals | undefined = () => undefined;

/**
 * daemon/sluice.js listens for SIGTERM and SIGINT before the modules load (PID 1 in a container drops a signal nobody
 * listens for); `run` takes over from them once its own listeners are in place, and stops at once for one they noted.
 */
export function takeOverEarlySignals(release: () => NodeJS.Signals | undefined): void {
  releaseEarlySignals = release;
}

async function runDaemon(values: Record<string, unknown>): Promise<number> {
  const { config, selection } = loadForRoles(values);
  // One stream for the daemon's lines and its sink threads', so lines never interleave.
  const stdout = stdoutDestination();
  const logger = createLogger(config.logging.level, stdout);
  const daemon = new Daemon(config, logger, { writeLogLine: (line) => stdout.write(line), selection, acceptLostTopics: values["accept-lost-topics"] === true });
  if (process.stderr.isTTY) {
    const display = new ProgressDisplay(process.stderr);
    daemon.onSnapshotProgress = (source, progress) => display.update(source, progress);
    daemon.onRebuildProgress = (progress) => display.rebuild(progress);
  }
  // Listening from the first moment: an orchestrator may stop a daemon still starting (e.g. waiting out a Kafka outage).
  let received: NodeJS.Signals | undefined;
  const signalled = new Promise<{ signal: NodeJS.Signals }>((resolve) => {
    const heard = (signal: NodeJS.Signals) => {
      received ??= signal;
      resolve({ signal });
    };
    process.once("SIGINT", heard);
    process.once("SIGTERM", heard);
  });
  received = releaseEarlySignals();
  // A signal that came while the modules loaded may not be dispatched yet (loading need not turn the event loop).
  await new Promise((resolve) => setImmediate(resolve));
  if (received !== undefined) {
    logger.info({ signal: received }, "signal before the start: not starting");
    logger.flush();
    return EXIT_OK;
  }
  const starting = daemon.start().then(() => "started" as const);
  try {
    const first = await Promise.race([starting, signalled]);
    if (first !== "started") return await stopWhileStarting(daemon, starting, first.signal, config.shutdown.timeout, logger);
  } catch (error) {
    logger.error({ err: error }, "sluice failed to start");
    await daemon.stop("start failed").catch(() => undefined);
    logger.flush();
    // As after any failure: should something the start opened still hold the process open, it leaves anyway.
    leaveIfHeldOpen(logger, EXIT_FAILURE);
    throw error;
  }
  // SIGHUP: the config file is read again for the HTTP API's tokens and certificate (rotation without a restart).
  const reload = () => {
    try {
      daemon.reloadCredentials(loadForRoles(values).config);
    } catch (error) {
      logger.error({ err: error instanceof SluiceError ? error.toLog() : { message: (error as Error).message } }, `SIGHUP: the config could not be read again, the tokens and certificate stay as they were: ${(error as Error).message}`);
    }
  };
  process.on("SIGHUP", reload);
  // Runs until a signal, or until a component stops for good (e.g. a missing replication slot).
  const outcome = await Promise.race([signalled, daemon.failed.catch((error: unknown) => ({ error }))]);
  if ("error" in outcome) {
    const { abandoned } = await daemon.stop("a component failed", config.shutdown.timeout).catch(() => ({ abandoned: ["(stop failed)"] }));
    logger.flush();
    if (abandoned.length > 0) {
      // What was abandoned may still hold sockets and timers open: leave now.
      process.stderr.write(terminalText(redact(`sluice run: ${outcome.error instanceof Error ? outcome.error.message : String(outcome.error)}\n`)));
      process.exit(EXIT_FAILURE);
    }
    // The caller reports the error; should a socket or timer still hold the process open, a failed daemon leaves anyway.
    leaveIfHeldOpen(logger, EXIT_FAILURE);
    throw outcome.error;
  }
  const signal = outcome.signal;
  // A second signal while draining means "now": exit without waiting for anything in flight.
  const again = (second: NodeJS.Signals) => {
    logger.warn({ signal: second }, "second signal: exiting at once");
    logger.flush();
    process.exit(EXIT_FAILURE);
  };
  process.once("SIGINT", again);
  process.once("SIGTERM", again);
  // The daemon abandons what has not stopped within shutdown.timeout; this is a last resort should abandoning itself hang.
  const backstop = setTimeout(() => {
    logger.error({ timeoutMs: config.shutdown.timeout }, "graceful shutdown timed out and abandoning the rest did not finish: exiting");
    logger.flush();
    process.exit(EXIT_FAILURE);
  }, config.shutdown.timeout + SHUTDOWN_BACKSTOP_MS);
  backstop.unref();
  const { abandoned } = await daemon.stop(signal, config.shutdown.timeout);
  clearTimeout(backstop);
  logger.flush();
  // Abandoned work loses nothing (it is read again at the next start), but may still hold sockets and timers open: leave now.
  if (abandoned.length > 0) process.exit(EXIT_OK);
  leaveIfHeldOpen(logger, EXIT_OK);
  return EXIT_OK;
}

const SHUTDOWN_BACKSTOP_MS = 5_000;
const HELD_OPEN_EXIT_MS = 5_000;

/** Where the process's open TCP sockets lead (local -> remote), to tell which client held it open. */
function openSockets(): string[] {
  // No public API lists handles; _getActiveHandles is Node's own (used by diagnostics tools) and may vanish: then none.
  const handles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles?.() ?? [];
  return handles.flatMap((handle) =>
    handle instanceof Socket && handle.remotePort !== undefined ? [`${handle.localAddress}:${handle.localPort} \u2192 ${handle.remoteAddress}:${handle.remotePort}`] : [],
  );
}

/**
 * After a complete stop everything durable is written and every component has closed, so nothing is lost by leaving.
 * Should a socket or timer (a client library's, or one of ours that a stop missed) still hold the process open, exit
 * anyway after a short grace, and say what held it so the leak can be found.
 */
function leaveIfHeldOpen(logger: Logger, code: number): void {
  setTimeout(() => {
    const resources = process.getActiveResourcesInfo().filter((kind) => kind !== "Timeout");
    logger.warn({ resources, sockets: openSockets() }, "sluice stopped but something still held the process open: exiting");
    logger.flush();
    process.exit(code);
  }, HELD_OPEN_EXIT_MS).unref();
}

/**
 * A signal before the daemon has started: stopping aborts the waits of the start (outages, leases), then whatever the start
 * still opened is stopped too. Nothing was acknowledged that is not durable, so leaving is safe; exit 0 like any requested stop.
 */
async function stopWhileStarting(daemon: Daemon, starting: Promise<unknown>, signal: NodeJS.Signals, timeoutMs: number, logger: Logger): Promise<number> {
  logger.info({ signal }, "signal while starting: stopping");
  const backstop = setTimeout(() => {
    logger.error({ timeoutMs }, "stopping while starting did not finish within shutdown.timeout: exiting");
    logger.flush();
    process.exit(EXIT_OK);
  }, timeoutMs + SHUTDOWN_BACKSTOP_MS);
  backstop.unref();
  await daemon.stop(signal, timeoutMs);
  await starting.catch(() => undefined);
  const { abandoned } = await daemon.stop(signal, timeoutMs);
  clearTimeout(backstop);
  logger.flush();
  if (abandoned.length > 0) process.exit(EXIT_OK);
  return EXIT_OK;
}
