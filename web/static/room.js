// Convene room client: the join panel's preview and device choice, then the live gathering.
//
// It mounts on `#room-app` (rendered by the Room page only when the visitor may enter) and
// reads everything it needs from that element's data attributes, so the page carries no
// inline script and a strict Content-Security-Policy can be sent.
//
// How it talks to the instance (see the signaling module of the media crate for the table):
//   1. POST data-token-url (CSRF header, form body `guest_name`) → a single-use media token;
//   2. WebSocket to the returned signal_url, first frame `join {token}` → `welcome`;
//   3. one RTCPeerConnection: the client offers its sendonly camera/mic (or recvonly
//      transceivers when it publishes nothing); the server offers whenever the set of tracks
//      to receive changes and the client answers. On glare the client is the impolite side:
//      it ignores the server's offer, because the server rolls back and offers again later.
//   4. Remote tracks arrive with `streams[0].id` = the publisher's participant id.
// When the socket drops or ICE fails, the client fetches a fresh token and joins again with
// backoff, unless the server said the session ended for good (left, removed, room ended).
//
// `window.__convene` exposes the live peer connection and session for the browser tests.

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

/** Creates an element: `h('button#go.btn.btn-primary', {type: 'button'}, 'Join')`. */
function h(spec, attrs = {}, ...children) {
  const [head, ...classes] = spec.split('.');
  const [tag, id] = head.split('#');
  const node = document.createElement(tag || 'div');
  if (id) node.id = id;
  if (classes.length) node.className = classes.join(' ');
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key === 'text') {
      node.textContent = value;
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Icons drawn on a 24px grid with the same stroke as the server-rendered ones.
const ICONS = {
  mic: '<rect x="9" y="3" width="6" height="11.5" rx="3"/><path d="M5.5 11.5a6.5 6.5 0 0 0 13 0M12 18v3"/>',
  micOff: '<path d="M15 10.5V6a3 3 0 0 0-5.8-1.1M9 9v2.5a3 3 0 0 0 4.6 2.5"/><path d="M18.5 11.5a6.5 6.5 0 0 1-.9 3.3M5.5 11.5a6.5 6.5 0 0 0 10 5.5M12 18v3M3.5 3.5l17 17"/>',
  camera: '<rect x="2.5" y="6.5" width="13" height="11" rx="2.5"/><path d="m15.5 10.5 5.5-3.2v9.4l-5.5-3.2z"/>',
  cameraOff: '<path d="M9 6.5h4a2.5 2.5 0 0 1 2.5 2.5v4m0 2.5A2.5 2.5 0 0 1 13 17.5H5A2.5 2.5 0 0 1 2.5 15V9A2.5 2.5 0 0 1 5 6.5"/><path d="m15.5 10.5 5.5-3.2v9.4l-3-1.7M3.5 3.5l17 17"/>',
  screen: '<rect x="2.5" y="4" width="19" height="13" rx="2"/><path d="M8.5 20.5h7M12 17v3.5M9 10.5l3-3 3 3M12 7.5v6"/>',
  leave: '<path d="M3 14.2c5-4.6 13-4.6 18 0l-1.9 2.8-3.6-1.3v-2.5a11.6 11.6 0 0 0-7 0v2.5L4.9 17z"/>',
  people: '<circle cx="9" cy="8" r="3.5"/><path d="M2.5 20a6.5 6.5 0 0 1 13 0"/><circle cx="17" cy="9" r="2.5"/><path d="M16.5 14.1a5 5 0 0 1 5 5.4"/>',
  chat: '<path d="M4.5 4.5h15A1.5 1.5 0 0 1 21 6v9.5a1.5 1.5 0 0 1-1.5 1.5H10l-4.5 3.5V17h-1A1.5 1.5 0 0 1 3 15.5V6a1.5 1.5 0 0 1 1.5-1.5z"/>',
  settings: '<circle cx="12" cy="12" r="3"/><path d="M12 2.5v3M12 18.5v3M2.5 12h3M18.5 12h3M5.3 5.3l2.1 2.1M16.6 16.6l2.1 2.1M5.3 18.7l2.1-2.1M16.6 7.4l2.1-2.1"/>',
  close: '<path d="M6 6l12 12M18 6 6 18"/>',
  send: '<path d="M4 11.8 20.5 4l-5.6 16.5-3.4-6.9z"/><path d="m11.5 13.6 9-9.6"/>',
  alert: '<circle cx="12" cy="12" r="9"/><path d="M12 7.5v5.5M12 16.5v.01"/>',
  person: '<circle cx="12" cy="8" r="4"/><path d="M4.5 21a7.5 7.5 0 0 1 15 0"/>',
  wave: '<path d="M7 12.5V6.8a1.3 1.3 0 0 1 2.6 0V11m0-5.8V4.3a1.3 1.3 0 0 1 2.6 0V11m0-5.5a1.3 1.3 0 0 1 2.6 0V11m0-3.2a1.3 1.3 0 0 1 2.6 0v6.4A6.8 6.8 0 0 1 10.6 21 5.7 5.7 0 0 1 5.4 17.5L3.6 13a1.4 1.4 0 0 1 2.5-1.2L7 13.6"/>',
};

function icon(name, variant = '') {
  const span = document.createElement('span');
  span.className = variant ? `icon-wrap ${variant}` : 'icon-wrap';
  span.setAttribute('aria-hidden', 'true');
  // The markup is ours (the constant above), never user input.
  span.innerHTML = `<svg class="icon" viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" focusable="false">${ICONS[name] || ''}</svg>`;
  return span;
}

/** How many of the three signal bars each connection quality level fills. */
const QUALITY_BARS = { good: 3, fair: 2, poor: 1, lost: 0 };

/** Signal bars with a text alternative ("Connection: poor"); hidden while the level is unknown. */
function qualityIndicator(level, you = false) {
  const el = h('span.quality', { role: 'img', hidden: true });
  setQualityIndicator(el, level, you);
  return el;
}

function setQualityIndicator(el, level, you = false) {
  const known = Object.hasOwn(QUALITY_BARS, level || '');
  el.hidden = !known;
  if (!known) {
    el.dataset.level = '';
    el.removeAttribute('aria-label');
    el.removeAttribute('title');
    return;
  }
  if (el.dataset.level === level) return;
  el.dataset.level = level;
  const text = `${you ? 'Your connection' : 'Connection'}: ${level}`;
  el.setAttribute('aria-label', text);
  el.title = text;
  const bars = [0, 1, 2]
    .map((i) => `<rect x="${3 + i * 7}" y="${15 - i * 5}" width="4" height="${6 + i * 5}" rx="1" class="${i < QUALITY_BARS[level] ? 'bar-on' : 'bar-off'}"/>`)
    .join('');
  // The markup is ours (numbers above), never user input.
  el.innerHTML = `<svg class="icon" viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" focusable="false">${bars}</svg>`;
}

/** Initials and colour class of an avatar, as the server renders them (same hash). */
function avatar(name, extra = '') {
  const words = String(name || '').split(/\s+/).filter(Boolean);
  let initials = words.slice(0, 2).map((w) => [...w][0].toUpperCase()).join('');
  if (!initials) initials = '?';
  let hash = 0;
  for (const byte of new TextEncoder().encode(String(name || ''))) {
    hash = (Math.imul(hash, 31) + byte) >>> 0;
  }
  return h(`span.avatar.avatar-${hash % 8}${extra ? '.' + extra : ''}`, { 'aria-hidden': 'true' }, initials);
}

/**
 * The home instance of a person admitted with a Passport of another instance, from their address
 * (`@ada@home.example`); `null` for people of this instance and for guests.
 */
function visitingFrom(handle, instanceDomain) {
  const match = /^@?[^@\s]+@([^@\s]+)$/.exec(String(handle || ''));
  if (!match) return null;
  const host = match[1].toLowerCase();
  return host === instanceDomain ? null : host;
}

/** The mark beside a visitor's name: they are here with a Passport from `from`. */
function visitorBadge(from) {
  return h('span.visitor-badge', { title: `Visiting with a Passport from ${from}` }, 'Visitor');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** The WebSocket URL for a signal path (or an absolute ws/http URL). */
function socketUrl(signal) {
  if (/^wss?:/i.test(signal)) return signal;
  if (/^https?:/i.test(signal)) return signal.replace(/^http/i, 'ws');
  return (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + signal;
}

/** Close reasons after which rejoining would be wrong or pointless. */
const FINAL_REASONS = {
  left: 'Your camera and microphone are off now. You can come back while the room is open.',
  'joined from another place': 'You joined this room from another tab or device, so this one was disconnected.',
  'removed from the space': 'You were removed from this Space, so you can no longer be in its rooms.',
  'room has ended': 'This room was deleted, so the meeting has ended.',
};

class JoinError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem || {};
  }
  /** Whether asking again later could succeed (a full room, a server hiccup). */
  get retryable() {
    return this.status === 409 || this.status === 429 || this.status >= 500;
  }
}

// ---------------------------------------------------------------------------------------
// Local media: the camera and microphone the person chose, shared by preview and call
// ---------------------------------------------------------------------------------------

class LocalMedia {
  constructor() {
    this.stream = new MediaStream();
    this.audio = null; // MediaStreamTrack or null
    this.video = null;
    this.micOn = true;
    this.camOn = true;
    this.audioDevice = '';
    this.videoDevice = '';
    // 'unknown' | 'granted' | 'denied' | 'unavailable' | 'insecure'
    this.permission = 'unknown';
    this.problem = '';
    this.hasMic = false;
    this.hasCam = false;
    this.onchange = () => {};
  }

  get supported() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  constraints(kind) {
    if (kind === 'audio') {
      return this.audioDevice ? { deviceId: { exact: this.audioDevice } } : true;
    }
    const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 24, max: 30 } };
    if (this.videoDevice) video.deviceId = { exact: this.videoDevice };
    return video;
  }

  /** Asks for the devices that are switched on; classifies failures into clear messages. */
  async start() {
    if (!this.supported) {
      this.permission = window.isSecureContext ? 'unavailable' : 'insecure';
      this.problem = window.isSecureContext
        ? 'This browser cannot use a camera or microphone here. You can still join to watch and listen.'
        : 'Camera and microphone only work over a secure (https) connection. You can still join to watch and listen.';
      this.onchange();
      return;
    }
    const want = { audio: this.micOn, video: this.camOn };
    if (!want.audio && !want.video) {
      await this.refreshDevices();
      this.onchange();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: want.audio && this.constraints('audio'),
        video: want.video && this.constraints('video'),
      });
      for (const track of stream.getTracks()) this.setTrack(track);
      this.permission = 'granted';
      this.problem = '';
    } catch (err) {
      await this.startEach(want, err);
    }
    await this.refreshDevices();
    this.onchange();
  }

  /** After a combined request failed: try each kind alone, so one broken device is not both. */
  async startEach(want, firstError) {
    let denied = firstError && (firstError.name === 'NotAllowedError' || firstError.name === 'SecurityError');
    if (denied) {
      this.permission = 'denied';
      this.problem =
        'Your browser is blocking the camera and microphone for this site. You can still join to watch and listen; to be seen and heard, allow them in the site settings (the icon beside the address) and try again.';
      return;
    }
    const got = [];
    for (const kind of ['audio', 'video']) {
      if (!want[kind]) continue;
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ [kind]: this.constraints(kind) });
        for (const track of stream.getTracks()) this.setTrack(track);
        got.push(kind);
      } catch (err) {
        if (err.name === 'NotAllowedError') denied = true;
      }
    }
    if (denied && !got.length) {
      this.permission = 'denied';
      this.problem =
        'Your browser is blocking the camera and microphone for this site. You can still join to watch and listen; to be seen and heard, allow them in the site settings and try again.';
    } else if (!got.length) {
      this.permission = 'unavailable';
      this.problem = 'No camera or microphone could be started (none found, or another app is using them). You can still join to watch and listen.';
    } else {
      this.permission = 'granted';
      const missing = want.audio && !got.includes('audio') ? 'microphone' : want.video && !got.includes('video') ? 'camera' : '';
      this.problem = missing ? `Your ${missing} could not be started (none found, or another app is using it).` : '';
    }
  }

  setTrack(track) {
    const old = track.kind === 'audio' ? this.audio : this.video;
    if (old && old !== track) {
      this.stream.removeTrack(old);
      old.stop();
    }
    this.stream.addTrack(track);
    if (track.kind === 'audio') {
      this.audio = track;
      this.hasMic = true;
      track.enabled = this.micOn;
      this.audioDevice = track.getSettings().deviceId || this.audioDevice;
    } else {
      this.video = track;
      this.hasCam = true;
      this.videoDevice = track.getSettings().deviceId || this.videoDevice;
    }
    track.addEventListener('ended', () => {
      // The device was unplugged or revoked.
      if ((track.kind === 'audio' ? this.audio : this.video) === track) {
        this.dropTrack(track.kind);
        this.problem = `Your ${track.kind === 'audio' ? 'microphone' : 'camera'} stopped.`;
        this.onchange();
      }
    });
  }

  dropTrack(kind) {
    const track = kind === 'audio' ? this.audio : this.video;
    if (!track) return;
    this.stream.removeTrack(track);
    track.stop();
    if (kind === 'audio') this.audio = null;
    else this.video = null;
  }

  /** Gets one kind anew (device switch or camera back on); returns the new track or null. */
  async acquire(kind) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ [kind]: this.constraints(kind) });
      const track = stream.getTracks()[0];
      this.setTrack(track);
      this.permission = 'granted';
      this.problem = '';
      await this.refreshDevices();
      return track;
    } catch (err) {
      this.problem =
        err.name === 'NotAllowedError'
          ? 'Your browser is blocking the camera and microphone for this site. Allow them in the site settings and try again.'
          : `Your ${kind === 'audio' ? 'microphone' : 'camera'} could not be started (${err.name || 'error'}).`;
      if (err.name === 'NotAllowedError') this.permission = 'denied';
      return null;
    } finally {
      this.onchange();
    }
  }

  async refreshDevices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    try {
      const devices = await navigator.mediaDevices.enumerateDevices();
      this.devices = devices;
      this.hasMic = this.hasMic || devices.some((d) => d.kind === 'audioinput' && d.deviceId);
      this.hasCam = this.hasCam || devices.some((d) => d.kind === 'videoinput' && d.deviceId);
    } catch {
      this.devices = [];
    }
  }

  stop() {
    for (const track of this.stream.getTracks()) track.stop();
    this.stream = new MediaStream();
    this.audio = null;
    this.video = null;
  }
}

