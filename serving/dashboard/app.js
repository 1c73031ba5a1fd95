// Micro dashboard: one ES module, no framework, no build step.
// Served by micro-serve at /assets/app.js; talks to the API of the same
// origin, or to the one named by `?api=http://host:port` (CORS).

// ---------------------------------------------------------------------------
// Vocabularies: the values come from the API's OpenAPI document (its enums,
// read once at start by loadVocabularies), so the dashboard offers what the
// service accepts; only their display names are kept here.
// ---------------------------------------------------------------------------

let LIFE_STAGES = [];
let MARITAL_STATUSES = [];
/** `[wire value, label]` of each interaction type. */
let INTERACTION_TYPES = [];
const LIFE_STAGE_LABELS = {
  young_adult: 'Young adult',
  midlife_adult: 'Midlife adult',
  young_family: 'Young family',
  mature_family: 'Mature family',
  senior: 'Senior',
};
const GENDERS = [['female', 'Female'], ['male', 'Male'], ['non_binary', 'Non-binary']];
const INCOME_BANDS = ['<25k', '25-50k', '50-100k', '100-200k', '200k+'];
// The seed's wire values, and the correct spellings the API accepts as
// aliases.
const WIRE_TYPE_LABELS = {
  PURCHACE: 'Purchase', PURCHASE: 'Purchase', SAVE: 'Save', INQUERY: 'Inquiry',
  INQUIRY: 'Inquiry', VIEW: 'View', SHARE: 'Share',
};
const EVENT_TYPES = ['user.registered', 'user.updated', 'user.deleted', 'interaction.recorded', 'profile.updated'];
const DEFAULT_VOCABULARIES = { spendingClass: ['1', '2', '3', '4', '5'], actingLifeStage: [] };
const METRIC_LABELS = { accuracy: 'Accuracy', macro_f1: 'Macro-F1', precision_at_3: 'Precision@3' };
const PAGE_SIZES = [10, 25, 50, 100];

// ---------------------------------------------------------------------------
// DOM helpers
// ---------------------------------------------------------------------------

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
  return parent;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'text') el.textContent = value;
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'value' && 'value' in el && !(el instanceof SVGElement)) el.value = value;
    else if (key === 'checked' || key === 'selected' || key === 'disabled') el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  return el;
}

/** An HTML element: h('p', {class: 'x'}, 'text', child, [more]). */
function h(tag, attrs, ...children) {
  return append(setAttrs(document.createElement(tag), attrs), children);
}

/** An SVG element. */
function s(tag, attrs, ...children) {
  return append(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
}

let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

function announce(message) {
  const region = document.getElementById('live-region');
  if (!region) return;
  region.textContent = '';
  setTimeout(() => { region.textContent = message; }, 30);
}

function flash(el) {
  if (!el) return;
  el.classList.remove('changed');
  void el.offsetWidth; // restart the animation
  el.classList.add('changed');
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

const pad2 = (n) => String(n).padStart(2, '0');

function fmtDateTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function timeEl(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: iso }, fmtDateTime(iso));
}

function fmtClock(d = new Date()) {
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

const pct = (x) => (typeof x === 'number' && Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '—');
const humanize = (v) => String(v).replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
const lifeStageLabel = (v) => (v ? LIFE_STAGE_LABELS[v] || humanize(v) : null);

/** Reads the vocabularies from the enums of the API's OpenAPI document. */
async function loadVocabularies() {
  const doc = await api('/openapi.json');
  const schemas = (doc && doc.components && doc.components.schemas) || {};
  const values = (name) => {
    const list = schemas[name] && schemas[name].enum;
    if (!Array.isArray(list)) throw new Error(`the API's document has no ${name} values`);
    return list.map(String);
  };
  LIFE_STAGES = values('LifeStage');
  MARITAL_STATUSES = values('MaritalStatus');
  INTERACTION_TYPES = values('InteractionType').map((v) => [v, WIRE_TYPE_LABELS[v] || humanize(v)]);
  DEFAULT_VOCABULARIES.actingLifeStage = LIFE_STAGES;
}
const dash = (v) => (v === null || v === undefined || v === '' ? h('span', { class: 'muted' }, '—') : String(v));

function lifeStageEl(v) {
  return v ? h('span', { class: 'tag', title: v }, lifeStageLabel(v)) : h('span', { class: 'muted' }, '—');
}

function chips(topics, empty = '—') {
  if (!topics || topics.length === 0) return h('span', { class: 'muted' }, empty);
  return h('ul', { class: 'chips', 'aria-label': 'Topics' }, topics.map((t) => h('li', { class: 'chip' }, t)));
}

function shortId(id, keep = 12) {
  const text = String(id ?? '');
  return text.length > keep + 1 ? `${text.slice(0, keep)}…` : text;
}

function spendingEl(c) {
  if (c === null || c === undefined) return h('span', { class: 'muted' }, '—');
  return h('span', { class: `sc sc-${c}`, title: `Spending class ${c} of 5` }, String(c));
}

// ---------------------------------------------------------------------------
// API access: one helper for every request, parsing JSON errors
// ---------------------------------------------------------------------------

const pageParams = new URLSearchParams(location.search);
const API_BASE = (pageParams.get('api') || '').replace(/\/+$/, '');

class ApiError extends Error {
  constructor(status, code, message, details = null, body = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.body = body;
  }
}

/**
 * Calls the API. Resolves with `{status, data}` for 2xx answers; rejects with
 * an ApiError (status 0 for network failures) carrying the service's
 * `{error: {code, message, details}}`.
 */
async function apiCall(path, { method = 'GET', query, body, signal, contentType = 'application/json' } = {}) {
  let url = API_BASE + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    const qs = q.toString();
    if (qs) url += `?${qs}`;
  }
  const init = { method, headers: { Accept: 'application/json' }, signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = contentType;
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', `Cannot reach the API at ${API_BASE || location.origin} (${e && e.message ? e.message : 'network error'}).`);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const err = data && typeof data === 'object' ? data.error : null;
    const message = (err && err.message) || text.slice(0, 300) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, (err && err.code) || `http_${res.status}`, message, err ? err.details ?? null : null, data);
  }
  setBanner(null);
  return { status: res.status, data };
}

async function api(path, options) {
  return (await apiCall(path, options)).data;
}

const enc = encodeURIComponent;
const isAbort = (e) => e && e.name === 'AbortError';

/** Field errors of a 422 answer as `[{field, message, index?}]`. */
function fieldErrors(err) {
  const d = err && err.details;
  if (!d) return [];
  if (Array.isArray(d)) {
    return d.filter((e) => e && typeof e === 'object').map((e) => ({ field: String(e.field ?? '$'), message: String(e.message ?? '') }));
  }
  if (typeof d === 'object' && Array.isArray(d.rejected)) {
    return d.rejected.flatMap((r) => (Array.isArray(r.errors) ? r.errors : []).map((e) => ({
      field: String(e.field ?? '$'), message: String(e.message ?? ''), index: r.index,
    })));
  }
  if (typeof d === 'object') return Object.entries(d).map(([field, message]) => ({ field, message: String(message) }));
  return [];
}

function errorText(err) {
  if (!err) return 'Unknown error';
  if (err instanceof ApiError) {
    const fields = fieldErrors(err);
    const extra = fields.length ? `: ${fields.map((f) => `${f.field} ${f.message}`).join('; ')}` : '';
    return err.status ? `${err.message}${extra} (HTTP ${err.status})` : err.message;
  }
  return String(err.message || err);
}

function setBanner(message) {
  const banner = document.getElementById('api-banner');
  if (!banner) return;
  if (!message) {
    if (!banner.hidden) banner.hidden = true;
    return;
  }
  banner.textContent = message;
  banner.hidden = false;
}

function errorBox(err, retry) {
  return h('div', { class: 'notice notice--error', role: 'alert' },
    h('p', {}, h('strong', {}, err instanceof ApiError && err.status === 0 ? 'Network error. ' : 'Request failed. '), errorText(err)),
    retry ? h('button', { type: 'button', class: 'btn btn--small', on: { click: retry } }, 'Retry') : null);
}

// ---------------------------------------------------------------------------
// Forms: labelled fields, per-field errors from 422 answers
// ---------------------------------------------------------------------------

/**
 * A labelled control. `field` is the API field path whose errors it shows
 * (`prefix: true` also takes `field.*`).
 */
function field({ id, label, type = 'text', field: apiField, prefix = false, hint, options, required, value, attrs = {}, wide, phoneWide }) {
  const hintId = hint ? `${id}-hint` : null;
  const errId = `${id}-error`;
  let control;
  const common = { id, name: apiField || id, 'data-field': apiField || '', 'aria-describedby': hintId, required: required || null, 'aria-required': required ? 'true' : null, ...attrs };
  if (prefix) common['data-field-prefix'] = 'true';
  if (type === 'select') {
    control = h('select', common, (options || []).map(([v, text]) => h('option', { value: v, selected: value !== undefined && String(value) === v }, text)));
  } else if (type === 'textarea') {
    control = h('textarea', common);
    if (value !== undefined) control.value = value;
  } else {
    control = h('input', { type, ...common, value: value ?? null });
  }
  control.dataset.hint = hintId || '';
  return h('div', { class: ['field', wide && 'field--wide', phoneWide && 'field--phone-wide'] },
    h('label', { for: id }, label, required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null),
    control,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errId, hidden: true }));
}

function controlsOf(form) {
  return [...form.querySelectorAll('input, select, textarea')].filter((c) => c.dataset.field !== undefined);
}

function clearErrors(form) {
  for (const c of controlsOf(form)) {
    c.removeAttribute('aria-invalid');
    c.setAttribute('aria-describedby', c.dataset.hint || '');
    if (!c.dataset.hint) c.removeAttribute('aria-describedby');
    const e = document.getElementById(`${c.id}-error`);
    if (e) { e.textContent = ''; e.hidden = true; }
  }
  const summary = form.querySelector('.error-summary');
  if (summary) { summary.hidden = true; summary.replaceChildren(); }
}

function controlFor(form, apiField) {
  const controls = controlsOf(form);
  return controls.find((c) => c.dataset.field === apiField)
    || controls.find((c) => c.dataset.fieldPrefix === 'true' && apiField.startsWith(`${c.dataset.field}.`))
    || null;
}

function labelOf(control) {
  const label = control && document.querySelector(`label[for="${control.id}"]`);
  return label ? label.firstChild.textContent.trim() : null;
}

