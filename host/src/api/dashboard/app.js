// The iapeer dashboard: the fleet table, live from the fleet API's event
// stream. No framework and no build step; every piece of daemon data goes
// into the page as text (textContent), never as markup.
'use strict';

const GLYPHS = {
  live: '●', asleep: '○', stopped: '✕', 'crash-loop': '‼', unknown: '?', 'host-down': '✕',
};
const VERBS = ['wake', 'stop', 'start', 'new', 'interrupt'];
/// After an event, a second read follows this soon (a state the event
/// announces may land a moment after it is logged).
const FOLLOW_UP_MS = 300;
/// The safety read, and how often relative times and the pane refresh.
const SAFETY_MS = 2000;
/// How long a pressed `new` waits for its confirming press.
const CONFIRM_MS = 4000;
/// The event stream's reconnect wait: doubled per failure, up to the max.
const RETRY_MS = 500;
const RETRY_MAX_MS = 10000;
const STREAM_LIVED_MS = 5000;
const TOKEN_KEY = 'iapeer-token';

// What tests and benchmarks read: when the fleet was first drawn, each
// state change as it reached the screen, and script errors.
window.iapeerStats = { firstFleetMs: null, renders: 0, changes: [], events: [], errors: [] };
function noteError(text) {
  const errors = window.iapeerStats.errors;
  errors.push(text);
  if (errors.length > 100) errors.shift();
}
window.addEventListener('error', (e) => noteError(String(e.message)));
window.addEventListener('unhandledrejection', (e) => noteError(String(e.reason)));

const $ = (id) => document.getElementById(id);

const ui = {
  rows: new Map(), // identity → { tr, cells, row }
  selected: null, // identity
  filter: '',
  snapshot: null,
  armed: null, // { identity, timer } for `new`
  followUp: null,
  stream: null, // the AbortController of the open event stream
  following: false,
  askingToken: false,
};

// ---- talking to the daemon --------------------------------------------------

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token && !TOKEN_SHAPE.test(token)) {
    askToken(); // stored by an older page: never sendable
    return {};
  }
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function call(method, path, body) {
  const init = { method, headers: authHeaders(), cache: 'no-store' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, data: { error: `the daemon does not answer (${e.message})` } };
  }
  if (response.status === 401) askToken();
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = { error: `HTTP ${response.status}` };
  }
  // The bearer gate answers in JSON-RPC's shape: {error: {message}}.
  if (data && data.error && typeof data.error === 'object') {
    data.error = String(data.error.message || JSON.stringify(data.error));
  }
  return { ok: response.ok, status: response.status, data };
}

/// The daemon wants its token (or refused the one we had): ask for it,
/// once, and start over when it is given.
function askToken() {
  if (ui.askingToken) return;
  ui.askingToken = true;
  const had = sessionStorage.getItem(TOKEN_KEY);
  sessionStorage.removeItem(TOKEN_KEY);
  if (ui.stream) ui.stream.abort();
  $('token-error').textContent = had ? 'The daemon refused that token.' : '';
  $('main').hidden = true;
  $('token-box').hidden = false;
  setText($('summary'), 'waiting for the token');
  setStream('paused', 'waiting for the token');
  $('token').focus();
}

/// What a bearer header can carry (RFC 6750's b64token, loosely: visible
/// ASCII). A pasted smart quote would make every request fail to build.
const TOKEN_SHAPE = /^[\x21-\x7e]+$/;

function onToken(e) {
  e.preventDefault();
  const token = $('token').value.trim();
  if (!token) return;
  if (!TOKEN_SHAPE.test(token)) {
    $('token-error').textContent = 'A token is visible ASCII only: check for a pasted quote or space.';
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token').value = '';
  $('token-box').hidden = true;
  $('main').hidden = false;
  ui.askingToken = false;
  read();
  follow();
}

/// Runs `work` at most once at a time; a call during a run asks for one
/// more run after it (so a burst of events costs two reads, not one each).
function coalesced(work) {
  let running = false;
  let again = false;
  return async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await work();
      } while (again);
    } finally {
      running = false;
    }
  };
}

