/**
 * The config keys whose values are secrets (config/schema.ts, config/redact.ts). A module of its own so
 * that a sink thread, which redacts but does not validate configs, does not load the schema (and zod).
 */
export const SECRET_KEYS = ["password", "token", "api_key", "admin_token", "read_token", "hash_key"] as const;
