/**
 * SASL authentication of this thread's Kafka clients (PLAIN, SCRAM): the password is read at each authentication (a
 * `topics.sasl.password_file` again, so a rotated Secret file is taken without a restart), and each outcome is noted.
 *
 * The brokers refusing the credentials before they ever accepted them in this process is a config error, told at once
 * (a wrong password at the start). Once they accepted them, a refusal is a password rotated on the brokers (kafka-configs
 * --alter ... SCRAM-SHA-...) whose file has not followed yet, or the reverse: waited out like the brokers being down
 * (kafka-errors.ts makes it retriable), warned and counted through the listener (daemon/kafka-auth-report.ts).
 *
 * "Accepted once" is kept per `topics.sasl` config object in each thread (the process's clients share one); a sink thread
 * is told at its start whether the main thread's clients were accepted (noteKafkaCredentialsAccepted), so its first
 * connection waits a rotation out too.
 */
import { createRequire } from "node:module";
import type { AuthenticationProviderArgs, Authenticator, Mechanism, SaslAuthenticateArgs } from "kafkajs";
import { currentSecret } from "../../config/secret-files.ts";

export type SaslMechanism = "plain" | "scram-sha-256" | "scram-sha-512";

export interface KafkaSaslConfig {
  readonly mechanism: SaslMechanism;
  readonly username: string;
  readonly password?: string | undefined;
}

/** One SASL authentication of a connection to a broker: accepted, or refused with the broker's reason. */
export interface KafkaAuthOutcome {
  readonly broker: string;
  readonly username: string;
  /** The refusal's message (never a password), or null when accepted. */
  readonly refused: string | null;
  /** The brokers accepted these credentials before in this thread: a refusal is waited out, not a config error. */
  readonly acceptedBefore: boolean;
}

/** The `topics.sasl` configs (one per process, a copy per sink thread) whose credentials the brokers accepted once. */
const accepted = new WeakSet<object>();
let listener: ((outcome: KafkaAuthOutcome) => void) | null = null;

/** Whether the brokers accepted the credentials of this `topics.sasl` once in this thread. */
export function kafkaCredentialsAccepted(sasl: object | undefined): boolean {
  return sasl !== undefined && accepted.has(sasl);
}

/** In a sink thread: the main thread's clients were accepted with these credentials before the thread started. */
export function noteKafkaCredentialsAccepted(sasl: object | undefined): void {
  if (sasl !== undefined) accepted.add(sasl);
}

/** Told of each authentication's outcome in this thread (one listener: the daemon's main thread or a sink thread). */
export function watchKafkaAuthentications(watch: ((outcome: KafkaAuthOutcome) => void) | null): void {
  listener = watch;
}

/**
 * Set on kafkajs's KafkaJSSASLAuthenticationError when the brokers had accepted these credentials before: kafka-errors.ts
 * then makes the refusal retriable.
 */
export const ACCEPTED_BEFORE = "sluiceCredentialsAcceptedBefore";

/**
 * Set on kafkajs's KafkaJSSASLAuthenticationError when the exchange failed without the broker refusing the credentials:
 * the broker's SCRAM answer did not check out (its server signature or nonce), so it did not prove it holds this user's
 * credentials. Not a refusal (not counted, not waited out): kafka-errors.ts says so, permanent.
 */
export const NOT_REFUSED = "sluiceSaslFailedWithoutRefusal";

const BUILT_IN: Record<SaslMechanism, string> = {
  plain: "kafkajs/src/broker/saslAuthenticator/plain.js",
  "scram-sha-256": "kafkajs/src/broker/saslAuthenticator/scram256.js",
  "scram-sha-512": "kafkajs/src/broker/saslAuthenticator/scram512.js",
};

type BuiltInProvider = (sasl: { username: string; password: string }) => (args: AuthenticationProviderArgs) => Authenticator;

/**
 * kafkajs's built-in PLAIN and SCRAM wrap whatever fails during the exchange in a KafkaJSSASLAuthenticationError, the
 * broker's refusal and a connection reset alike, keeping only the message. What the exchange's requests met tells them
 * apart: the broker answering SASL_AUTHENTICATION_FAILED (or a SCRAM server-final `e=` attribute) refused the
 * credentials; a request that failed on its connection (closed, reset, timed out) refused nothing.
 */
const TRANSPORT_FAILURES = new Set(["KafkaJSConnectionError", "KafkaJSConnectionClosedError", "KafkaJSRequestTimeoutError"]);

/**
 * kafkajs's own mechanism for `sasl.mechanism`, given the password read once at each authentication (SCRAM derives its
 * proof and the server signature it expects from two reads of it: a file rotated between them made a login the broker
 * accepted fail as an invalid server signature), and whose outcome is noted. A refusal's message names the broker and
 * the user (never the password). A connection failing during the exchange is thrown as that connection error
 * (retriable, as any connection failure, also at the first start), not as a refusal.
 */
export function saslMechanism(sasl: KafkaSaslConfig): Mechanism {
  const builtIn = createRequire(import.meta.url)(BUILT_IN[sasl.mechanism]) as BuiltInProvider;
  return {
    mechanism: sasl.mechanism,
    authenticationProvider: (args) => {
      const broker = `${args.host}:${args.port}`;
      return {
        authenticate: async () => {
          const acceptedBefore = accepted.has(sasl);
          const credentials = { username: sasl.username, password: currentSecret(sasl, "password", "topics.sasl") ?? "" };
          let refusedByBroker = false;
          let transportFailure: (Error & { name: string }) | undefined;
          const saslAuthenticate = async (request: SaslAuthenticateArgs<unknown>) => {
            try {
              const answer = (await args.saslAuthenticate(request)) as { e?: unknown } | undefined;
              if (typeof answer?.e === "string") refusedByBroker = true;
              return answer;
            } catch (error) {
              const failure = error as { name?: unknown; type?: unknown };
              if (failure?.type === "SASL_AUTHENTICATION_FAILED") refusedByBroker = true;
              else if (typeof failure?.name === "string" && TRANSPORT_FAILURES.has(failure.name)) transportFailure = error as Error & { name: string };
              throw error;
            }
          };
          try {
            await builtIn(credentials)({ ...args, saslAuthenticate: saslAuthenticate as AuthenticationProviderArgs["saslAuthenticate"] }).authenticate();
          } catch (error) {
            if (transportFailure !== undefined && !refusedByBroker) {
              transportFailure.message = `${transportFailure.message} (during the SASL authentication of user "${sasl.username}" at broker ${broker})`;
              throw transportFailure;
            }
            const failure = error as { name?: string; message?: string; [ACCEPTED_BEFORE]?: boolean; [NOT_REFUSED]?: boolean };
            if (failure?.name === "KafkaJSSASLAuthenticationError") {
              failure.message = `${failure.message ?? "refused"} (user "${sasl.username}" at broker ${broker})`;
              if (refusedByBroker) {
                failure[ACCEPTED_BEFORE] = acceptedBefore;
                listener?.({ broker, username: sasl.username, refused: failure.message, acceptedBefore });
              } else {
                failure[NOT_REFUSED] = true;
              }
            }
            throw error;
          }
          accepted.add(sasl);
          listener?.({ broker, username: sasl.username, refused: null, acceptedBefore });
        },
      };
    },
  };
}
