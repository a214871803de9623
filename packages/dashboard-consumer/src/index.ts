export { DashboardConsumer } from './consumer.js';
export type { DashboardStats } from './consumer.js';
export {
  resolveDashboardOptions,
  DASHBOARD_DEFAULTS,
  ALERT_DEFAULTS,
  DEFAULT_GROUP,
  DEFAULT_METRICS_PORT,
} from './options.js';
export type { DashboardConsumerOptions, ResolvedDashboardOptions, AlertRuleOptions, ResolvedAlertRules, LogEntry } from './options.js';
export { DashboardError } from './errors.js';
export type { DashboardErrorCode } from './errors.js';
export { slackPayload } from './alerts.js';
export type { Alert } from './alerts.js';
export { buildPlan, describeStep, dropApplied, recentErrorsKey, alertsOutboxKey } from './batch.js';
export type { ApplyPlan, GoodRecord, SkippedRecord, PlanContext } from './batch.js';