/** A labelled select for one kind of device, kept in sync with LocalMedia. */
function deviceSelect(media, kind, onpick) {
  const id = kind === 'audio' ? 'room-mic' : 'room-camera';
  const select = h('select', { id, name: id });
  const field = h('div.field.device-field', {}, h('label', { for: id }, kind === 'audio' ? 'Microphone' : 'Camera'), h('div.select-wrap', {}, select));
  select.addEventListener('change', () => onpick(select.value));
  field.update = () => {
    const devices = (media.devices || []).filter((d) => d.kind === (kind === 'audio' ? 'audioinput' : 'videoinput') && d.deviceId);
    const current = kind === 'audio' ? media.audioDevice : media.videoDevice;
    select.replaceChildren(
      ...devices.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === current }, d.label || `${kind === 'audio' ? 'Microphone' : 'Camera'} ${i + 1}`)),
    );
    field.hidden = devices.length === 0;
  };
  return field;
}

// ---------------------------------------------------------------------------------------
// The join panel: preview, device choice, name, Join
// ---------------------------------------------------------------------------------------

function mountJoinPanel(root) {
  const config = {
    tokenUrl: root.dataset.tokenUrl,
    signalUrl: root.dataset.signalUrl,
    csrf: root.dataset.csrf,
    roomName: root.dataset.roomName || document.title,
    displayName: root.dataset.displayName || '',
    instanceDomain: (root.dataset.instanceDomain || location.host).toLowerCase(),
    // A Passport of another instance admitted here: its address.
    visiting: root.dataset.visiting || '',
  };
  const media = new LocalMedia();
  const form = root.querySelector('#join-form');
  const preview = root.querySelector('.preview');
  if (!form || !preview) return;
  root.classList.add('is-enhanced');
  // Our own inline messages, in the style of the server's forms, instead of the browser's bubble.
  form.noValidate = true;

  // Preview: the camera picture, or the avatar when there is none, with two toggles.
  const placeholder = h('div.preview-placeholder', {}, ...preview.childNodes);
  const video = h('video.preview-video.mirror', { autoplay: true, playsinline: true, muted: true });
  video.muted = true;
  const micButton = toggleButton('Microphone', 'mic', 'micOff', () => setMic(!media.micOn));
  const camButton = toggleButton('Camera', 'camera', 'cameraOff', () => setCam(!media.camOn));
  const status = h('p.preview-status', { 'aria-live': 'polite' });
  preview.removeAttribute('aria-hidden');
  preview.setAttribute('aria-label', 'Your camera preview');
  preview.setAttribute('role', 'group');
  preview.replaceChildren(video, placeholder, h('div.preview-controls', {}, micButton, camButton), status);

  // Device choice goes above the help line; a notice area for blocked devices under it.
  const micSelect = deviceSelect(media, 'audio', (id) => switchDevice('audio', id));
  const camSelect = deviceSelect(media, 'video', (id) => switchDevice('video', id));
  const devices = h('div.devices', {}, camSelect, micSelect);
  const notice = h('div.media-notice', { role: 'alert', hidden: true });
  const retry = h('button.btn.btn-secondary.btn-small', { type: 'button', onclick: () => media.start() }, 'Try again');
  const help = form.querySelector('p.help:not([id])');
  const actions = form.querySelector('.form-actions');
  form.insertBefore(devices, help || actions);
  form.insertBefore(notice, actions);
  if (help) help.textContent = 'Check how you look and sound. You can turn either off before you join.';
  const joinError = h('div.callout.callout-error.join-error', { role: 'alert', hidden: true });
  actions.before(joinError);
  const joinButton = actions.querySelector('button[type="submit"]');

  function render() {
    const hasVideo = media.video && media.camOn && media.video.readyState === 'live';
    video.srcObject = hasVideo ? media.stream : null;
    preview.classList.toggle('has-video', !!hasVideo);
    setPressed(micButton, media.micOn && !!media.audio, media.permission === 'granted' || media.permission === 'unknown');
    setPressed(camButton, media.camOn && !!media.video, media.permission === 'granted' || media.permission === 'unknown');
    status.textContent =
      media.permission === 'denied' || media.permission === 'unavailable' || media.permission === 'insecure'
        ? 'Camera and microphone unavailable'
        : !media.camOn
          ? 'Camera is off'
          : '';
    micSelect.update();
    camSelect.update();
    devices.hidden = micSelect.hidden && camSelect.hidden;
    notice.hidden = !media.problem;
    if (media.problem) {
      notice.replaceChildren(
        h('div.callout.callout-warning', {}, icon('alert'), h('div', {}, h('p', {}, media.problem), media.permission === 'denied' || media.permission === 'unavailable' ? retry : null)),
      );
    }
  }
  media.onchange = render;

  async function setMic(on) {
    media.micOn = on;
    if (on && !media.audio) await media.acquire('audio');
    if (media.audio) media.audio.enabled = on;
    render();
  }

  async function setCam(on) {
    media.camOn = on;
    // Off means off: the camera light goes out, not just a black picture.
    if (!on) media.dropTrack('video');
    else if (!media.video) await media.acquire('video');
    render();
  }

  async function switchDevice(kind, id) {
    if (kind === 'audio') media.audioDevice = id;
    else media.videoDevice = id;
    if ((kind === 'audio' && media.micOn) || (kind === 'video' && media.camOn)) {
      await media.acquire(kind);
    }
    render();
  }

  navigator.mediaDevices?.addEventListener?.('devicechange', async () => {
    await media.refreshDevices();
    render();
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const nameInput = form.querySelector('input[name="guest_name"]');
    const guestName = nameInput ? nameInput.value.trim() : '';
    clearFieldError(nameInput);
    joinError.hidden = true;
    if (nameInput && !guestName) {
      showFieldError(nameInput, 'Enter the name the others will see.');
      nameInput.focus();
      return;
    }
    joinButton.disabled = true;
    joinButton.textContent = 'Joining…';
    try {
      const grant = await fetchToken(config, guestName);
      const call = new Call(root, config, media, guestName, grant);
      window.__convene = call;
      call.start(grant);
    } catch (err) {
      joinButton.disabled = false;
      joinButton.textContent = 'Join';
      const fieldError = err.problem && (err.problem.errors || []).find((e) => e.field === 'guest_name');
      if (fieldError && nameInput) {
        showFieldError(nameInput, fieldError.message);
        nameInput.focus();
      } else {
        joinError.textContent =
          err instanceof JoinError
            ? err.message
            : 'Could not reach the server. Check your connection and try again.';
        joinError.hidden = false;
      }
    }
  });

  render();
  media.start();
}

