// spotreview's two-run comparison page: two interactive players (player.js), one per run, each an
// <iframe srcdoc> built here from the player page's template, driven by one clock. Data: the JSON in
// #compare-data (see spotreview/rendering/compare_player.py). Exposes window.compare (state,
// players, goTo, play, pause, hover, pin, positions) for tests and users.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const C = JSON.parse($('compare-data').textContent);
  const TEMPLATE = JSON.parse($('player-template').textContent);
  const DATA = [$('panel-a-data').textContent, $('panel-b-data').textContent];
  const ATLAS = $('compare-atlas').textContent;
  const K = C.keys.length, SIDES = ['A', 'B'];
  const frames = [$('panel-a'), $('panel-b')];
  const players = [null, null];
  const state = { k: 0, playing: false, speed: 1, target: null, holdUntil: 0, readyMs: 0 };
  const fmtInt = (v) => Math.round(v).toLocaleString('en-US');

  // --- the shared clock: key frame k -> sync value -> each panel's snapshot position -----------
  function interp(x, xs, ys) {  // piecewise linear over ascending xs, held at both ends
    const n = xs.length;
    if (n === 1 || x <= xs[0]) return ys[0];
    if (x >= xs[n - 1]) return ys[n - 1];
    let lo = 0, hi = n - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (xs[mid] <= x) lo = mid; else hi = mid; }
    const span = xs[hi] - xs[lo];
    return span > 0 ? ys[lo] + (x - xs[lo]) / span * (ys[hi] - ys[lo]) : ys[hi];
  }
  const range = (n) => Array.from({ length: n }, (_, i) => i);
  const KEYS = range(K), INDEX = C.values.map((v) => range(v.length));
  function valueAt(k) { return interp(k, KEYS, C.keys); }
  function positions(k) { const v = valueAt(k === undefined ? state.k : k); return C.values.map((vals, p) => interp(v, vals, INDEX[p])); }
  function describe(v) {
    if (C.sync === 'progress') return `training progress ${Math.round(100 * v)}%`;
    if (C.sync === 'step') return `step ${fmtInt(v)}`;
    return `epoch ${v.toFixed(2)}`;
  }

  // --- the two players ----------------------------------------------------------------------
  function page(p) {  // one pass: text put in is never read again
    const parts = { TITLE: C.titles[p], DATA: DATA[p], ATLAS };
    return TEMPLATE.replace(/@@(TITLE|DATA|ATLAS)@@/g, (m, key) => parts[key]);
  }
  let relaying = false;  // a hover or pin passed on to the other panel is not passed back
  function relay(fn) { if (relaying) return; relaying = true; try { fn(); } finally { relaying = false; } }
  function attach(p) {
    const win = frames[p].contentWindow, doc = frames[p].contentDocument;
    players[p] = win.player;
    const style = doc.createElement('style');  // this page's clock drives the panel: its own is hidden
    style.textContent = '#prev, #play, #next, #slider, #step, label:has(#speed) { display: none !important; }';
    doc.head.appendChild(style);
    win.addEventListener('keydown', onKey, true);
    win.addEventListener('spotreview:hover', (ev) => relay(() => { players[1 - p].hover(ev.detail); markBoard(); }));
    win.addEventListener('spotreview:pin', (ev) => relay(() => { players[1 - p].pin(ev.detail.row, ev.detail.on); markBoard(); }));
    const f = frames[p], fit = () => { f.style.height = doc.documentElement.scrollHeight + f.offsetHeight - f.clientHeight + 'px'; };
    new win.ResizeObserver(fit).observe(doc.body);
    const ready = () => {
      if (doc.body.dataset.ready !== '1') { setTimeout(ready, 20); return; }
      fit(); show();
      if (players.every((pl, q) => pl && frames[q].contentDocument.body.dataset.ready === '1') && !state.readyMs) {
        state.readyMs = performance.now(); document.body.dataset.ready = '1';  // both players drawn
      }
    };
    ready();
  }
  frames.forEach((f, p) => {
    f.addEventListener('load', () => attach(p), { once: true });
    f.srcdoc = page(p);
  });

  // --- header, controls and the leaderboard ------------------------------------------------------
  $('title').textContent = `${C.names[0]} (A) vs ${C.names[1]} (B)`;
  $('subtitle').textContent = `${fmtInt(C.n)} images; synchronised by ${C.sync_words}; each panel keeps its own axes. ` +
    'Hover or click a point in either panel to show or pin it in both.';
  $('name-a').textContent = `A: ${C.names[0]}`; $('name-b').textContent = `B: ${C.names[1]}`;
  const slider = $('slider'); slider.max = String(K - 1);
  const playButton = $('play');
  function renderHeader() {
    const pos = positions(), steps = pos.map((t, p) => interp(t, INDEX[p], C.steps[p]));
    $('where').textContent = `${describe(valueAt(state.k))} \u00b7 ` + steps.map((s, p) => `${SIDES[p]} step ${fmtInt(s)}`).join(' \u00b7 ');
    const k = Math.round(state.k);
    if (Number(slider.value) !== k && document.activeElement !== slider) slider.value = String(k);
  }
  function show() {
    const pos = positions();
    players.forEach((pl, p) => { if (pl) pl.setTime(pos[p]); });
    renderHeader();
  }
  const counts = $('counts');
  for (const [kind, n] of Object.entries(C.counts)) {
    const s = document.createElement('span');
    s.innerHTML = `<span class="swatch" style="background:${C.change_colors[kind]}"></span>${kind.replace('_', ' ')} ${fmtInt(n)}`;
    counts.appendChild(s);
  }
  $('board-note').textContent = (Object.keys(C.counts).length ? 'at the last snapshots; fixed or broken by B first' :
    'largest change of outlier rank at the last snapshots first') + '; hover to show in both panels, click to pin';
  const T = C.thumbs.px, COLS = C.thumbs.cols, PER = COLS * COLS;
  const atlases = JSON.parse(ATLAS).map((uri) => { const im = new Image(); im.onload = drawBoard; im.src = uri; return im; });
  const tiles = C.board.map((b) => {
    const tile = document.createElement('div'); tile.className = 'tile'; tile.dataset.row = b.row; tile.dataset.id = b.id;
    const head = document.createElement('div'); head.className = 'head'; head.textContent = b.head;
    head.style.color = C.change_colors[b.kind] || '#000';
    const c = document.createElement('canvas'); c.width = c.height = 64;
    const foot = document.createElement('div'); foot.className = 'foot'; foot.textContent = b.foot;
    const id = document.createElement('div'); id.className = 'id'; id.textContent = b.id;
    tile.append(head, c, foot, id);
    tile.addEventListener('click', () => pin(b.row, !players.some((pl) => pl && pl.state.pinned.includes(b.row))));
    tile.addEventListener('mouseenter', () => hover(b.row));
    tile.addEventListener('mouseleave', () => hover(-1));
    $('board').appendChild(tile);
    return tile;
  });
  function drawBoard() {
    C.board.forEach((b, k) => {
      const im = atlases[Math.floor(b.row / PER)], r = b.row % PER, g = tiles[k].querySelector('canvas').getContext('2d');
      g.imageSmoothingEnabled = false; g.fillStyle = '#eee'; g.fillRect(0, 0, 64, 64);
      if (im && im.complete && im.naturalWidth) g.drawImage(im, (r % COLS) * T, Math.floor(r / COLS) * T, T, T, 0, 0, 64, 64);
    });
  }
  function markBoard() {
    const pinned = players[0] ? players[0].state.pinned : [], hovered = players[0] ? players[0].state.hover : -1;
    tiles.forEach((tile, k) => {
      tile.classList.toggle('pinned', pinned.includes(C.board[k].row));
      tile.classList.toggle('hover', hovered === C.board[k].row);
    });
  }
  function hover(row) { relay(() => players.forEach((pl) => pl && pl.hover(row))); markBoard(); }
  function pin(row, on) { relay(() => players.forEach((pl) => pl && pl.pin(row, on))); markBoard(); }

  // --- playing ------------------------------------------------------------------------------------
  function setPlaying(on) {
    state.playing = on; state.target = null;
    if (on && state.k >= K - 1) state.k = 0;
    playButton.innerHTML = on ? '&#x275A;&#x275A;' : '&#x25B6;&#xFE0E;';
    playButton.setAttribute('aria-label', on ? 'pause' : 'play');
    last = null; requestDraw();
  }
  function goTo(k) { setPlaying(false); state.target = Math.max(0, Math.min(K - 1, k)); requestDraw(); }
  let pending = false, last = null;
  function requestDraw() { if (!pending) { pending = true; requestAnimationFrame(frame); } }
  function frame(now) {
    pending = false;
    const dt = last === null ? 0 : Math.min(0.1, (now - last) / 1000); last = now;
    if (state.playing) {
      if (state.k >= K - 1) {
        if (!state.holdUntil) state.holdUntil = now + 1500;  // hold the end state, then loop
        else if (now >= state.holdUntil) { state.k = 0; state.holdUntil = 0; }
      } else state.k = Math.min(K - 1, state.k + dt * C.pace * state.speed);
    } else if (state.target !== null) {
      const d = state.target - state.k, move = dt * Math.max(4, 6 * Math.abs(d));
      state.k = Math.abs(d) <= move ? state.target : state.k + Math.sign(d) * move;
      if (state.k === state.target) state.target = null;
    }
    show();
    if (state.playing || state.target !== null) requestDraw(); else last = null;
  }
  function onKey(ev) {
    if (ev.target.tagName === 'INPUT' || ev.target.tagName === 'SELECT') return;
    const keys = { ' ': () => setPlaying(!state.playing), ArrowLeft: () => goTo(Math.ceil(state.k) - 1),
      ArrowRight: () => goTo(Math.floor(state.k) + 1) };
    if (!keys[ev.key]) return;
    ev.preventDefault(); ev.stopImmediatePropagation(); keys[ev.key]();
  }
  playButton.addEventListener('click', () => setPlaying(!state.playing));
  $('prev').addEventListener('click', () => goTo(Math.ceil(state.k) - 1));
  $('next').addEventListener('click', () => goTo(Math.floor(state.k) + 1));
  slider.addEventListener('input', () => goTo(Number(slider.value)));
  $('speed').addEventListener('change', (ev) => { state.speed = Number(ev.target.value); });
  document.addEventListener('keydown', onKey);

  window.compare = {
    state, players: () => players.slice(), positions, goTo, hover, pin,
    play: () => setPlaying(true), pause: () => setPlaying(false),
  };
  renderHeader();
})();