/// Reads the fleet and draws it.
const read = coalesced(async () => {
  // Every host's peers when this daemon joined a fleet (else just its own).
  const r = await call('GET', '/fleet/v1/snapshot?scope=fleet');
  if (r.ok) {
    ui.snapshot = r.data;
    render();
  } else if (!ui.askingToken) {
    $('summary').textContent = `cannot read the fleet: ${describeFailure(r.data)}`;
  }
});

function onEvent(event) {
  const stats = window.iapeerStats;
  stats.events.push({
    identity: event.identity || null,
    ev: event.ev,
    ts: Date.parse(event.ts),
    receivedAt: performance.timeOrigin + performance.now(),
  });
  if (stats.events.length > 500) stats.events.shift();
  read();
  clearTimeout(ui.followUp);
  ui.followUp = setTimeout(read, FOLLOW_UP_MS);
  if (ui.selected && concerns(event, ui.selected)) readPane();
}

/// One Server-Sent Events block (`event: …`, `data: …` lines).
function dispatch(block) {
  const data = block.split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(5).replace(/^ /, ''))
    .join('\n');
  if (!data) return; // a comment: `: connected`, `: hb`
  try {
    onEvent(JSON.parse(data));
  } catch (_) {
    // not an event of ours
  }
}

function setStream(state, text) {
  $('stream').textContent = `events: ${text}`;
  $('stream').dataset.state = state;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function whenVisible() {
  return new Promise((resolve) => {
    const check = () => {
      if (!document.hidden) {
        document.removeEventListener('visibilitychange', check);
        resolve();
      }
    };
    document.addEventListener('visibilitychange', check);
    check();
  });
}

/// Follows the event stream while the tab is visible (a browser allows
/// six connections per host: hidden tabs give theirs back), reconnecting
/// with a growing wait. `fetch`, not `EventSource`: it can carry the
/// bearer header, and a refused connection is retried, not final.
async function follow() {
  if (ui.following) return;
  ui.following = true;
  let wait = RETRY_MS;
  try {
    while (!ui.askingToken) {
      if (document.hidden) {
        setStream('paused', 'paused while the tab is hidden');
        await whenVisible();
        read();
      }
      const controller = new AbortController();
      ui.stream = controller;
      let failure = null;
      try {
        const response = await fetch('/fleet/v1/events', {
          headers: authHeaders(), signal: controller.signal, cache: 'no-store',
        });
        if (response.status === 401) {
          askToken();
          return;
        }
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        setStream('live', 'live');
        const opened = performance.now();
        read();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r/g, '');
          let cut = buffer.indexOf('\n\n');
          while (cut >= 0) {
            dispatch(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
            cut = buffer.indexOf('\n\n');
          }
        }
        failure = 'the stream ended';
        // Only a stream that lived a while earns a quick retry: one that
        // opens and ends at once keeps backing off.
        if (performance.now() - opened > STREAM_LIVED_MS) wait = RETRY_MS;
      } catch (e) {
        failure = e.message;
      } finally {
        ui.stream = null;
      }
      if (controller.signal.aborted) continue; // hidden, or asked for a token
      setStream('down', `reconnecting in ${Math.round(wait / 1000)}s (${failure}); the table still refreshes every 2 s`);
      await sleep(wait);
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    }
  } finally {
    ui.following = false;
  }
}

function concerns(event, identity) {
  const personality = identity.slice(identity.indexOf('-') + 1);
  const fields = ['identity', 'caller', 'via'];
  return event.personality === personality || event.to === personality
    || fields.some((f) => event[f] === identity);
}

// ---- the fleet table ---------------------------------------------------------

