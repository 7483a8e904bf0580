/**
 * How the command line calls the running daemon's HTTP API: at the config's http.listen address
 * (a wildcard address is reached on loopback), over HTTPS when http.tls is set (trusting
 * http.tls.ca_file, or the system's CAs), with the config's admin token (or its read token) as
 * the bearer token.
 */
import { readFileSync } from "node:fs";
import type { IncomingMessage, RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import type { SluiceConfig } from "../config/schema.ts";
import { SluiceError } from "../connectors/errors.ts";
import { splitHostPort } from "./daemon.ts";

// Not imported: Node's ES module view of node:http reads http.WebSocket, which loads its bundled undici (~30 ms of every start).
const { request: httpRequest } = process.getBuiltinModule("node:http");

export interface DaemonAnswer {
  readonly status: number;
  readonly ok: boolean;
  readonly statusText: string;
  readonly text: string;
  json(): unknown;
}

export interface DaemonRequest {
  readonly method?: string;
  readonly body?: string;
  readonly contentType?: string;
  readonly timeoutMs: number;
}

/** The URL of a daemon path, as the command line reaches it. */
export function daemonUrl(config: SluiceConfig, path: string): string {
  const { host, port } = splitHostPort(config.http.listen);
  const reachable = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return `${config.http.tls ? "https" : "http"}://${reachable}:${port}${path}`;
}

/** The token the command line sends: the admin token, else the read token (enough for status and queries). */
function bearerToken(config: SluiceConfig): string | undefined {
  return config.http.admin_token ?? config.http.read_token;
}

/**
 * Rejects when no daemon answers (connection refused, TLS failure, timeout); any HTTP answer resolves.
 * A call that changes something (not a GET) is sent only once GET /status showed this deployment's
 * daemon there (foreignAnswer): a `sluice halted skip --execute` or `snapshot --execute` whose config
 * named another deployment's daemon's port was done there, on its sink or source of the same name.
 */
export async function callDaemon(config: SluiceConfig, path: string, options: DaemonRequest): Promise<DaemonAnswer> {
  if ((options.method ?? "GET") !== "GET" && !shownOwn.has(config)) {
    // A probe that fails is left to the call itself to meet and tell.
    const probe = await send(config, "/status", { timeoutMs: Math.min(options.timeoutMs, 10_000) }).catch(() => null);
    const foreign = probe === null ? null : foreignAnswer(config, probe);
    if (probe !== null && foreign === null) shownOwn.add(config);
    if (foreign !== null) {
      throw new SluiceError(`something answers at ${daemonUrl(config, "/status")}, but ${foreign}: is http.listen (${config.http.listen}) this deployment's daemon's address? Nothing was sent`, {
        code: "DAEMON_FOREIGN",
        context: { component: "cli" },
      });
    }
  }
  return send(config, path, options);
}

/** Configs whose GET /status this command saw answered by their own deployment's daemon: not asked again before each call (rebuild and forget probe with daemonRunning first). */
const shownOwn = new WeakSet<SluiceConfig>();

function send(config: SluiceConfig, path: string, options: DaemonRequest): Promise<DaemonAnswer> {
  const url = new URL(daemonUrl(config, path));
  const headers: Record<string, string> = {};
  const token = bearerToken(config);
  if (token) headers["authorization"] = `Bearer ${token}`;
  if (options.body !== undefined) {
    headers["content-type"] = options.contentType ?? "application/json";
    headers["content-length"] = String(Buffer.byteLength(options.body));
  }
  const requestOptions: RequestOptions & { ca?: Buffer } = { method: options.method ?? "GET", headers, signal: AbortSignal.timeout(options.timeoutMs) };
  const caFile = config.http.tls?.ca_file;
  if (caFile) {
    try {
      requestOptions.ca = readFileSync(caFile);
    } catch (error) {
      return Promise.reject(new SluiceError(`cannot read http.tls.ca_file "${caFile}": ${(error as Error).message}`, { code: "HTTP_TLS_FILE", cause: error, context: { component: "cli" } }));
    }
  }
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, requestOptions, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.once("error", reject);
      res.once("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const status = res.statusCode ?? 0;
        resolve({
          status,
          ok: status >= 200 && status < 300,
          statusText: res.statusMessage ?? "",
          text,
          json: () => JSON.parse(text) as unknown,
        });
      });
    });
    req.once("error", (error: NodeJS.ErrnoException) => reject(connectionLost(error, url, options.method ?? "GET") ?? error));
    req.end(options.body);
  });
}

