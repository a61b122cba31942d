// The demo chat: the fullduplex channels client (served by `fullduplex serve`
// at ./fullduplex-client.js) behind a plain DOM page. Every piece of text that
// came from a user or the network is put into the page with textContent, never
// as HTML.
import { Client } from './fullduplex-client.js';

const MAX_TEXT = 1000;
/** Messages of the room shown on joining (history read). */
const BACKLOG = 50;

const $ = (id) => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing from the page`);
  return el;
};
const ui = {
  status: $('status'), statusText: $('status-text'),
  join: $('join'), joinForm: $('join-form'), name: $('name'), room: $('room'),
  chat: $('chat'), roomName: $('room-name'), meName: $('me-name'), leave: $('leave'),
  people: $('people'), peopleCount: $('people-count'), log: $('log'),
  composer: $('composer'), message: $('message'), send: $('send'),
};

/** The session in a room: null on the join form. */
let session = null;

// Prefill from the address (?room=…&name=…): links to a room can be shared.
const params = new URLSearchParams(location.search);
if (params.has('room')) ui.room.value = params.get('room').slice(0, 64);
if (params.has('name')) ui.name.value = params.get('name').slice(0, 32);

ui.joinForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = ui.name.value.trim();
  const room = ui.room.value.trim();
  if (name === '' || !/^[A-Za-z0-9_-]{1,64}$/.test(room)) return;
  enterRoom(name, room);
});
ui.leave.addEventListener('click', leaveRoom);
ui.composer.addEventListener('submit', (ev) => {
  ev.preventDefault();
  sendMessage();
});

function enterRoom(name, room) {
  const url = new URL('channels', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // The demo trusts the chosen name: the server takes the token as the display name.
  const client = new Client(url.href, { token: name, name: 'fullduplex-demo' });
  const sub = client.subscribe(`chat:${room}`);
  session = {
    client, sub, name, room,
    /** Publications shown, by "epoch:offset": each appears once whatever path it came by. */
    shown: new Set(),
    /** Own messages not yet seen coming back, oldest first. */
    outbox: [],
    people: new Map(),
    joinedOnce: false,
    /** Our connections' client ids (a new one per connection): our messages come back under any of them. */
    mine: new Set(),
    /** The position a recovery reached: publications up to it that arrive now are the missed ones. */
    recoveredTo: null,
    offs: [],
  };
  const s = session;
  s.offs.push(
    client.on('state', ({ state, transport }) => showState(state, transport)),
    client.on('connected', ({ client: id }) => s.mine.add(id)),
    client.on('reconnecting', ({ attempt, delay }) => showState('reconnecting', null, `Reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt})`)),
    client.on('disconnected', ({ code, reason, reconnect }) => {
      setComposer(false);
      if (!reconnect) notice('error', `Disconnected (${code}${reason ? `: ${reason}` : ''}).`);
    }),
    client.on('error', ({ code, message }) => notice('error', `Server error ${code}: ${message}`)),
    sub.on('subscribed', (ev) => subscribed(s, ev)),
    sub.on('publication', (pub) => publication(s, pub)),
    sub.on('join', (entry) => {
      s.people.set(entry.client, entry.user);
      renderPeople(s);
    }),
    sub.on('leave', (entry) => {
      s.people.delete(entry.client);
      renderPeople(s);
    }),
    sub.on('error', ({ code, message }) => notice('error', `Could not join the room (${code}: ${message}).`)),
    sub.on('unsubscribed', ({ code, reason }) => {
      if (code !== 0 && code !== 1000) notice('error', `Left the room (${code}${reason ? `: ${reason}` : ''}).`);
    }),
  );

  ui.roomName.textContent = room;
  ui.meName.textContent = name;
  ui.log.replaceChildren();
  ui.people.replaceChildren();
  ui.peopleCount.textContent = '0';
  ui.join.hidden = true;
  ui.chat.hidden = false;
  history.replaceState(null, '', `?room=${encodeURIComponent(room)}`);
  document.title = `#${room} · fullduplex chat`;
  client.connect();
  ui.message.focus();
}