function toggleButton(label, onIcon, offIcon, onclick) {
  const button = h('button.toggle', { type: 'button', 'aria-pressed': 'true', title: label, onclick });
  button.append(icon(onIcon, 'when-on'), icon(offIcon, 'when-off'), h('span.visually-hidden', {}, label));
  return button;
}

function setPressed(button, on, enabled = true) {
  button.setAttribute('aria-pressed', on ? 'true' : 'false');
  button.disabled = !enabled;
}

function showFieldError(input, message) {
  if (!input) return;
  const field = input.closest('.field');
  const id = `${input.id}-error`;
  let error = document.getElementById(id);
  if (!error) {
    error = h('p.field-error', { id }, h('span.visually-hidden', {}, 'Error: '), '');
    input.before(error);
  }
  error.lastChild.textContent = message;
  field?.classList.add('has-error');
  input.setAttribute('aria-invalid', 'true');
  const described = new Set((input.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean));
  described.add(id);
  input.setAttribute('aria-describedby', [...described].join(' '));
}

function clearFieldError(input) {
  if (!input) return;
  document.getElementById(`${input.id}-error`)?.remove();
  input.closest('.field')?.classList.remove('has-error');
  input.removeAttribute('aria-invalid');
  const described = (input.getAttribute('aria-describedby') || '').split(/\s+/).filter((d) => d && d !== `${input.id}-error`);
  if (described.length) input.setAttribute('aria-describedby', described.join(' '));
  else input.removeAttribute('aria-describedby');
}

/** POSTs for a media token. Throws JoinError with the server's problem on refusal. */
async function fetchToken(config, guestName) {
  const body = new URLSearchParams();
  if (guestName) body.set('guest_name', guestName);
  const response = await fetch(config.tokenUrl, {
    method: 'POST',
    credentials: 'same-origin',
    headers: {
      'x-csrf-token': config.csrf,
      accept: 'application/json',
      'content-type': 'application/x-www-form-urlencoded',
    },
    body,
  });
  if (!response.ok) {
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      // Not JSON (a proxy's error page): the status says enough.
    }
    throw new JoinError(response.status, problem);
  }
  return response.json();
}

// ---------------------------------------------------------------------------------------
// The call: signaling, the peer connection, reconnects
// ---------------------------------------------------------------------------------------

/**
 * The size (CSS pixels) at which `video` shows its picture. A video fitted with `contain` (a
 * shared screen, which must not be cropped) fills only the part of its box that keeps the
 * picture's proportions: a screen in a wide, low strip is a small picture in the middle of it,
 * and needs no more pixels than that. Other videos fill their box.
 */
function shownSize(video) {
  const box = video.getBoundingClientRect();
  const { videoWidth, videoHeight } = video;
  if (!videoWidth || !videoHeight || getComputedStyle(video).objectFit !== 'contain') {
    return { width: box.width, height: box.height };
  }
  const scale = Math.min(box.width / videoWidth, box.height / videoHeight);
  return { width: videoWidth * scale, height: videoHeight * scale };
}

/**
 * The camera goes out in three simulcast layers (a quarter, half and full resolution); the
 * SFU forwards each viewer the one that fills their tile and fits their connection, and
 * tells us which layers nobody takes (`send-layers`) so we stop encoding them.
 */
const CAMERA_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
];

/**
 * Simulcast is on unless this browser opted out (`localStorage['convene.simulcast'] = 'off'`),
 * say on an uplink too weak to carry three layers, where one layer still keeps a picture moving.
 */
function simulcastEnabled() {
  try {
    return window.localStorage.getItem('convene.simulcast') !== 'off';
  } catch {
    return true;
  }
}

function cameraTransceiver(pc, trackOrKind, stream) {
  const init = { direction: 'sendonly', streams: [stream] };
  if (simulcastEnabled()) init.sendEncodings = CAMERA_LAYERS.map((layer) => ({ ...layer }));
  return pc.addTransceiver(trackOrKind, init);
}

/**
 * A shared screen goes out in the layers that suit text: at full resolution, where small print
 * stays readable, and at half resolution for thumbnails and weak links. A quarter-size picture
 * of a page shows nothing legible, so there is no third layer; and a screen changes little, so
 * each layer gives up frames before sharpness (5 a second for the half layer, and the track's
 * `detail` hint keeps the encoder at full resolution when bandwidth runs short).
 */
const SCREEN_LAYERS = [
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 300000, maxFramerate: 5 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 2000000, maxFramerate: 15 },
];

function screenTransceiver(pc, track, stream) {
  const init = { direction: 'sendonly', streams: [stream] };
  if (simulcastEnabled()) init.sendEncodings = SCREEN_LAYERS.map((layer) => ({ ...layer }));
  return pc.addTransceiver(track, init);
}

class Call {
  constructor(root, config, media, guestName, grant) {
    this.root = root;
    this.config = config;
    this.media = media;
    this.guestName = guestName;
    this.me = { id: grant.participant, name: grant.display_name };
    this.participants = new Map(); // id → {id, name, handle, audioMuted, videoMuted, screensharing, tracks}
    this.qualities = new Map(); // participant id (ours too) → 'good' | 'fair' | 'poor' | 'lost'
    this.trackMids = new WeakMap(); // remote track → mid of the transceiver receiving it
    this.ws = null;
    this.pc = null;
    this.queue = Promise.resolve();
    this.offering = false;
    this.offerAgain = false;
    this.pendingCandidates = [];
    this.senders = { audio: null, video: null };
    this.screen = null; // {track, transceiver}
    this.state = 'connecting';
    this.attempt = 0;
    this.ended = false;
    this.generation = 0;
    this.log = [];
    this.ui = new CallView(this);
  }

  start(grant) {
    this.ui.mount();
    this.connect(grant);
    window.addEventListener('online', () => {
      if (this.state === 'reconnecting') this.reconnectNow();
    });
    window.addEventListener('pagehide', () => {
      if (!this.ended) this.send({ type: 'leave' });
    });
  }

  /** The last signaling messages each way, for whoever debugs a session (`__convene.log`). */
  trace(direction, message) {
    this.log.push(`${new Date().toISOString()} ${direction} ${JSON.stringify(message)}`);
    if (this.log.length > 60) this.log.shift();
  }

  send(message) {
    if (message.type !== 'ping' && message.type !== 'candidate') this.trace('out', message);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  /** Opens the socket with a fresh token; each connection has its own generation. */
  connect(grant) {
    const generation = ++this.generation;
    this.closeReason = '';
    const ws = new WebSocket(socketUrl(grant.signal_url || this.config.signalUrl));
    this.ws = ws;
    ws.addEventListener('open', () => ws.send(JSON.stringify({ type: 'join', token: grant.token })));
    ws.addEventListener('message', (event) => {
      if (generation !== this.generation) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type !== 'pong' && message.type !== 'candidate') this.trace('in', message);
      // One message at a time: SDP operations must not interleave.
      this.queue = this.queue.then(() => this.handle(message, generation)).catch((err) => {
        console.error('convene: signaling', err);
        if (generation === this.generation) this.lost('media negotiation failed');
      });
    });
    ws.addEventListener('close', (event) => {
      if (generation !== this.generation || this.ended) return;
      this.lost(this.closeReason || event.reason || 'connection closed');
    });
    clearInterval(this.pinger);
    this.pinger = setInterval(() => this.send({ type: 'ping' }), 20000);
  }