/** Ways a connection that was open ends before the answer: the daemon stopped, was killed or restarted meanwhile. */
const CUT_OFF = new Set(["ECONNRESET", "EPIPE"]);

/**
 * The error of a call the daemon's end cut off before answering, saying so (the request may or may not
 * have been done); null for other failures. `sluice replay --rebuild` and `sluice forget` printed
 * "unexpected failure: Error: socket hang up" and a stack trace when the daemon was killed under them.
 */
function connectionLost(error: NodeJS.ErrnoException, url: URL, method: string): SluiceError | null {
  if (error.code === undefined || !CUT_OFF.has(error.code)) return null;
  return new SluiceError(
    `the daemon at ${url.origin} closed the connection before answering ${method} ${url.pathname} (${error.message}): did it stop or restart? Whether it was done is not known; see "sluice status"`,
    { code: "DAEMON_CONNECTION_LOST", cause: error, context: { component: "cli" } },
  );
}

/** Connection errors that mean nothing listens at the address (as opposed to a listener that does not answer in time). */
const NOBODY_LISTENS = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EADDRNOTAVAIL"]);

/** Something listens at the daemon's address, but whether it is a daemon could not be told: it did not answer in time, or the call failed otherwise (a TLS verification error, a reset connection). */
export interface DaemonUnclear {
  readonly timedOut: boolean;
  /** It answered, but not as this deployment's daemon (another server, another deployment's daemon): `reason` says how. */
  readonly foreign?: true;
  /** The failure, e.g. "Hostname/IP does not match certificate's altnames: ..." (ERR_TLS_CERT_ALTNAME_INVALID). */
  readonly reason: string;
}

/**
 * Whether a daemon runs at the config's http.listen: true on any HTTP answer, false when nothing
 * listens there, DaemonUnclear when something listens but gives no answer: in `timeoutMs` (a
 * daemon busy enough to take seconds over /status), or failing the call (its certificate refused,
 * the connection reset). A command that would otherwise do the daemon's work itself must not take
 * that for false: it would run beside the daemon.
 */
export async function daemonRunning(config: SluiceConfig, timeoutMs = 10_000): Promise<boolean | DaemonUnclear> {
  try {
    const answer = await callDaemon(config, "/status", { timeoutMs });
    const foreign = foreignAnswer(config, answer);
    if (foreign === null) shownOwn.add(config);
    return foreign === null ? true : { timedOut: false, foreign: true, reason: foreign };
  } catch (thrown) {
    // A cut connection is told here as it came (e.g. "read ECONNRESET"): the probe itself did nothing.
    const error = thrown instanceof SluiceError && thrown.code === "DAEMON_CONNECTION_LOST" ? thrown.cause : thrown;
    const code = (error as NodeJS.ErrnoException).code ?? ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (code !== undefined && NOBODY_LISTENS.has(code)) return false;
    const timedOut = error instanceof Error && error.name === "AbortError" && (error.cause as Error | undefined)?.name === "TimeoutError";
    return { timedOut, reason: `${error instanceof Error ? error.message : String(error)}${code === undefined ? "" : ` (${code})`}` };
  }
}

/**
 * Why an answer to GET /status is not from this config's daemon, or null: another server listens at
 * http.listen (a port mistaken for another), or the daemon of another deployment. A command took any
 * HTTP answer for its daemon: `sluice replay --rebuild --execute` with http.listen on ClickHouse's port
 * sent the rebuild there, and one on another deployment's daemon would rebuild that deployment's sink
 * of the same name. A Sluice daemon answers JSON: its status (with the deployment's name), or a refusal (401/403, an error).
 */
