import { h } from './dom.js';

export type Page = 'sessions' | 'session' | 'compare' | 'live';

export function nav(active: Page): HTMLElement {
  const link = (page: Page, href: string, label: string) => h('a', { href, class: page === active ? 'active' : '' }, label);
  return h('nav', { class: 'top' }, h('span', { class: 'brand' }, 'agenttrace'), link('sessions', '#/sessions', 'Sessions'), link('live', '#/live', 'Live'), link('compare', '#/compare', 'Compare'));
}

/** A hash route's path and query, e.g. `#/session/abc?step=x`. */
export function route(hash: string): { parts: string[]; query: URLSearchParams } {
  const raw = hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { parts, query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

/** A live-status badge whose text says whether the event stream is connected. */
export function liveBadge(): { el: HTMLElement; set: (state: 'connecting' | 'live' | 'offline', note?: string) => void } {
  const el = h('span', { class: 'live-badge connecting', id: 'live-status' }, 'connecting');
  return {
    el,
    set(state, note) {
      el.className = `live-badge ${state}`;
      el.textContent = note ? `${state}: ${note}` : state;
      el.dataset.state = state;
    },
  };
}