  async handle(message, generation) {
    if (generation !== this.generation) return;
    const pc = this.pc;
    switch (message.type) {
      case 'welcome':
        await this.welcome(message);
        break;
      case 'answer':
        if (!pc || pc.signalingState !== 'have-local-offer') return;
        await pc.setRemoteDescription({ type: 'answer', sdp: message.sdp });
        this.offering = false;
        await this.flushCandidates();
        if (this.offerAgain) {
          this.offerAgain = false;
          await this.offer();
        }
        break;
      case 'offer':
        // Impolite side: our own offer wins; the server rolls back and offers again later.
        if (!pc || this.offering || pc.signalingState !== 'stable') return;
        await pc.setRemoteDescription({ type: 'offer', sdp: message.sdp });
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.send({ type: 'answer', sdp: pc.localDescription.sdp });
        await this.flushCandidates();
        break;
      case 'candidate': {
        const candidate = { candidate: message.candidate, sdpMid: message.sdpMid, sdpMLineIndex: message.sdpMLineIndex };
        if (!pc || !pc.remoteDescription) this.pendingCandidates.push(candidate);
        else await pc.addIceCandidate(candidate).catch(() => {});
        break;
      }
      case 'participant-joined':
        this.addParticipant({ id: message.id, display_name: message.display_name, handle: message.handle }, true);
        break;
      case 'participant-left':
        this.removeParticipant(message.id);
        break;
      case 'mute': {
        const p = this.participants.get(message.participant);
        if (!p) return;
        if (message.kind === 'audio') p.audioMuted = message.muted;
        else p.videoMuted = message.muted;
        this.ui.updateParticipant(p);
        break;
      }
      case 'screenshare': {
        const p = this.participants.get(message.participant);
        if (!p) return;
        p.screensharing = message.active;
        this.ui.updateParticipant(p);
        if (message.active) this.ui.notify(`${p.name} is sharing their screen`);
        break;
      }
      case 'active-speaker':
        this.ui.setSpeaker(message.participant);
        break;
      case 'quality':
        this.setQuality(message.participant, message.level);
        break;
      case 'chat':
        this.ui.addChat(message);
        break;
      case 'send-layers':
        await this.sendLayers(message.mid, Array.isArray(message.rids) ? message.rids : []);
        break;
      case 'error':
        this.closeReason = message.reason;
        break;
      default:
        // pong, track-published/unpublished: the tracks themselves tell us enough.
        break;
    }
  }

  /** Someone's connection quality (ours included) as the SFU measures it. */
  setQuality(id, level) {
    if (typeof id !== 'string' || !Object.hasOwn(QUALITY_BARS, level || '')) return;
    const before = this.qualities.get(id);
    this.qualities.set(id, level);
    if (id === this.me.id) {
      this.ui.updateSelf();
      this.ui.renderPeople();
      if (level === 'poor' && before !== 'poor') this.ui.notify('Your connection is poor: the others may see and hear you late or blurred.');
      return;
    }
    const p = this.participants.get(id);
    if (p) this.ui.updateParticipant(p);
  }

  /** Encodes only the simulcast layers of track `mid` that someone takes. */
  async sendLayers(mid, rids) {
    const transceiver = this.pc?.getTransceivers().find((t) => t.mid === mid);
    const sender = transceiver?.sender;
    if (!sender) return;
    const params = sender.getParameters();
    if (!params.encodings || params.encodings.length < 2) return;
    let changed = false;
    for (const encoding of params.encodings) {
      const active = rids.includes(encoding.rid);
      if (encoding.active !== active) {
        encoding.active = active;
        changed = true;
      }
    }
    if (changed) await sender.setParameters(params).catch((err) => console.warn('layers not changed', err));
  }

  async welcome(message) {
    this.me.id = message.you;
    this.attempt = 0;
    this.participants.clear();
    // The server tells a new session everyone's level again, ours when it has measured it.
    this.qualities.clear();
    this.ui.resetRemote();
    for (const info of message.participants || []) this.addParticipant(info, false);
    this.buildPeer(message.ice_servers || []);
    this.setState('connected');
    await this.offer();
    // Tell the others what they would otherwise have to guess from silence or a black picture.
    this.send({ type: 'mute', kind: 'audio', muted: !(this.media.micOn && this.media.audio) });
    this.send({ type: 'mute', kind: 'video', muted: !(this.media.camOn && this.media.video) });
    if (this.screen) this.send({ type: 'screenshare', active: true });
  }

  buildPeer(iceServers) {
    this.pc?.close();
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    this.pc = pc;
    this.offering = false;
    this.offerAgain = false;
    this.pendingCandidates = [];
    const media = this.media;
    const canPublish = media.permission === 'granted';
    // Sendonly transceivers even for a device that is off now, so turning it on later is a
    // track swap, not a renegotiation.
    this.senders.audio = canPublish && (media.audio || media.hasMic)
      ? pc.addTransceiver(media.audio || 'audio', { direction: 'sendonly', streams: [media.stream] }).sender
      : null;
    this.senders.video = canPublish && (media.video || media.hasCam)
      ? cameraTransceiver(pc, media.video || 'video', media.stream).sender
      : null;
    if (this.senders.audio && !media.micOn && media.audio) media.audio.enabled = false;
    // Receiving needs at least one m-line in the first offer even when publishing nothing.
    if (!this.senders.audio) pc.addTransceiver('audio', { direction: 'recvonly' });
    if (!this.senders.video) pc.addTransceiver('video', { direction: 'recvonly' });
    if (this.screen) {
      this.screen.transceiver = screenTransceiver(pc, this.screen.track, this.screen.stream);
    }
    const generation = this.generation;
    pc.addEventListener('icecandidate', (event) => {
      if (generation !== this.generation) return;
      const c = event.candidate;
      this.send(c ? { type: 'candidate', candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex } : { type: 'candidate', candidate: '' });
    });
    pc.addEventListener('track', (event) => this.remoteTrack(event));
    pc.addEventListener('connectionstatechange', () => {
      if (generation !== this.generation) return;
      if (pc.connectionState === 'failed') this.lost('media connection failed');
      else if (pc.connectionState === 'disconnected') this.ui.banner('warning', 'Your connection is unstable. Trying to keep you in the room…');
      else if (pc.connectionState === 'connected') this.ui.banner(null);
    });
  }

  async offer() {
    const pc = this.pc;
    if (!pc) return;
    if (this.offering) {
      this.offerAgain = true;
      return;
    }
    this.offering = true;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.send({ type: 'offer', sdp: pc.localDescription.sdp });
  }

  /** Runs `task` in the signaling queue so it never interleaves with a server offer. */
  enqueue(task) {
    const generation = this.generation;
    this.queue = this.queue.then(() => (generation === this.generation ? task() : undefined)).catch((err) => console.error('convene:', err));
    return this.queue;
  }