/** Shows errors `[{field, message}]` next to their fields and in a summary. */
function showErrors(form, errors, heading = 'The service did not accept this:') {
  clearErrors(form);
  const summary = form.querySelector('.error-summary');
  const items = [];
  let first = null;
  for (const { field: name, message } of errors) {
    const control = controlFor(form, name);
    if (control) {
      const errEl = document.getElementById(`${control.id}-error`);
      const text = name === control.dataset.field ? message : `${name}: ${message}`;
      errEl.textContent = errEl.textContent ? `${errEl.textContent}; ${text}` : text;
      errEl.hidden = false;
      control.setAttribute('aria-invalid', 'true');
      control.setAttribute('aria-describedby', [control.dataset.hint, errEl.id].filter(Boolean).join(' '));
      const details = control.closest('details');
      if (details) details.open = true;
      first = first || control;
      items.push(h('li', {}, h('button', { type: 'button', class: 'linklike', on: { click: () => control.focus() } }, labelOf(control) || name), `: ${message}`));
    } else {
      items.push(h('li', {}, h('code', {}, name), `: ${message}`));
    }
  }
  if (summary) {
    append(summary, [h('p', {}, h('strong', {}, heading)), h('ul', {}, items)]);
    summary.hidden = false;
  }
  return first;
}

function resultBox(kind, ...content) {
  return h('div', { class: `notice notice--${kind}`, role: kind === 'error' ? 'alert' : 'status' }, content);
}

function setBusy(button, busy, busyText) {
  if (busy) {
    button.dataset.label = button.textContent;
    button.textContent = busyText;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  } else {
    button.textContent = button.dataset.label || button.textContent;
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

// ---------------------------------------------------------------------------
// Paging by opaque cursor
// ---------------------------------------------------------------------------

class Pager {
  constructor(onChange, limit = 25) {
    this.onChange = onChange;
    this.limit = limit;
    this.stack = [null];
    this.nextCursor = null;
    this.count = 0;
    const sizeId = nextId('page-size');
    this.prev = h('button', { type: 'button', class: 'btn btn--small', on: { click: () => this.back() } }, '← Previous');
    this.next = h('button', { type: 'button', class: 'btn btn--small', on: { click: () => this.forward() } }, 'Next →');
    this.label = h('span', { class: 'pager__label', 'aria-live': 'polite' });
    this.size = h('select', { id: sizeId, on: { change: () => { this.limit = Number(this.size.value); this.reset(); this.onChange(); } } },
      PAGE_SIZES.map((n) => h('option', { value: String(n), selected: n === limit }, String(n))));
    this.el = h('div', { class: 'pager' },
      h('div', { class: 'pager__size' }, h('label', { for: sizeId }, 'Rows'), this.size),
      this.label, h('div', { class: 'pager__buttons' }, this.prev, this.next));
    this.update();
  }

  get cursor() { return this.stack[this.stack.length - 1]; }

  reset() { this.stack = [null]; this.nextCursor = null; }

  back() {
    if (this.stack.length > 1) { this.stack.pop(); this.onChange(); }
  }

  forward() {
    if (this.nextCursor) { this.stack.push(this.nextCursor); this.onChange(); }
  }

  /** Records the answer of the current page. */
  loaded(count, nextCursor) {
    this.count = count;
    this.nextCursor = nextCursor || null;
    this.update();
  }

  update() {
    this.prev.disabled = this.stack.length <= 1;
    this.next.disabled = !this.nextCursor;
    this.label.textContent = `Page ${this.stack.length}${this.count ? ` · ${this.count} row${this.count === 1 ? '' : 's'}` : ''}`;
  }
}

function table(columns, caption, testid) {
  const tbody = h('tbody');
  const el = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', { class: 'table', 'data-testid': testid },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.cls }, c.label)))),
      tbody));
  return { el, tbody };
}

function emptyRow(tbody, columns, content) {
  tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: String(columns) }, content)));
}

// ---------------------------------------------------------------------------
// Page lifecycle: every page gets a context that stops its timers and
// aborts its requests when the user navigates away.
// ---------------------------------------------------------------------------

function newContext() {
  const controller = new AbortController();
  const ctx = {
    alive: true,
    signal: controller.signal,
    timers: new Set(),
    cleanups: [],
    timeout(fn, ms) {
      const t = setTimeout(() => { ctx.timers.delete(t); if (ctx.alive) fn(); }, ms);
      ctx.timers.add(t);
      return t;
    },
    /** Runs `fn` now and again `delay()` ms after each run finishes. */
    poll(fn, delay) {
      let timer = null;
      let running = false;
      let again = false;
      const run = async () => {
        timer = null;
        if (!ctx.alive) return;
        running = true;
        try { await fn(); } catch (e) { if (!isAbort(e)) console.error(e); }
        running = false;
        if (!ctx.alive) return;
        if (again) { again = false; run(); return; }
        timer = ctx.timeout(run, typeof delay === 'function' ? delay() : delay);
      };
      run();
      return {
        /** Runs again now (or right after the run in flight). */
        now() {
          if (running) { again = true; return; }
          if (timer) { clearTimeout(timer); ctx.timers.delete(timer); }
          run();
        },
      };
    },
    dispose() {
      ctx.alive = false;
      for (const t of ctx.timers) clearTimeout(t);
      ctx.timers.clear();
      controller.abort();
      for (const fn of ctx.cleanups) fn();
    },
  };
  return ctx;
}

/** Polling interval: fast while the page is visible, slow in a background tab. */
const visibleDelay = (ms) => () => (document.hidden ? Math.max(ms, 5000) : ms);

function pageHead(title, subtitle, ...extra) {
  return h('div', { class: 'page-head' },
    h('div', {}, h('h1', { tabindex: '-1' }, title), subtitle ? h('p', { class: 'muted' }, subtitle) : null),
    extra.length ? h('div', { class: 'page-head__extra' }, extra) : null);
}

function liveBadge(text = 'Live') {
  const clock = h('span', { class: 'live__time' });
  const el = h('span', { class: 'live', title: 'Refreshes automatically' }, h('span', { class: 'live__dot', 'aria-hidden': 'true' }), h('span', {}, text), clock);
  return { el, tick: () => { clock.textContent = ` · ${fmtClock()}`; el.classList.remove('live--error'); }, fail: () => el.classList.add('live--error') };
}

