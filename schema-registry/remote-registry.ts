/**
 * A Confluent-compatible registry over HTTP (Confluent, Redpanda, Apicurio's ccompat API, or
 * Sluice's own). Schemas by id are cached (ids never change meaning), and so are registrations.
 * Failures become RegistryErrors: network errors, timeouts, 5xx and 429 are retriable; other 4xx
 * are not.
 */
import { IncompatibleSchemaError, RegistryError, registryErrorKindOf } from "./registry-errors.ts";
import type { RegistryErrorKind } from "./registry-errors.ts";
import { schemaText } from "./registry.ts";
import type { CompatibilityReport, SchemaInput, SchemaRegistry, SubjectVersion } from "./registry.ts";
import { isCompatibilityLevel } from "./compatibility-levels.ts";
import type { CompatibilityLevel } from "./compatibility-levels.ts";

export type RemoteRegistryAuth = { readonly username: string; readonly password: string } | { readonly bearerToken: string };

export interface RemoteRegistryOptions {
  /** Base URL, e.g. https://registry.example.com:8081 (a path prefix is kept). */
  readonly url: string;
  readonly auth?: RemoteRegistryAuth;
  /** Per request; default 10 s. */
  readonly timeoutMs?: number;
  /** Schemas (by id) and registrations kept in memory; default 1000 each. */
  readonly cacheSize?: number;
}

const ACCEPT = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json";

export class RemoteRegistry implements SchemaRegistry {
  private readonly baseUrl: string;
  private readonly authorization: string | undefined;
  private readonly timeoutMs: number;
  private readonly schemasById: BoundedCache<number, Promise<string>>;
  private readonly registered: BoundedCache<string, number>;