  async flushCandidates() {
    const pending = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const c of pending) await this.pc.addIceCandidate(c).catch(() => {});
  }

  remoteTrack(event) {
    const stream = event.streams[0];
    if (!stream) return;
    const p = this.participants.get(stream.id);
    if (!p) return;
    const track = event.track;
    // Tiles are reported to the SFU by this mid: a track's id is the server's only when the
    // server's offer created the transceiver.
    if (event.transceiver?.mid) this.trackMids.set(track, event.transceiver.mid);
    if (!p.tracks.includes(track)) p.tracks.push(track);
    const forget = () => {
      p.tracks = p.tracks.filter((t) => t !== track);
      this.ui.updateParticipant(p);
    };
    track.addEventListener('ended', forget);
    stream.addEventListener('removetrack', (e) => {
      if (e.track === track) forget();
    });
    // Frames stop and start (camera off, a stalled network): the tile shows the avatar meanwhile.
    track.addEventListener('mute', () => this.ui.updateParticipant(p));
    track.addEventListener('unmute', () => this.ui.updateParticipant(p));
    this.ui.updateParticipant(p);
  }

  addParticipant(info, announce) {
    if (info.id === this.me.id) return;
    const existing = this.participants.get(info.id);
    const p = existing || { id: info.id, tracks: [] };
    p.name = info.display_name;
    p.handle = info.handle || null;
    p.visitingFrom = visitingFrom(p.handle, this.config.instanceDomain);
    p.audioMuted = !!info.audio_muted;
    p.videoMuted = !!info.video_muted;
    p.screensharing = !!info.screensharing;
    this.participants.set(p.id, p);
    this.ui.updateParticipant(p);
    if (announce && !existing) this.ui.notify(`${p.name} joined`);
  }

  removeParticipant(id) {
    const p = this.participants.get(id);
    if (!p) return;
    this.participants.delete(id);
    this.qualities.delete(id);
    this.ui.removeParticipant(p);
    this.ui.notify(`${p.name} left`);
  }

  // --- Controls -------------------------------------------------------------------------

  async setMic(on) {
    const media = this.media;
    media.micOn = on;
    if (on && !media.audio) {
      const track = await media.acquire('audio');
      if (!track) {
        media.micOn = false;
        this.ui.refreshControls();
        return;
      }
      await this.publish('audio', track);
    }
    if (media.audio) media.audio.enabled = on;
    this.send({ type: 'mute', kind: 'audio', muted: !on });
    this.ui.refreshControls();
    this.ui.notify(on ? 'Microphone on' : 'Microphone muted', false);
  }

  async setCam(on) {
    const media = this.media;
    media.camOn = on;
    if (!on) {
      await this.senders.video?.replaceTrack(null);
      media.dropTrack('video');
    } else if (!media.video) {
      const track = await media.acquire('video');
      if (!track) {
        media.camOn = false;
        this.ui.refreshControls();
        return;
      }
      await this.publish('video', track);
    }
    this.send({ type: 'mute', kind: 'video', muted: !on });
    this.ui.refreshControls();
  }

  /** Puts a newly acquired track on the wire: swap into the sender, or add one and offer. */
  async publish(kind, track) {
    if (!this.pc) return;
    if (this.senders[kind]) {
      await this.senders[kind].replaceTrack(track);
      return;
    }
    await this.enqueue(async () => {
      this.senders[kind] = kind === 'video'
        ? cameraTransceiver(this.pc, track, this.media.stream).sender
        : this.pc.addTransceiver(track, { direction: 'sendonly', streams: [this.media.stream] }).sender;
      await this.offer();
    });
  }

  async switchDevice(kind, id) {
    if (kind === 'audio') this.media.audioDevice = id;
    else this.media.videoDevice = id;
    const on = kind === 'audio' ? this.media.micOn : this.media.camOn;
    if (!on) return;
    const track = await this.media.acquire(kind);
    if (track) {
      if (kind === 'audio') track.enabled = this.media.micOn;
      await this.publish(kind, track);
    }
    this.ui.refreshControls();
  }

  /** After a permission was granted late: publish what is now available. */
  async retryDevices() {
    this.media.micOn = true;
    this.media.camOn = true;
    await this.media.start();
    if (this.media.permission !== 'granted') {
      this.ui.refreshControls();
      return;
    }
    if (this.media.audio) await this.publish('audio', this.media.audio);
    if (this.media.video) await this.publish('video', this.media.video);
    this.send({ type: 'mute', kind: 'audio', muted: !this.media.audio });
    this.send({ type: 'mute', kind: 'video', muted: !this.media.video });
    this.ui.refreshControls();
  }

  async toggleScreen() {
    if (this.screen) return this.stopScreen();
    if (!navigator.mediaDevices?.getDisplayMedia) {
      this.ui.notify('This browser cannot share a screen.');
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    } catch (err) {
      this.ui.notify(err.name === 'NotAllowedError' ? 'Screen sharing was cancelled.' : 'Your screen could not be shared.');
      return;
    }
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    track.contentHint = 'detail';
    // The browser's own "Stop sharing" button ends the track.
    track.addEventListener('ended', () => {
      if (this.screen && this.screen.track === track) this.stopScreen();
    });
    this.screen = { track, stream, transceiver: null };
    // Announced before the offer so the others know the new picture is a screen.
    this.send({ type: 'screenshare', active: true });
    await this.enqueue(async () => {
      if (this.screen?.track !== track || !this.pc) return;
      this.screen.transceiver = screenTransceiver(this.pc, track, stream);
      await this.offer();
    });
    this.ui.refreshControls();
    this.ui.notify('You are sharing your screen');
  }

  async stopScreen() {
    const screen = this.screen;
    if (!screen) return;
    this.screen = null;
    screen.track.stop();
    await this.enqueue(async () => {
      if (screen.transceiver && this.pc) {
        screen.transceiver.stop();
        await this.offer();
      }
    });
    this.send({ type: 'screenshare', active: false });
    this.ui.refreshControls();
    this.ui.notify('You stopped sharing your screen');
  }

  chat(text) {
    const line = text.trim();
    if (!line) return false;
    return this.send({ type: 'chat', text: line.slice(0, 2000) });
  }

  leave() {
    this.ended = true;
    this.send({ type: 'leave' });
    this.teardown();
    this.media.stop();
    this.screen?.track.stop();
    this.ui.ended(FINAL_REASONS.left, true);
  }

  teardown() {
    this.generation++;
    clearInterval(this.pinger);
    clearTimeout(this.retryTimer);
    try {
      this.ws?.close(1000, 'bye');
    } catch {
      // Already closing.
    }
    this.ws = null;
    this.pc?.close();
    this.pc = null;
  }

  setState(state) {
    this.state = state;
    this.ui.setState(state);
  }

  // --- Losing and regaining the connection -----------------------------------------------

  lost(reason) {
    if (this.ended) return;
    const final = FINAL_REASONS[reason];
    this.teardown();
    if (final) {
      this.ended = true;
      this.media.stop();
      this.screen?.track.stop();
      this.ui.ended(final, false);
      return;
    }
    this.scheduleReconnect(reason);
  }

  scheduleReconnect(reason) {
    this.setState('reconnecting');
    this.attempt += 1;
    const delay = Math.min(1000 * 2 ** (this.attempt - 1), 15000) + Math.floor(Math.random() * 400);
    const seconds = Math.ceil(delay / 1000);
    this.ui.banner(
      'error',
      `The connection dropped${reason && !/closed/.test(reason) ? ` (${reason})` : ''}. Reconnecting in ${plural(seconds, 'second', 'seconds')}…`,
      { label: 'Reconnect now', onclick: () => this.reconnectNow() },
    );
    this.ui.notify('Connection lost, reconnecting');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.reconnectNow(), delay);
  }

  async reconnectNow() {
    if (this.ended || this.state !== 'reconnecting') return;
    clearTimeout(this.retryTimer);
    this.ui.banner('warning', 'Reconnecting…');
    try {
      const grant = await fetchToken(this.config, this.guestName);
      if (this.ended) return;
      this.me.id = grant.participant;
      this.connect(grant);
      // The state turns 'connected' on welcome; if the socket closes first, `lost` reschedules.
    } catch (err) {
      if (err instanceof JoinError && !err.retryable) {
        this.ended = true;
        this.media.stop();
        this.ui.ended(`You can no longer enter this room: ${err.message}`, false);
        return;
      }
      this.scheduleReconnect(err instanceof JoinError ? err.message : 'the server could not be reached');
    }
  }
}

// ---------------------------------------------------------------------------------------
// The call's view: stage with tiles, control bar, side panel with people, chat, devices
// ---------------------------------------------------------------------------------------

/** The smallest camera tile, in CSS pixels, at which a face and a name still read well: with
 * more people than fit at this size, the grid shows them a page at a time. */
const MIN_TILE = { width: 160, height: 90 };

class CallView {
  constructor(call) {
    this.call = call;
    this.tiles = new Map(); // key (participant id, or id + ':screen') → tile
    this.order = []; // remote participant ids in page order: recent speakers move to the front
    this.page = 0;
    this.perPage = Infinity; // remote camera tiles per page
    this.audioEls = new Map(); // track → <audio>
    this.unread = 0;
    this.panel = null;
    this.speaker = null;
  }

  mount() {
    const call = this.call;
    const root = call.root;
    // A tab in the background shows no video: the SFU may stop sending it until we are back.
    document.addEventListener('visibilitychange', () => this.scheduleTileReport());
    this.live = h('div.visually-hidden', { 'aria-live': 'polite', 'aria-atomic': 'false', id: 'call-live' });
    this.statusPill = h('span.call-status', { 'data-state': 'connecting' }, 'Connecting…');
    this.count = h('span.call-count');
    this.bannerEl = h('div.call-banner', { role: 'status', hidden: true });
    this.spotlight = h('div.spotlight', { hidden: true });
    this.grid = h('div.grid', { 'data-count': '1' });
    const pageButton = (cls, label, arrow, word, delta) =>
      h(`button.btn.btn-secondary.btn-small.${cls}`, { type: 'button', 'aria-label': label, title: label, onclick: () => this.turnPage(delta) }, h('span', { 'aria-hidden': 'true' }, arrow), h('span.pager-word', { 'aria-hidden': 'true' }, word));
    this.prevPage = pageButton('pager-prev', 'Previous page of people', '\u2039', 'Previous', -1);
    this.nextPage = pageButton('pager-next', 'Next page of people', '\u203a', 'Next', 1);
    this.pageStatus = h('span.pager-status', { 'aria-live': 'polite' });
    this.pager = h('nav.grid-pager', { 'aria-label': 'Pages of people', hidden: true }, this.prevPage, this.pageStatus, this.nextPage);
    this.stage = h('section.call-stage', { 'aria-label': 'Participants' }, this.spotlight, this.grid, this.pager);
    this.toasts = h('div.toasts', { 'aria-hidden': 'true' });
    this.audioSink = h('div.audio-sink', { hidden: true });

    // Side panel.
    this.peopleList = h('ul.people-list');
    this.chatLog = h('ol.chat-log', { role: 'log', 'aria-label': 'Chat messages', tabindex: '0' });
    this.chatEmpty = h('p.chat-empty', {}, 'Messages are seen by everyone in the room now, and are not kept after the meeting.');
    const chatInput = h('textarea#chat-input', { name: 'text', rows: '1', maxlength: '2000', placeholder: 'Write a message', autocomplete: 'off', required: true });
    this.chatInput = chatInput;
    const chatForm = h(
      'form.chat-form',
      {},
      h('label.visually-hidden', { for: 'chat-input' }, 'Message'),
      chatInput,
      h('button.btn.btn-primary.chat-send', { type: 'submit', title: 'Send' }, icon('send'), h('span.visually-hidden', {}, 'Send')),
    );
    chatForm.addEventListener('submit', (event) => {
      event.preventDefault();
      if (call.chat(chatInput.value)) chatInput.value = '';
      else if (chatInput.value.trim()) this.notify('Not connected: the message was not sent.');
    });
    chatInput.addEventListener('keydown', (event) => {
      // Enter sends, Shift+Enter makes a new line, as in most chats.
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        chatForm.requestSubmit();
      }
    });
    const media = call.media;
    this.micSelect = deviceSelect(media, 'audio', (id) => call.switchDevice('audio', id));
    this.camSelect = deviceSelect(media, 'video', (id) => call.switchDevice('video', id));
    this.deviceNote = h('p.help');
    this.retryDevices = h('button.btn.btn-secondary.btn-small', { type: 'button', onclick: () => call.retryDevices() }, 'Try camera and microphone again');
    this.sections = {
      people: h('section.panel-section', { 'aria-labelledby': 'panel-people-title' }, h('h3#panel-people-title', {}, 'People'), this.peopleList),
      chat: h('section.panel-section.panel-chat', { 'aria-labelledby': 'panel-chat-title' }, h('h3#panel-chat-title', {}, 'Chat'), this.chatEmpty, this.chatLog, chatForm),
      devices: h('section.panel-section', { 'aria-labelledby': 'panel-devices-title' }, h('h3#panel-devices-title', {}, 'Camera and microphone'), this.camSelect, this.micSelect, this.deviceNote, this.retryDevices),
    };
    const closePanel = h('button.icon-button.panel-close', { type: 'button', title: 'Close panel', onclick: () => this.openPanel(null) }, icon('close'), h('span.visually-hidden', {}, 'Close panel'));
    this.panelEl = h('aside#call-panel.call-panel', { hidden: true, 'aria-label': 'Room panel' }, closePanel, ...Object.values(this.sections));

