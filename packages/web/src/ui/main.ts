import { comparePage } from './compare-page.js';
import { clear } from './dom.js';
import { livePage } from './live-page.js';
import { route } from './nav.js';
import { sessionPage } from './session-page.js';
import { sessionsPage } from './sessions-page.js';

let cleanup: (() => void) | undefined;

function render(): void {
  cleanup?.();
  const root = document.getElementById('app')!;
  clear(root);
  delete document.body.dataset.ready;
  const { parts, query } = route(location.hash);
  const [page, id] = parts;
  if (page === 'session' && id) {
    document.title = `${id} · agenttrace`;
    cleanup = sessionPage(root, id, query);
  } else if (page === 'compare') {
    document.title = 'Compare · agenttrace';
    cleanup = comparePage(root, query);
  } else if (page === 'live') {
    document.title = 'Live · agenttrace';
    cleanup = livePage(root);
  } else {
    document.title = 'Sessions · agenttrace';
    cleanup = sessionsPage(root, query);
  }
}

window.addEventListener('hashchange', render);
render();