function leaveRoom() {
  if (session === null) return;
  for (const off of session.offs) off();
  session.sub.unsubscribe();
  session.client.disconnect();
  session = null;
  showState('disconnected', null);
  setComposer(false);
  ui.chat.hidden = true;
  ui.join.hidden = false;
  document.title = 'fullduplex chat';
  ui.name.focus();
}

async function subscribed(s, ev) {
  setComposer(true);
  if (!s.joinedOnce) {
    s.joinedOnce = true;
    notice('info', `You joined #${s.room}.`);
    await showBacklog(s, ev);
  } else if (ev.recovered === true) {
    // The recovered publications follow this event, each with an offset up to ev.offset.
    s.recoveredTo = { epoch: ev.epoch, offset: ev.offset };
    notice('recovered', ev.missed === 0 ? 'Reconnected. You missed nothing.' : `Reconnected. ${ev.missed} missed ${ev.missed === 1 ? 'message' : 'messages'} below.`);
  } else if (ev.recovered === false) {
    notice('unrecovered', `Reconnected, but history could not be recovered (${reasonText(ev.reason)}): messages sent while you were away are lost.`);
  }
  // Joins and leaves while away were missed too: ask who is here now.
  refreshPeople(s);
}

function reasonText(reason) {
  switch (reason) {
    case 'epoch': return 'the server restarted or its history was reset';
    case 'trimmed': return 'too many messages were sent while you were away';
    case 'expired': return "the room's history expired";
    case 'no_history': return 'this room keeps no history';
    default: return 'unknown reason';
  }
}

/** The room's recent messages, shown above anything that arrived live. */
async function showBacklog(s, ev) {
  let result;
  try {
    result = await s.sub.history({ limit: BACKLOG });
  } catch {
    return; // A room without history (or a lost connection) just starts empty.
  }
  if (session !== s) return;
  const first = ui.log.querySelector('.msg');
  for (const pub of result.publications) {
    if (pub.epoch !== ev.epoch || pub.offset > ev.offset) continue;
    const el = messageElement(s, pub);
    if (el !== null) ui.log.insertBefore(el, first);
  }
  scrollToEnd();
}

async function refreshPeople(s) {
  try {
    const entries = await s.sub.presence();
    if (session !== s) return;
    s.people = new Map(entries.map((e) => [e.client, e.user]));
    renderPeople(s);
  } catch {
    // Presence is a nicety: the join/leave events keep the list going.
  }
}

function publication(s, pub) {
  const missed = s.recoveredTo !== null && pub.epoch === s.recoveredTo.epoch && pub.offset <= s.recoveredTo.offset;
  const key = `${pub.epoch}:${pub.offset}`;
  if (s.shown.has(key)) return;
  // Our own message coming back: confirm the bubble already on the page.
  if (pub.info !== undefined && s.mine.has(pub.info.client)) {
    const text = messageText(pub.data);
    const i = s.outbox.findIndex((o) => o.text === text);
    if (i !== -1) {
      const [own] = s.outbox.splice(i, 1);
      confirmOwn(s, own.el, key);
      return;
    }
  }
  const el = messageElement(s, pub);
  if (el === null) return;
  if (missed) markMissed(el);
  append(el);
}

function sendMessage() {
  const s = session;
  if (s === null) return;
  const text = ui.message.value.trim().slice(0, MAX_TEXT);
  if (text === '') return;
  ui.message.value = '';
  const at = Date.now();
  const el = bubble(s.name, text, true, at);
  el.classList.add('pending');
  setMeta(el, 'sending…');
  append(el);
  const own = { text, el };
  s.outbox.push(own);
  s.sub.publish({ text, at }).then(
    ({ offset, epoch }) => {
      const key = `${epoch}:${offset}`;
      if (!s.shown.has(key)) confirmOwn(s, el, key);
      const i = s.outbox.indexOf(own);
      if (i !== -1) s.outbox.splice(i, 1);
    },
    (err) => {
      el.classList.remove('pending');
      el.classList.add('failed');
      // 499: the connection dropped first; the message may still have gone out (then it comes back on recovery).
      setMeta(el, err && err.code === 499 ? 'not confirmed' : 'not sent');
    },
  );
}