  constructor(options: RemoteRegistryOptions) {
    this.baseUrl = options.url.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.schemasById = new BoundedCache(options.cacheSize ?? 1000);
    this.registered = new BoundedCache(options.cacheSize ?? 1000);
    const auth = options.auth;
    if (auth === undefined) this.authorization = undefined;
    else if ("bearerToken" in auth) this.authorization = `Bearer ${auth.bearerToken}`;
    else this.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}`;
  }

  async register(subject: string, schema: SchemaInput): Promise<number> {
    const text = schemaText(schema);
    const cacheKey = `${subject}\u0000${text}`;
    const cached = this.registered.get(cacheKey);
    if (cached !== undefined) return cached;
    let response: { id: number };
    try {
      response = (await this.request("POST", `/subjects/${encodeURIComponent(subject)}/versions`, { schema: text })) as { id: number };
    } catch (error) {
      if (error instanceof RegistryError && error.kind === "INCOMPATIBLE_SCHEMA") throw await this.explainIncompatibility(subject, text, error);
      throw error;
    }
    this.registered.set(cacheKey, response.id);
    return response.id;
  }

  getById(id: number): Promise<string> {
    let schema = this.schemasById.get(id);
    if (!schema) {
      schema = this.request("GET", `/schemas/ids/${id}`).then((body) => (body as { schema: string }).schema);
      this.schemasById.set(id, schema);
      schema.catch(() => this.schemasById.delete(id));
    }
    return schema;
  }

  getLatest(subject: string): Promise<SubjectVersion | null> {
    return this.subjectVersion(subject, "latest");
  }

  getVersion(subject: string, version: number): Promise<SubjectVersion | null> {
    return this.subjectVersion(subject, String(version));
  }

  async listSubjects(): Promise<string[]> {
    return (await this.request("GET", "/subjects")) as string[];
  }

  async listVersions(subject: string): Promise<number[]> {
    try {
      return (await this.request("GET", `/subjects/${encodeURIComponent(subject)}/versions`)) as number[];
    } catch (error) {
      if (error instanceof RegistryError && error.kind === "SUBJECT_NOT_FOUND") return [];
      throw error;
    }
  }

  async checkCompatibility(subject: string, schema: SchemaInput): Promise<CompatibilityReport> {
    const body = { schema: schemaText(schema) };
    const path = `/compatibility/subjects/${encodeURIComponent(subject)}/versions`;
    let result: { is_compatible: boolean; messages?: string[] };
    try {
      result = (await this.request("POST", `${path}?verbose=true`, body)) as typeof result;
    } catch (error) {
      // Registries without the check-against-all endpoint: check against the latest version.
      if (!(error instanceof RegistryError && (error.errorCode === 404 || error.errorCode === 405))) throw error;
      try {
        result = (await this.request("POST", `${path}/latest?verbose=true`, body)) as typeof result;
      } catch (latestError) {
        if (latestError instanceof RegistryError && latestError.kind === "SUBJECT_NOT_FOUND") return { compatible: true, messages: [] };
        throw latestError;
      }
    }
    return { compatible: result.is_compatible, messages: result.messages ?? [] };
  }

  async getCompatibilityLevel(subject: string): Promise<CompatibilityLevel> {
    let level: unknown;
    try {
      level = ((await this.request("GET", `/config/${encodeURIComponent(subject)}?defaultToGlobal=true`)) as { compatibilityLevel: unknown }).compatibilityLevel;
    } catch (error) {
      if (!(error instanceof RegistryError && error.kind === "SUBJECT_COMPATIBILITY_NOT_CONFIGURED")) throw error;
      level = ((await this.request("GET", "/config")) as { compatibilityLevel: unknown }).compatibilityLevel;
    }
    if (!isCompatibilityLevel(level)) throw new RegistryError("INTERNAL", `registry answered an unknown compatibility level ${JSON.stringify(level)}`);
    return level;
  }

  private async subjectVersion(subject: string, version: string): Promise<SubjectVersion | null> {
    try {
      const body = (await this.request("GET", `/subjects/${encodeURIComponent(subject)}/versions/${version}`)) as SubjectVersion;
      return { subject: body.subject, version: body.version, id: body.id, schema: body.schema };
    } catch (error) {
      if (error instanceof RegistryError && (error.kind === "SUBJECT_NOT_FOUND" || error.kind === "VERSION_NOT_FOUND")) return null;
      throw error;
    }
  }

  /** Replaces the server's one-line 409 message by the verbose per-problem messages when the registry gives them. */
  private async explainIncompatibility(subject: string, text: string, original: RegistryError): Promise<IncompatibleSchemaError> {
    try {
      const report = await this.checkCompatibility(subject, text);
      if (report.messages.length > 0) return new IncompatibleSchemaError(subject, report.messages, { registry: this.baseUrl });
    } catch {
      // keep the server's own message
    }
    return new IncompatibleSchemaError(subject, [original.message], { registry: this.baseUrl });
  }

  private async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { accept: ACCEPT };
    if (body !== undefined) headers["content-type"] = "application/vnd.schemaregistry.v1+json";
    if (this.authorization) headers.authorization = this.authorization;
    const url = `${this.baseUrl}${path}`;
    const context = { registry: this.baseUrl, request: `${method} ${path}` };
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      // The timeout covers the body too: a body that stops coming (or a connection cut after the head) rejects here.
      text = await response.text();
    } catch (error) {
      const reason = (error as Error).name === "TimeoutError" ? `no answer within ${this.timeoutMs} ms` : describeNetworkError(error);
      throw new RegistryError("UNAVAILABLE", `schema registry ${this.baseUrl} unreachable (${method} ${path}): ${reason}`, {
        retriable: true,
        context,
        cause: error,
      });
    }
    let parsed: unknown = undefined;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      // not JSON: reported below when the status is an error
    }
    if (response.ok) return parsed;
    const errorBody = (parsed ?? {}) as { error_code?: unknown; message?: unknown };
    const errorCode = typeof errorBody.error_code === "number" ? errorBody.error_code : response.status;
    const message = typeof errorBody.message === "string" ? errorBody.message : `HTTP ${response.status} ${response.statusText}`;
    const kind: RegistryErrorKind = registryErrorKindOf(errorCode) ?? fallbackKind(response.status);
    throw new RegistryError(kind, `schema registry ${method} ${path}: ${message}`, {
      errorCode,
      retriable: response.status >= 500 || response.status === 429,
      context: { ...context, status: response.status, errorCode },
    });
  }
}

/** A Map that forgets its least recently used entry beyond `capacity`. */
class BoundedCache<K, V> {
  private readonly entries = new Map<K, V>();
  private readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = Math.max(1, capacity);
  }

  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as K);
  }

  delete(key: K): void {
    this.entries.delete(key);
  }
}

function fallbackKind(status: number): RegistryErrorKind {
  if (status === 401 || status === 403) return "UNAUTHORIZED";
  if (status === 404) return "NOT_FOUND";
  if (status === 409) return "INCOMPATIBLE_SCHEMA";
  if (status === 422) return "UNPROCESSABLE_ENTITY";
  if (status >= 500) return "UNAVAILABLE";
  return "BAD_REQUEST";
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}
