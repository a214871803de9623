/**
 * The only way the front end builds markup: elements and text nodes, never HTML strings.
 * Agent content goes through `shown()` first, which makes control and bidi characters visible
 * (a right-to-left override could otherwise make "gnp.exe" read as "exe.png").
 */
export type Child = Node | string | number | null | undefined | false;

export interface Attrs {
  class?: string;
  id?: string;
  title?: string;
  /** Only in-app links (`#/...`); anything else is dropped, so no javascript: URL can be made. */
  href?: string;
  type?: string;
  value?: string;
  name?: string;
  placeholder?: string;
  role?: string;
  tabindex?: string;
  style?: Partial<Pick<CSSStyleDeclaration, 'left' | 'width' | 'top' | 'height' | 'paddingLeft'>>;
  data?: Record<string, string>;
  aria?: Record<string, string>;
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (ev: HTMLElementEventMap[K]) => void }>;
}

const UNSAFE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Agent text made inert for display: control and bidi characters become visible escapes. */
export function shown(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const n = c.codePointAt(0)!;
    if (n === 0x1b) return '\\e';
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
  });
}

/** `shown`, cut to `max` characters with a note of how much was left out. */
export function clip(text: string, max: number): string {
  const s = shown(text);
  return s.length <= max ? s : `${s.slice(0, max)}… (${(s.length - max).toLocaleString('en-US')} more characters)`;
}

export function text(v: string | number): Text {
  return document.createTextNode(typeof v === 'number' ? String(v) : shown(v));
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs.class) el.className = attrs.class;
  if (attrs.id) el.id = attrs.id;
  if (attrs.title !== undefined) el.title = shown(attrs.title);
  if (attrs.href !== undefined && attrs.href.startsWith('#')) el.setAttribute('href', attrs.href);
  for (const k of ['type', 'name', 'placeholder', 'role', 'tabindex'] as const) {
    const v = attrs[k];
    if (v !== undefined) el.setAttribute(k, v);
  }
  if (attrs.value !== undefined) (el as HTMLInputElement).value = attrs.value;
  if (attrs.style) Object.assign(el.style, attrs.style);
  for (const [k, v] of Object.entries(attrs.data ?? {})) el.dataset[k] = v;
  for (const [k, v] of Object.entries(attrs.aria ?? {})) el.setAttribute(`aria-${k}`, v);
  for (const [k, fn] of Object.entries(attrs.on ?? {})) el.addEventListener(k, fn as EventListener);
  append(el, ...children);
  return el;
}

export function append(el: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? text(c) : c);
  }
}

export function clear(el: Node): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const m = Math.floor(ms / 60_000);
  return `${m}m${Math.round((ms % 60_000) / 1000)}s`;
}

export function fmtUsd(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '';
  return `$${v < 1 ? v.toFixed(4) : v.toFixed(2)}`;
}

export function fmtInt(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '' : v.toLocaleString('en-US');
}

export function fmtTime(iso: string): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return shown(iso);
  return new Date(t).toISOString().replace('T', ' ').slice(0, 19);
}

export function ago(iso: string, now = Date.now()): string {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? `${fmtMs(Math.max(0, now - t))} ago` : '';
}

/** A JSON value as indented text, for a <pre> (keys and strings as data, never markup). */
export function pretty(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v, null, 2) ?? String(v);
  } catch {
    return String(v);
  }
}
