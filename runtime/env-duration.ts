/**
 * A duration in milliseconds from an environment variable (operator knobs such as
 * SLUICE_KAFKA_SESSION_MS): the default when it is unset or empty (`VAR=` in a compose file),
 * refused when it is not a whole number in range, instead of handing 0 or NaN to a client.
 */
import { ConfigError } from "../connectors/errors.ts";

export function durationFromEnv(name: string, fallbackMs: number, range: { readonly min: number; readonly max: number }, env: NodeJS.ProcessEnv = process.env): number {
  const text = env[name]?.trim();
  if (text === undefined || text === "") return fallbackMs;
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms < range.min || ms > range.max) {
    throw new ConfigError(`environment variable ${name}="${text}" is not a duration in milliseconds from ${range.min} to ${range.max}: set a whole number of milliseconds, or unset it for the default (${fallbackMs})`, {
      code: "CONFIG_INVALID",
      context: { component: "environment" },
    });
  }
  return ms;
}
