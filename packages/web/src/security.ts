import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AgentTraceSettings } from '@agenttrace/common';

/** Nothing but our own script, style and API; no frames, no inline code, no plugins. */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Headers every response carries, pages and API alike. */
export function securityHeaders(res: ServerResponse): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Permissions-Policy', 'camera=(), microphone=(), geolocation=()');
}

/**
 * Every secret the settings hold (Redis password, SASL password, S3 secret key), so a response
 * can be scrubbed of them whatever produced its text: a library error message quoting a URL
 * would otherwise carry the password to the browser.
 */
export function secretsOf(settings: AgentTraceSettings, token: string | undefined): string[] {
  const out: string[] = [];
  try {
    const u = new URL(settings.redisUrl);
    if (u.password) out.push(u.password, decodeURIComponent(u.password));
  } catch {
    // An unparseable URL has no password we could find; Redis will refuse it anyway.
  }
  if (settings.kafka.sasl?.password) out.push(settings.kafka.sasl.password);
  const c = settings.s3.credentials;
  if (c?.secretAccessKey) out.push(c.secretAccessKey);
  if (c?.sessionToken) out.push(c.sessionToken);
  if (token) out.push(token);
  // Short strings would blank out ordinary words; real secrets are longer.
  return [...new Set(out)].filter((s) => s.length >= 4);
}

export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join('***');
  return out;
}

const TOKEN_COOKIE = 'agenttrace_web_token';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function cookieValue(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** Compares in constant time (over digests, so lengths do not leak either). */
export function tokenMatches(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  return timingSafeEqual(digest(given), digest(token));
}

export type AuthResult = { ok: true } | { ok: false } | { ok: 'redirect'; location: string; cookie: string };

/**
 * With a token configured, a request is let in when it carries it as a cookie or a bearer
 * header. A page opened with `?token=` gets the cookie and is redirected to the same URL without
 * it, so the token does not stay in the address bar or the history.
 */
export function authorize(req: IncomingMessage, url: URL, token: string | undefined): AuthResult {
  if (token === undefined) return { ok: true };
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ') && tokenMatches(auth.slice(7), token)) return { ok: true };
  if (tokenMatches(cookieValue(req, TOKEN_COOKIE), token)) return { ok: true };
  const q = url.searchParams.get('token');
  if (q !== null && tokenMatches(q, token)) {
    url.searchParams.delete('token');
    return { ok: 'redirect', location: `${url.pathname}${url.search}`, cookie: `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/` };
  }
  return { ok: false };
}

/**
 * On loopback, only requests addressed to a loopback name are served: a page on another site
 * that rebinds its DNS name to 127.0.0.1 still sends its own name as Host, and is refused.
 */
export function hostAllowed(req: IncomingMessage, loopbackOnly: boolean): boolean {
  if (!loopbackOnly) return true;
  const host = req.headers.host;
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!;
  return name === 'localhost' || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name);
}
