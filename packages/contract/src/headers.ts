import { SCHEMA_VERSION } from './event.js';

/** Kafka header names carried by every agent event record. */
export const HEADER_SCHEMA_VERSION = 'agenttrace-schema-version';
export const HEADER_CONTENT_TYPE = 'content-type';

export const CONTENT_TYPE_JSON = 'application/json';

// One shared, frozen list: headers are converted by the client on every produce, so they are kept
// to the two readers need and never rebuilt per event.
const HEADERS: ReadonlyArray<Readonly<Record<string, string>>> = Object.freeze([
  Object.freeze({ [HEADER_SCHEMA_VERSION]: String(SCHEMA_VERSION) }),
  Object.freeze({ [HEADER_CONTENT_TYPE]: CONTENT_TYPE_JSON }),
]);

/** Headers for an event record (schema version and content type), in the shape librdkafka's produce() takes. */
export function eventHeaders(): Array<Record<string, string>> {
  return HEADERS as Array<Record<string, string>>;
}