/** Updates the page's query string in the hash without re-rendering. */
function replaceHashQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const qs = q.toString();
  const hash = `#${path}${qs ? `?${qs}` : ''}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/**
 * The declared fields of a user, as form controls with ids `${prefix}-…`:
 * the registration form's and the edit form's.
 */
function declaredFields(prefix, currentYear) {
  const byId = {
    email: field({ id: `${prefix}-email`, label: 'E-mail', type: 'email', field: 'email', required: true, phoneWide: true, attrs: { autocomplete: 'off', inputmode: 'email' } }),
    name: field({ id: `${prefix}-name`, label: 'Name', field: 'name', phoneWide: true, attrs: { autocomplete: 'off', maxlength: '200' } }),
    gender: field({ id: `${prefix}-gender`, label: 'Gender', type: 'select', field: 'gender', options: [['', 'Not declared'], ...GENDERS] }),
    birthYear: field({ id: `${prefix}-birth-year`, label: 'Birth year', type: 'number', field: 'birthYear', hint: `1900–${currentYear}`, attrs: { min: '1900', max: String(currentYear), step: '1', inputmode: 'numeric' } }),
    adults: field({ id: `${prefix}-adults`, label: 'Adults in household', type: 'number', field: 'adults', attrs: { min: '0', max: '20', step: '1', inputmode: 'numeric' } }),
    kids: field({ id: `${prefix}-kids`, label: 'Kids in household', type: 'number', field: 'kids', attrs: { min: '0', max: '20', step: '1', inputmode: 'numeric' } }),
    maritalStatus: field({ id: `${prefix}-marital`, label: 'Marital status', type: 'select', field: 'maritalStatus', options: [['', 'Not declared'], ...MARITAL_STATUSES.map((m) => [m, humanize(m)])] }),
    incomeBand: field({ id: `${prefix}-income`, label: 'Income band', type: 'select', field: 'incomeBand', options: [['', 'Not declared'], ...INCOME_BANDS.map((b) => [b, b])] }),
  };
  return byId;
}

/** What a user declares, and may edit (everything but the id). */
const DECLARED_FIELDS = ['email', 'name', 'gender', 'birthYear', 'adults', 'kids', 'maritalStatus', 'incomeBand'];

/** Declared fields read from a form (empty ones `undefined`); type errors go to `errors`. */
function readDeclared(form, errors) {
  const control = (name) => form.querySelector(`[data-field="${name}"]`);
  const text = (name) => control(name).value.trim() || undefined;
  const number = (name) => {
    const c = control(name);
    if (c.validity.badInput) { errors.push({ field: name, message: 'must be a number' }); return undefined; }
    const v = c.value.trim();
    return v === '' ? undefined : Number(v);
  };
  return {
    email: control('email').value.trim(),
    name: text('name'),
    gender: text('gender'),
    birthYear: number('birthYear'),
    adults: number('adults'),
    kids: number('kids'),
    maritalStatus: text('maritalStatus'),
    incomeBand: text('incomeBand'),
  };
}

/**
 * Shows an API error on a user form: a 422's fields next to them, a taken
 * e-mail or id (409) at its field; anything else goes to `otherwise`.
 */
function showUserFormError(form, e, otherwise) {
  let errors = null;
  if (e instanceof ApiError && e.status === 422) {
    errors = fieldErrors(e);
    if (!errors.length) errors = [{ field: '$', message: e.message }];
  } else if (e instanceof ApiError && e.status === 409) {
    errors = [{ field: /email/i.test(e.message) ? 'email' : 'userId', message: e.message }];
  }
  if (!errors) { otherwise(); return; }
  const first = showErrors(form, errors, e.status === 409 ? 'Already registered:' : undefined);
  if (first) first.focus();
}

function renderUsers(main, ctx) {
  const currentYear = new Date().getFullYear();
  const regFields = declaredFields('reg', currentYear);
  const form = h('form', { id: 'reg-form', class: 'form', novalidate: true, 'aria-labelledby': 'reg-title' },
    h('div', { class: 'error-summary notice notice--error', role: 'alert', tabindex: '-1', hidden: true }),
    h('div', { class: 'form-grid' },
      regFields.email, regFields.name,
      field({ id: 'reg-user-id', label: 'User ID', field: 'userId', phoneWide: true, hint: 'Optional: one is assigned when empty.', attrs: { autocomplete: 'off' } }),
      regFields.gender, regFields.birthYear, regFields.adults, regFields.kids, regFields.maritalStatus, regFields.incomeBand),
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'btn btn--primary', id: 'reg-submit' }, 'Register user'),
      h('button', { type: 'reset', class: 'btn' }, 'Clear')));
  const regResult = h('div', { class: 'result', 'data-testid': 'register-result' });
  const editForm = h('form', { id: 'edit-form', class: 'form', novalidate: true, 'aria-labelledby': 'edit-title' },
    h('div', { class: 'error-summary notice notice--error', role: 'alert', tabindex: '-1', hidden: true }),
    h('div', { class: 'form-grid' }, Object.values(declaredFields('edit', currentYear))),
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'btn btn--primary', id: 'edit-submit' }, 'Save changes'),
      h('button', { type: 'button', class: 'btn', id: 'edit-cancel', on: { click: () => closeEdit() } }, 'Cancel')));
  const editTitle = h('h2', { id: 'edit-title', tabindex: '-1' }, 'Edit user');
  const editCard = h('section', { class: 'card', id: 'edit-card', hidden: true, 'aria-labelledby': 'edit-title' },
    editTitle,
    h('p', { class: 'muted small' }, 'Only the fields you change are sent; a field you empty is removed. The profile\'s declared gender and life stage follow at once.'),
    editForm);
  let editing = null;
  const listResult = h('div', { class: 'result', 'data-testid': 'users-result' });
  const columns = [
    { label: 'User ID' }, { label: 'E-mail' }, { label: 'Name' }, { label: 'Declared' },
    { label: 'Registered' }, { label: 'Actions', cls: 'actions' },
  ];
  const { el: tableEl, tbody } = table(columns, 'Registered users', 'users-table');
  const pinned = new Map(); // users registered in this visit, shown on top
  const pager = new Pager(() => load(), 25);
  const listError = h('div');

  append(main, [
    pageHead('Users', 'Registrations: declared data that profiles start from.'),
    h('div', { class: 'stack' },
      h('section', { class: 'card', 'aria-labelledby': 'reg-title' },
        h('h2', { id: 'reg-title' }, 'Register a user'),
        h('p', { class: 'muted small' }, 'Fields marked * are required. Everything else is optional, as in life.'),
        form, regResult),
      editCard,
      h('section', { class: 'card', 'aria-labelledby': 'users-title' },
        h('div', { class: 'card-head' }, h('h2', { id: 'users-title' }, 'All users'),
          h('button', { type: 'button', class: 'btn btn--small', on: { click: () => load() } }, 'Refresh')),
        listResult, listError, tableEl, pager.el)),
  ]);

  function declared(u) {
    const facts = [
      u.gender && ['Gender', u.gender],
      u.birthYear !== undefined && u.birthYear !== null && ['Born', u.birthYear],
      u.adults !== undefined && u.adults !== null && ['Adults', u.adults],
      u.kids !== undefined && u.kids !== null && ['Kids', u.kids],
      u.maritalStatus && ['Marital status', u.maritalStatus],
      u.incomeBand && ['Income', u.incomeBand],
    ].filter(Boolean);
    if (!facts.length) return h('span', { class: 'muted' }, 'nothing declared');
    return h('ul', { class: 'facts-inline' }, facts.map(([k, v]) => h('li', {}, h('span', { class: 'muted' }, `${k} `), String(v))));
  }

  function row(u, isPinned) {
    const id = u.userId;
    return h('tr', { 'data-user-id': id, class: isPinned ? 'pinned' : null },
      h('td', { class: 'id-cell' }, h('a', { href: `#/profiles/${enc(id)}`, class: 'mono' }, id), isPinned ? h('span', { class: 'pill pill--new' }, 'new') : null),
      h('td', {}, dash(u.email)), h('td', {}, dash(u.name)), h('td', { class: 'declared' }, declared(u)), h('td', {}, timeEl(u.createdAt)),
      h('td', { class: 'actions' }, h('div', { class: 'row-actions' },
        h('a', { class: 'btn btn--small', href: `#/profiles/${enc(id)}`, 'aria-label': `Profile of ${id}` }, 'Profile'),
        h('button', { type: 'button', class: 'btn btn--small', 'aria-label': `Edit user ${id}`, 'data-testid': 'edit-user', on: { click: () => openEdit(u) } }, 'Edit'),
        h('button', { type: 'button', class: 'btn btn--small btn--danger', 'aria-label': `Delete user ${id}`, on: { click: () => remove(id) } }, 'Delete'))));
  }

  async function load() {
    listError.replaceChildren();
    try {
      const data = await api('/v1/users', { query: { limit: pager.limit, cursor: pager.cursor }, signal: ctx.signal });
      const items = data.items || [];
      pager.loaded(items.length, data.nextCursor);
      const onPage = new Set(items.map((u) => u.userId));
      const extra = [...pinned.values()].filter((u) => !onPage.has(u.userId));
      const rows = [...extra.map((u) => row(u, true)), ...items.map((u) => row(u, pinned.has(u.userId)))];
      if (rows.length === 0) emptyRow(tbody, columns.length, 'No users yet. Register the first one with the form above.');
      else tbody.replaceChildren(...rows);
    } catch (e) {
      if (isAbort(e)) return;
      listError.replaceChildren(errorBox(e, load));
      if (!tbody.children.length) emptyRow(tbody, columns.length, 'Could not load users.');
    }
  }

  async function remove(id) {
    if (!window.confirm(`Delete user ${id}? This erases their registration, interactions, events and profile.`)) return;
    try {
      const data = await api(`/v1/users/${enc(id)}`, { method: 'DELETE' });
      const r = data.removed || {};
      pinned.delete(id);
      listResult.replaceChildren(resultBox('success',
        h('p', {}, h('strong', {}, `Removed user ${data.userId || id}: `),
          `${r.user ?? 0} registration, ${r.interactions ?? 0} interactions, ${r.events ?? 0} events, ${r.profiles ?? 0} profile${r.profiles === 1 ? '' : 's'}.`)));
      announce(`User ${id} deleted`);
      load();
    } catch (e) {
      listResult.replaceChildren(resultBox('error', h('p', {}, `Could not delete ${id}: ${errorText(e)}`)));
    }
  }

  /** Opens the edit form on a user, filled with what they declared. */
  function openEdit(u) {
    editing = u;
    clearErrors(editForm);
    for (const name of DECLARED_FIELDS) {
      const control = editForm.querySelector(`[data-field="${name}"]`);
      const current = u[name] ?? '';
      if (control.tagName === 'SELECT' && current !== '' && ![...control.options].some((o) => o.value === String(current))) {
        // A value declared through the API that the form does not offer.
        control.append(h('option', { value: String(current) }, String(current)));
      }
      control.value = String(current);
    }
    editTitle.textContent = `Edit user ${u.userId}`;
    editCard.hidden = false;
    editCard.scrollIntoView({ block: 'nearest' });
    editForm.querySelector('[data-field="email"]').focus();
  }

  function closeEdit() {
    editing = null;
    clearErrors(editForm);
    editCard.hidden = true;
  }

  editForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!editing) return;
    const submit = editForm.querySelector('#edit-submit');
    const local = [];
    const now = readDeclared(editForm, local);
    if (local.length) {
      const first = showErrors(editForm, local, 'Please fix these fields:');
      if (first) first.focus();
      return;
    }
    // A merge patch: changed fields only, an emptied one as null.
    const patch = {};
    for (const [name, value] of Object.entries(now)) {
      const before = editing[name] ?? undefined;
      if (value !== before) patch[name] = value === undefined ? null : value;
    }
    const id = editing.userId;
    if (!Object.keys(patch).length) {
      closeEdit();
      listResult.replaceChildren(resultBox('info', h('p', {}, `Nothing changed for user ${id}.`)));
      return;
    }
    clearErrors(editForm);
    setBusy(submit, true, 'Saving…');
    try {
      const data = await api(`/v1/users/${enc(id)}`, { method: 'PATCH', body: patch, contentType: 'application/merge-patch+json' });
      const user = data.user || {};
      const about = (data.profile && data.profile.about) || {};
      if (pinned.has(id)) pinned.set(id, user);
      closeEdit();
      listResult.replaceChildren(resultBox('success',
        h('p', { 'data-testid': 'edit-result' }, h('strong', {}, `Saved user ${id}. `),
          (data.changed || []).length ? `Changed: ${data.changed.join(', ')}. ` : 'Nothing changed. ',
          `Declared life stage: ${lifeStageLabel(about.realLifeStage) || 'unknown'}.`)));
      announce(`User ${id} saved`);
      await load();
    } catch (e) {
      showUserFormError(editForm, e, () => showErrors(editForm, [{ field: '$', message: errorText(e) }], 'Could not save:'));
    } finally {
      setBusy(submit, false);
    }
  });

  form.addEventListener('reset', () => { clearErrors(form); regResult.replaceChildren(); });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const submit = form.querySelector('#reg-submit');
    const local = [];
    const body = { userId: form.querySelector('#reg-user-id').value.trim() || undefined, ...readDeclared(form, local) };
    regResult.replaceChildren();
    if (local.length) {
      const first = showErrors(form, local, 'Please fix these fields:');
      if (first) first.focus();
      return;
    }
    clearErrors(form);
    setBusy(submit, true, 'Registering…');
    try {
      const data = await api('/v1/users', { method: 'POST', body });
      const user = data.user || {};
      const profile = data.profile || {};
      pinned.set(user.userId, user);
      form.reset();
      regResult.replaceChildren(resultBox('success',
        h('p', {}, h('strong', {}, 'Registered. '), `${user.email} is user `, h('code', { 'data-testid': 'new-user-id' }, user.userId), '.'),
        h('p', {}, `Declared life stage: ${lifeStageLabel(profile.about && profile.about.realLifeStage) || 'unknown'}. `,
          h('a', { href: `#/profiles/${enc(user.userId)}`, 'data-testid': 'new-user-profile' }, 'Open the live profile →'))));
      announce(`Registered user ${user.userId}`);
      pager.reset();
      await load();
    } catch (e) {
      showUserFormError(form, e, () => regResult.replaceChildren(errorBox(e)));
    } finally {
      setBusy(submit, false);
    }
  });

  load();
}

// ---------------------------------------------------------------------------
// Profiles: audience table
// ---------------------------------------------------------------------------

