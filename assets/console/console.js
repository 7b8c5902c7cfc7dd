// Tessera console: one plain script, no framework, no build step (docs/console.md).
//
// It reads the native API with the operator's token (kept in sessionStorage only, sent as a bearer header), follows
// the event stream (GET /v1/events, read with fetch so the header can be sent; replayed from the node's ring first)
// and re-reads the status of every mix and relay project when an event arrives and every two seconds. Snapshots are
// fetched as blobs and shown through object URLs; the live preview is mpegts.js (vendor/), loaded on first use.
'use strict';

(() => {
  // The API lives next to the console: '' normally, the prefix when a proxy serves the node under a path.
  const BASE = location.pathname.replace(/\/console\/?$/, '');
  const TOKEN_KEY = 'tessera.console.token';
  const POLL_MS = 2000;
  const GRID_SNAPSHOT_MS = 2000;
  const STAGE_SNAPSHOT_MS = 1000;
  const MISSING_SNAPSHOT_MS = 3000;
  const KEPT_EVENTS = 2000;

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  // The console's whole state.
  const S = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    needToken: false,
    online: null,
    stream: 'connecting',
    mixes: new Map(),
    relays: new Map(),
    fetchedAt: 0,
    // Events as the stream delivered them, oldest first; `lastEventId` resumes the stream after a reconnect.
    events: [],
    lastEventId: 0,
    // What the detail view shows: {kind: 'mix' | 'relay', id}, or null for the overview.
    route: null,
    cards: new Map(),
  };

  // ---- DOM helpers --------------------------------------------------------------------------------------------------

  // el('td', {class: 'num', title: '…'}, 'text', otherNode): attributes by name, children as nodes or text.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'dataset') Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // Replaces `node`'s children with `children`, leaving out the absent ones (null, undefined, false).
  function fill(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
  }

  function pill(state, text) {
    return el('span', { class: 'pill', dataset: { state: state || 'idle' } }, text || state || '—');
  }

  function fmtDuration(s) {
    if (s === undefined || s === null || !isFinite(s)) return '—';
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
    if (m) return `${m}m ${String(sec).padStart(2, '0')}s`;
    return `${sec}s`;
  }

  function fmtAge(ms) {
    if (ms === undefined || ms === null) return '—';
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  function fmtBytes(n) {
    if (!n) return '0 B';
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i += 1;
    }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  function fmtTime(ms) {
    const d = new Date(ms);
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
  }

  // `rtmp://host:1935/mix/out?k=v` → `mix/out`: what tells outputs apart in a card (the whole URL is its title).
  function shortUrl(url) {
    try {
      const u = new URL(url);
      return u.pathname.replace(/^\/+/, '') || u.host;
    } catch (_) {
      return url;
    }
  }

  // A link state as shown: `retrying #3`.
  function linkText(link) {
    if (!link) return '—';
    return link.attempt ? `${link.state} #${link.attempt}` : link.state;
  }

  // ---- the API ------------------------------------------------------------------------------------------------------

  class Unauthorized extends Error {}

  function authHeaders() {
    return S.token ? { Authorization: `Bearer ${S.token}` } : {};
  }

  // fetch() on the node with the token; a 401 asks for a (new) token and throws Unauthorized.
  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {}, authHeaders());
    const res = await fetch(BASE + path, Object.assign({ cache: 'no-store' }, options, { headers }));
    if (res.status === 401) {
      askToken(S.token ? 'That token was refused.' : '');
      throw new Unauthorized('401');
    }
    return res;
  }

  // ---- the token ----------------------------------------------------------------------------------------------------

  function askToken(message) {
    $('token-error').textContent = message || '';
    if (S.needToken) return;
    S.needToken = true;
    stopEvents();
    stopPreview();
    renderConn();
    const dialog = $('token-dialog');
    if (!dialog.open) dialog.showModal();
    $('token').focus();
  }

  $('token-dialog').addEventListener('cancel', (e) => {
    // Nothing can be shown without a token: Escape does not close the question.
    if (S.needToken) e.preventDefault();
  });

  $('token-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = $('token').value.trim();
    if (!token) return;
    $('token-submit').disabled = true;
    try {
      const res = await fetch(`${BASE}/v1/mixes`, { cache: 'no-store', headers: { Authorization: `Bearer ${token}` } });
      if (res.status === 401) {
        $('token-error').textContent = 'That token was refused.';
        return;
      }
      S.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      S.needToken = false;
      $('token').value = '';
      $('token-dialog').close();
      $('forget').hidden = false;
      startEvents();
      refresh();
      S.route = null;
      route();
    } catch (err) {
      $('token-error').textContent = `The node does not answer (${err.message}).`;
    } finally {
      $('token-submit').disabled = false;
    }
  });

  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    S.token = '';
    $('forget').hidden = true;
    S.mixes.clear();
    S.relays.clear();
    render();
    askToken('');
  });

  // ---- status: every mix and relay project --------------------------------------------------------------------------

  let refreshing = null;
  let refreshAgain = false;
  let refreshSoon = null;

  async function refresh() {
    if (S.needToken || document.hidden) return;
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = (async () => {
      try {
        const [m, r] = await Promise.all([api('/v1/mixes'), api('/v1/relays')]);
        if (!m.ok || !r.ok) throw new Error(`HTTP ${m.ok ? r.status : m.status}`);
        const mixes = await m.json();
        const relays = await r.json();
        const mixList = Array.isArray(mixes) ? mixes : mixes.mixes || [];
        const relayList = Array.isArray(relays) ? relays : relays.relays || [];
        S.mixes = new Map(mixList.map((v) => [v.id, v]));
        S.relays = new Map(relayList.map((v) => [v.id, v]));
        S.fetchedAt = Date.now();
        S.online = true;
        if (S.token) $('forget').hidden = false;
        render();
      } catch (err) {
        if (!(err instanceof Unauthorized)) {
          S.online = false;
          renderConn();
        }
      } finally {
        refreshing = null;
        if (refreshAgain) {
          refreshAgain = false;
          soon(100);
        }
      }
    })();
  }

  // A refresh shortly: events come in bursts, one read answers them all.
  function soon(ms) {
    if (refreshSoon) return;
    refreshSoon = setTimeout(() => {
      refreshSoon = null;
      refresh();
    }, ms);
  }

  // ---- the event stream ---------------------------------------------------------------------------------------------

  let events = null;

  function stopEvents() {
    if (events) events.abort();
    events = null;
  }

  // Follows GET /v1/events until stopped, reconnecting after the last event seen (the first connection replays the
  // node's ring: the recent events and failovers).
  async function startEvents() {
    stopEvents();
    const ctrl = new AbortController();
    events = ctrl;
    while (!ctrl.signal.aborted) {
      try {
        const res = await api(`/v1/events?since=${S.lastEventId}`, {
          signal: ctrl.signal,
          headers: { Accept: 'text/event-stream' },
        });
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        S.stream = 'live';
        renderConn();
        await readStream(res.body.getReader(), ctrl.signal);
      } catch (err) {
        if (err instanceof Unauthorized || ctrl.signal.aborted) return;
      }
      if (ctrl.signal.aborted) return;
      S.stream = 'reconnecting';
      renderConn();
      await new Promise((ok) => setTimeout(ok, 2000));
    }
  }

  async function readStream(reader, signal) {
    const decoder = new TextDecoder();
    let buffer = '';
    let message = { event: '', data: [] };
    while (!signal.aborted) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        let line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (message.data.length) onMessage(message.event, message.data.join('\n'));
          message = { event: '', data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'data') message.data.push(text);
        else if (field === 'event') message.event = text;
      }
    }
  }

  let eventsDrawn = null;

  function onMessage(type, data) {
    if (type === 'events.missed') {
      soon(50);
      return;
    }
    let event;
    try {
      event = JSON.parse(data);
    } catch (_) {
      return;
    }
    if (typeof event.id !== 'number' || event.id <= S.lastEventId) return;
    S.lastEventId = event.id;
    S.events.push(event);
    if (S.events.length > KEPT_EVENTS) S.events.splice(0, S.events.length - KEPT_EVENTS);
    // The status says what the event changed: read it again now rather than at the next poll.
    soon(100);
    if (!eventsDrawn) {
      eventsDrawn = setTimeout(() => {
        eventsDrawn = null;
        renderEvents();
        renderRelayHistories();
      }, 100);
    }
  }

  function taskOf(event) {
    const t = event.task || {};
    if (t.kind) return { kind: t.kind, id: t.id };
    if (t.mix !== undefined) return { kind: 'mix', id: t.mix };
    if (t.relay !== undefined) return { kind: 'relay', id: t.relay };
    return { kind: '', id: '' };
  }

  function eventsOf(kind, id, types) {
    return S.events.filter((e) => {
      const t = taskOf(e);
      return t.kind === kind && t.id === id && (!types || types.includes(e.type));
    });
  }

  function eventDetails(e) {
    const skip = new Set(['id', 'time_ms', 'task', 'type']);
    return Object.entries(e)
      .filter(([k]) => !skip.has(k))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
  }

  // ---- snapshots ----------------------------------------------------------------------------------------------------

  // An <img> that shows `path` (a JPEG of the API) refreshed every `every` ms while it is on screen.
  function snapshotImg(path, every, cls) {
    const img = el('img', { class: `snapshot ${cls || ''}`, alt: '', dataset: { snap: path, every: String(every) } });
    return img;
  }

  function setSnapshotPath(img, path) {
    if (img.dataset.snap === path) return;
    img.dataset.snap = path;
    if (img._snap) img._snap.next = 0;
  }

  // A picture's caption: its label (what it shows) and, while the snapshot cannot be had, why.
  function setNote(note, part, text) {
    if (note.dataset[part] === text) return;
    note.dataset[part] = text;
    note.textContent = [note.dataset.label, note.dataset.problem].filter(Boolean).join(' · ');
  }

  async function loadSnapshot(img) {
    const st = img._snap || (img._snap = { busy: false, next: 0 });
    if (st.busy || Date.now() < st.next || S.needToken) return;
    st.busy = true;
    const path = img.dataset.snap;
    const note = img.parentElement && img.parentElement.querySelector('.note, figcaption');
    try {
      const res = await api(path);
      if (img.dataset.snap !== path) {
        // Shown elsewhere meanwhile (another task opened): this answer is not wanted.
        st.next = 0;
      } else if (res.ok) {
        const blob = await res.blob();
        const url = URL.createObjectURL(blob);
        const old = img.getAttribute('src');
        img.src = url;
        try {
          await img.decode();
          img.dataset.loaded = '1';
          if (note) setNote(note, 'problem', '');
        } catch (_) {
          // A picture that does not decode: the next one will.
        }
        if (old && old.startsWith('blob:')) URL.revokeObjectURL(old);
        st.next = Date.now() + Number(img.dataset.every || GRID_SNAPSHOT_MS);
      } else {
        let why = '';
        try {
          why = ((await res.json()).error || {}).message || '';
        } catch (_) {
          // Not the API's JSON error.
        }
        if (note) {
          const short = { 404: 'no snapshot', 409: 'not live', 503: 'no picture yet' }[res.status];
          const problem = short || `no snapshot (HTTP ${res.status})`;
          setNote(note, 'problem', img.dataset.loaded ? `${problem}: last picture` : problem);
          note.title = why;
        }
        st.next = Date.now() + MISSING_SNAPSHOT_MS;
      }
    } catch (err) {
      st.next = Date.now() + MISSING_SNAPSHOT_MS;
    } finally {
      st.busy = false;
    }
  }

  function tickSnapshots() {
    if (document.hidden || S.needToken) return;
    for (const img of document.querySelectorAll('img[data-snap]')) {
      if (img.offsetParent !== null) loadSnapshot(img);
    }
  }

  // ---- overview -----------------------------------------------------------------------------------------------------

  function mixStats(status) {
    return el(
      'div',
      { class: 'stats' },
      el('b', {}, (status.output_fps || 0).toFixed(1)),
      ' fps · ',
      el('b', {}, status.output_bitrate_kbps || 0),
      ' kbps · up ',
      el('b', {}, fmtDuration(status.uptime_s)),
    );
  }

  function inputsTable(inputs) {
    const rows = [];
    for (const i of inputs || []) {
      rows.push(
        el(
          'tr',
          { class: 'input', dataset: { input: i.id, state: i.state }, title: i.url },
          el('td', {}, i.id),
          el('td', {}, pill(i.state, linkText(i))),
          el('td', { class: 'num', title: 'time since its last frame' }, fmtAge(i.last_frame_age_ms)),
          el('td', { class: 'num', title: 'reconnects' }, i.reconnects ?? '—'),
          el('td', { class: 'num' }, i.video_size ? `${i.video_size[0]}×${i.video_size[1]}` : ''),
        ),
      );
      if (i.last_error && i.state !== 'live') {
        rows.push(el('tr', { class: 'why' }, el('td', { colspan: 5 }, i.last_error)));
      }
    }
    return el(
      'table',
      { class: 'inputs' },
      el('tr', {}, el('th', {}, 'input'), el('th', {}, 'state'), el('th', {}, 'last frame'), el('th', {}, 'reconn.'), el('th', {}, 'size')),
      rows,
    );
  }

  function outputsTable(outputs, withBytes) {
    const rows = [];
    for (const o of outputs || []) {
      rows.push(
        el(
          'tr',
          { class: 'output', dataset: { output: o.id || o.url, state: o.state } },
          el('td', { class: 'url', title: o.url }, o.id || shortUrl(o.url)),
          el('td', {}, pill(o.state, linkText(o))),
          el('td', { class: 'num' }, `${o.bitrate_kbps || 0} kbps`),
          el('td', { class: 'num', title: 'reconnects' }, o.reconnects ?? '—'),
          withBytes ? el('td', { class: 'num' }, fmtBytes(o.bytes)) : null,
        ),
      );
      if (o.last_error && o.state !== 'live') {
        rows.push(el('tr', { class: 'why' }, el('td', { colspan: 5 }, o.last_error)));
      }
    }
    return el(
      'table',
      { class: 'outputs' },
      el('tr', {}, el('th', {}, 'output'), el('th', {}, 'state'), el('th', {}, 'bitrate'), el('th', {}, 'reconn.'), withBytes ? el('th', {}, 'sent') : null),
      rows,
    );
  }

  function aspect(spec) {
    const c = (spec && spec.canvas) || {};
    return `${c.width || 1280} / ${c.height || 720}`;
  }

  function mixCard(view) {
    const key = `mix:${view.id}`;
    let card = S.cards.get(key);
    if (!card) {
      const img = snapshotImg(`/v1/mixes/${enc(view.id)}/snapshot.jpg?width=320`, GRID_SNAPSHOT_MS);
      const thumb = el('div', { class: 'thumb' }, img, el('div', { class: 'note' }));
      const body = el('div', { class: 'body' });
      const root = el('article', { class: 'card mix', dataset: { mix: view.id }, tabindex: 0 }, thumb, body);
      const open = () => {
        location.hash = `#mix/${enc(view.id)}`;
      };
      root.addEventListener('click', open);
      root.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') open();
      });
      card = { root, body, thumb };
      S.cards.set(key, card);
    }
    const st = view.status || {};
    card.root.dataset.state = st.state;
    card.thumb.style.aspectRatio = aspect(view.spec);
    fill(card.body,
      el('div', { class: 'title' }, el('strong', {}, view.id), pill(st.state)),
      mixStats(st),
      st.error ? el('div', { class: 'error' }, st.error) : null,
      inputsTable(st.inputs),
      outputsTable(st.outputs),
    );
    return card.root;
  }

  function relayUptime(st) {
    return st.state === 'working' && st.started_at ? Date.now() / 1000 - st.started_at : null;
  }

  function relayInputState(input) {
    return input ? input.state : 'idle';
  }

  function failoverList(id, max) {
    const history = eventsOf('relay', id, ['relay.failover', 'relay.failback']).slice(-max).reverse();
    if (!history.length) return el('p', { class: 'muted history' }, 'No failover in the kept events.');
    return el(
      'ol',
      { class: 'events history' },
      history.map((e) =>
        el(
          'li',
          { dataset: { type: e.type } },
          el('time', {}, fmtTime(e.time_ms)),
          el('span', { class: 'type' }, e.type === 'relay.failover' ? 'failover' : 'failback'),
          `${e.from} → ${e.to}`,
          e.reason ? ` (${e.reason})` : '',
        ),
      ),
    );
  }

  function relayInputPics(view, every) {
    const st = view.status || {};
    const box = (role) => {
      const input = st[role];
      const note = el('div', { class: 'note' });
      setNote(note, 'label', `${role} · ${relayInputState(input)}`);
      const img = snapshotImg(`/v1/relays/${enc(view.id)}/inputs/${role}/snapshot.jpg?width=320`, every);
      return el('div', { class: 'thumb', dataset: { role } }, img, note);
    };
    const roles = view.spec && view.spec.backup ? ['main', 'backup'] : ['main'];
    return el('div', { class: 'inputs-pics' }, roles.map(box));
  }

  function relayInputsTable(st, spec) {
    const roles = spec && spec.backup ? ['main', 'backup'] : ['main'];
    return el(
      'table',
      { class: 'inputs' },
      el('tr', {}, el('th', {}, 'input'), el('th', {}, 'state'), el('th', {}, 'url')),
      roles.map((role) => {
        const i = st[role];
        return el(
          'tr',
          { class: 'input', dataset: { input: role, state: relayInputState(i) } },
          el('td', {}, role, st.active === role ? ' ◀' : ''),
          el('td', {}, pill(relayInputState(i)), i && i.last_error ? el('span', { class: 'muted' }, ` ${i.last_error}`) : null),
          el('td', { class: 'url', title: i ? i.url : '' }, i ? i.url : ''),
        );
      }),
    );
  }

  function relayCard(view) {
    const key = `relay:${view.id}`;
    let card = S.cards.get(key);
    if (!card) {
      const body = el('div', { class: 'body' });
      const pics = el('div', {});
      const root = el('article', { class: 'card relay', dataset: { relay: view.id }, tabindex: 0 }, el('div', { class: 'body' }, pics), body);
      const open = () => {
        location.hash = `#relay/${enc(view.id)}`;
      };
      root.addEventListener('click', open);
      root.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') open();
      });
      card = { root, body, pics, hasBackup: null };
      S.cards.set(key, card);
    }
    const st = view.status || {};
    const hasBackup = Boolean(view.spec && view.spec.backup);
    if (card.hasBackup !== hasBackup) {
      fill(card.pics, relayInputPics(view, GRID_SNAPSHOT_MS));
      card.hasBackup = hasBackup;
    }
    for (const role of ['main', 'backup']) {
      const note = card.pics.querySelector(`[data-role="${role}"] .note`);
      if (note) setNote(note, 'label', `${role} · ${relayInputState(st[role])}`);
    }
    card.root.dataset.state = st.state;
    card.root.dataset.active = st.active || '';
    fill(card.body,
      el(
        'div',
        { class: 'title' },
        el('strong', {}, view.id),
        pill(st.state),
        st.active ? el('span', { class: 'pill role active', dataset: { role: st.active } }, `on ${st.active}`) : null,
      ),
      el('div', { class: 'stats' }, 'up ', el('b', {}, fmtDuration(relayUptime(st))), ' · ', el('b', {}, st.switches || 0), ' switches'),
      relayInputsTable(st, view.spec),
      outputsTable(st.outputs, true),
      el('h3', {}, 'Failover history'),
      failoverList(view.id, 3),
    );
    return card.root;
  }

  function renderRelayHistories() {
    for (const view of S.relays.values()) {
      const card = S.cards.get(`relay:${view.id}`);
      const old = card && card.body.querySelector('.history');
      if (old) old.replaceWith(failoverList(view.id, 3));
    }
    if (S.route && S.route.kind === 'relay') {
      const box = $('relay-extra').querySelector('.history');
      if (box) box.replaceWith(failoverList(S.route.id, 20));
    }
  }

  function renderConn() {
    const c = $('conn');
    let state;
    let text;
    if (S.needToken) [state, text] = ['failed', 'token needed'];
    else if (S.online === false) [state, text] = ['failed', 'offline'];
    else if (S.stream === 'live') [state, text] = ['live', 'live'];
    else [state, text] = ['connecting', S.stream];
    c.dataset.state = state;
    c.textContent = text;
  }

  function sync(container, nodes, emptyText) {
    const keep = new Set(nodes);
    for (const child of [...container.children]) if (!keep.has(child)) child.remove();
    if (!nodes.length) {
      fill(container, el('p', { class: 'muted empty' }, emptyText));
      return;
    }
    nodes.forEach((node, i) => {
      if (container.children[i] !== node) container.insertBefore(node, container.children[i] || null);
    });
  }

  function render() {
    renderConn();
    const mixes = [...S.mixes.values()].sort((a, b) => a.id.localeCompare(b.id));
    const relays = [...S.relays.values()].sort((a, b) => a.id.localeCompare(b.id));
    const alive = new Set([...mixes.map((m) => `mix:${m.id}`), ...relays.map((r) => `relay:${r.id}`)]);
    for (const [key, card] of S.cards) {
      if (alive.has(key)) continue;
      for (const img of card.root.querySelectorAll('img[src^="blob:"]')) URL.revokeObjectURL(img.src);
      S.cards.delete(key);
    }
    sync($('mixes'), mixes.map(mixCard), 'No mixes.');
    sync($('relays'), relays.map(relayCard), 'No relay projects.');
    $('mix-count').textContent = mixes.length ? `(${mixes.length})` : '';
    $('relay-count').textContent = relays.length ? `(${relays.length})` : '';
    $('summary').textContent = S.fetchedAt ? `updated ${fmtTime(S.fetchedAt)}` : '';
    renderDetail();
  }

  // ---- detail: one mix or relay project ----------------------------------------------------------------------------

  function route() {
    const m = /^#(mix|relay)\/(.+)$/.exec(location.hash);
    const next = m ? { kind: m[1], id: decodeURIComponent(m[2]) } : null;
    const same = next && S.route && next.kind === S.route.kind && next.id === S.route.id;
    S.route = next;
    $('overview').hidden = Boolean(next);
    $('detail').hidden = !next;
    if (!next) {
      stopPreview();
      document.title = 'Tessera console';
      tickSnapshots();
      return;
    }
    document.title = `${next.id} · Tessera console`;
    if (!same) {
      const img = $('stage-img');
      const old = img.getAttribute('src');
      if (old && old.startsWith('blob:')) URL.revokeObjectURL(old);
      img.removeAttribute('src');
      delete img.dataset.loaded;
      fill($('stage-rects'));
      const caption = $('stage-note');
      caption.dataset.label = '';
      caption.dataset.problem = '';
      caption.textContent = '';
      const path =
        next.kind === 'mix'
          ? `/v1/mixes/${enc(next.id)}/snapshot.jpg?width=640`
          : `/v1/relays/${enc(next.id)}/inputs/main/snapshot.jpg?width=640`;
      img.dataset.every = String(STAGE_SNAPSHOT_MS);
      setSnapshotPath(img, path);
      fill($('relay-extra'));
      startPreview(next.kind === 'mix' ? `/v1/mixes/${enc(next.id)}/live.flv` : `/v1/relays/${enc(next.id)}/live.flv`);
    }
    renderDetail();
    renderEvents();
    tickSnapshots();
  }

  function renderDetail() {
    const r = S.route;
    if (!r) return;
    const view = r.kind === 'mix' ? S.mixes.get(r.id) : S.relays.get(r.id);
    fill($('detail-title'), `${r.kind === 'mix' ? 'Mix' : 'Relay'} ${r.id} `);
    if (!view) {
      if (S.fetchedAt) fill($('detail-status'), el('p', { class: 'muted' }, `There is no ${r.kind} ${r.id} on this node.`));
      return;
    }
    const st = view.status || {};
    $('detail-title').append(pill(st.state));
    const stage = $('stage');
    if (r.kind === 'mix') {
      stage.style.aspectRatio = aspect(view.spec);
      drawRects(view);
      fill($('detail-status'),
        mixStats(st),
        st.error ? el('p', { class: 'error' }, st.error) : null,
        el('h3', {}, 'Inputs'),
        inputsTable(st.inputs),
        el('h3', {}, 'Outputs'),
        outputsTable(st.outputs),
      );
    } else {
      // The stage shows the input being forwarded.
      stage.style.aspectRatio = '16 / 9';
      const role = st.active || 'main';
      setSnapshotPath($('stage-img'), `/v1/relays/${enc(view.id)}/inputs/${role}/snapshot.jpg?width=640`);
      const caption = $('stage-note');
      setNote(caption, 'label', st.active ? `forwarding ${st.active}` : '');
      fill($('detail-status'),
        el(
          'div',
          { class: 'stats' },
          st.active ? el('span', { class: 'pill role active', dataset: { role: st.active } }, `on ${st.active}`) : null,
          ' up ',
          el('b', {}, fmtDuration(relayUptime(st))),
          ' · ',
          el('b', {}, st.switches || 0),
          ' switches',
        ),
        el('h3', {}, 'Inputs'),
        relayInputsTable(st, view.spec),
        el('h3', {}, 'Outputs'),
        outputsTable(st.outputs, true),
      );
      const extra = $('relay-extra');
      const withBackup = String(Boolean(view.spec && view.spec.backup));
      if (!extra.firstChild || extra.dataset.backup !== withBackup) {
        extra.dataset.backup = withBackup;
        fill(extra);
        extra.append(el('h3', {}, 'Inputs'), relayInputPics(view, STAGE_SNAPSHOT_MS), el('h3', {}, 'Failover history'), failoverList(view.id, 20));
      }
      for (const role of ['main', 'backup']) {
        const note = extra.querySelector(`[data-role="${role}"] .note`);
        if (note) setNote(note, 'label', `${role} · ${relayInputState(st[role])}`);
      }
    }
  }

  // The layout: each input's rect, outlined, with its id, over the snapshot (in % of the canvas).
  function drawRects(view) {
    const canvas = view.spec.canvas || {};
    const cw = canvas.width || 1280;
    const ch = canvas.height || 720;
    const states = new Map(((view.status || {}).inputs || []).map((i) => [i.id, i.state]));
    const inputs = [...(view.spec.inputs || [])].sort((a, b) => (a.layer ?? 1) - (b.layer ?? 1));
    const pct = (v, of) => `${((100 * v) / of).toFixed(3)}%`;
    fill($('stage-rects'),
      ...inputs.map((input) => {
        const r = input.rect || { x: 0, y: 0, width: cw, height: ch };
        const box = el('div', { class: 'rect', dataset: { input: input.id, state: states.get(input.id) || 'idle' } }, el('span', {}, input.id));
        box.style.left = pct(r.x, cw);
        box.style.top = pct(r.y, ch);
        box.style.width = pct(r.width, cw);
        box.style.height = pct(r.height, ch);
        return box;
      }),
    );
  }

  function renderEvents() {
    const r = S.route;
    if (!r) return;
    const list = eventsOf(r.kind, r.id).slice(-100).reverse();
    const box = $('events');
    if (!list.length) {
      fill(box, el('li', { class: 'muted' }, 'No events kept for this task.'));
      return;
    }
    fill(box,
      ...list.map((e) =>
        el('li', { dataset: { type: e.type } }, el('time', {}, fmtTime(e.time_ms)), el('span', { class: 'type' }, e.type), eventDetails(e)),
      ),
    );
  }

  // ---- the live preview ---------------------------------------------------------------------------------------------

  let playerScript = null;
  let player = null;
  let playerRetry = null;

  function loadPlayer() {
    if (!playerScript) {
      playerScript = new Promise((ok, fail) => {
        const s = el('script', { src: 'console/vendor/mpegts.js' });
        s.onload = ok;
        s.onerror = () => {
          playerScript = null;
          fail(new Error('the player script did not load'));
        };
        document.head.append(s);
      });
    }
    return playerScript;
  }

  function stopPreview() {
    clearTimeout(playerRetry);
    playerRetry = null;
    if (player) {
      const p = player;
      player = null;
      try {
        p.pause();
        p.unload();
        p.detachMediaElement();
        p.destroy();
      } catch (_) {
        // Already torn down.
      }
    }
  }

  async function startPreview(path) {
    stopPreview();
    const note = $('preview-note');
    const video = $('preview');
    note.textContent = 'loading the player…';
    try {
      await loadPlayer();
    } catch (err) {
      note.textContent = err.message;
      return;
    }
    const mpegts = window.mpegts;
    if (!mpegts || !mpegts.getFeatureList().mseLivePlayback) {
      note.textContent = 'This browser cannot play the live preview (no MediaSource).';
      return;
    }
    if (!S.route || S.needToken) return;
    const here = S.route;
    mpegts.LoggingControl.enableVerbose = false;
    mpegts.LoggingControl.enableDebug = false;
    mpegts.LoggingControl.enableInfo = false;
    const p = mpegts.createPlayer(
      { type: 'flv', isLive: true, url: new URL(BASE + path, location.href).href },
      {
        enableWorker: false,
        enableStashBuffer: false,
        lazyLoad: false,
        liveBufferLatencyChasing: true,
        liveBufferLatencyMaxLatency: 2.5,
        liveBufferLatencyMinRemain: 0.5,
        headers: authHeaders(),
      },
    );
    player = p;
    const again = (why) => {
      if (player !== p) return;
      note.textContent = why;
      stopPreview();
      playerRetry = setTimeout(() => {
        if (S.route === here) startPreview(path);
      }, 3000);
    };
    p.on(mpegts.Events.ERROR, (type, detail, info) => {
      const code = info && info.code;
      if (code === 401) askToken('That token was refused.');
      else if (code === 404) again('No live preview for this task (yet).');
      else again(`The preview stopped (${detail || type}); trying again.`);
    });
    p.on(mpegts.Events.LOADING_COMPLETE, () => again('The stream ended; trying again.'));
    p.on(mpegts.Events.MEDIA_INFO, () => {
      if (player === p) note.textContent = '';
    });
    p.attachMediaElement(video);
    p.load();
    const playing = p.play();
    if (playing && playing.catch) playing.catch(() => {});
  }

  // ---- start --------------------------------------------------------------------------------------------------------

  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) {
      refresh();
      tickSnapshots();
    }
  });
  setInterval(refresh, POLL_MS);
  setInterval(tickSnapshots, 250);
  renderConn();
  route();
  refresh();
  startEvents();
})();
