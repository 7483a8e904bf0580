/**
 * Who may call what on the daemon's HTTP API. Three scopes: public (health, readiness, metrics),
 * read (GET /status, schema registry GETs, SQL queries) and admin (everything else: rebuild,
 * halted-table release, registry writes...). A scope is granted by a bearer token from the
 * config: http.admin_token grants both, http.read_token only read, the builtin registry's token
 * only the registry's paths. A scope no token grants is served to loopback clients only, and
 * not to a web page in a browser on this host (see browserRefusal).
 * Tokens are compared as SHA-256 digests in constant time, so neither content nor length leaks.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { hostname } from "node:os";

export type Scope = "public" | "read" | "admin";

export interface ApiTokens {
  readonly admin?: string | undefined;
  readonly read?: string | undefined;
  /** The builtin schema registry's own token: its paths only, reads and writes. */
  readonly registry?: string | undefined;
}

export interface Refusal {
  readonly status: 401 | 403 | 404;
  readonly message: string;
  readonly headers: Record<string, string>;
}

const REALM = 'Bearer realm="sluice"';

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** The token a request presents: `Authorization: Bearer T`, or Basic auth whose password is T (for registry clients that only speak Basic). */
export function presentedToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization ?? "";
  const space = header.indexOf(" ");
  if (space < 0) return undefined;
  const scheme = header.slice(0, space).toLowerCase();
  const credentials = header.slice(space + 1).trim();
  if (scheme === "bearer") return credentials || undefined;
  if (scheme === "basic") {
    const decoded = Buffer.from(credentials, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    return colon < 0 ? undefined : decoded.slice(colon + 1) || undefined;
  }
  return undefined;
}

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const plain = address.startsWith("::ffff:") ? address.slice("::ffff:".length) : address;
  if (isIP(plain) === 4) return plain.startsWith("127.");
  return plain === "::1";
}

/** The name in a Host header (`name:port`, `[v6]:port`), lower-cased, without a trailing dot. */
function hostName(header: string): string {
  const name = header.startsWith("[") ? header.slice(1, header.indexOf("]")) : header.replace(/:\d*$/, "");
  return name.toLowerCase().replace(/\.$/, "");
}

/**
 * Why a request that only loopback trust would let through is refused as one a web page made, or
 * null. A page on any site can make the operator's browser send a form or no-cors POST to
 * 127.0.0.1 (the action is done though the page cannot read the answer): browsers mark it with
 * Origin (and Sec-Fetch-Site). A page on a name of the attacker's that later resolves to 127.0.0.1
 * (DNS rebinding) is same-origin with the daemon and reads its answers; its requests carry that
 * name as Host. The CLI, curl and registry clients send neither a browser's headers nor another
 * host's name.
 */
function browserRefusal(req: IncomingMessage, ownNames: ReadonlySet<string>): string | null {
  const site = req.headers["sec-fetch-site"];
  if (req.headers.origin !== undefined || (site !== undefined && site !== "none")) {
    return "it comes from a web page (it carries Origin or Sec-Fetch-Site): a page in a browser on this host may not use the admin API without a token";
  }
  const host = req.headers.host;
  if (host === undefined) return null;
  const name = hostName(host);
  if (isIP(name) !== 0 || name === "localhost" || name.endsWith(".localhost") || ownNames.has(name)) return null;
  return `its Host header (${JSON.stringify(host)}) names neither this host nor an IP address: a name that resolves to 127.0.0.1 is what a web page uses to read a loopback API (DNS rebinding)`;
}

export class AccessPolicy {
  private readonly publicPaths: ReadonlySet<string>;
  private readonly registryPrefix: string | undefined;
  /** Host names a loopback client may call this daemon by, besides IP addresses and localhost. */
  private readonly ownNames: ReadonlySet<string>;
  private admin: Buffer | undefined;
  private read: Buffer | undefined;
  private registry: Buffer | undefined;

  /** `hostNames`: names the daemon is reached by on loopback (its listen addresses' hosts); this machine's host name is one. */
  constructor(options: { publicPaths: Iterable<string>; registryPrefix?: string | undefined; tokens: ApiTokens; hostNames?: Iterable<string> }) {
    this.publicPaths = new Set(options.publicPaths);
    this.registryPrefix = options.registryPrefix;
    this.ownNames = new Set([hostname(), ...(options.hostNames ?? [])].map(hostName));
    this.setTokens(options.tokens);
  }

  /** Replaces the tokens (e.g. at SIGHUP after the token files changed); requests from then on need the new ones. */
  setTokens(tokens: ApiTokens): void {
    this.admin = tokens.admin ? digest(tokens.admin) : undefined;
    this.read = tokens.read ? digest(tokens.read) : undefined;
    this.registry = tokens.registry ? digest(tokens.registry) : undefined;
  }

  /** Whether admin endpoints are served to loopback clients only (no admin token). */
  get loopbackOnly(): boolean {
    return this.admin === undefined;
  }

  isPublic(method: string | undefined, path: string): boolean {
    return (method === "GET" || method === "HEAD") && this.publicPaths.has(path);
  }

  scopeOf(method: string | undefined, path: string): Scope {
    if (this.isPublic(method, path)) return "public";
    // OPTIONS tells a path's methods only, as a GET of a path that takes no GET does (405 with Allow).
    if (method === "GET" || method === "HEAD" || method === "OPTIONS") return "read";
    if (method === "POST" && /^\/sinks\/[^/]+\/query$/.test(path)) return "read";
    return "admin";
  }

  private isRegistryPath(path: string): boolean {
    const prefix = this.registryPrefix;
    return prefix !== undefined && (path === prefix || path.startsWith(`${prefix}/`));
  }

  /** Null when the request may proceed, else the answer that refuses it. */
  check(req: IncomingMessage, path: string): Refusal | null {
    const scope = this.scopeOf(req.method, path);
    if (scope === "public") return null;
    const granting = [this.admin, ...(scope === "read" ? [this.read] : []), ...(this.isRegistryPath(path) ? [this.registry] : [])].filter((t): t is Buffer => t !== undefined);
    const presented = presentedToken(req);
    if (granting.length === 0) {
      if (isLoopback(req.socket.remoteAddress)) {
        const browser = browserRefusal(req, this.ownNames);
        if (browser === null) return null;
        return { status: 403, message: `${req.method} ${path} is refused: ${browser} (set http.admin_token; see docs/security.md)`, headers: {} };
      }
      return {
        status: 403,
        message: `${req.method} ${path} answers only clients on the loopback interface: no token is configured for it (set http.admin_token${scope === "read" ? " or http.read_token" : ""}; see docs/security.md)`,
        headers: {},
      };
    }
    if (presented === undefined) {
      return { status: 401, message: `${req.method} ${path} needs a bearer token (Authorization: Bearer <token>)`, headers: { "www-authenticate": REALM } };
    }
    const given = digest(presented);
    // Every configured token is compared, granting or not, so the time taken says nothing about which matched.
    let granted = false;
    for (const token of granting) granted = timingSafeEqual(token, given) || granted;
    if (granted) return null;
    const known = [this.admin, this.read, this.registry].some((t) => t !== undefined && timingSafeEqual(t, given));
    if (known) {
      return {
        status: 403,
        message: `the token given does not grant ${req.method} ${path} (it needs ${scope === "read" ? "a read or the admin token" : "the admin token"})`,
        headers: { "www-authenticate": `${REALM}, error="insufficient_scope"` },
      };
    }
    return { status: 401, message: `${req.method} ${path}: the token given is not valid`, headers: { "www-authenticate": `${REALM}, error="invalid_token"` } };
  }
}