function renderProfiles(main, ctx, route) {
  const q = route.query;
  const filters = {
    spendingClass: q.get('spendingClass') || '',
    lifeStage: q.get('lifeStage') || '',
    realLifeStage: q.get('realLifeStage') || '',
    topic: q.get('topic') || '',
  };
  const stageOptions = [['', 'Any'], ...LIFE_STAGES.map((l) => [l, lifeStageLabel(l)])];
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter profiles', novalidate: true },
    field({ id: 'pf-spending', label: 'Spending class', type: 'select', field: 'spendingClass', value: filters.spendingClass,
      options: [['', 'Any'], ['1', '1 · budget'], ['2', '2'], ['3', '3'], ['4', '4'], ['5', '5 · premium']] }),
    field({ id: 'pf-stage', label: 'Acting life stage', type: 'select', field: 'lifeStage', value: filters.lifeStage, options: stageOptions }),
    field({ id: 'pf-real', label: 'Declared life stage', type: 'select', field: 'realLifeStage', value: filters.realLifeStage, options: stageOptions }),
    field({ id: 'pf-topic', label: 'Topic', type: 'search', field: 'topic', value: filters.topic, attrs: { placeholder: 'e.g. outdoor', autocomplete: 'off' } }),
    h('div', { class: 'filters__actions' },
      h('button', { type: 'submit', class: 'btn btn--primary' }, 'Apply'),
      h('button', { type: 'button', class: 'btn', on: { click: resetFilters } }, 'Reset')),
    h('div', { class: 'error-summary notice notice--error', role: 'alert', hidden: true }));
  const live = liveBadge('Auto-refresh');
  const liveToggle = h('input', { type: 'checkbox', id: 'pf-live', checked: true });
  const columns = [
    { label: 'User' }, { label: 'Spending', cls: 'num' }, { label: 'Acting stage' }, { label: 'Declared stage' },
    { label: 'Topics' }, { label: 'Interactions', cls: 'num' }, { label: 'Updated · model' },
  ];
  const { el: tableEl, tbody } = table(columns, 'Profiles', 'profiles-table');
  const listError = h('div');
  const pager = new Pager(() => poller.now(), 25);
  const previous = new Map();

  append(main, [
    pageHead('Profiles', 'Live profiles: declared facts next to what behaviour says. Filter them into audiences.',
      live.el, h('label', { class: 'toggle', for: 'pf-live' }, liveToggle, ' every 3 s')),
    h('section', { class: 'card', 'aria-label': 'Filters' }, form),
    h('section', { class: 'card', 'aria-labelledby': 'profiles-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'profiles-title' }, 'Profiles'),
        h('button', { type: 'button', class: 'btn btn--small', on: { click: () => poller.now() } }, 'Refresh')),
      listError, tableEl, pager.el),
  ]);

  function readFilters() {
    filters.spendingClass = form.querySelector('#pf-spending').value;
    filters.lifeStage = form.querySelector('#pf-stage').value;
    filters.realLifeStage = form.querySelector('#pf-real').value;
    filters.topic = form.querySelector('#pf-topic').value.trim();
    replaceHashQuery('/profiles', filters);
    pager.reset();
    previous.clear();
    poller.now();
  }

  function resetFilters() {
    form.reset();
    for (const sel of form.querySelectorAll('select')) sel.value = '';
    form.querySelector('#pf-topic').value = '';
    readFilters();
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); readFilters(); });
  for (const sel of form.querySelectorAll('select')) sel.addEventListener('change', readFilters);
  let debounce = null;
  form.querySelector('#pf-topic').addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { if (ctx.alive) readFilters(); }, 500);
  });
  ctx.cleanups.push(() => clearTimeout(debounce));

  function row(p) {
    const a = p.about || {};
    const tr = h('tr', { 'data-user-id': p.userId },
      h('td', { class: 'id-cell' }, h('a', { href: `#/profiles/${enc(p.userId)}`, class: 'mono' }, p.userId)),
      h('td', { class: 'num' }, spendingEl(a.spendingClass)),
      h('td', {}, lifeStageEl(a.actingLifeStage)),
      h('td', {}, lifeStageEl(a.realLifeStage)),
      h('td', { class: 'topics' }, chips(p.topics)),
      h('td', { class: 'num' }, String(p.interactionCount ?? 0)),
      h('td', {}, timeEl(p.updatedAt), h('div', { class: 'mono small muted', title: p.modelVersion ? `Model ${p.modelVersion}` : 'No model has scored this profile' },
        p.modelVersion ? String(p.modelVersion).replace(/^profile-/, '') : 'no model')));
    const key = JSON.stringify(p);
    if (previous.has(p.userId) && previous.get(p.userId) !== key) flash(tr);
    previous.set(p.userId, key);
    return tr;
  }

  let lastKey = null;
  async function load() {
    try {
      const data = await api('/v1/profiles', {
        query: { ...filters, limit: pager.limit, cursor: pager.cursor }, signal: ctx.signal,
      });
      clearErrors(form);
      listError.replaceChildren();
      const items = data.items || [];
      pager.loaded(items.length, data.nextCursor);
      live.tick();
      const key = JSON.stringify(items);
      if (key === lastKey) return;
      lastKey = key;
      if (items.length === 0) {
        const filtered = Object.values(filters).some(Boolean);
        emptyRow(tbody, columns.length, filtered ? 'No profiles match these filters.' : 'No profiles yet. They appear as users register and interact.');
      } else {
        tbody.replaceChildren(...items.map(row));
      }
    } catch (e) {
      if (isAbort(e)) return;
      live.fail();
      lastKey = null;
      if (e instanceof ApiError && e.status === 422) {
        showErrors(form, fieldErrors(e), 'Invalid filter:');
      } else {
        listError.replaceChildren(errorBox(e, () => poller.now()));
      }
    }
  }

  const poller = ctx.poll(async () => { if (liveToggle.checked || lastKey === null) await load(); }, visibleDelay(3000));
  liveToggle.addEventListener('change', () => { if (liveToggle.checked) poller.now(); });
}

// ---------------------------------------------------------------------------
// Profile detail: polls while shown, highlights what changed
// ---------------------------------------------------------------------------

function renderProfileDetail(main, ctx, route) {
  const userId = route.params[0];
  const live = liveBadge('Live');
  const values = new Map(); // key -> {el, text}
  const notFound = h('div');
  const errorEl = h('div');

  function slot(key, testid, cls = 'value') {
    const el = h('span', { class: cls, 'data-testid': testid });
    values.set(key, { el, text: undefined });
    return el;
  }

  function bar(key, label) {
    const fill = h('span', { class: 'bar__fill' });
    const text = slot(`conf.${key}`, `confidence-${key}`, 'bar__value');
    const track = h('span', { class: 'bar__track', role: 'img', 'aria-label': `${label} confidence` }, fill);
    return { el: h('div', { class: 'bar' }, h('span', { class: 'bar__label' }, label), track, text), fill, track };
  }

  const bars = { spendingClass: bar('spendingClass', 'Spending class'), actingLifeStage: bar('actingLifeStage', 'Acting life stage') };
  const topicsEl = h('div', { 'data-testid': 'topics' });
  const stageCompare = h('p', { class: 'compare', 'data-testid': 'life-stage-compare' });
  const scale = h('div', { class: 'scale', 'aria-hidden': 'true' }, [1, 2, 3, 4, 5].map((n) => h('span', { class: 'scale__step', 'data-step': String(n) }, String(n))));
  const regBody = h('div', { class: 'muted' }, 'Loading registration…');

  append(main, [
    h('p', { class: 'crumbs' }, h('a', { href: '#/profiles' }, '← All profiles')),
    pageHead('Profile', null, live.el),
    h('p', { class: 'user-line' }, 'User ', h('code', { 'data-testid': 'profile-user-id' }, userId), ' · ',
      h('a', { href: `#/events?userId=${enc(userId)}` }, 'Events and post interactions')),
    notFound, errorEl,
    h('div', { class: 'grid grid--profile', id: 'profile-body' },
      h('section', { class: 'card card--wide', 'aria-labelledby': 'ls-title' },
        h('h2', { id: 'ls-title' }, 'Life stage'),
        h('div', { class: 'versus' },
          h('div', { class: 'versus__side' }, h('p', { class: 'kicker' }, 'Declared (real)'), slot('realLifeStage', 'real-life-stage', 'value value--big'),
            h('p', { class: 'hint' }, 'From registration data by fixed rules')),
          h('div', { class: 'versus__vs', 'aria-hidden': 'true' }, 'vs'),
          h('div', { class: 'versus__side' }, h('p', { class: 'kicker' }, 'Acting (behaviour)'), slot('actingLifeStage', 'acting-life-stage', 'value value--big'),
            h('p', { class: 'hint' }, 'Predicted by the model from interactions'))),
        stageCompare),
      h('section', { class: 'card', 'aria-labelledby': 'act-title' },
        h('h2', { id: 'act-title' }, 'Activity'),
        h('dl', { class: 'facts' },
          h('div', {}, h('dt', {}, 'Interactions'), h('dd', {}, slot('interactionCount', 'interaction-count', 'value value--big'))),
          h('div', {}, h('dt', {}, 'Model version'), h('dd', {}, slot('modelVersion', 'model-version', 'value mono small'))),
          h('div', {}, h('dt', {}, 'Updated'), h('dd', {}, slot('updatedAt', 'updated-at'))),
          h('div', {}, h('dt', {}, 'Gender (declared)'), h('dd', {}, slot('gender', 'gender'))))),
      h('section', { class: 'card', 'aria-labelledby': 'sc-title' },
        h('h2', { id: 'sc-title' }, 'Spending class'),
        h('p', {}, slot('spendingClass', 'spending-class', 'value value--big'), h('span', { class: 'muted' }, ' of 5')),
        scale, h('p', { class: 'scale__ends muted small' }, h('span', {}, 'budget'), h('span', {}, 'premium'))),
      h('section', { class: 'card', 'aria-labelledby': 'conf-title' },
        h('h2', { id: 'conf-title' }, 'Confidence'), bars.spendingClass.el, bars.actingLifeStage.el),
      h('section', { class: 'card', 'aria-labelledby': 'top-title' },
        h('h2', { id: 'top-title' }, 'Topics'), h('p', { class: 'hint' }, 'Strongest first'), topicsEl),
      h('section', { class: 'card', 'aria-labelledby': 'reg-title2' },
        h('h2', { id: 'reg-title2' }, 'Registration'), regBody)),
  ]);

  function setValue(key, text, nodeFn) {
    const v = values.get(key);
    if (v.text === text) return false;
    const changed = v.text !== undefined;
    v.text = text;
    v.el.replaceChildren(nodeFn ? nodeFn() : text);
    if (changed) flash(v.el.closest('dd, .versus__side, p, .bar') || v.el);
    return changed;
  }

  let lastTopics;
  function render(p) {
    const a = p.about || {};
    const c = p.confidence || {};
    const changes = [];
    const mark = (key, text, nodeFn, label) => { if (setValue(key, text, nodeFn)) changes.push(`${label} ${text}`); };
    mark('interactionCount', String(p.interactionCount ?? 0), null, 'Interactions');
    mark('realLifeStage', lifeStageLabel(a.realLifeStage) || 'Unknown', null, 'Declared life stage');
    mark('actingLifeStage', lifeStageLabel(a.actingLifeStage) || 'Not predicted yet', null, 'Acting life stage');
    mark('spendingClass', a.spendingClass ? String(a.spendingClass) : '—', null, 'Spending class');
    mark('modelVersion', p.modelVersion || 'none (declared data only)', null, 'Model');
    setValue('updatedAt', p.updatedAt || '', () => timeEl(p.updatedAt));
    mark('gender', a.gender || 'Not declared', null, 'Gender');
    for (const key of ['spendingClass', 'actingLifeStage']) {
      const value = c[key];
      const has = typeof value === 'number';
      setValue(`conf.${key}`, has ? pct(value) : '—');
      bars[key].fill.style.width = has ? `${Math.round(value * 100)}%` : '0%';
      bars[key].track.setAttribute('aria-label', `${key === 'spendingClass' ? 'Spending class' : 'Acting life stage'} confidence ${has ? pct(value) : 'unknown'}`);
    }
    for (const step of scale.children) step.classList.toggle('on', Number(step.dataset.step) === a.spendingClass);
    const topicsKey = JSON.stringify(p.topics || []);
    if (topicsKey !== lastTopics) {
      topicsEl.replaceChildren(chips(p.topics, 'No topics yet: they come from interactions with catalog items.'));
      if (lastTopics !== undefined) { flash(topicsEl); changes.push('Topics changed'); }
      lastTopics = topicsKey;
    }
    if (a.realLifeStage && a.actingLifeStage) {
      const same = a.realLifeStage === a.actingLifeStage;
      stageCompare.replaceChildren(h('span', { class: `pill ${same ? 'pill--ok' : 'pill--warn'}` }, same ? 'Same' : 'Differs'),
        same ? ' Behaviour matches the declared life stage.' : ' Behaviour suggests a different life stage than declared: useful to messaging.');
    } else {
      stageCompare.replaceChildren(h('span', { class: 'muted' }, a.actingLifeStage ? 'No declared life stage to compare with.' : 'The acting life stage appears once a model scores this user’s interactions.'));
    }
    if (changes.length) announce(changes.join('. '));
  }

  // Registration, once (it does not change while shown).
  api(`/v1/users/${enc(userId)}`, { signal: ctx.signal }).then((u) => {
    const rows = [['E-mail', u.email], ['Name', u.name], ['Birth year', u.birthYear], ['Adults', u.adults], ['Kids', u.kids],
      ['Marital status', u.maritalStatus], ['Income band', u.incomeBand], ['Registered', fmtDateTime(u.createdAt)]];
    regBody.className = '';
    regBody.replaceChildren(h('dl', { class: 'facts facts--compact' }, rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, dash(v))))));
  }).catch((e) => {
    if (isAbort(e)) return;
    regBody.replaceChildren(e instanceof ApiError && e.status === 404
      ? 'No registration stored: this profile comes from interactions only.'
      : `Could not load the registration: ${errorText(e)}`);
  });

  const poller = ctx.poll(async () => {
    try {
      const p = await api(`/v1/profiles/${enc(userId)}`, { signal: ctx.signal });
      notFound.replaceChildren();
      errorEl.replaceChildren();
      main.querySelector('#profile-body').hidden = false;
      render(p);
      live.tick();
    } catch (e) {
      if (isAbort(e)) return;
      live.fail();
      if (e instanceof ApiError && e.status === 404) {
        main.querySelector('#profile-body').hidden = true;
        notFound.replaceChildren(resultBox('warn', h('p', {}, `No profile for user ${userId} (yet). `,
          'It appears when the user registers or interacts; this page keeps checking. ', h('a', { href: '#/users' }, 'Register users'))));
      } else {
        errorEl.replaceChildren(errorBox(e));
      }
    }
  }, visibleDelay(1000));
  const onVisible = () => { if (!document.hidden) poller.now(); };
  document.addEventListener('visibilitychange', onVisible);
  ctx.cleanups.push(() => document.removeEventListener('visibilitychange', onVisible));
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

