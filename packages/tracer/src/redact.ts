/**
 * Redaction runs before anything leaves the process (Kafka, S3). Defaults scrub e-mail
 * addresses, payment card numbers (Luhn-checked) and values under secret-looking keys.
 */
export interface RedactPattern {
  name: string;
  pattern: RegExp;
  /** Replacement text (default `[REDACTED:<name>]`). */
  replacement?: string;
}

export interface RedactOptions {
  /** Scrub e-mail addresses (default true). */
  email?: boolean;
  /** Scrub payment card numbers that pass the Luhn check (default true). */
  cardNumbers?: boolean;
  /** Replace the whole value of these object keys, case-insensitive (default: password, passwd, secret, api_key, apikey, authorization, access_token). `[]` turns it off. */
  keys?: string[];
  /** Further patterns to scrub in every string. Give them the `g` flag. */
  patterns?: RedactPattern[];
  /** Last word on every string: return the text to keep. `where` is the field name (or, for values that needed the careful path, the dotted path). */
  hook?: (value: string, where: string) => string;
}

export const DEFAULT_REDACTED_KEYS = ['password', 'passwd', 'secret', 'api_key', 'apikey', 'authorization', 'access_token'];

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
// 13-19 digits, optionally grouped by single spaces or dashes.
const CARD = /\b\d(?:[ -]?\d){12,18}\b/g;

function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

export type StringRedactor = (value: string, path: string) => string;

/**
 * Whether the redactor could change this string. Only known for the built-in steps (a custom
 * pattern or hook may change anything); lets the encoder keep V8's fast JSON path for values with
 * nothing to redact. Must never say false for a string the redactor would change.
 */
export type RedactScreen = (value: string) => boolean;

// Four digits in a row: a card number as the CARD pattern finds it has such a run, and this form
// is several times faster for V8's regular expressions than \d{4}.
const FOUR_DIGITS = /\d\d\d\d/;

/** Builds the string redactor for a configuration, or undefined when nothing is to be redacted. */
export function buildRedactor(options: RedactOptions | false): { redactString: StringRedactor | undefined; redactKeys: Set<string>; mightRedact: RedactScreen | undefined } {
  if (options === false) return { redactString: undefined, redactKeys: new Set(), mightRedact: () => false };
  const steps: StringRedactor[] = [];
  const email = options.email !== false;
  const cards = options.cardNumbers !== false;
  if (email) steps.push((v) => (v.includes('@') ? v.replace(EMAIL, '[REDACTED:email]') : v));
  if (cards) {
    steps.push((v) =>
      FOUR_DIGITS.test(v)
        ? v.replace(CARD, (m) => {
            const digits = m.replace(/[ -]/g, '');
            return digits.length >= 13 && digits.length <= 19 && luhnValid(digits) ? '[REDACTED:card]' : m;
          })
        : v,
    );
  }
  for (const p of options.patterns ?? []) {
    const re = p.pattern.global ? p.pattern : new RegExp(p.pattern.source, `${p.pattern.flags}g`);
    const replacement = p.replacement ?? `[REDACTED:${p.name}]`;
    steps.push((v) => v.replace(re, replacement));
  }
  if (options.hook) steps.push(options.hook);
  const redactKeys = new Set((options.keys ?? DEFAULT_REDACTED_KEYS).map((k) => k.toLowerCase()));
  const redactString: StringRedactor | undefined =
    steps.length === 0
      ? undefined
      : (value, path) => {
          let out = value;
          for (const step of steps) out = step(out, path);
          return out;
        };
  const custom = (options.patterns?.length ?? 0) > 0 || options.hook !== undefined;
  const mightRedact: RedactScreen | undefined = custom ? undefined : (v) => (email && v.includes('@')) || (cards && FOUR_DIGITS.test(v));
  return { redactString, redactKeys, mightRedact };
}
