import { AgentTraceError, CLI_EXIT } from '@agenttrace/common';

/**
 * Stable codes of the OTLP bridge's failures.
 */
export type OtlpErrorCode =
  | 'DECODE_FAILED' // the request body is not a valid OTLP ExportTraceServiceRequest (protobuf or JSON)
  | 'BODY_TOO_LARGE' // the body (compressed or not) is over maxBodyBytes
  | 'UNSUPPORTED_MEDIA_TYPE' // neither application/x-protobuf nor application/json, or an unknown content encoding
  | 'UNAUTHORIZED' // a token is configured and the request did not carry it
  | 'TOKEN_REQUIRED' // asked to listen beyond loopback without a token
  | 'KAFKA_UNAVAILABLE' // Kafka did not acknowledge the batch; the client should retry
  | 'EXPORT_FAILED' // an OTLP backend refused or could not be reached by the exporter
  | 'FORWARDER_STATE'; // the continuous exporter was started twice, or closed while starting

/** Exit codes of agenttrace-otlp: the codes every agenttrace command shares (docs/cli.md). */
export const EXIT = {
  OK: CLI_EXIT.OK,
  FAILURE: CLI_EXIT.FAILURE,
  USAGE: CLI_EXIT.USAGE,
  NOT_FOUND: CLI_EXIT.NOT_FOUND,
  UNAVAILABLE: CLI_EXIT.UNAVAILABLE,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  unexpected failure
  2  bad usage: unknown flag, bad value, a non-loopback --host without --token
  3  session not found (export)
  4  a dependency is unreachable (Kafka, Redis, the OTLP endpoint; the message says which)
  Every agenttrace command uses the same codes for the same trouble (docs/cli.md).`;

export class OtlpError extends AgentTraceError {
  override readonly code: OtlpErrorCode;

  constructor(code: OtlpErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(code, message, options);
    this.code = code;
  }
}