function rowsOf(snapshot) {
  const rows = [];
  const here = (snapshot.hosts || []).find((h) => h.here);
  for (const peer of snapshot.peers) {
    const host = peer.host || (here && here.host) || '';
    if (peer.host_down) {
      rows.push({
        mail: 0, turn: '', identity: `?-${peer.personality}`, personality: peer.personality,
        runtime: '?', state: 'host-down', activeMs: null, lastExit: `host ${host} is down`, host,
      });
      continue;
    }
    for (const [i, rt] of peer.runtimes.entries()) {
      const state = rt.status === 'asleep' && rt.crash_loop ? 'crash-loop' : rt.status;
      rows.push({
        mail: i === 0 ? peer.queue_depth || 0 : 0,
        turn: rt.turn || '',
        identity: `${rt.runtime}-${peer.personality}`,
        personality: peer.personality,
        runtime: rt.runtime,
        state,
        activeMs: peer.last_active_runtime === rt.runtime ? peer.last_active_ms : null,
        lastExit: rt.last_exit ? `${rt.last_exit.how} at ${rt.last_exit.at}` : '',
        host,
      });
    }
  }
  return rows;
}

function ago(ms) {
  if (ms == null) return '—';
  const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

function newRow(row) {
  const tr = document.createElement('tr');
  tr.dataset.identity = row.identity;
  tr.tabIndex = -1;
  const cells = {};
  for (const name of ['state', 'host', 'peer', 'runtime', 'active', 'exit']) {
    const td = document.createElement('td');
    td.className = name;
    tr.appendChild(td);
    cells[name] = td;
  }
  const actions = document.createElement('td');
  actions.className = 'actions';
  for (const verb of VERBS) {
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.verb = verb;
    b.textContent = verb;
    b.setAttribute('aria-label', `${verb} ${row.identity}`);
    actions.appendChild(b);
  }
  tr.appendChild(actions);
  cells.peer.textContent = row.personality;
  cells.runtime.textContent = row.runtime;
  return { tr, cells, row: null };
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function render() {
  const snapshot = ui.snapshot;
  const rows = rowsOf(snapshot);
  const now = performance.timeOrigin + performance.now();
  const seen = new Set();
  const body = $('rows');
  const wanted = [];
  for (const row of rows) {
    seen.add(row.identity);
    let entry = ui.rows.get(row.identity);
    if (!entry) {
      entry = newRow(row);
      ui.rows.set(row.identity, entry);
    }
    const before = entry.row;
    if (before && before.state !== row.state) {
      const changes = window.iapeerStats.changes;
      changes.push({ identity: row.identity, from: before.state, to: row.state, at: now });
      if (changes.length > 1000) changes.shift();
    }
    entry.row = row;
    const turn = row.turn === 'working' || row.turn === 'dialog' ? ` · ${row.turn}` : '';
    setText(entry.cells.state, `${GLYPHS[row.state] || '?'} ${row.state}${turn}`);
    setText(entry.cells.host, row.host);
    setText(entry.cells.peer, row.mail ? `${row.personality} ✉ ${row.mail}` : row.personality);
    entry.tr.dataset.state = row.state;
    setText(entry.cells.active, ago(row.activeMs));
    setText(entry.cells.exit, row.lastExit);
    entry.cells.exit.title = row.lastExit;
    entry.tr.hidden = !matches(row);
    wanted.push(entry.tr);
  }
  for (const [identity, entry] of ui.rows) {
    if (!seen.has(identity)) {
      if (ui.armed && ui.armed.identity === identity) disarm();
      entry.tr.remove();
      ui.rows.delete(identity);
    }
  }
  // Re-order only when the registry's order changed (keeps focus put).
  const current = Array.from(body.children);
  if (current.length !== wanted.length || current.some((tr, i) => tr !== wanted[i])) {
    body.replaceChildren(...wanted);
  }
  keepSelectionVisible(window.iapeerStats.renders === 0); // the first draw
  document.body.classList.toggle('fleet', snapshot.joined === true);
  renderSummary(rows);
  renderPlugins(snapshot.host.adapters || []);
  renderSender();
  $('empty').hidden = rows.length > 0;
  window.iapeerStats.renders += 1;
  if (window.iapeerStats.firstFleetMs === null) {
    requestAnimationFrame(() => {
      window.iapeerStats.firstFleetMs = performance.now();
      performance.mark('iapeer-fleet-painted');
    });
  }
}

/// The selection is always a row the operator can see. When a re-read
/// hides or removes it (its state left the filter, it was unregistered)
/// the selection is cleared, never moved: a key pressed next must not act
/// on a peer nobody picked. `retarget` (the first draw, a filter edit the
/// operator just made) moves it to the first visible row instead.
function keepSelectionVisible(retarget) {
  const entry = ui.selected && ui.rows.get(ui.selected);
  if (!entry || entry.tr.hidden) {
    const first = Array.from($('rows').children).find((tr) => !tr.hidden);
    ui.selected = null;
    if (retarget && first) {
      select(first.dataset.identity, false);
    } else {
      $('detail').hidden = true;
    }
  }
  markSelected();
}

function matches(row) {
  if (!ui.filter) return true;
  const f = ui.filter.toLowerCase();
  return row.identity.toLowerCase().includes(f) || row.state.includes(f)
    || (row.host || '').toLowerCase().includes(f);
}

function renderSummary(rows) {
  const count = (s) => rows.filter((r) => r.state === s).length;
  const peers = new Set(rows.map((r) => r.personality)).size;
  const host = ui.snapshot.host;
  const parts = [
    `${peers} peers, ${rows.length} runtimes`,
    `${count('live')} live`,
    `${count('asleep')} asleep`,
    `${count('stopped')} stopped`,
  ];
  if (count('crash-loop')) parts.push(`${count('crash-loop')} crash-looping`);
  if (ui.snapshot.joined) {
    const hosts = (ui.snapshot.hosts || []).map((h) => `${h.host} ${h.up ? '●' : '✕ down'}`);
    parts.push(`hosts: ${hosts.join(', ')}`);
  }
  parts.push(`daemon ${host.version}, pid ${host.pid}`);
  setText($('summary'), parts.join(' · '));
}

function renderPlugins(adapters) {
  const body = $('plugin-rows');
  const rows = adapters.map((a) => {
    const tr = document.createElement('tr');
    tr.dataset.state = a.state;
    for (const text of [a.runtime || '?', a.version || '—', a.state, a.source, a.reason || '']) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  });
  const signature = JSON.stringify(adapters);
  if (body.dataset.signature !== signature) {
    body.dataset.signature = signature;
    body.replaceChildren(...rows);
  }
}

function renderSender() {
  const host = ui.snapshot.host;
  const entry = ui.selected && ui.rows.get(ui.selected);
  let note = '';
  let blocked = false;
  if (!host.operator) {
    note = `cannot send: ${host.operator_problem || 'no operator identity (IAPEER_OPERATOR)'}`;
    blocked = true;
  } else if (entry && entry.row.identity === host.operator) {
    note = `this is ${host.operator}, who the dashboard sends as: pick another peer to message`;
    blocked = true;
  } else {
    note = `sending as ${host.operator}`;
  }
  setText($('sender'), note);
  $('send-button').disabled = blocked;
}

// ---- selection, actions, the detail pane -------------------------------------

function select(identity, focus) {
  if (!ui.rows.has(identity)) return;
  const changed = ui.selected !== identity;
  ui.selected = identity;
  markSelected();
  const entry = ui.rows.get(identity);
  if (focus) entry.tr.focus();
  if (changed) {
    const row = entry.row;
    $('detail').hidden = false;
    setText($('detail-title'), `${row.personality} (${row.runtime})`);
    $('send-button').textContent = `send to ${row.personality} (${row.runtime})`;
    $('pane').textContent = '';
    setText($('pane-id'), identity);
    if (ui.snapshot) renderSender();
    readPane();
  }
}

function markSelected() {
  for (const [identity, entry] of ui.rows) {
    const on = identity === ui.selected;
    entry.tr.classList.toggle('selected', on);
    entry.tr.setAttribute('aria-selected', on ? 'true' : 'false');
    entry.tr.tabIndex = on ? 0 : -1;
  }
}

function move(step) {
  const visible = Array.from($('rows').children).filter((tr) => !tr.hidden);
  if (!visible.length) return;
  const at = visible.findIndex((tr) => tr.dataset.identity === ui.selected);
  const next = visible[Math.min(visible.length - 1, Math.max(0, at + step))];
  select(next.dataset.identity, true);
}

function say(text, isError) {
  const status = $('status');
  status.textContent = isError ? `error: ${text}` : text;
  status.dataset.kind = isError ? 'error' : 'ok';
}

async function act(verb, identity) {
  const entry = identity && ui.rows.get(identity);
  if (!entry || entry.tr.hidden) return;
  const { personality, runtime, state } = entry.row;
  if (verb === 'new' && !confirmNew(identity, entry)) return;
  const body = { runtime };
  // Starting a crash-looping peer means "try again": forget its deaths.
  if (verb === 'start' && state === 'crash-loop') body.reset = true;
  say(`${verb} ${identity}…`);
  const r = await call('POST', `/fleet/v1/peers/${encodeURIComponent(personality)}/${verb}`, body);
  if (r.ok) {
    say(`${verb} ${identity}: ${describeSuccess(r.data)}`);
  } else {
    say(`${verb} ${identity}: ${describeFailure(r.data)}`, true);
  }
  read();
  readPane();
}

/// `new` throws the conversation away: the first press arms the button,
/// a second one within a few seconds does it.
function confirmNew(identity, entry) {
  const button = entry.tr.querySelector('button[data-verb="new"]');
  if (ui.armed && ui.armed.identity === identity) {
    clearTimeout(ui.armed.timer);
    ui.armed = null;
    button.textContent = 'new';
    button.classList.remove('armed');
    return true;
  }
  disarm();
  button.textContent = 'sure? new';
  button.classList.add('armed');
  ui.armed = { identity, timer: setTimeout(disarm, CONFIRM_MS) };
  say(`new ${identity} starts a fresh conversation: press new again to confirm`);
  return false;
}

function disarm() {
  if (!ui.armed) return;
  const entry = ui.rows.get(ui.armed.identity);
  clearTimeout(ui.armed.timer);
  ui.armed = null;
  if (entry) {
    const button = entry.tr.querySelector('button[data-verb="new"]');
    button.textContent = 'new';
    button.classList.remove('armed');
  }
}

function outcomeText(o) {
  return o.reason ? `${o.runtime} ${o.action} (${o.reason})` : `${o.runtime} ${o.action}`;
}

function describeSuccess(data) {
  if (!data) return 'done';
  if (Array.isArray(data.outcomes)) return data.outcomes.map(outcomeText).join('; ');
  if (data.outcome) return outcomeText(data.outcome);
  if (data.status) return data.woke ? `${data.status} (woken)` : data.status;
  return 'done';
}

function describeFailure(data) {
  if (!data) return 'failed';
  if (data.error) return data.error;
  if (Array.isArray(data.outcomes)) return data.outcomes.map(outcomeText).join('; ');
  if (data.outcome) return outcomeText(data.outcome);
  if (data.reason) return `${data.status || 'failed'}: ${data.reason}`;
  return JSON.stringify(data);
}

/// Reads the selected peer's pane tail (coalesced like `read`).
const readPane = coalesced(readPaneOnce);

async function readPaneOnce() {
  const identity = ui.selected;
  const entry = identity && ui.rows.get(identity);
  if (!entry) return;
  const { personality, runtime } = entry.row;
  const q = new URLSearchParams({ runtime, lines: '60' });
  const r = await call('GET', `/fleet/v1/peers/${encodeURIComponent(personality)}/pane?${q}`);
  if (ui.selected !== identity) return; // selection moved meanwhile
  setText($('pane-id'), identity);
  const pane = $('pane');
  if (!r.ok) {
    setText(pane, `cannot read the pane log: ${describeFailure(r.data)}`);
    return;
  }
  const text = r.data.lines.length ? r.data.lines.join('\n') : (r.data.note || '(empty)');
  const atBottom = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4;
  setText(pane, text);
  if (atBottom) pane.scrollTop = pane.scrollHeight;
}

async function send(event) {
  event.preventDefault();
  const entry = ui.selected && ui.rows.get(ui.selected);
  if (!entry) return;
  const message = $('message').value;
  if (!message.trim()) {
    say('the message is empty', true);
    return;
  }
  const body = { personality: entry.row.personality, runtime: entry.row.runtime, message };
  const topic = $('topic').value.trim();
  if (topic) body.topic = topic;
  say(`sending to ${entry.row.identity}…`);
  $('send-button').disabled = true;
  const r = await call('POST', '/fleet/v1/send', body);
  renderSender();
  if (r.ok) {
    $('message').value = '';
    const to = r.data.delivered_to;
    const name = to ? `${to.personality} (${to.runtime})` : entry.row.identity;
    say(`delivered to ${name}${r.data.woke ? ', woken for it' : ''}`);
  } else {
    const why = describeFailure(r.data);
    say(why.includes('NOT delivered') ? why : `message NOT delivered: ${why}`, true);
  }
  read();
}

// ---- wiring -----------------------------------------------------------------

function typing(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement;
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  // A held key repeats: it must not confirm `new` or act twice.
  if (e.repeat && !['j', 'k', 'ArrowDown', 'ArrowUp'].includes(e.key)) return;
  if (typing(e.target)) {
    if (e.key === 'Escape') e.target.blur();
    return;
  }
  const keyed = {
    j: () => move(1), ArrowDown: () => move(1),
    k: () => move(-1), ArrowUp: () => move(-1),
    w: () => act('wake', ui.selected), s: () => act('stop', ui.selected),
    S: () => act('start', ui.selected), n: () => act('new', ui.selected),
    i: () => act('interrupt', ui.selected),
    m: () => $('message').focus(), '/': () => $('filter').focus(),
  }[e.key];
  if (keyed && (ui.selected || e.key === '/')) {
    e.preventDefault();
    keyed();
  }
}

function wire() {
  $('rows').addEventListener('click', (e) => {
    const tr = e.target.closest('tr');
    if (!tr) return;
    select(tr.dataset.identity, false);
    const button = e.target.closest('button[data-verb]');
    if (button) act(button.dataset.verb, tr.dataset.identity);
  });
  $('rows').addEventListener('focusin', (e) => {
    const tr = e.target.closest('tr');
    if (tr && tr.dataset.identity !== ui.selected) select(tr.dataset.identity, false);
  });
  $('filter').addEventListener('input', (e) => {
    ui.filter = e.target.value.trim();
    if (!ui.snapshot) return;
    render();
    keepSelectionVisible(true);
  });
  $('send').addEventListener('submit', send);
  $('token-form').addEventListener('submit', onToken);
  document.addEventListener('keydown', onKey);
  document.addEventListener('visibilitychange', () => {
    if (document.hidden && ui.stream) ui.stream.abort();
  });
  setInterval(() => {
    if (document.hidden || ui.askingToken) return;
    read();
    readPane();
  }, SAFETY_MS);
}

wire();
if (document.body.dataset.auth === 'bearer' && !sessionStorage.getItem(TOKEN_KEY)) {
  askToken(); // before any request: nothing is refused, nothing logged
} else {
  read();
  follow();
}