function confirmOwn(s, el, key) {
  s.shown.add(key);
  el.dataset.key = key;
  el.classList.remove('pending', 'failed');
  setMeta(el, '');
}

/** The text of a chat payload, or null for anything else (the network is not trusted). */
function messageText(data) {
  if (data === null || typeof data !== 'object' || typeof data.text !== 'string') return null;
  return data.text.slice(0, MAX_TEXT);
}

function messageElement(s, pub) {
  const key = `${pub.epoch}:${pub.offset}`;
  const text = messageText(pub.data);
  if (text === null || s.shown.has(key)) return null;
  s.shown.add(key);
  const mine = pub.info !== undefined && s.mine.has(pub.info.client);
  const el = bubble(pub.info === undefined ? 'server' : pub.info.user || 'anonymous', text, mine, sentAt(pub.data));
  el.dataset.key = key;
  return el;
}

/** When the sender says it sent the message (its clock), if that is plausible; else now. */
function sentAt(data) {
  const at = data.at;
  const now = Date.now();
  return typeof at === 'number' && Number.isFinite(at) && Math.abs(now - at) < 86_400_000 ? at : now;
}

function bubble(who, text, mine, at) {
  const li = document.createElement('li');
  li.className = mine ? 'msg mine' : 'msg';
  const meta = document.createElement('div');
  meta.className = 'meta';
  const name = document.createElement('span');
  name.className = 'who';
  name.textContent = who;
  const time = document.createElement('time');
  const when = new Date(at);
  time.dateTime = when.toISOString();
  time.textContent = when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const state = document.createElement('span');
  state.className = 'state';
  meta.append(name, time, state);
  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = text;
  li.append(meta, body);
  return li;
}

function setMeta(el, text) {
  const state = el.querySelector('.state');
  if (state !== null) state.textContent = text;
}

function markMissed(el) {
  el.classList.add('missed');
  const badge = document.createElement('span');
  badge.className = 'badge';
  badge.textContent = 'missed';
  el.querySelector('.meta').append(badge);
}

function notice(kind, text) {
  const li = document.createElement('li');
  li.className = 'notice';
  li.dataset.kind = kind;
  li.textContent = text;
  append(li);
}

function append(el) {
  const atEnd = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
  ui.log.append(el);
  if (atEnd) scrollToEnd();
}

function scrollToEnd() {
  ui.log.scrollTop = ui.log.scrollHeight;
}

function renderPeople(s) {
  // One line per user, however many tabs they have open.
  const users = new Map();
  for (const [client, user] of s.people) {
    const entry = users.get(user) ?? { count: 0, you: false };
    entry.count++;
    if (client === s.client.clientId) entry.you = true;
    users.set(user, entry);
  }
  const items = [...users].sort(([a], [b]) => a.localeCompare(b)).map(([user, { count, you }]) => {
    const li = document.createElement('li');
    li.textContent = user || 'anonymous';
    if (count > 1) li.append(` ×${count}`);
    if (you) {
      const mark = document.createElement('span');
      mark.className = 'you';
      mark.textContent = '(you)';
      li.append(' ', mark);
    }
    return li;
  });
  ui.people.replaceChildren(...items);
  ui.peopleCount.textContent = String(users.size);
}

function showState(state, transport, text) {
  ui.status.dataset.state = state;
  ui.status.dataset.transport = transport ?? '';
  const via = transport === 'sse' ? 'Server-Sent Events fallback' : 'WebSocket';
  ui.statusText.textContent =
    text ??
    (state === 'connected' ? `Connected · ${via}` : state === 'connecting' ? 'Connecting…' : state === 'reconnecting' ? 'Reconnecting…' : 'Not connected');
  if (state !== 'connected') setComposer(false);
}

function setComposer(enabled) {
  ui.message.disabled = !enabled;
  ui.send.disabled = !enabled;
  if (enabled && document.activeElement === document.body) ui.message.focus();
}