    // Controls.
    this.micButton = this.control('Microphone', 'mic', 'micOff', () => call.setMic(!media.micOn), 'toggle');
    this.camButton = this.control('Camera', 'camera', 'cameraOff', () => call.setCam(!media.camOn), 'toggle');
    this.screenButton = this.control('Share screen', 'screen', 'screen', () => call.toggleScreen(), 'share');
    this.peopleButton = this.control('People', 'people', 'people', () => this.togglePanel('people'), 'panel');
    this.chatButton = this.control('Chat', 'chat', 'chat', () => this.togglePanel('chat'), 'panel');
    this.unreadBadge = h('span.unread', { hidden: true });
    this.chatButton.append(this.unreadBadge);
    this.devicesButton = this.control('Settings', 'settings', 'settings', () => this.togglePanel('devices'), 'panel');
    for (const b of [this.peopleButton, this.chatButton, this.devicesButton]) b.setAttribute('aria-controls', 'call-panel');
    const leave = h('button.control.control-leave', { type: 'button', onclick: () => call.leave() }, icon('leave'), h('span.control-label', {}, 'Leave'));
    const controls = h(
      'div.call-controls',
      { role: 'toolbar', 'aria-label': 'Call controls' },
      h('div.control-group', {}, this.micButton, this.camButton, this.screenButton),
      h('div.control-group.control-group-side', {}, this.peopleButton, this.chatButton, this.devicesButton),
      leave,
    );

