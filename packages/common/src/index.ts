export { AgentTraceError, OptionsError, errorMessage } from './errors.js';
export { sanitizeForTerminal, hasControlCharacters } from './terminal.js';
export { parseTimeExpression } from './time-expr.js';
export {
  KafkaError,
  kafkaError,
  unreachableBrokers,
  kafkaConnectionFromEnv,
  validateKafkaConnection,
  rdkafkaConfig,
  consumerConfig,
  groupConsumerConfig,
  TOPIC_METADATA_REFRESH_MS,
  securityProtocolOf,
  describeKafka,
  uuidString,
} from './kafka.js';
export type { KafkaConnectionOptions, GroupConsumerOptions, SecurityProtocol, SaslMechanism } from './kafka.js';
export { KafkaAdmin, explainConnectFailure } from './kafka-admin.js';
export type { GroupInfo, GroupState, KafkaAdminOptions, TopicInfo } from './kafka-admin.js';
export { KAFKA_CODES, isQueueFull, isTooLarge, isTopicAlreadyExists, setTimeoutOnlyForFirstMessage } from './kafka-codes.js';
export { connectClient, consumeBatch, disconnectWithTimeout, nativeTeardowns } from './kafka-client.js';
export type { ConnectOptions, DisconnectOptions, KafkaClient } from './kafka-client.js';
export { produceWhenRoom } from './produce-when-room.js';
export type { ProduceWhenRoomOptions } from './produce-when-room.js';
export { AckingProducer } from './acking-producer.js';
export type { AckingProducerOptions, OutgoingRecord } from './acking-producer.js';
export { retry, backoffMs, sleep, stopRetrying } from './retry.js';
export type { RetryOptions, BackoffOptions } from './retry.js';
export { DeadLetterWriter, nextDlqValueLength, stripDlqHeaders, DLQ_HEADER_PREFIX } from './dead-letter-writer.js';
export type { DeadLetterWriterOptions, DeadLetterSource, DeadLetterRecord, DeadLetterOutcome } from './dead-letter-writer.js';
export { protocolAdminOptions, preloadProtocolAdmin, describeTopicIdentity, describeTopicIdentities, describeTopicConfigs } from './kafka-protocol-admin.js';
export type { KafkaTopicIdentity } from './kafka-protocol-admin.js';
export {
  S3Error,
  createS3Client,
  s3Sdk,
  s3OptionsFromEnv,
  describeS3,
  offloadKey,
  uploadOffload,
  fetchOffload,
  restoreOffloads,
  offloadStatus,
  isS3Abort,
  s3TimeoutMs,
  S3_DEFAULT_TIMEOUT_MS,
} from './s3.js';
export type { S3Options, OffloadStatus } from './s3.js';
export { checkBucket } from './s3-check.js';
export { redisKeys, DEFAULT_REDIS_PREFIX } from './redis-keys.js';
export type { RedisKeys, SessionMeta } from './redis-keys.js';
export {
  dlqHeaders,
  DLQ_HEADER_REASON,
  DLQ_HEADER_DETAIL,
  DLQ_HEADER_TOPIC,
  DLQ_HEADER_PARTITION,
  DLQ_HEADER_OFFSET,
  DLQ_HEADER_CONSUMER,
  DLQ_HEADER_TRUNCATED_FROM,
  DLQ_TRUNCATE_BYTES,
} from './dlq.js';
export { resolveSettings, loadConfigFile, describeRedisUrl, ConfigError, SETTINGS_DEFAULTS } from './settings.js';
export {
  SETTINGS_OPTIONS,
  SETTINGS_HELP,
  SETTINGS_FLAG_NAMES,
  settingsFromFlags,
  settingsHelp,
  addSettingsOptions,
  flagParser,
  durationFlag,
  countFlag,
  FlagValueError,
} from './cli-settings.js';
export type { SettingsFlagName, SettingsOptionsChoice, OptionTarget } from './cli-settings.js';
export { MetricsHttpServer } from './metrics-server.js';
export type { MetricsSource, HealthReport } from './metrics-server.js';
export type { AgentTraceSettings, SettingsFlags, ConfigFile } from './settings.js';
export { resolvePrices } from './prices.js';
export { CLI_EXIT, CLI_EXIT_TABLE, exitCodeForError, exitCodesHelp, kdiffExitCode, signalExitCode } from './exit-codes.js';
export type { CliExitCode, CliTool } from './exit-codes.js';
export { drained, exitWhenDrained, guardCliOutput, runCli, stdoutBroken } from './cli-exit.js';
export type { CliOutputOptions, CliProgram } from './cli-exit.js';
export { makeCliLogger, makeCliLoggerObject } from './cli-logger.js';
export type { CliLogFn, CliLogLevel, CliLoggerFlags } from './cli-logger.js';
export { parseCount, parseDurationMs } from './cli-parsers.js';
export type { NumberRule } from './cli-parsers.js';
export { LOG_LEVELS, validateLogger, hookToLogger, combineHooks, loggerFromHook, loggerLevelEnabled } from './logger.js';
export type { Logger, LogLevel, LogMethod, LogHook } from './logger.js';
