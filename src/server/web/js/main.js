// The dashboard's router: hash routes, one page module each; a page returns its cleanup
// (timers, event streams) and is re-rendered from scratch on navigation.
import { ApiError, loadSession, login, logout, session } from './api.js';
import { destroyCharts } from './charts.js';
import { errorBox, h } from './dom.js';
import { renderDirectory, renderFilesystems } from './files.js';
import { renderJob } from './job.js';
import { renderJobs } from './jobs.js';
import { renderOverview } from './overview.js';
import { renderRestore } from './restore.js';
import { renderSet } from './set.js';

const main = document.getElementById('main');
let cleanup = null;

const routes = [
  [/^#?\/?$/, () => renderOverview],
  [/^#\/jobs$/, () => renderJobs],
  [/^#\/job\/([^/]+)$/, () => renderJob],
  [/^#\/set\/([^/]+)\/([^/]+)$/, () => renderSet],
  [/^#\/restore\/([^/]+)\/([^/]+)\/([^/]+)$/, () => renderRestore],
  [/^#\/files\/([^/]+)\/([^/]+)\/([^/]+)$/, () => renderFilesystems],
  [/^#\/files\/([^/]+)\/([^/]+)\/([^/]+)\/([^/]+)\/([^/]+)(\/.*)?$/, () => renderDirectory],
];

function stopPage() {
  if (cleanup) { try { cleanup(); } catch { /* a page's cleanup never blocks navigation */ } }
  cleanup = null;
  destroyCharts();
}

async function route() {
  stopPage();
  if (!session) return showLogin();
  showHeader();
  const hash = location.hash;
  for (const [re, page] of routes) {
    const m = re.exec(hash);
    if (!m) continue;
    const params = m.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p)));
    main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    try {
      cleanup = (await page()(main, ...params)) ?? null;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      main.replaceChildren(errorBox(err));
    }
    return;
  }
  main.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
}

function showHeader() {
  document.getElementById('top').hidden = false;
  document.getElementById('who').textContent = `${session.user} (${session.role})`;
}

function showLogin() {
  document.getElementById('top').hidden = true;
  const msg = h('div');
  const user = h('input', { name: 'user', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'card login', onsubmit: async (ev) => {
    ev.preventDefault();
    msg.replaceChildren();
    try {
      await login(user.value, password.value);
      await route();
    } catch (err) {
      msg.replaceChildren(errorBox(err instanceof ApiError && err.status === 401 ? 'Wrong user name or password.' : err));
    }
  } },
  h('h1', {}, 'vmbkp — sign in'),
  h('label', {}, h('span', {}, 'User'), user),
  h('label', {}, h('span', {}, 'Password'), password),
  msg,
  h('button', { type: 'submit' }, 'Sign in'));
  main.replaceChildren(form);
}

window.addEventListener('hashchange', () => { void route(); });
// A session that expired or was revoked: back to the login form, keeping the page to return to.
window.addEventListener('vmbkp-unauthenticated', () => { stopPage(); void loadSession().then(() => route()); });
document.getElementById('logout').addEventListener('click', async () => {
  await logout();
  location.hash = '#/';
  await route();
});

loadSession().then(route, (err) => main.replaceChildren(errorBox(err)));