function toIsoFromLocal(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function renderEvents(main, ctx, route) {
  const q = route.query;
  const filters = { type: q.get('type') || '', userId: q.get('userId') || '', from: q.get('from') || '' };
  const typeList = h('datalist', { id: 'event-types' }, EVENT_TYPES.map((t) => h('option', { value: t })));

  const filterForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter events', novalidate: true },
    field({ id: 'ef-type', label: 'Type', field: 'type', value: filters.type, attrs: { list: 'event-types', placeholder: 'any', autocomplete: 'off' } }),
    field({ id: 'ef-user', label: 'User ID', field: 'userId', value: filters.userId, attrs: { placeholder: 'any', autocomplete: 'off' } }),
    field({ id: 'ef-from', label: 'Received from', type: 'datetime-local', field: 'from', phoneWide: true, value: filters.from ? localInputValue(new Date(filters.from)) : '', attrs: { step: '1' } }),
    h('div', { class: 'filters__actions filters__actions--wide' },
      h('button', { type: 'submit', class: 'btn btn--primary' }, 'Apply'),
      h('button', { type: 'button', class: 'btn', on: { click: resetFilters } }, 'Reset'),
      h('button', { type: 'button', class: 'btn', title: 'Events received in the last 10 minutes (the list is oldest first)', on: { click: recent } }, 'Last 10 min')),
    h('div', { class: 'error-summary notice notice--error', role: 'alert', hidden: true }));

  const ixForm = h('form', { id: 'ix-form', class: 'form', novalidate: true, 'aria-labelledby': 'ix-title' },
    h('div', { class: 'error-summary notice notice--error', role: 'alert', tabindex: '-1', hidden: true }),
    h('div', { class: 'form-grid' },
      field({ id: 'ix-user', label: 'User ID (actor)', field: 'actor.id', required: true, phoneWide: true, value: filters.userId, attrs: { autocomplete: 'off' } }),
      field({ id: 'ix-type', label: 'Interaction type', type: 'select', field: 'type', required: true, options: INTERACTION_TYPES }),
      field({ id: 'ix-target-id', label: 'Target ID', field: 'target.id', required: true, value: 'sku-000002', hint: 'A catalog item, e.g. sku-000002', attrs: { autocomplete: 'off' } }),
      field({ id: 'ix-target-type', label: 'Target type', field: 'target.type', required: true, value: 'product', attrs: { autocomplete: 'off' } }),
      field({ id: 'ix-amount', label: 'Amount', type: 'number', field: 'value.amount', hint: 'Optional, with a currency', attrs: { min: '0', step: '0.01', inputmode: 'decimal' } }),
      field({ id: 'ix-currency', label: 'Currency', field: 'value.currency', hint: 'ISO 4217, e.g. USD', attrs: { maxlength: '3', autocomplete: 'off', autocapitalize: 'characters' } }),
      field({ id: 'ix-timestamp', label: 'Timestamp', type: 'datetime-local', field: 'timestamp', phoneWide: true, hint: 'Empty: now', attrs: { step: '1' } })),
    h('details', { class: 'more' }, h('summary', {}, 'More fields'),
      h('div', { class: 'form-grid' },
        field({ id: 'ix-quantity', label: 'Quantity', type: 'number', field: 'quantity', attrs: { min: '0', step: 'any', inputmode: 'decimal' } }),
        field({ id: 'ix-actor-type', label: 'Actor type', field: 'actor.type', required: true, value: 'user' }),
        field({ id: 'ix-origin-id', label: 'Origin ID', field: 'origin.id', required: true, value: 'dashboard' }),
        field({ id: 'ix-origin-type', label: 'Origin type', field: 'origin.type', required: true, value: 'web' }),
        field({ id: 'ix-id', label: 'Interaction ID', field: 'id', hint: 'Optional idempotency key; derived from the content when empty', attrs: { autocomplete: 'off' } }))),
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'btn btn--primary', id: 'ix-submit' }, 'Post interaction')));
  const ixResult = h('div', { class: 'result', 'data-testid': 'interaction-result', 'aria-live': 'polite' });

  const evForm = h('form', { id: 'ev-form', class: 'form', novalidate: true, 'aria-labelledby': 'ev-title' },
    h('div', { class: 'error-summary notice notice--error', role: 'alert', tabindex: '-1', hidden: true }),
    h('div', { class: 'form-grid form-grid--single' },
      field({ id: 'ev-type', label: 'Event type', field: 'type', required: true, value: 'user.updated', hint: 'Lowercase dotted name; unknown types are stored too', attrs: { list: 'event-types', autocomplete: 'off' } }),
      field({ id: 'ev-payload', label: 'Payload (JSON object)', type: 'textarea', field: 'payload', prefix: true, wide: true,
        value: JSON.stringify({ userId: filters.userId || '' }, null, 2), attrs: { rows: '5', spellcheck: 'false', class: 'mono' },
        hint: 'An interaction.recorded payload is ingested as an interaction' })),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn--primary', id: 'ev-submit' }, 'Post event')));
  const evResult = h('div', { class: 'result', 'data-testid': 'event-result', 'aria-live': 'polite' });

  const columns = [{ label: 'Received' }, { label: 'Type' }, { label: 'User' }, { label: 'Details' }, { label: 'ID' }, { label: 'Actions', cls: 'actions' }];
  const { el: tableEl, tbody } = table(columns, 'Events', 'events-table');
  const listResult = h('div', { class: 'result', 'data-testid': 'events-result' });
  const listError = h('div');
  const pager = new Pager(() => load(), 25);

  append(main, [
    typeList,
    pageHead('Events', 'The event log: registrations, interactions and anything else posted. Interactions update profiles live.'),
    h('div', { class: 'grid grid--two' },
      h('section', { class: 'card', 'aria-labelledby': 'ix-title' }, h('h2', { id: 'ix-title' }, 'Post an interaction'),
        h('p', { class: 'muted small' }, 'Sent to POST /v1/interactions. The actor is the user whose profile updates.'), ixForm, ixResult),
      h('section', { class: 'card', 'aria-labelledby': 'ev-title' }, h('h2', { id: 'ev-title' }, 'Post an event'),
        h('p', { class: 'muted small' }, 'Sent to POST /v1/events as {type, payload}.'), evForm, evResult)),
    h('section', { class: 'card', 'aria-labelledby': 'events-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'events-title' }, 'Events'),
        h('button', { type: 'button', class: 'btn btn--small', on: { click: () => load() } }, 'Refresh')),
      filterForm, listResult, listError, tableEl, pager.el),
  ]);

  function readFilters() {
    filters.type = filterForm.querySelector('#ef-type').value.trim();
    filters.userId = filterForm.querySelector('#ef-user').value.trim();
    filters.from = toIsoFromLocal(filterForm.querySelector('#ef-from').value) || '';
    replaceHashQuery('/events', filters);
    pager.reset();
    load();
  }

  function resetFilters() {
    for (const c of filterForm.querySelectorAll('input')) c.value = '';
    readFilters();
  }

  function recent() {
    filterForm.querySelector('#ef-from').value = localInputValue(new Date(Date.now() - 10 * 60 * 1000));
    readFilters();
  }
  filterForm.addEventListener('submit', (ev) => { ev.preventDefault(); readFilters(); });

  function summary(e) {
    const p = e.payload || {};
    if (e.type === 'interaction.recorded' && p.target) {
      const parts = [h('span', { class: 'tag' }, WIRE_TYPE_LABELS[p.type] || p.type), ' ', h('span', { class: 'mono small' }, `${p.target.type}:${p.target.id}`)];
      if (p.value) parts.push(` · ${p.value.amount} ${p.value.currency}`);
      if (p.quantity) parts.push(` · ×${p.quantity}`);
      if (p.timestamp) parts.push(h('span', { class: 'muted small' }, ` · at ${fmtDateTime(p.timestamp)}`));
      return parts;
    }
    const text = JSON.stringify(p);
    if (text.length <= 60) return h('code', { class: 'small' }, text);
    return h('details', { class: 'payload' }, h('summary', {}, h('code', { class: 'small' }, `${text.slice(0, 56)}…`)),
      h('pre', { class: 'small' }, JSON.stringify(p, null, 2)));
  }

  function userOf(p) {
    const v = p && (p.userId ?? p.user_id ?? (p.actor && p.actor.id));
    return v === undefined || v === null ? null : String(v);
  }

  function row(e) {
    const user = userOf(e.payload);
    return h('tr', { 'data-event-id': e.id },
      h('td', {}, timeEl(e.receivedAt)),
      h('td', {}, h('span', { class: `evtype evtype--${String(e.type).split('.')[0]}` }, e.type)),
      h('td', { class: 'id-cell' }, user ? h('a', { href: `#/profiles/${enc(user)}`, class: 'mono' }, user) : h('span', { class: 'muted' }, '—')),
      h('td', { class: 'details' }, summary(e)),
      h('td', {}, h('span', { class: 'mono small', title: e.id }, String(e.id).length > 12 ? `…${String(e.id).slice(-10)}` : e.id)),
      h('td', { class: 'actions' }, h('div', { class: 'row-actions' },
        h('button', { type: 'button', class: 'btn btn--small btn--danger', 'aria-label': `Delete event ${e.id}`, on: { click: () => remove(e) } }, 'Delete'))));
  }

  async function load() {
    listError.replaceChildren();
    try {
      const data = await api('/v1/events', { query: { ...filters, limit: pager.limit, cursor: pager.cursor }, signal: ctx.signal });
      clearErrors(filterForm);
      const items = data.items || [];
      pager.loaded(items.length, data.nextCursor);
      if (items.length === 0) {
        const filtered = Object.values(filters).some(Boolean);
        emptyRow(tbody, columns.length, filtered ? 'No events match these filters.' : 'No events yet. Register a user or post an interaction.');
      } else {
        tbody.replaceChildren(...items.map(row));
      }
    } catch (e) {
      if (isAbort(e)) return;
      if (e instanceof ApiError && e.status === 422) showErrors(filterForm, fieldErrors(e), 'Invalid filter:');
      else listError.replaceChildren(errorBox(e, load));
    }
  }

  async function remove(e) {
    if (!window.confirm(`Delete event ${e.id} (${e.type})?${e.type === 'interaction.recorded' ? ' Its user’s profile is recomputed.' : ''}`)) return;
    try {
      const data = await api(`/v1/events/${enc(e.id)}`, { method: 'DELETE' });
      listResult.replaceChildren(resultBox('success', h('p', {}, h('strong', {}, 'Deleted '), h('code', {}, shortId(data.id || e.id, 24)),
        data.recomputed ? ` · profile of ${data.recomputed} recomputed` : '', '.')));
      announce('Event deleted');
      load();
    } catch (err) {
      listResult.replaceChildren(resultBox('error', h('p', {}, `Could not delete ${e.id}: ${errorText(err)}`)));
    }
  }

  ixForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const submit = ixForm.querySelector('#ix-submit');
    const val = (id) => ixForm.querySelector(id).value.trim();
    const local = [];
    const amountEl = ixForm.querySelector('#ix-amount');
    const quantityEl = ixForm.querySelector('#ix-quantity');
    if (amountEl.validity.badInput) local.push({ field: 'value.amount', message: 'must be a number' });
    if (quantityEl.validity.badInput) local.push({ field: 'quantity', message: 'must be a number' });
    const tsText = val('#ix-timestamp');
    const timestamp = tsText ? toIsoFromLocal(tsText) : new Date().toISOString();
    if (tsText && !timestamp) local.push({ field: 'timestamp', message: 'is not a valid date and time' });
    ixResult.replaceChildren();
    if (local.length) { const f = showErrors(ixForm, local, 'Please fix these fields:'); if (f) f.focus(); return; }
    const type = val('#ix-type');
    const body = {
      type,
      timestamp,
      origin: { id: val('#ix-origin-id'), type: val('#ix-origin-type') },
      actor: { id: val('#ix-user'), type: val('#ix-actor-type') },
      target: { id: val('#ix-target-id'), type: val('#ix-target-type') },
    };
    const id = val('#ix-id');
    if (id) body.id = id;
    const amount = val('#ix-amount');
    const currency = val('#ix-currency').toUpperCase();
    if (amount !== '' || currency !== '') body.value = { amount: amount === '' ? null : Number(amount), currency: currency || null };
    const quantity = val('#ix-quantity');
    if (quantity !== '') body.quantity = Number(quantity);
    clearErrors(ixForm);
    setBusy(submit, true, 'Posting…');
    ixResult.replaceChildren(h('p', { class: 'muted small' }, 'Posting…'));
    try {
      const data = await api('/v1/interactions', { method: 'POST', body });
      const storedId = (data.ids || [])[0];
      if (data.rejected && data.rejected.length) {
        showErrors(ixForm, fieldErrors({ details: { rejected: data.rejected } }));
        ixResult.replaceChildren(resultBox('error', h('p', {}, 'Rejected.')));
      } else if (data.accepted > 0) {
        ixResult.replaceChildren(resultBox('success', h('p', {}, h('strong', {}, 'Accepted: '),
          `${INTERACTION_TYPES.find(([v]) => v === type)?.[1] || type} by `, h('a', { href: `#/profiles/${enc(body.actor.id)}` }, body.actor.id),
          ` on ${body.target.id}`, storedId ? h('span', { class: 'muted small' }, ` (id ${shortId(storedId, 16)})`) : null, '.')));
        announce(`Interaction ${type} accepted`);
      } else {
        ixResult.replaceChildren(resultBox('warn', h('p', {}, h('strong', {}, 'Duplicate: '), 'this interaction was already stored, so nothing changed.',
          storedId ? h('span', { class: 'muted small' }, ` (id ${shortId(storedId, 16)})`) : null)));
      }
      load();
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) {
        const errors = fieldErrors(e);
        const first = showErrors(ixForm, errors.length ? errors : [{ field: '$', message: e.message }]);
        ixResult.replaceChildren();
        if (first) first.focus();
      } else {
        ixResult.replaceChildren(errorBox(e));
      }
    } finally {
      setBusy(submit, false);
    }
  });

  evForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const submit = evForm.querySelector('#ev-submit');
    const type = evForm.querySelector('#ev-type').value.trim();
    const payloadText = evForm.querySelector('#ev-payload').value.trim();
    let payload;
    evResult.replaceChildren();
    try {
      payload = payloadText ? JSON.parse(payloadText) : {};
    } catch (e) {
      const f = showErrors(evForm, [{ field: 'payload', message: `is not valid JSON (${e.message})` }], 'Please fix these fields:');
      if (f) f.focus();
      return;
    }
    clearErrors(evForm);
    setBusy(submit, true, 'Posting…');
    try {
      const { status, data } = await apiCall('/v1/events', { method: 'POST', body: { type, payload } });
      evResult.replaceChildren(resultBox(status === 201 ? 'success' : 'warn', h('p', {},
        h('strong', {}, status === 201 ? 'Stored: ' : 'Already stored: '), `${data.type} `,
        h('code', { class: 'small' }, shortId(data.id, 20)), ` at ${fmtDateTime(data.receivedAt)}.`)));
      announce(`Event ${data.type} stored`);
      load();
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) {
        const errors = fieldErrors(e);
        const first = showErrors(evForm, errors.length ? errors : [{ field: '$', message: e.message }]);
        if (first) first.focus();
      } else {
        evResult.replaceChildren(errorBox(e));
      }
    } finally {
      setBusy(submit, false);
    }
  });

  load();
}