    const header = h(
      'header.call-bar',
      {},
      h('div.call-title', {}, h('h2#stage-title', {}, call.config.roomName), this.count),
      this.statusPill,
    );
    this.main = h('div.call-main', {}, this.stage, this.panelEl);
    root.replaceChildren(header, this.bannerEl, this.main, controls, this.toasts, this.live, this.audioSink);
    root.classList.add('in-call');
    root.classList.remove('is-enhanced');
    document.body.classList.add('in-call');
    // The page behind the call is out of reach for keyboard and screen readers meanwhile.
    for (const el of document.querySelectorAll('.site-header, .site-footer, .skip-link, .page-header, .room-aside, .flash')) el.inert = true;
    root.addEventListener('keydown', (event) => {
      // Page Up / Page Down turn the grid's pages, except where they move through text.
      if ((event.key === 'PageDown' || event.key === 'PageUp') && !this.pager.hidden && !event.target.closest('textarea, input, select, .chat-log, .call-panel')) {
        event.preventDefault();
        this.turnPage(event.key === 'PageDown' ? 1 : -1);
        return;
      }
      if (event.key === 'Escape' && this.panel) {
        const opener = { people: this.peopleButton, chat: this.chatButton, devices: this.devicesButton }[this.panel];
        this.openPanel(null);
        opener?.focus();
      }
    });
    this.selfTile = this.makeTile(call.me.id, true);
    this.grid.append(this.selfTile.el);
    this.refreshControls();
    this.layout();
    this.micButton.focus();
  }

  control(label, onIcon, offIcon, onclick, kind) {
    const button = h(`button.control.control-${kind}`, { type: 'button', 'aria-pressed': 'false', title: label, onclick });
    if (offIcon !== onIcon) button.append(icon(onIcon, 'when-on'), icon(offIcon, 'when-off'));
    else button.append(icon(onIcon));
    button.append(h('span.control-label', {}, label));
    return button;
  }

  togglePanel(name) {
    this.openPanel(this.panel === name ? null : name);
  }

  openPanel(name) {
    this.panel = name;
    this.panelEl.hidden = !name;
    this.main.classList.toggle('has-panel', !!name);
    for (const [key, section] of Object.entries(this.sections)) section.hidden = key !== name;
    this.peopleButton.setAttribute('aria-pressed', String(name === 'people'));
    this.chatButton.setAttribute('aria-pressed', String(name === 'chat'));
    this.devicesButton.setAttribute('aria-pressed', String(name === 'devices'));
    if (name === 'chat') {
      this.unread = 0;
      this.unreadBadge.hidden = true;
      this.chatInput.focus();
      this.chatLog.scrollTop = this.chatLog.scrollHeight;
    }
    if (name === 'devices') {
      this.micSelect.update();
      this.camSelect.update();
    }
  }

  refreshControls() {
    const call = this.call;
    const media = call.media;
    const canUse = media.permission === 'granted';
    setPressed(this.micButton, media.micOn && !!media.audio, canUse);
    setPressed(this.camButton, media.camOn && !!media.video, canUse);
    this.screenButton.setAttribute('aria-pressed', String(!!call.screen));
    this.screenButton.querySelector('.control-label').textContent = call.screen ? 'Stop sharing' : 'Share screen';
    this.screenButton.hidden = !navigator.mediaDevices?.getDisplayMedia;
    this.micSelect.update();
    this.camSelect.update();
    this.retryDevices.hidden = canUse;
    this.deviceNote.textContent = canUse
      ? 'Changes apply right away.'
      : media.problem || 'No camera or microphone is available.';
    if (!canUse && media.problem) {
      this.standing('warning', `You joined to watch and listen. ${media.problem}`, { label: 'Try again', onclick: () => call.retryDevices() });
    } else {
      this.standing(null);
    }
    this.updateSelf();
  }

  setState(state) {
    this.statusPill.dataset.state = state;
    this.statusPill.textContent = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…' }[state] || state;
    this.call.root.dataset.state = state;
    if (state === 'connected') {
      if (this.wasLost) {
        this.notify('Reconnected');
        this.wasLost = false;
      }
      this.banner(null);
    }
    if (state === 'reconnecting') this.wasLost = true;
  }

  /** A connection notice; while none is up, the standing notice (listen-only) shows instead. */
  banner(tone, text, action) {
    this.connectionNotice = tone ? { tone, text, action } : null;
    this.renderBanner();
  }

  standing(tone, text, action) {
    this.standingNotice = tone ? { tone, text, action } : null;
    this.renderBanner();
  }

  renderBanner() {
    const el = this.bannerEl;
    const notice = this.connectionNotice || this.standingNotice;
    if (!notice) {
      el.hidden = true;
      el.replaceChildren();
      return;
    }
    el.dataset.tone = notice.tone;
    el.replaceChildren(icon('alert'), h('p', {}, notice.text));
    if (notice.action) el.append(h('button.btn.btn-small.btn-secondary', { type: 'button', onclick: notice.action.onclick }, notice.action.label));
    el.hidden = false;
  }

  /** Says something to screen readers and, briefly, on screen. */
  notify(text, visible = true) {
    const line = h('p', {}, text);
    this.live.append(line);
    setTimeout(() => line.remove(), 8000);
    if (!visible) return;
    const toast = h('div.toast', {}, text);
    this.toasts.append(toast);
    while (this.toasts.children.length > 3) this.toasts.firstChild.remove();
    setTimeout(() => toast.classList.add('leaving'), 3600);
    setTimeout(() => toast.remove(), 4200);
  }

  // --- Tiles ------------------------------------------------------------------------------

  makeTile(id, local, screen = false) {
    const video = h('video', { autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    const name = h('span.tile-name');
    const badge = h('span.tile-visitor', { hidden: true });
    const mic = h('span.tile-mic', { title: 'Microphone off' }, icon('micOff'), h('span.visually-hidden', {}, 'microphone off'));
    const quality = qualityIndicator(null, local);
    const placeholder = h('div.tile-placeholder');
    const el = h(
      `figure.tile${local ? '.is-local' : ''}${screen ? '.is-screen' : ''}`,
      { 'data-participant': id, 'data-kind': screen ? 'screen' : 'camera' },
      video,
      placeholder,
      h('figcaption.tile-label', {}, mic, name, badge, quality),
    );
    if (local && !screen) video.classList.add('mirror');
    if (!local) {
      this.watchTile(el);
      // The picture's own size is known from its first frame, and changes when the sender's
      // does (a shared window resized): the size shown may change with it.
      video.addEventListener('resize', () => this.scheduleTileReport());
    }
    return { el, video, name, badge, mic, quality, placeholder, stream: null, local, offPage: false };
  }

  /** Notes when a remote tile scrolls off or on screen: off-screen videos are not sent to us. */
  watchTile(el) {
    if (!window.IntersectionObserver) return;
    if (!this.onScreen) {
      this.onScreen = new IntersectionObserver((entries) => {
        for (const entry of entries) entry.target.dataset.onScreen = entry.isIntersecting ? 'yes' : 'no';
        this.scheduleTileReport();
      });
    }
    this.onScreen.observe(el);
  }

  scheduleTileReport() {
    if (this.tileTimer) return;
    // Coalesced: a resize or a layout change moves every tile at once.
    this.tileTimer = setTimeout(() => {
      this.tileTimer = null;
      this.reportTiles();
    }, 250);
  }

  /**
   * Tells the SFU how large each video we receive is shown (in device pixels) and whether it is
   * on screen at all, so it forwards the layer that fills the tile and nothing for a hidden one.
   */
  reportTiles() {
    const ratio = window.devicePixelRatio || 1;
    const pageHidden = document.visibilityState === 'hidden';
    const tiles = [];
    for (const [key, tile] of this.tiles) {
      if (tile.local) continue;
      const track = tile.stream && tile.stream.getVideoTracks()[0];
      if (!track) continue;
      const box = shownSize(tile.video);
      const visible = !pageHidden && tile.el.isConnected && tile.el.dataset.onScreen !== 'no' && box.width > 0 && box.height > 0;
      const mid = this.call.trackMids.get(track);
      tiles.push({
        ...(mid ? { mid } : { track_id: track.id }),
        width: Math.min(16384, Math.round(box.width * ratio)),
        height: Math.min(16384, Math.round(box.height * ratio)),
        visible,
        screen: key.endsWith(':screen'),
      });
    }
    const report = JSON.stringify(tiles.slice(0, 128));
    if (report === this.lastTiles) return;
    if (this.call.send({ type: 'tiles', tiles: tiles.slice(0, 128) })) this.lastTiles = report;
  }

  setTileVideo(tile, track) {
    const current = tile.stream && tile.stream.getVideoTracks()[0];
    if (current === track) return;
    tile.stream = track ? new MediaStream([track]) : null;
    // A tile on another page keeps its stream but renders nothing (and is reported hidden).
    tile.video.srcObject = tile.offPage ? null : tile.stream;
  }

  /** Takes a tile off the grid's current page (out of the document, no video) or puts it back. */
  setOffPage(tile, off) {
    if (tile.offPage === off) return;
    tile.offPage = off;
    tile.video.srcObject = off ? null : tile.stream;
    if (off) tile.el.remove();
  }

  /** Marks the tile of a Passport from another instance with where it comes from. */
  setTileVisitor(tile, from) {
    if (tile.badge.dataset.from === (from || '')) return;
    tile.badge.dataset.from = from || '';
    tile.badge.hidden = !from;
    tile.badge.replaceChildren(...(from ? [visitorBadge(from)] : []));
    tile.el.classList.toggle('is-visitor', !!from);
  }

  setTilePerson(tile, name, extra = '') {
    if (tile.name.textContent !== name + extra) tile.name.textContent = name + extra;
    if (tile.placeholder.dataset.name !== name) {
      tile.placeholder.dataset.name = name;
      tile.placeholder.replaceChildren(avatar(name, 'tile-avatar'));
    }
  }

  updateSelf() {
    const call = this.call;
    const media = call.media;
    const tile = this.selfTile;
    if (!tile) return;
    this.setTilePerson(tile, call.me.name, ' (you)');
    const showVideo = media.camOn && media.video && media.video.readyState === 'live';
    this.setTileVideo(tile, showVideo ? media.video : null);
    tile.el.classList.toggle('video-off', !showVideo);
    tile.el.dataset.mic = media.micOn && media.audio ? 'on' : 'off';
    tile.el.dataset.cam = showVideo ? 'on' : 'off';
    setQualityIndicator(tile.quality, call.qualities.get(call.me.id), true);
    // Our own screen, shown as the others see it.
    const screenKey = `${call.me.id}:screen`;
    if (call.screen) {
      let st = this.tiles.get(screenKey);
      if (!st) {
        st = this.makeTile(screenKey, true, true);
        this.tiles.set(screenKey, st);
      }
      this.setTilePerson(st, call.me.name, ' (your screen)');
      this.setTileVideo(st, call.screen.track);
      st.el.dataset.cam = 'on';
      st.el.dataset.mic = 'on';
      this.spotlight.append(st.el);
    } else if (this.tiles.has(screenKey)) {
      this.tiles.get(screenKey).el.remove();
      this.tiles.delete(screenKey);
    }
    this.layout();
  }

  /** Sorts a participant's video tracks by the publisher's m-line, camera first. */
  videoTracks(p) {
    const mid = (track) => {
      const m = /:(\d+)$/.exec(track.id);
      return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
    };
    return p.tracks.filter((t) => t.kind === 'video' && t.readyState === 'live').sort((a, b) => mid(a) - mid(b) || p.tracks.indexOf(a) - p.tracks.indexOf(b));
  }

  updateParticipant(p) {
    // Track events of someone who already left (or of a previous connection) change nothing.
    if (this.call.participants.get(p.id) !== p) return;
    let tile = this.tiles.get(p.id);
    if (!tile) {
      tile = this.makeTile(p.id, false);
      this.tiles.set(p.id, tile);
      // Placed by layout(): others in page order, your own picture last, where people expect it.
      if (!this.order.includes(p.id)) this.order.push(p.id);
    }
    this.setTilePerson(tile, p.name);
    this.setTileVisitor(tile, p.visitingFrom);
    const videos = this.videoTracks(p);
    const screenTrack = p.screensharing && videos.length > 1 ? videos[videos.length - 1] : null;
    const camera = videos.find((t) => t !== screenTrack) || null;
    const showVideo = camera && !p.videoMuted && !camera.muted;
    this.setTileVideo(tile, camera);
    tile.el.classList.toggle('video-off', !showVideo);
    tile.el.dataset.mic = p.audioMuted ? 'off' : 'on';
    tile.el.dataset.cam = showVideo ? 'on' : 'off';
    const level = this.call.qualities.get(p.id);
    setQualityIndicator(tile.quality, level);
    tile.el.setAttribute('aria-label', `${p.name}${p.audioMuted ? ', microphone off' : ''}${showVideo ? '' : ', camera off'}${level ? `, connection ${level}` : ''}`);

    const screenKey = `${p.id}:screen`;
    let st = this.tiles.get(screenKey);
    if (screenTrack) {
      if (!st) {
        st = this.makeTile(screenKey, false, true);
        this.tiles.set(screenKey, st);
        this.spotlight.append(st.el);
      }
      this.setTilePerson(st, p.name, "'s screen");
      this.setTileVideo(st, screenTrack);
      st.el.dataset.cam = 'on';
    } else if (st) {
      st.el.remove();
      this.tiles.delete(screenKey);
    }

    // Sound: one <audio> per remote audio track, outside the tiles so layout changes never
    // restart it.
    for (const track of p.tracks) {
      if (track.kind !== 'audio' || this.audioEls.has(track)) continue;
      const audio = h('audio', { autoplay: true, 'data-participant': p.id });
      audio.srcObject = new MediaStream([track]);
      this.audioSink.append(audio);
      this.audioEls.set(track, audio);
      audio.play?.().catch(() => {});
    }
    for (const [track, audio] of this.audioEls) {
      if (audio.dataset.participant === p.id && !p.tracks.includes(track)) {
        audio.remove();
        this.audioEls.delete(track);
      }
    }
    this.renderPeople();
    this.layout();
  }

  removeParticipant(p) {
    for (const key of [p.id, `${p.id}:screen`]) {
      const tile = this.tiles.get(key);
      if (tile) {
        tile.video.srcObject = null;
        tile.el.remove();
        this.tiles.delete(key);
      }
    }
    for (const [track, audio] of this.audioEls) {
      if (audio.dataset.participant === p.id) {
        audio.remove();
        this.audioEls.delete(track);
      }
    }
    if (this.speaker === p.id) this.speaker = null;
    this.order = this.order.filter((id) => id !== p.id);
    this.renderPeople();
    this.layout();
  }

  resetRemote() {
    // A new session knows nothing of our tiles yet.
    this.lastTiles = '';
    for (const [key, tile] of this.tiles) {
      if (key.startsWith(`${this.call.me.id}:`)) continue;
      tile.el.remove();
      this.tiles.delete(key);
    }
    for (const audio of this.audioEls.values()) audio.remove();
    this.audioEls.clear();
    this.order = [];
    this.page = 0;
    this.renderPeople();
    this.layout();
  }

  setSpeaker(id) {
    this.speaker = id;
    const selfId = this.call.me.id;
    this.selfTile.el.classList.toggle('speaking', id === selfId);
    for (const [key, tile] of this.tiles) tile.el.classList.toggle('speaking', key === id);
    for (const li of this.peopleList.children) li.classList.toggle('speaking', li.dataset.participant === id);
    // A speaker on a later page moves to the front of the first one, so the first page keeps
    // the most recent speakers.
    const at = this.order.indexOf(id);
    if (at >= this.perPage) {
      this.order.splice(at, 1);
      this.order.unshift(id);
      this.layout();
    }
  }

  turnPage(delta) {
    const pages = Math.max(1, Math.ceil(this.pageOrder().length / this.perPage));
    const next = Math.min(pages - 1, Math.max(0, this.page + delta));
    if (next === this.page) return;
    this.page = next;
    this.layout();
  }

  /** Remote camera tiles in page order: those sharing a screen first, then by `order`. */
  pageOrder() {
    const sharing = (id) => !!this.call.participants.get(id)?.screensharing;
    const ids = this.order.filter((id) => this.tiles.has(id));
    return [...ids.filter(sharing), ...ids.filter((id) => !sharing(id))].map((id) => this.tiles.get(id));
  }

  /** How many tiles (ours included) fit on the grid at MIN_TILE or larger. */
  gridCapacity() {
    const grid = this.grid;
    const width = grid.clientWidth;
    const height = grid.clientHeight;
    if (!width || !height) return Infinity;
    const style = getComputedStyle(grid);
    const gap = parseFloat(style.columnGap) || 0;
    // Beside a screen share the grid is one row of fixed-width tiles.
    const strip = this.stage.classList.contains('has-spotlight');
    const tileWidth = strip ? Math.max(MIN_TILE.width, parseFloat(style.gridAutoColumns) || 0) : MIN_TILE.width;
    const cols = Math.max(1, Math.floor((width + gap) / (tileWidth + gap)));
    const rows = strip ? 1 : Math.max(1, Math.floor((height + gap) / (MIN_TILE.height + gap)));
    return Math.max(2, cols * rows);
  }

  /** Shows one page of remote camera tiles (and ours) on the grid; the others leave the page. */
  paginate() {
    const remote = this.pageOrder();
    const per = Math.max(1, this.gridCapacity() - 1);
    const pages = Number.isFinite(per) ? Math.max(1, Math.ceil(remote.length / per)) : 1;
    this.perPage = pages > 1 ? per : Infinity;
    this.page = Math.min(this.page, pages - 1);
    const shown = pages > 1 ? remote.slice(this.page * per, (this.page + 1) * per) : remote;
    for (const tile of remote) this.setOffPage(tile, !shown.includes(tile));
    const wanted = [...shown, this.selfTile].filter(Boolean);
    const current = [...this.grid.children];
    if (current.length !== wanted.length || wanted.some((tile, i) => current[i] !== tile.el)) {
      for (const [i, tile] of wanted.entries()) {
        if (this.grid.children[i] !== tile.el) this.grid.insertBefore(tile.el, this.grid.children[i] || null);
      }
      while (this.grid.children.length > wanted.length) this.grid.lastElementChild.remove();
      // A video moved in or back into the document stops; start it again.
      for (const tile of wanted) {
        if (tile.video.srcObject && tile.video.paused) tile.video.play?.().catch(() => {});
      }
    }
    this.pager.hidden = pages < 2;
    this.stage.classList.toggle('paged', pages > 1);
    this.pageStatus.textContent = `${this.page + 1} of ${pages}`;
    this.prevPage.setAttribute('aria-disabled', String(this.page === 0));
    this.nextPage.setAttribute('aria-disabled', String(this.page >= pages - 1));
  }

  layout() {
    const spot = this.spotlight.children.length > 0;
    this.spotlight.hidden = !spot;
    this.stage.classList.toggle('has-spotlight', spot);
    this.paginate();
    const count = this.grid.children.length;
    this.grid.dataset.count = String(count);
    this.fitTiles();
    const people = this.call.participants.size + 1;
    this.count.textContent = plural(people, 'person', 'people');
    this.stage.classList.toggle('alone', people === 1);
    if (!this.waiting) {
      this.waiting = h('p.waiting', {}, 'You are the only one here. Share the link of this page to invite others.');
      this.stage.append(this.waiting);
    }
    this.waiting.hidden = people !== 1;
  }

  /**
   * Sizes the tiles so they fill the stage as much as they can without scrolling: tries each
   * column count and a few picture shapes, keeps the largest tile. Sizes go in through CSSOM
   * custom properties, which a strict style-src still allows.
   */
  fitTiles() {
    const grid = this.grid;
    if (!this.resizeWatch && window.ResizeObserver) {
      // A new size may fit more or fewer tiles per page: lay the pages out again.
      this.resizeWatch = new ResizeObserver(() => this.layout());
      this.resizeWatch.observe(this.stage);
    }
    this.scheduleTileReport();
    const n = grid.children.length;
    const width = grid.clientWidth;
    const height = grid.clientHeight;
    if (!n || !width || !height || this.stage.classList.contains('has-spotlight')) {
      grid.classList.remove('fitted');
      return;
    }
    const gap = parseFloat(getComputedStyle(grid).columnGap) || 0;
    const shapes = width >= height ? [16 / 9, 4 / 3] : [3 / 4, 1, 4 / 3];
    let best = { area: 0, cols: 1, w: width, h: height };
    for (const ratio of shapes) {
      for (let cols = 1; cols <= n; cols++) {
        const rows = Math.ceil(n / cols);
        const w = Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) * ratio);
        const area = w * (w / ratio);
        if (area > best.area + 1) best = { area, cols, w, h: w / ratio };
      }
    }
    grid.style.setProperty('--cols', String(best.cols));
    grid.style.setProperty('--tile-w', `${Math.floor(best.w)}px`);
    grid.style.setProperty('--tile-h', `${Math.floor(best.h)}px`);
    grid.classList.add('fitted');
  }

  renderPeople() {
    const call = this.call;
    const media = call.media;
    const row = (id, name, handle, micOff, camOff, you, from, level) =>
      h(
        `li.person${this.speaker === id ? '.speaking' : ''}`,
        { 'data-participant': id },
        avatar(name),
        h(
          'span.person-text',
          {},
          h('span.person-name', {}, name, you ? h('span.person-you', {}, ' (you)') : null, from ? visitorBadge(from) : null),
          handle ? h('span.person-handle', {}, handle) : h('span.person-handle', {}, 'Guest'),
        ),
        h(
          'span.person-state',
          {},
          micOff ? h('span.state-off', { title: 'Microphone off' }, icon('micOff'), h('span.visually-hidden', {}, 'microphone off')) : null,
          camOff ? h('span.state-off', { title: 'Camera off' }, icon('cameraOff'), h('span.visually-hidden', {}, 'camera off')) : null,
          qualityIndicator(level, you),
        ),
      );
    const visiting = call.config.visiting;
    const items = [
      row(call.me.id, call.me.name, null, !(media.micOn && media.audio), !(media.camOn && media.video), true, visitingFrom(visiting, call.config.instanceDomain), call.qualities.get(call.me.id)),
    ];
    // The self row's handle: visitors show their address, signed-in people that they are, guests
    // that they are guests.
    items[0].querySelector('.person-handle').textContent = visiting || (call.config.displayName ? 'Signed in' : 'Guest');
    const others = [...call.participants.values()].sort((a, b) => a.name.localeCompare(b.name));
    for (const p of others) {
      const videos = this.videoTracks(p);
      items.push(row(p.id, p.name, p.handle, p.audioMuted, p.videoMuted || videos.length === 0, false, p.visitingFrom, call.qualities.get(p.id)));
    }
    this.peopleList.replaceChildren(...items);
    this.peopleButton.querySelector('.control-label').textContent = `People (${items.length})`;
  }

  // --- Chat -------------------------------------------------------------------------------

  addChat(message) {
    const mine = message.from === this.call.me.id;
    const time = new Date(message.at || Date.now());
    const stamp = time.toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' });
    const last = this.chatLog.lastElementChild;
    // Consecutive lines from one person share a header, like most chats.
    const grouped = last && last.dataset.from === message.from && time - Number(last.dataset.at) < 120000;
    const item = h(
      `li.chat-line${mine ? '.mine' : ''}${grouped ? '.grouped' : ''}`,
      { 'data-from': message.from, 'data-at': String(time.getTime()) },
      grouped ? null : h('p.chat-meta', {}, h('span.chat-author', {}, mine ? 'You' : message.display_name), ' ', h('time', { datetime: time.toISOString() }, stamp)),
      h('p.chat-text', {}, message.text),
    );
    const atBottom = this.chatLog.scrollHeight - this.chatLog.scrollTop - this.chatLog.clientHeight < 40;
    this.chatLog.append(item);
    this.chatEmpty.hidden = true;
    if (atBottom || mine) this.chatLog.scrollTop = this.chatLog.scrollHeight;
    if (!mine) {
      this.notify(`${message.display_name}: ${message.text}`, this.panel !== 'chat');
      if (this.panel !== 'chat') {
        this.unread += 1;
        this.unreadBadge.hidden = false;
        this.unreadBadge.textContent = String(this.unread);
      }
    }
  }

  // --- The end ----------------------------------------------------------------------------

  ended(text, byChoice) {
    const root = this.call.root;
    document.body.classList.remove('in-call');
    for (const el of document.querySelectorAll('[inert]')) el.inert = false;
    root.classList.remove('in-call');
    delete root.dataset.state;
    const spaceLink = document.querySelector('.breadcrumb li:last-child a');
    const title = h('h2#stage-title', {}, byChoice ? 'You left the room' : 'The meeting ended for you');
    root.replaceChildren(
      h(
        'div.stage-message.call-ended',
        {},
        h('span.stage-icon', {}, icon(byChoice ? 'wave' : 'alert')),
        title,
        h('p', {}, text),
        h(
          'div.actions.actions-center',
          {},
          h('button.btn.btn-primary', { type: 'button', onclick: () => location.reload() }, 'Join again'),
          spaceLink ? h('a.btn.btn-quiet', { href: spaceLink.getAttribute('href') }, `Back to ${spaceLink.textContent}`) : null,
        ),
        this.live,
      ),
    );
    root.classList.add('has-ended');
    this.notify(text, false);
    title.setAttribute('tabindex', '-1');
    title.focus();
  }
}

// Last, so every class above is defined before the panel uses it.
const app = document.getElementById('room-app');
if (app && app.dataset.tokenUrl) {
  mountJoinPanel(app);
}