export function foreignAnswer(config: SluiceConfig, answer: DaemonAnswer): string | null {
  let body: unknown;
  try {
    body = answer.json();
  } catch {
    body = undefined;
  }
  const fields = typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const deployment = fields["deployment"];
  if (answer.ok && typeof deployment === "string") {
    return deployment === config.name ? null : `it is the daemon of deployment "${deployment}", not of "${config.name}" (this config's name)`;
  }
  // A daemon answers GET /status 200, or refuses it (no token, a wrong one, a browser's request): 401/403 with an error.
  // Other errors with an "error" field are common to many servers (a 404 {"error": "not found"}), so they tell nothing.
  if ((answer.status === 401 || answer.status === 403) && typeof fields["error"] === "string") return null;
  return `it is not a Sluice daemon (it answered HTTP ${answer.status}${answer.statusText ? ` ${answer.statusText}` : ""} to GET /status)`;
}

/** The line a command prints when daemonRunning could not tell. */
export function daemonBusyMessage(config: SluiceConfig, unclear: DaemonUnclear, timeoutMs = 10_000): string {
  const url = daemonUrl(config, "/status");
  const what = unclear.timedOut ? `did not answer within ${timeoutMs / 1000} s (a busy daemon?)` : unclear.foreign ? unclear.reason : `the call failed: ${unclear.reason}`;
  return `something listens at ${url} but ${what}; nothing changed, so as not to do the daemon's work beside it: ${unclear.timedOut ? "try again" : "see that the address and http.tls in this config are the daemon's, and try again"}`;
}

/** TLS failures: the certificate refused (by either end), or no TLS spoken. */
const TLS_FAILURE = /^(?:ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_(?:VERIFY|GET)_|EPROTO$)/;

/**
 * What a failed call to the daemon at `url` met, worded by the failure: nothing listening ("no daemon answers",
 * `nobody` true: the caller asks whether sluice run runs), the TLS connection refused, no answer within the call's
 * `timeoutMs`, or another failure. A daemon that answered over TLS with a certificate the CLI refused, or that was too
 * busy to answer in time, was said to be absent ("no daemon answers at ...").
 */
export function callFailure(url: string, error: unknown, timeoutMs: number): { readonly text: string; readonly nobody: boolean } {
  const reason = unreachableReason(error).trim();
  const cause = (error as Error | undefined)?.cause as (Error & { code?: string }) | undefined;
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? cause?.code;
  if (code !== undefined && NOBODY_LISTENS.has(code)) return { text: `no daemon answers at ${url} (${reason})`, nobody: true };
  if (error instanceof Error && error.name === "AbortError" && cause?.name === "TimeoutError") {
    return { text: `something listens at ${url} but did not answer within ${timeoutMs / 1000} s (a busy daemon?)`, nobody: false };
  }
  if (code !== undefined && TLS_FAILURE.test(code)) {
    return { text: `the TLS connection to ${url} failed (${reason}${reason.includes(code) ? "" : `, ${code}`}): see that http.tls in this config (ca_file, the address's name) is the daemon's`, nobody: false };
  }
  return { text: `the call to ${url} failed (${reason})`, nobody: false };
}

/** Why the daemon did not answer, in a few words (e.g. "connect ECONNREFUSED 127.0.0.1:8080"). */
export function unreachableReason(error: unknown): string {
  const cause = (error as Error).cause;
  return cause instanceof Error ? cause.message : error instanceof Error ? error.message : String(error);
}

/** The message of a refused call: 401/403 say how to give the token. */
export function refusalHint(answer: DaemonAnswer): string {
  if (answer.status === 401) return " (the daemon needs a token: set http.admin_token or http.admin_token_file in this config, as the daemon has it)";
  if (answer.status === 403) return " (see docs/security.md: without http.admin_token the daemon answers admin requests from its own host only)";
  return "";
}