function localInputValue(d) {
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

// ---------------------------------------------------------------------------
// Models: registry, metrics, charts, promote
// ---------------------------------------------------------------------------

/** Class names of a target, in confusion-matrix order. */
function vocabulary(version, target, size) {
  const vocab = version.labelVocabularies || version.label_vocabularies || {};
  let names = vocab[target] || DEFAULT_VOCABULARIES[target];
  if (!names || names.length !== size) names = Array.from({ length: size }, (_, i) => `class ${i}`);
  return names.map((n) => (target === 'actingLifeStage' ? lifeStageLabel(n) : String(n)));
}

function heatColour(f) {
  // #eef2ff (indigo-50) to #3730a3 (indigo-800)
  const a = [238, 242, 255];
  const b = [55, 48, 163];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * Math.max(0, Math.min(1, f))));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function textWidth(text, size = 12) {
  return String(text).length * size * 0.58;
}

/**
 * Draws `draw(width)` into `slot` now and whenever the slot's width changes,
 * so chart text stays legible from phones to desktops.
 */
function responsive(slot, ctx, draw) {
  let drawn = -1;
  const redraw = () => {
    const w = Math.round(slot.clientWidth || 0);
    if (w && Math.abs(w - drawn) < 8) return;
    drawn = w;
    slot.replaceChildren(draw(w || 520));
  };
  redraw();
  if (typeof ResizeObserver === 'function') {
    const ro = new ResizeObserver(() => redraw());
    ro.observe(slot);
    ctx.cleanups.push(() => ro.disconnect());
  }
  return () => { drawn = -1; redraw(); };
}

/** Confusion matrix as an SVG heatmap: rows true class, columns predicted. */
function confusionChart(matrix, labels, recall, title, avail = 480) {
  const k = matrix.length;
  const maxLabel = Math.max(...labels.map((l) => textWidth(l)));
  const rotate = Math.max(...labels.map((l) => String(l).length)) > 3;
  const labelW = Math.ceil(maxLabel + 12);
  const left = labelW + 22;
  const recallW = recall ? 58 : 0;
  const cell = Math.max(30, Math.min(50, Math.floor((avail - left - recallW - 8) / k)));
  const colLabelH = rotate ? Math.ceil(maxLabel * 0.7 + 14) : 16;
  const top = colLabelH + 26;
  const width = left + k * cell + recallW + 8;
  const height = top + k * cell + 8;
  const desc = `${title}. Rows are the true class, columns the predicted class; counts of test users.`;
  const svg = s('svg', {
    class: 'chart chart--confusion', viewBox: `0 0 ${width} ${height}`, width: String(width), height: String(height),
    role: 'img', 'aria-label': desc, 'data-testid': 'confusion-chart',
  }, s('title', {}, desc));
  svg.append(s('text', { x: String(left + (k * cell) / 2), y: '13', class: 'axis-title', 'text-anchor': 'middle' }, 'Predicted class'));
  const midY = top + (k * cell) / 2;
  svg.append(s('text', { x: '13', y: String(midY), class: 'axis-title', 'text-anchor': 'middle', transform: `rotate(-90 13 ${midY})` }, 'True class'));
  labels.forEach((l, j) => {
    const x = left + j * cell + cell / 2;
    svg.append(rotate
      ? s('text', { x: String(x - 2), y: String(top - 6), class: 'tick', 'text-anchor': 'start', transform: `rotate(-40 ${x - 2} ${top - 6})` }, l)
      : s('text', { x: String(x), y: String(top - 8), class: 'tick', 'text-anchor': 'middle' }, l));
  });
  const recallX = left + k * cell + recallW / 2 + 4;
  if (recall) svg.append(s('text', { x: String(recallX), y: String(top - 8), class: 'tick tick--strong', 'text-anchor': 'middle' }, 'Recall'));
  matrix.forEach((rowValues, i) => {
    const total = rowValues.reduce((a, b) => a + b, 0);
    const y = top + i * cell;
    svg.append(s('text', { x: String(left - 8), y: String(y + cell / 2 + 4), class: 'tick', 'text-anchor': 'end' }, labels[i]));
    rowValues.forEach((v, j) => {
      const f = total ? v / total : 0;
      const x = left + j * cell;
      svg.append(s('g', {},
        s('title', {}, `True ${labels[i]}, predicted ${labels[j]}: ${v} (${pct(f)} of the row)`),
        s('rect', { x: String(x + 1), y: String(y + 1), width: String(cell - 2), height: String(cell - 2), rx: '4', fill: heatColour(f), class: i === j ? 'cell cell--diag' : 'cell' }),
        s('text', { x: String(x + cell / 2), y: String(y + cell / 2 + 4), 'text-anchor': 'middle', class: f > 0.5 ? 'count count--light' : 'count' }, String(v))));
    });
    if (recall) {
      const r = recall[i];
      svg.append(s('text', { x: String(recallX), y: String(y + cell / 2 + 4), 'text-anchor': 'middle', class: 'tick tick--strong' }, typeof r === 'number' ? pct(r) : '—'));
    }
  });
  return svg;
}

/** Cold-start curve: the metric after 5, 20 and all interactions, model vs baseline. */
function coldStartChart(points, metric, target, avail = 520) {
  const W = Math.max(300, Math.min(560, avail));
  const H = W < 420 ? 250 : 280;
  const m = { left: 50, right: 18, top: 40, bottom: 52 };
  const inset = 34;
  const iw = W - m.left - m.right;
  const ih = H - m.top - m.bottom;
  const span = iw - 2 * inset;
  const xs = points.map((_, i) => m.left + inset + (points.length === 1 ? span / 2 : (i * span) / (points.length - 1)));
  const y = (v) => m.top + ih - Math.max(0, Math.min(1, v)) * ih;
  const label = METRIC_LABELS[metric] || metric;
  const series = [
    { key: 'model', name: 'Model', cls: 'series-model' },
    { key: 'baseline', name: 'Baseline', cls: 'series-baseline' },
  ];
  const describe = series.map((se) => `${se.name}: ${points.map((p) => `${pct(p[se.key])} after ${p.label.toLowerCase()}`).join(', ')}`).join('. ');
  const desc = `Cold-start curve of ${label} for ${target}, by interactions seen per user. ${describe}.`;
  const svg = s('svg', {
    class: 'chart chart--line', viewBox: `0 0 ${W} ${H}`, width: String(W), height: String(H),
    role: 'img', 'aria-label': desc, 'data-testid': 'cold-start-chart',
  }, s('title', {}, desc));
  for (let t = 0; t <= 4; t++) {
    const v = t / 4;
    svg.append(s('line', { x1: String(m.left), x2: String(W - m.right), y1: String(y(v)), y2: String(y(v)), class: t === 0 ? 'axis' : 'grid' }));
    svg.append(s('text', { x: String(m.left - 8), y: String(y(v) + 4), 'text-anchor': 'end', class: 'tick' }, `${v * 100}%`));
  }
  points.forEach((p, i) => {
    svg.append(s('text', { x: String(xs[i]), y: String(H - m.bottom + 20), 'text-anchor': 'middle', class: 'tick' }, p.label));
  });
  svg.append(s('text', { x: String(m.left + iw / 2), y: String(H - 8), 'text-anchor': 'middle', class: 'axis-title' }, 'Interactions seen per user'));
  svg.append(s('text', { x: '13', y: String(m.top + ih / 2), 'text-anchor': 'middle', class: 'axis-title', transform: `rotate(-90 13 ${m.top + ih / 2})` }, label));
  // Value labels go above the higher series and below the lower one.
  const above = points.map((p) => (typeof p.model === 'number' && typeof p.baseline === 'number' ? p.model >= p.baseline : true));
  for (const se of series) {
    const pts = points.map((p, i) => [xs[i], p[se.key], i]).filter(([, v]) => typeof v === 'number');
    if (!pts.length) continue;
    const g = s('g', { class: se.cls });
    g.append(s('polyline', { points: pts.map(([x, v]) => `${x},${y(v)}`).join(' '), class: 'line' }));
    for (const [x, v, i] of pts) {
      g.append(se.key === 'model'
        ? s('circle', { cx: String(x), cy: String(y(v)), r: '5', class: 'marker' }, s('title', {}, `${se.name}: ${pct(v)}`))
        : s('rect', { x: String(x - 4.5), y: String(y(v) - 4.5), width: '9', height: '9', class: 'marker' }, s('title', {}, `${se.name}: ${pct(v)}`)));
      const up = se.key === 'model' ? above[i] : !above[i];
      g.append(s('text', { x: String(x), y: String(up ? y(v) - 10 : y(v) + 19), 'text-anchor': 'middle', class: 'point-label' }, pct(v)));
    }
    svg.append(g);
  }
  svg.append(s('g', { class: 'legend', transform: `translate(${m.left}, 16)` },
    s('g', { class: 'series-model' }, s('line', { x1: '0', x2: '22', y1: '0', y2: '0', class: 'line' }), s('circle', { cx: '11', cy: '0', r: '4', class: 'marker' })),
    s('text', { x: '28', y: '4', class: 'tick' }, 'Model'),
    s('g', { class: 'series-baseline', transform: 'translate(84, 0)' }, s('line', { x1: '0', x2: '22', y1: '0', y2: '0', class: 'line' }), s('rect', { x: '7', y: '-4', width: '8', height: '8', class: 'marker' })),
    s('text', { x: '112', y: '4', class: 'tick' }, 'Baseline')));
  return svg;
}

function evaluationSets(t) {
  const sets = [];
  const cs = t.cold_start || t.coldStart || {};
  if (cs.first_5) sets.push({ key: 'first_5', label: 'First 5', data: cs.first_5 });
  if (cs.first_20) sets.push({ key: 'first_20', label: 'First 20', data: cs.first_20 });
  if (t.test) sets.push({ key: 'test', label: 'Full history', data: t.test });
  return sets;
}

function metricKeys(ev) {
  const m = (ev && ev.model) || {};
  return Object.keys(METRIC_LABELS).filter((k) => typeof m[k] === 'number');
}

function targetSection(ctx, version, name, t, entry) {
  const sec = h('section', { class: 'target', 'aria-label': `${name} model` });
  const sets = evaluationSets(t);
  const test = t.test || (sets.length ? sets[sets.length - 1].data : null);
  const keys = metricKeys(test);
  const beats = test ? test.beats_baseline : entry && entry.beats_baseline;
  sec.append(h('div', { class: 'target__head' },
    h('h4', {}, name),
    h('span', { class: 'muted small' }, [t.family || (entry && entry.family), t.labelled_users !== undefined ? `${t.labelled_users} labelled users` : null,
      t.train_users !== undefined ? `train ${t.train_users}` : null, t.validation_users !== undefined ? `validation ${t.validation_users}` : null,
      test && test.model && test.model.users !== undefined ? `test ${test.model.users}` : null].filter(Boolean).join(' · ')),
    beats === undefined ? null : h('span', { class: `pill ${beats ? 'pill--ok' : 'pill--warn'}` }, beats ? 'beats baseline' : 'below baseline')));
  if (!test || !keys.length) {
    sec.append(h('p', { class: 'muted' }, entry && entry.skipped ? `Not trained: ${entry.skipped}` : 'No evaluation recorded.'));
    return sec;
  }
  // Metrics table: model vs baseline on the held-out test users.
  const mt = h('table', { class: 'table table--metrics' },
    h('caption', {}, 'Held-out test users, full history'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Metric'), h('th', { scope: 'col', class: 'num' }, 'Model'), h('th', { scope: 'col', class: 'num' }, 'Baseline'), h('th', { scope: 'col', class: 'num' }, 'Δ'))),
    h('tbody', {}, keys.map((k) => {
      const mv = test.model[k];
      const bv = test.baseline ? test.baseline[k] : undefined;
      const d = typeof bv === 'number' ? mv - bv : null;
      return h('tr', {}, h('th', { scope: 'row' }, METRIC_LABELS[k]), h('td', { class: 'num' }, pct(mv)), h('td', { class: 'num' }, pct(bv)),
        h('td', { class: ['num', d !== null && (d >= 0 ? 'pos' : 'neg')] }, d === null ? '—' : `${d >= 0 ? '+' : '−'}${Math.abs(d * 100).toFixed(1)} pt`));
    })));
  const charts = h('div', { class: 'charts' });
  sec.append(h('div', { class: 'table-wrap table-wrap--plain' }, mt), charts);

  // Cold-start chart with a metric choice.
  if (sets.length) {
    const chartBox = h('figure', { class: 'figure' });
    const metricId = nextId('cs-metric');
    const select = h('select', { id: metricId }, keys.map((k) => h('option', { value: k }, METRIC_LABELS[k])));
    const slot = h('div', { class: 'chart-slot' });
    chartBox.append(
      h('figcaption', {}, h('span', { class: 'figure__title' }, 'Cold start'),
        keys.length > 1 ? h('span', { class: 'inline-field' }, h('label', { for: metricId }, 'Metric'), select) : null),
      slot);
    charts.append(chartBox);
    const redraw = responsive(slot, ctx, (width) => {
      const metric = select.value;
      const points = sets.map((st) => ({ label: st.label, model: st.data.model && st.data.model[metric], baseline: st.data.baseline && st.data.baseline[metric] }));
      return coldStartChart(points, metric, name, width);
    });
    select.addEventListener('change', redraw);
  }

  // Confusion matrix (classifiers) with an evaluation-set choice.
  const withMatrix = sets.filter((st) => st.data.model && Array.isArray(st.data.model.confusion) && st.data.model.confusion.length);
  if (withMatrix.length) {
    const box = h('figure', { class: 'figure' });
    const setId = nextId('cm-set');
    const select = h('select', { id: setId }, withMatrix.map((st) => h('option', { value: st.key, selected: st.key === 'test' }, st.label)));
    const slot = h('div', { class: 'chart-slot chart-slot--scroll' });
    box.append(h('figcaption', {}, h('span', { class: 'figure__title' }, 'Confusion matrix'),
      h('span', { class: 'inline-field' }, h('label', { for: setId }, 'Interactions'), select)), slot);
    charts.append(box);
    const redraw = responsive(slot, ctx, (width) => {
      const st = withMatrix.find((x) => x.key === select.value) || withMatrix[withMatrix.length - 1];
      const matrix = st.data.model.confusion;
      const labels = vocabulary(version, name, matrix.length);
      const raw = (version.labelVocabularies || version.label_vocabularies || {})[name] || DEFAULT_VOCABULARIES[name];
      const pcr = st.data.model.per_class_recall || {};
      const recall = raw && raw.length === matrix.length ? raw.map((c) => pcr[c]) : null;
      return confusionChart(matrix, labels, recall, `Confusion matrix of the ${name} model, ${st.label.toLowerCase()}`, width);
    });
    select.addEventListener('change', redraw);
  }
  return sec;
}

function renderModels(main, ctx) {
  const summary = h('div', { class: 'grid grid--stats' });
  const list = h('div', { class: 'stack' });
  const errorEl = h('div');
  append(main, [
    pageHead('Models', 'The model registry: versions, their evaluation against baselines, and which one serves.',
      h('button', { type: 'button', class: 'btn btn--small', on: { click: () => load() } }, 'Refresh')),
    errorEl, summary, list,
  ]);

  function stat(label, value, testid, extra) {
    return h('div', { class: 'card stat' }, h('p', { class: 'kicker' }, label), h('p', { class: 'stat__value mono', 'data-testid': testid }, value), extra || null);
  }

  async function promote(version, force, resultEl, button) {
    setBusy(button, true, 'Promoting…');
    resultEl.replaceChildren();
    try {
      const data = await api(`/v1/models/${enc(version)}/promote`, { method: 'POST', query: force ? { force: 'true' } : undefined });
      const message = () => resultBox('success', h('p', { 'data-testid': 'promote-result' }, h('strong', {}, 'Promoted. '), `Serving ${data.serving}`,
        data.previous ? ` (was ${data.previous})` : ' (no model was serving)', data.rescoring ? `; profiles are re-scored in the ${data.rescoring}.` : '.'));
      resultEl.replaceChildren(message());
      announce(`Promoted ${version}`);
      refreshHeader();
      await load(false);
      const card = list.querySelector(`[data-version="${CSS.escape(version)}"] .result`);
      if (card) {
        card.replaceChildren(message());
        card.setAttribute('tabindex', '-1');
        card.focus();
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 409 && !force) {
        const again = h('button', { type: 'button', class: 'btn btn--danger btn--small' }, 'Promote anyway');
        again.addEventListener('click', () => promote(version, true, resultEl, again));
        resultEl.replaceChildren(resultBox('warn', h('p', {}, h('strong', {}, 'Refused: '), e.message), again));
        again.focus();
      } else {
        resultEl.replaceChildren(resultBox('error', h('p', {}, h('strong', {}, 'Could not promote: '), errorText(e))));
      }
    } finally {
      if (button.isConnected) setBusy(button, false);
    }
  }

  function versionCard(v, data) {
    const isServing = v.version === data.serving;
    const isCurrent = v.version === data.current;
    const below = Array.isArray(v.belowBaseline) ? v.belowBaseline : (v.belowBaseline ? ['some targets'] : []);
    const resultEl = h('div', { class: 'result' });
    const button = h('button', { type: 'button', class: 'btn btn--primary btn--small', 'data-testid': 'promote' }, isServing ? 'Re-promote' : 'Promote');
    button.addEventListener('click', () => promote(v.version, false, resultEl, button));
    const targets = (v.metrics && v.metrics.targets) || {};
    const entries = Array.isArray(v.models) ? v.models : [];
    const order = [...entries.map((e) => e.target), ...Object.keys(targets)].filter((x, i, a) => a.indexOf(x) === i);
    const title = h('h3', {}, h('span', { class: 'mono' }, v.version));
    return h('article', { class: 'card version', 'data-version': v.version, 'aria-label': `Model version ${v.version}` },
      h('div', { class: 'version__head' },
        h('div', {}, title,
          h('p', { class: 'muted small' }, 'Created ', timeEl(v.createdAt), v.codeVersion ? ` · code ${v.codeVersion}` : '',
            v.featureSchemaHash ? h('span', { title: v.featureSchemaHash }, ` · schema ${shortId(String(v.featureSchemaHash).replace(/^sha256:/, ''), 8)}`) : '')),
        h('div', { class: 'version__badges' },
          isServing ? h('span', { class: 'pill pill--ok' }, 'serving') : null,
          isCurrent ? h('span', { class: 'pill pill--info' }, 'current') : null,
          button)),
      below.length ? resultBox('warn', h('p', {}, h('strong', {}, 'Below baseline: '), `${below.join(', ')} did not beat ${below.length === 1 ? 'its' : 'their'} baseline. Promoting needs confirmation.`)) : null,
      resultEl,
      order.length ? h('div', { class: 'targets' }, order.map((name) => targetSection(ctx, v, name, targets[name] || {}, entries.find((e) => e.target === name)))) : h('p', { class: 'muted' }, 'No metrics recorded.'));
  }

  let lastKey = null;
  async function load(resetResults = true) {
    errorEl.replaceChildren();
    try {
      const data = await api('/v1/models', { signal: ctx.signal });
      const versions = [...(data.versions || [])].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
      summary.replaceChildren(
        stat('Serving', data.serving || 'none', 'serving-version',
          data.serving ? null : h('p', { class: 'small warn-text' }, 'No model loaded: profiles show declared fields and counts only.')),
        stat('Registry current', data.current || 'none', 'current-version',
          data.current && data.serving && data.current !== data.serving ? h('p', { class: 'small warn-text' }, 'Differs from the serving model.') : null),
        stat('Versions', String(versions.length), 'version-count'));
      const key = JSON.stringify(data);
      if (key === lastKey && !resetResults) return;
      lastKey = key;
      if (!versions.length) {
        list.replaceChildren(h('div', { class: 'card empty-state' }, h('h2', {}, 'No model versions'),
          h('p', {}, 'Train one with ', h('code', {}, 'micro-train train … --registry models/'), ', then promote it here.')));
        return;
      }
      list.replaceChildren(h('h2', { class: 'section-title' }, 'Versions'), ...versions.map((v) => versionCard(v, data)));
    } catch (e) {
      if (isAbort(e)) return;
      errorEl.replaceChildren(errorBox(e, () => load()));
    }
  }
  load();
}

// ---------------------------------------------------------------------------
// Header: serving model and readiness
// ---------------------------------------------------------------------------

async function refreshHeader() {
  const model = document.getElementById('header-model');
  const ready = document.getElementById('header-ready');
  let data;
  try {
    data = await api('/readyz');
  } catch (e) {
    if (e instanceof ApiError && e.body && typeof e.body === 'object' && 'ready' in e.body) {
      data = e.body;
    } else {
      ready.className = 'pill pill--bad';
      ready.textContent = e instanceof ApiError && e.status === 0 ? 'API unreachable' : 'Not ready';
      ready.title = errorText(e);
      if (e instanceof ApiError && e.status === 0) setBanner(`The API at ${API_BASE || location.origin} cannot be reached. Pages retry automatically.`);
      return;
    }
  }
  if (data.ready) {
    ready.className = 'pill pill--ok';
    ready.textContent = `Ready${data.database ? ` · ${data.database}` : ''}`;
    ready.title = data.bus ? `Bus: ${data.bus}` : '';
  } else {
    ready.className = 'pill pill--bad';
    ready.textContent = 'Not ready';
    ready.title = data.reason || '';
  }
  if ('model' in data) {
    model.textContent = data.model || 'none';
    model.title = data.model ? 'Serving model version' : 'No model loaded: profiles carry declared data only';
    model.classList.toggle('muted', !data.model);
  }
}

// ---------------------------------------------------------------------------
// Router
// ---------------------------------------------------------------------------

const ROUTES = [
  { re: /^\/users\/?$/, page: 'users', title: 'Users', render: renderUsers },
  { re: /^\/profiles\/?$/, page: 'profiles', title: 'Profiles', render: renderProfiles },
  { re: /^\/profiles\/(.+)$/, page: 'profiles', title: 'Profile', render: renderProfileDetail },
  { re: /^\/events\/?$/, page: 'events', title: 'Events', render: renderEvents },
  { re: /^\/models\/?$/, page: 'models', title: 'Models', render: renderModels },
];

let current = null;
let firstRender = true;

function parseHash() {
  let raw = location.hash.replace(/^#/, '');
  if (!raw.startsWith('/')) raw = '/users';
  const i = raw.indexOf('?');
  const path = i >= 0 ? raw.slice(0, i) : raw;
  const query = new URLSearchParams(i >= 0 ? raw.slice(i + 1) : '');
  return { path, query };
}

function route() {
  if (location.hash && !location.hash.startsWith('#/')) return; // in-page anchors
  const { path, query } = parseHash();
  if (current) current.dispose();
  const main = document.getElementById('main-content');
  main.replaceChildren();
  const ctx = newContext();
  current = ctx;
  let matched = null;
  let params = [];
  for (const r of ROUTES) {
    const m = r.re.exec(path);
    if (m) { matched = r; params = m.slice(1).map((p) => { try { return decodeURIComponent(p); } catch { return p; } }); break; }
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (matched && a.dataset.nav === matched.page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!matched) {
    document.title = 'Not found · Micro';
    append(main, [pageHead('Page not found', `Nothing at ${path}.`), h('p', {}, h('a', { href: '#/users' }, 'Go to Users'))]);
    return;
  }
  document.title = `${matched.title}${params[0] ? ` ${params[0]}` : ''} · Micro`;
  matched.render(main, ctx, { path, query, params });
  if (!firstRender) {
    const h1 = main.querySelector('h1');
    if (h1) h1.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
  firstRender = false;
}

async function start() {
  document.body.append(h('div', { id: 'live-region', class: 'visually-hidden', 'aria-live': 'polite', 'aria-atomic': 'true' }));
  const skip = document.querySelector('[data-skip]');
  if (skip) {
    skip.addEventListener('click', (ev) => {
      ev.preventDefault();
      const main = document.getElementById('main-content');
      const target = main.querySelector('h1') || main;
      target.focus();
    });
  }
  if (API_BASE) {
    const note = document.getElementById('api-base-note');
    if (note) note.textContent = `API: ${API_BASE}`;
    // Keep ?api on every in-app link: links are hash-only, so it stays.
  }
  try {
    await loadVocabularies();
  } catch (e) {
    setBanner(`Could not read the API's vocabularies: ${e && e.message ? e.message : e}`);
  }
  window.addEventListener('hashchange', route);
  if (!location.hash || !location.hash.startsWith('#/')) history.replaceState(null, '', `${location.pathname}${location.search}#/users`);
  route();
  refreshHeader();
  setInterval(refreshHeader, 5000);
}

start();
