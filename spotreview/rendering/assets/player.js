// spotreview's HTML player: a canvas 2-D scatter interpolated between snapshots.
// Data: the JSON in #spotreview-data (see spotreview/rendering/player.py). Exposes window.player
// (state, project, goTo, play, pause, pin, toggleClass, colourBy, measureFps, setTime, hover) for
// tests, users and a page that embeds players (spotreview/rendering/assets/compare.js).
(function () {
  'use strict';
  const D = JSON.parse(document.getElementById('spotreview-data').textContent);
  const ATLAS_URIS = JSON.parse(document.getElementById('spotreview-atlas').textContent);
  const P = D.packed || null;  // large runs: typed arrays packed as base64 (spotreview/rendering/packed.py)
  const S = D.snapshots.length, N = P ? P.ids.length : D.points.length, C = D.class_names.length;
  const $ = (id) => document.getElementById(id);

  // --- data as typed arrays -------------------------------------------------------------
  // XY[s] (2N) float32, RANK[s], SCORE[s], PRED[s] (N), LABEL (N), DYN[name] (N): read from the
  // readable points or from the packed arrays, whichever the file holds.
  const IDS = P ? P.ids : D.points.map((p) => p.id);
  const XY = [], RANK = [], SCORE = [], DYN = {};
  let LABEL, PRED = null;
  if (P) unpack(); else readPoints();
  function readPoints() {
    for (let s = 0; s < S; s++) { XY.push(new Float32Array(2 * N)); RANK.push(new Int32Array(N)); SCORE.push(new Float64Array(N)); }
    LABEL = new Int32Array(N);
    if (N && D.points[0].pred) { PRED = []; for (let s = 0; s < S; s++) PRED.push(new Int32Array(N)); }
    D.points.forEach((p, i) => {
      LABEL[i] = p.label;
      for (let s = 0; s < S; s++) {
        const xy = p.xy[s];
        XY[s][2 * i] = xy[0] === null ? NaN : xy[0];
        XY[s][2 * i + 1] = xy[1] === null ? NaN : xy[1];
        RANK[s][i] = p.rank[s];
        SCORE[s][i] = p.score[s] === null ? NaN : p.score[s];
        if (PRED) PRED[s][i] = p.pred[s];
      }
    });
    // Training dynamics: D.dynamics names the values of each point's "dyn" (NaN where null).
    (D.dynamics || []).forEach((name, k) => {
      DYN[name] = Float64Array.from(D.points, (p) => (p.dyn[k] === null ? NaN : p.dyn[k]));
    });
  }
  function typed(a) {  // {dtype, data: base64 of little-endian values} -> a typed array
    const bin = atob(a.data), bytes = new Uint8Array(bin.length);
    for (let k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
    // uint32 holds ranks (< 2**31): read as int32, as the readable form's ranks are
    const Type = { uint8: Uint8Array, uint16: Uint16Array, uint32: Int32Array, float32: Float32Array }[a.dtype];
    return new Type(bytes.buffer, 0, bytes.length / Type.BYTES_PER_ELEMENT);
  }
  function unpack() {
    const q = typed(P.xy), [lx, ly] = P.xy.lo, [sx, sy] = P.xy.step, rank = typed(P.rank), score = typed(P.score);
    const pred = P.pred && typed(P.pred);
    for (let s = 0; s < S; s++) {
      const xy = new Float32Array(2 * N), o = 2 * N * s;
      for (let k = 0; k < 2 * N; k += 2) {
        const qx = q[o + k], qy = q[o + k + 1];
        xy[k] = qx === 65535 ? NaN : lx + qx * sx; xy[k + 1] = qy === 65535 ? NaN : ly + qy * sy;
      }
      XY.push(xy); RANK.push(rank.subarray(s * N, (s + 1) * N)); SCORE.push(score.subarray(s * N, (s + 1) * N));
      if (pred) (PRED = PRED || []).push(pred.subarray(s * N, (s + 1) * N));
    }
    LABEL = typed(P.labels);
    for (const name of D.dynamics || []) DYN[name] = typed(P.dyn[name]);
  }
  if (P) {  // the footer's "one line per image" is true of the ids only
    document.querySelector('footer').innerHTML = 'Made by spotreview. Everything is in this file: the image ids are in ' +
      '<code>&lt;script id="spotreview-data"&gt;</code>, one per line in row order (search it for an id); for ' +
      `${N.toLocaleString('en-US')} images the values of each are packed there as typed arrays (base64), to keep the file small.`;
  }
  const EXCLUDED = new Uint8Array(N), ROW = new Map();
  IDS.forEach((id, i) => {
    ROW.set(id, i);
    if (Object.prototype.hasOwnProperty.call(D.excluded, id)) EXCLUDED[i] = 1;
  });
  const ISSUE = D.issue && D.issue.rows.length ? D.issue : null;  // the issue group ringed (--highlight-issue)
  const IN_ISSUE = new Uint8Array(N);
  if (ISSUE) for (const i of ISSUE.rows) IN_ISSUE[i] = 1;
  // How the GIF draws the scatter (spotreview/rendering/style.py), read from the data:
  // its class colours, fixed axes, marker and drawing order, so both show the same picture.
  const ORDER = Int32Array.from(D.order);  // rows, later ones on top: no class always on top
  const [X0, X1, Y0, Y1] = D.limits;
  const ASPECT = (X1 - X0) / (Y1 - Y0);
  const DIAMETER = D.marker.diameter, ALPHA = D.marker.alpha;  // diameter: share of the axes width
  const fmtInt = (v) => v.toLocaleString('en-US');
  const fmtScore = (v) => (Number.isFinite(v) ? Number(v.toPrecision(3)).toString() : 'n/a');
  const className = (c) => (/^\d+$/.test(D.class_names[c]) ? 'label ' : '') + D.class_names[c];

  // --- state -------------------------------------------------------------------------------
  const state = {
    t: 0, playing: false, speed: 1, hidden: new Set(), showExcluded: true, showIssue: true,
    pinned: D.highlight.slice(), hover: -1, target: null, holdUntil: 0,
    colourBy: 'class', hiddenBy: {},  // hidden: the classes hidden; hiddenBy: mode -> categories hidden
  };
  const stats = { draws: 0, drawMs: 0, stampMs: 0, tracesDrawn: 0, firstPaintMs: null, thumbsReadyMs: null };

  // --- colour by: the class, or a category from D.colour_by (names and colours) --------------
  // Only the legend of the mode shown hides points; each mode keeps its own hidden set.
  const MODES = new Map(D.colour_by.map((m) => [m.key, m]));
  const rgbOf = (c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16));
  function categories(key, s) {  // (N,) category index of every point under mode key at snapshot s
    if (key === 'class') return LABEL;
    const cat = new Uint8Array(N), top = MODES.get(key).names.length - 1;
    for (let i = 0; i < N; i++) {
      if (key === 'correct') cat[i] = PRED[s][i] === LABEL[i] ? 0 : 1;
      else if (key === 'region') cat[i] = DYN.data_map_region[i];
      else cat[i] = Math.min(top, DYN.forgetting_events[i]);
    }
    return cat;
  }
  let view = null;
  function currentView() {  // categories, colours, hidden set and drawing order of the mode shown
    const key = state.colourBy, snap = key === 'correct' ? nearest() : -1;
    if (view && view.key === key && view.snap === snap) return view;
    const mode = MODES.get(key), cat = categories(key, snap);
    const names = key === 'class' ? D.class_names : mode.names, colors = key === 'class' ? D.colors : mode.colors;
    const counts = new Int32Array(names.length);
    for (let i = 0; i < N; i++) counts[cat[i]]++;
    let order = ORDER;
    if (key !== 'class') {  // later categories on top, so the few wrong, hard or forgotten points show
      const start = new Int32Array(names.length);
      for (let c = 1; c < names.length; c++) start[c] = start[c - 1] + counts[c - 1];
      order = new Int32Array(N);
      for (let k = 0; k < N; k++) { const i = ORDER[k]; order[start[cat[i]]++] = i; }
    }
    const hidden = key === 'class' ? state.hidden : (state.hiddenBy[key] = state.hiddenBy[key] || new Set());
    view = { key, snap, cat, names, colors, rgb: colors.map(rgbOf), counts, order, hidden };
    return view;
  }
  function isHidden(i) { const v = currentView(); return v.hidden.has(v.cat[i]); }

  // --- geometry ------------------------------------------------------------------------------
  const canvas = $('scatter'), ctx = canvas.getContext('2d');
  let W = 0, H = 0, DPR = 1, SCALE = 1, R = 2;
  const POS = new Float32Array(2 * N);  // current canvas (CSS px) positions
  let posT = -1;
  // The view: the data range shown (zoom and pan), kept while playing; HOME is the GIF's axes.
  const HOME = { x0: X0, x1: X1, y0: Y0, y1: Y1 };
  let V = { ...HOME };

  function ease(f) { return f * f * (3 - 2 * f); }
  function segment(t) {
    const i = Math.min(Math.floor(t), S - 1), f = t - i;
    return i >= S - 1 ? [S - 1, 0] : [i, ease(f)];
  }
  function nearest() { return Math.min(S - 1, Math.round(state.t)); }
  function stepAt(t) {
    const [i, e] = segment(t);
    return e === 0 ? D.snapshots[i].step : (1 - e) * D.snapshots[i].step + e * D.snapshots[i + 1].step;
  }
  function updatePositions() {
    if (posT === state.t) return;
    const [i, e] = segment(state.t);
    const a = XY[i], b = e > 0 ? XY[i + 1] : a;
    for (let k = 0; k < 2 * N; k += 2) {
      const x = a[k] + e * (b[k] - a[k]), y = a[k + 1] + e * (b[k + 1] - a[k + 1]);
      POS[k] = (x - V.x0) * SCALE; POS[k + 1] = (V.y1 - y) * SCALE;
    }
    posT = state.t; gridT = -1;
  }
  function project(i) { updatePositions(); return [POS[2 * i], POS[2 * i + 1]]; }
  function projectXY(s, i) { return [(XY[s][2 * i] - V.x0) * SCALE, (V.y1 - XY[s][2 * i + 1]) * SCALE]; }

  // Points are stamped into a pixel buffer (anti-aliased discs, alpha-blended in drawing
  // order) and put on the canvas at once: a drawImage or arc per point is too slow for large
  // clouds where the browser rasterises on the CPU (benchmarks/RESULTS.md).
  let pixels = null, buf8 = null, buf32 = null, pix = null;  // pix: the pixels as signed integers, for blend
  function resize() {
    const cssW = Math.max(200, canvas.clientWidth);  // inside the border: one canvas pixel per CSS px
    DPR = window.devicePixelRatio || 1; W = cssW; H = Math.round(cssW / ASPECT);
    canvas.style.height = H + 'px'; canvas.width = Math.round(W * DPR); canvas.height = Math.round(H * DPR);
    SCALE = W / (V.x1 - V.x0); R = Math.max(1, DIAMETER * W / 2);  // markers keep their size when zoomed
    pixels = ctx.createImageData(canvas.width, canvas.height); masksFor = -1;  // offsets depend on the width
    buf8 = pixels.data; buf32 = new Uint32Array(buf8.buffer); pix = new Int32Array(buf8.buffer);
    posT = -1; drawLoss(); requestDraw();
  }
  // A disc's anti-aliased coverage is precomputed per 1/8-pixel offset of its centre (a mask:
  // pixel offsets and alphas), so stamping a point is a short loop with no square root.
  const PHASES = 8;
  let masks = null, masksFor = -1;
  function discMasks(rd) {
    if (masksFor === rd) return masks;
    const reach = Math.ceil(rd + 0.5), cw = canvas.width;
    masks = [];
    for (let fy = 0; fy < PHASES; fy++) for (let fx = 0; fx < PHASES; fx++) {
      const cx = (fx + 0.5) / PHASES, cy = (fy + 0.5) / PHASES, dxs = [], dys = [], alphas = [];
      for (let dy = -reach; dy <= reach; dy++) for (let dx = -reach; dx <= reach; dx++) {
        const cover = rd + 0.5 - Math.hypot(dx + 0.5 - cx, dy + 0.5 - cy);
        // A fringe pixel under 15 % covered is left out: a fifth fewer pixels to blend for
        // the smallest markers, 2.5 % of a disc's ink (benchmarks/RESULTS.md).
        if (cover >= 0.15) { dxs.push(dx); dys.push(dy); alphas.push(Math.round(256 * ALPHA * Math.min(1, cover))); }
      }
      masks.push({ dx: Int32Array.from(dxs), dy: Int32Array.from(dys), alpha: Int32Array.from(alphas),  // alpha in 1/256
        offset: Int32Array.from(dxs, (dx, k) => dys[k] * cw + dx) });  // in pixels
    }
    masksFor = rd;
    return masks;
  }
  // A colour over pixel p at opacity a/256, red and blue in one multiply and green in another
  // (the pixel is R | G << 8 | B << 16 | A << 24 read as one little-endian integer).
  function blend(p, a, rb, g) {
    const v = pix[p], na = 256 - a;
    pix[p] = ((((v & 0xff00ff) * na + rb * a) >>> 8) & 0xff00ff) | ((((v & 0xff00) * na + g * a) >>> 8) & 0xff00) | -16777216;
  }
  function stampPoints() {
    const cw = canvas.width, ch = canvas.height, rd = R * DPR, reach = Math.ceil(rd + 0.5);
    buf32.fill(0xffffffff);
    const { cat, hidden, rgb, order } = currentView(), m = discMasks(rd);
    const RB = Int32Array.from(rgb, (c) => c[0] | (c[2] << 16)), G = Int32Array.from(rgb, (c) => c[1] << 8);
    const off = Uint8Array.from(rgb, (_, c) => hidden.has(c));
    for (let k = 0; k < N; k++) {
      const i = order[k], c = cat[i];
      if (EXCLUDED[i] || off[c]) continue;
      const x = POS[2 * i] * DPR, y = POS[2 * i + 1] * DPR;
      if (!(x > -reach && x < cw + reach && y > -reach && y < ch + reach)) continue;  // off the view, or NaN
      const ix = Math.floor(x), iy = Math.floor(y), rb = RB[c], g = G[c];
      const mask = m[Math.min(PHASES - 1, ((y - iy) * PHASES) | 0) * PHASES + Math.min(PHASES - 1, ((x - ix) * PHASES) | 0)];
      const alpha = mask.alpha, offset = mask.offset, base = iy * cw + ix;
      if (ix >= reach && iy >= reach && ix < cw - reach && iy < ch - reach) {  // inside: no bounds checks
        for (let e = 0; e < alpha.length; e++) blend(base + offset[e], alpha[e], rb, g);
        continue;
      }
      for (let e = 0; e < alpha.length; e++) {
        const px = ix + mask.dx[e], py = iy + mask.dy[e];
        if (px < 0 || py < 0 || px >= cw || py >= ch) continue;
        blend(py * cw + px, alpha[e], rb, g);
      }
    }
    ctx.putImageData(pixels, 0, 0);
  }
  function drawCross(x, y) {
    const r = Math.max(R, 2.5); ctx.strokeStyle = '#555'; ctx.lineWidth = 1.2; ctx.beginPath();
    ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r); ctx.moveTo(x + r, y - r); ctx.lineTo(x - r, y + r); ctx.stroke();
  }

  // --- hit testing: a uniform grid over the canvas, rebuilt when the points moved ----------
  const CELL = 12;
  let gridT = -1, gridCols = 0, gridStart = null, gridItems = new Int32Array(N);
  function visible(i) {
    return !isHidden(i) && (state.showExcluded || !EXCLUDED[i]) && Number.isFinite(POS[2 * i]);
  }
  function buildGrid() {
    updatePositions();
    if (gridT === state.t) return;
    gridCols = Math.ceil(W / CELL) + 1; const rows = Math.ceil(H / CELL) + 1;
    const count = new Int32Array(gridCols * rows + 1), cellOf = new Int32Array(N).fill(-1);
    for (let i = 0; i < N; i++) {
      if (!visible(i)) continue;
      const cx = Math.floor(POS[2 * i] / CELL), cy = Math.floor(POS[2 * i + 1] / CELL);
      if (cx < 0 || cy < 0 || cx >= gridCols || cy >= rows) continue;
      cellOf[i] = cy * gridCols + cx; count[cellOf[i] + 1]++;
    }
    for (let c = 1; c < count.length; c++) count[c] += count[c - 1];
    gridStart = count.slice(); const fill = count.slice();
    for (let i = 0; i < N; i++) if (cellOf[i] >= 0) gridItems[fill[cellOf[i]]++] = i;
    gridT = state.t;
  }
  function hitTest(x, y) {
    buildGrid();
    const reach = Math.max(R + 3, 6), cx = Math.floor(x / CELL), cy = Math.floor(y / CELL);
    const rows = gridStart.length / gridCols;
    let best = -1, bestD = reach * reach;
    for (let gy = cy - 1; gy <= cy + 1; gy++) for (let gx = cx - 1; gx <= cx + 1; gx++) {
      if (gx < 0 || gy < 0 || gx >= gridCols || gy >= rows) continue;
      const c = gy * gridCols + gx;
      for (let k = gridStart[c]; k < gridStart[c + 1]; k++) {
        const i = gridItems[k], dx = POS[2 * i] - x, dy = POS[2 * i + 1] - y, d = dx * dx + dy * dy;
        if (d <= bestD) { bestD = d; best = i; }
      }
    }
    return best;
  }

  // --- the view: the wheel zooms about the cursor, a drag pans, a double-click resets ---------
  const ZOOM_MAX = 1000;  // a 1000th of the axes at most: float32 coordinates keep ~7 digits
  function setView(x0, x1, y0, y1) {
    V = { x0, x1, y0, y1 }; SCALE = W / (x1 - x0); posT = -1; requestDraw();
  }
  function zoomAt(cx, cy, factor) {  // about the canvas point (cx, cy) in CSS px; factor > 1 zooms in
    const wHome = HOME.x1 - HOME.x0, w = Math.min(wHome, Math.max(wHome / ZOOM_MAX, (V.x1 - V.x0) / factor));
    const h = w / ASPECT, x = V.x0 + cx / SCALE, y = V.y1 - cy / SCALE, x0 = x - (cx / W) * w, y1 = y + (cy / W) * w;
    setView(x0, x0 + w, y1 - h, y1);
  }
  function panBy(dx, dy) {  // move the picture by (dx, dy) CSS px
    const ux = dx / SCALE, uy = dy / SCALE;
    setView(V.x0 - ux, V.x1 - ux, V.y0 + uy, V.y1 + uy);
  }
  function resetView() { setView(HOME.x0, HOME.x1, HOME.y0, HOME.y1); }
  const zoom = () => (HOME.x1 - HOME.x0) / (V.x1 - V.x0);
  // Ticks and labels of the data range shown, along the bottom and left edges; a zoomed view
  // says its zoom and how to leave it.
  function drawAxes() {
    const xs = niceTicks(V.x0, V.x1, Math.max(3, Math.round(W / 110)));
    const ys = niceTicks(V.y0, V.y1, Math.max(3, Math.round(H / 80)));
    const sx = (v) => (v - V.x0) * SCALE, sy = (v) => (V.y1 - v) * SCALE;
    ctx.strokeStyle = '#999'; ctx.lineWidth = 1; ctx.beginPath();
    for (const v of xs) { ctx.moveTo(sx(v), H); ctx.lineTo(sx(v), H - 5); }
    for (const v of ys) { ctx.moveTo(0, sy(v)); ctx.lineTo(5, sy(v)); }
    ctx.stroke();
    ctx.font = '10px system-ui, sans-serif'; ctx.fillStyle = '#666'; ctx.strokeStyle = 'rgba(255,255,255,0.85)'; ctx.lineWidth = 3;
    const text = (t, x, y) => { ctx.strokeText(t, x, y); ctx.fillText(t, x, y); };  // a halo: readable over points
    ctx.textAlign = 'center'; ctx.textBaseline = 'bottom';
    for (const v of xs) if (sx(v) > 30 && sx(v) < W - 20) text(String(v), sx(v), H - 6);
    ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
    for (const v of ys) if (sy(v) > 8 && sy(v) < H - 20) text(String(v), 7, sy(v));
    if (zoom() > 1.001) {
      ctx.textAlign = 'right'; ctx.textBaseline = 'top'; ctx.fillStyle = '#444';
      text(`zoom ${zoom().toFixed(1)}\u00d7 \u00b7 double-click to reset`, W - 6, 5);
    }
    ctx.textAlign = 'start'; ctx.textBaseline = 'alphabetic';
    stats.ticks = { x: xs, y: ys };
  }

  // --- drawing the scatter -----------------------------------------------------------------
  function ring(x, y, r, color, width) {
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke();
  }
  function label(text, x, y, bold) {
    ctx.font = (bold ? 'bold ' : '') + '11px system-ui, sans-serif';
    ctx.lineWidth = 3; ctx.strokeStyle = 'rgba(255,255,255,0.9)'; ctx.strokeText(text, x, y);
    ctx.fillStyle = '#000'; ctx.fillText(text, x, y);
  }
  // Labels (pinned ids first, then ranks) must not pile up on clustered points: try a few
  // spots around each point, keep the first that overlaps no placed label and stays inside
  // the canvas; a label with no free spot is left out (its ring and tile still show it).
  function placeLabels(items) {
    const placed = [], h = 12;
    for (const [text, x, y, bold] of items) {
      ctx.font = (bold ? 'bold ' : '') + '11px system-ui, sans-serif';
      const w = ctx.measureText(text).width + 2;
      const spots = [];  // right, then left of the point, nearest rows first
      for (const dy of [-6, 6, -18, 18, -30, 30, -42, 42]) spots.push([6, dy], [-w - 6, dy]);
      let box = null;
      for (const [dx, dy] of spots) {
        const b = [x + dx, y + dy - h / 2, w, h];
        if (b[0] < 0 || b[1] < 0 || b[0] + w > W || b[1] + h > H) continue;
        if (!placed.some((p) => b[0] < p[0] + p[2] && p[0] < b[0] + w && b[1] < p[1] + p[3] && p[1] < b[1] + h)) { box = b; break; }
      }
      if (!box) continue;
      placed.push(box); label(text, box[0] + 1, box[1] + h - 2, bold);
    }
    return placed;
  }
  // The path through every snapshot: solid up to where the point is now, dashed ahead of it.
  function drawTrace(i) {
    const pts = [];
    for (let s = 0; s < S; s++) { const p = projectXY(s, i); pts.push(Number.isFinite(p[0]) ? p : null); }
    const now = [POS[2 * i], POS[2 * i + 1]], cut = Math.floor(state.t);
    const past = pts.slice(0, cut + 1).concat([now]), ahead = [now].concat(pts.slice(cut + 1));
    ctx.lineJoin = 'round';
    for (const [path, color, dash] of [[past, '#111', []], [ahead, '#777', [4, 3]]]) {
      const line = path.filter((p) => p && Number.isFinite(p[0]));
      ctx.setLineDash([]); ctx.strokeStyle = 'rgba(255,255,255,0.85)'; ctx.lineWidth = 4; polyline(line);
      ctx.setLineDash(dash); ctx.strokeStyle = color; ctx.lineWidth = 1.6; polyline(line);
    }
    // A dot per snapshot in the colour of the mode shown; correct/wrong as it was at that snapshot.
    const v = currentView(), dot = (s) => (v.key === 'correct' ? v.colors[PRED[s][i] === LABEL[i] ? 0 : 1] : v.colors[v.cat[i]]);
    ctx.setLineDash([]); ctx.strokeStyle = '#111'; ctx.lineWidth = 1;
    pts.forEach((p, s) => { if (p) { ctx.fillStyle = dot(s); ctx.beginPath(); ctx.arc(p[0], p[1], 2.5, 0, 2 * Math.PI); ctx.fill(); ctx.stroke(); } });
    const x = POS[2 * i], y = POS[2 * i + 1];
    if (!Number.isFinite(x)) return;
    ring(x, y, Math.max(R + 4, 7), '#fff', 4); ring(x, y, Math.max(R + 4, 7), '#000', 2);
    stats.tracesDrawn++;
  }
  function polyline(pts) {
    ctx.beginPath(); pts.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y))); ctx.stroke();
  }
  // The issue group's images (--highlight-issue): a ring just outside an outlier's black one.
  // One ring drawn once into a small canvas, then copied to each image: a large group costs
  // as many image copies, far cheaper than as many stroked circles (benchmarks/RESULTS.md).
  let ringSprite = null;
  function issueRing(r) {
    const side = Math.ceil(2 * r + 6), key = `${side} ${DPR}`;
    if (ringSprite && ringSprite.key === key) return ringSprite;
    const c = document.createElement('canvas'), g = c.getContext('2d');
    c.width = c.height = Math.round(side * DPR); g.setTransform(DPR, 0, 0, DPR, 0, 0);
    for (const [color, width] of [['rgba(255,255,255,0.9)', 4], [ISSUE.color, 2]]) {
      g.strokeStyle = color; g.lineWidth = width; g.beginPath(); g.arc(side / 2, side / 2, r, 0, 2 * Math.PI); g.stroke();
    }
    ringSprite = { key, canvas: c, side };
    return ringSprite;
  }
  function drawIssueRings() {
    const r = Math.max(R * 2, 5) + 3, { canvas: sprite, side } = issueRing(r), half = side / 2;
    for (const i of ISSUE.rows) {
      const x = POS[2 * i], y = POS[2 * i + 1];
      if (!(x > -half && x < W + half && y > -half && y < H + half) || isHidden(i)) continue;  // off the view, or NaN
      // on whole device pixels, so the copy is not resampled
      ctx.drawImage(sprite, Math.round((x - half) * DPR) / DPR, Math.round((y - half) * DPR) / DPR, side, side);
    }
  }
  function drawScatter() {
    const t0 = performance.now();
    updatePositions();
    stampPoints();
    stats.stampMs += performance.now() - t0;
    ctx.setTransform(DPR, 0, 0, DPR, 0, 0);
    drawAxes();
    if (state.showExcluded) {
      for (let i = 0; i < N; i++) if (EXCLUDED[i] && !isHidden(i) && POS[2 * i] === POS[2 * i]) drawCross(POS[2 * i], POS[2 * i + 1]);
    }
    if (ISSUE && state.showIssue) drawIssueRings();
    const near = nearest(), board = D.snapshots[near].board, ranks = [];
    board.forEach((i, k) => {
      const x = POS[2 * i], y = POS[2 * i + 1];
      if (!Number.isFinite(x) || isHidden(i)) return;
      ring(x, y, Math.max(R * 2, 5), '#000', 1.2); ranks.push([String(k + 1), x, y, true]);
    });
    stats.tracesDrawn = 0;
    for (const i of state.pinned) if (!isHidden(i)) drawTrace(i);
    const pins = state.pinned.filter((i) => !isHidden(i) && Number.isFinite(POS[2 * i]))
      .map((i) => [IDS[i], POS[2 * i], POS[2 * i + 1], false]);
    stats.labels = placeLabels(pins.concat(ranks));
    if (state.hover >= 0 && Number.isFinite(POS[2 * state.hover])) {
      ring(POS[2 * state.hover], POS[2 * state.hover + 1], Math.max(R + 3, 6), '#000', 2);
    }
    stats.draws++; stats.drawMs += performance.now() - t0;
  }

  // --- tooltip, leaderboard, pins --------------------------------------------------------------
  let atlasesLoaded = 0;
  const atlases = ATLAS_URIS.map((uri) => {
    const im = new Image();
    im.onload = () => {
      if (++atlasesLoaded === ATLAS_URIS.length) stats.thumbsReadyMs = performance.now();
      tipRow = -1; renderBoard(true); showTooltip();
    };
    im.src = uri; return im;
  });
  // Every point's tile is in the atlases D.thumbs describes; a large run's reduced tiles leave
  // full-size ones of the leaderboards' and pinned images in the detail atlases after them.
  const T = D.thumbs.px, PER = D.thumbs.cols * D.thumbs.cols, DETAIL = D.thumbs.detail || null;
  const DETAIL_ROW = new Map(DETAIL ? DETAIL.rows.map((i, k) => [i, k]) : []);
  function tileOf(i) {  // [atlas, x, y, side] of point i's best tile
    if (DETAIL_ROW.has(i)) {
      const k = DETAIL_ROW.get(i), per = DETAIL.cols * DETAIL.cols, r = k % per, t = DETAIL.px;
      return [atlases[D.thumbs.count + Math.floor(k / per)], (r % DETAIL.cols) * t, Math.floor(r / DETAIL.cols) * t, t];
    }
    const r = i % PER;
    return [atlases[Math.floor(i / PER)], (r % D.thumbs.cols) * T, Math.floor(r / D.thumbs.cols) * T, T];
  }
  function drawThumb(c, i, side) {
    c.width = c.height = Math.round(side * DPR); c.style.width = c.style.height = side + 'px';
    const g = c.getContext('2d'), [im, x, y, t] = tileOf(i);
    g.imageSmoothingEnabled = false; g.fillStyle = '#eee'; g.fillRect(0, 0, c.width, c.height);
    if (im && im.complete && im.naturalWidth) g.drawImage(im, x, y, t, t, 0, 0, c.width, c.height);
  }
  function describe(i) {
    const s = nearest(), lines = [`<b>${escapeHtml(IDS[i])}</b>`, `${escapeHtml(className(LABEL[i]))}`];
    if (PRED) {
      const ok = PRED[s][i] === LABEL[i];
      lines.push(`predicted ${escapeHtml(className(PRED[s][i]))} ${ok ? '&#x2713;' : '&#x2717;'}`);
    }
    lines.push(`outlier rank ${fmtInt(RANK[s][i])} of ${fmtInt(N)}`, `score ${fmtScore(SCORE[s][i])}`);
    lines.push(`<span class="note">at step ${fmtInt(D.snapshots[s].step)}</span>`, ...dynamicsLines(i));
    if (IN_ISSUE[i]) lines.push(`<b style="color:${ISSUE.color}">&#x25EF; ${escapeHtml(ISSUE.title)}</b>`);
    if (EXCLUDED[i]) lines.push(`<span style="color:#a00">excluded${D.excluded[IDS[i]] ? ': ' + escapeHtml(D.excluded[IDS[i]]) : ''}</span>`);
    return lines.join('<br>');
  }
  const fmt3 = (v) => (Number.isFinite(v) ? Number(v.toFixed(3)).toString() : 'n/a');
  function dynamicsLines(i) {  // the training dynamics of point i, over every snapshot (when the run has them)
    const v = (name) => DYN[name][i], out = [];
    if ('confidence_mean' in DYN) {
      out.push(`confidence ${fmt3(v('confidence_mean'))} &plusmn; ${fmt3(v('confidence_std'))} &middot; correct ${Math.round(100 * v('correct_fraction'))}% of snapshots`);
      const learned = v('learned_step'), region = MODES.get('region').names[v('data_map_region')];
      out.push(`forgotten ${fmtInt(v('forgetting_events'))}&times; &middot; ` +
        (Number.isFinite(learned) ? `learned at step ${fmtInt(learned)}` : 'not learned (wrong at the last snapshot)'));
      out.push(`margin ${fmt3(v('margin_mean'))} &middot; data map: ${escapeHtml(region)}`);
    }
    if ('neighbour_change' in DYN) out.push(`neighbour change ${fmt3(v('neighbour_change'))}`);
    return out.length ? [`<span class="dyn">${out.join('<br>')}</span>`] : [];
  }
  function escapeHtml(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
  }
  const tip = $('tooltip');
  let tipRow = -1, tipSnap = -1;
  function showTooltip() {
    const i = state.hover;
    for (const tile of $('board').children) tile.classList.toggle('hover', Number(tile.dataset.row) === i);
    const off = !(POS[2 * i] >= 0 && POS[2 * i] <= W && POS[2 * i + 1] >= 0 && POS[2 * i + 1] <= H);
    if (i < 0 || off) { tip.hidden = true; tipRow = -1; return; }  // none, or outside the view
    if (tipRow !== i || tipSnap !== nearest()) {
      drawThumb($('tip-thumb'), i, Math.max(2 * T, 96)); $('tip-text').innerHTML = describe(i); tipRow = i; tipSnap = nearest();
    }
    tip.hidden = false;
    const x = POS[2 * i], y = POS[2 * i + 1], w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = (x + 14 + w > W ? Math.max(0, x - 14 - w) : x + 14) + 'px';
    tip.style.top = Math.min(Math.max(0, y - h / 2), Math.max(0, H - h)) + 'px';
  }
  let boardSnap = -1;
  function renderBoard(force) {
    const s = nearest();
    if (!force && s === boardSnap) return;
    boardSnap = s;
    const el = $('board'); el.textContent = '';
    D.snapshots[s].board.forEach((i, k) => {
      const tile = document.createElement('div'); tile.className = 'tile' + (state.pinned.includes(i) ? ' pinned' : '');
      tile.dataset.row = i; tile.dataset.id = IDS[i];
      const c = document.createElement('canvas'); drawThumb(c, i, Math.max(Math.round(1.5 * T), 64));
      tile.innerHTML = `<div class="head">#${k + 1} ${escapeHtml(className(LABEL[i]))}</div>`;
      tile.appendChild(c);
      tile.insertAdjacentHTML('beforeend', `<div>${fmtScore(SCORE[s][i])}</div><div class="id">${escapeHtml(IDS[i])}</div>`);
      tile.addEventListener('click', () => pin(i, true));
      tile.addEventListener('mouseenter', () => hover(i));
      tile.addEventListener('mouseleave', () => { if (state.hover === i) hover(-1); });
      el.appendChild(tile);
    });
    $('board-title').textContent = `Top ${D.snapshots[s].board.length} outliers of this snapshot`;
  }
  function renderPins() {
    const el = $('pins'); el.textContent = '';
    for (const i of state.pinned) {
      const b = document.createElement('button'); b.textContent = IDS[i] + ' \u00d7'; b.title = 'unpin';
      b.addEventListener('click', () => pin(i, false)); el.appendChild(b);
    }
    $('pins-box').style.display = state.pinned.length ? '' : 'none';
  }
  // The reader's hover and pins are announced as 'spotreview:hover' and 'spotreview:pin' events
  // on window, so a page holding two players (the two-run comparison) shows them in both.
  function tell(kind, detail) { window.dispatchEvent(new CustomEvent('spotreview:' + kind, { detail })); }
  function hover(i, quiet) {
    if (i === state.hover) return;
    state.hover = i; requestDraw();
    if (!quiet) tell('hover', i);
  }
  function pin(i, on) {
    const k = state.pinned.indexOf(i);
    if (on === undefined) on = k < 0;
    if (on && k < 0) state.pinned.push(i);
    if (!on && k >= 0) state.pinned.splice(k, 1);
    if (on !== k >= 0) tell('pin', { row: i, on });
    if (on && isHidden(i)) toggleCategory(currentView().cat[i]);
    renderPins(); renderBoard(true); requestDraw();
  }

  // --- loss and accuracy panel ----------------------------------------------------------------------
  const lossCanvas = $('loss'), lctx = lossCanvas.getContext('2d');
  const lastStep = Math.max(D.snapshots[S - 1].step, D.loss ? D.loss.step[D.loss.step.length - 1] : 0, 1);
  const hasAcc = D.snapshots.some((s) => s.accuracy !== null || s.knn_accuracy !== null || s.trustworthiness != null);
  function niceTicks(lo, hi, n) {
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
    const step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag, out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(+v.toPrecision(6));
    return out;
  }
  function drawLoss() {
    const w = lossCanvas.clientWidth, h = lossCanvas.clientHeight;
    if (!w) return;
    if (lossCanvas.width !== Math.round(w * DPR)) { lossCanvas.width = Math.round(w * DPR); lossCanvas.height = Math.round(h * DPR); }
    const g = lctx; g.setTransform(DPR, 0, 0, DPR, 0, 0); g.clearRect(0, 0, w, h);
    const L = 44, Rm = hasAcc ? 40 : 10, T0 = 22, B = 28, pw = w - L - Rm, ph = h - T0 - B;
    // Step 0 sits 2 % inside the axis, so the current-step marker never covers the y axis.
    const sx = (v) => L + (v + 0.02 * lastStep) / (1.04 * lastStep) * pw;
    g.font = '11px system-ui, sans-serif'; g.fillStyle = '#444'; g.strokeStyle = '#888'; g.lineWidth = 1;
    g.beginPath(); g.moveTo(L, T0); g.lineTo(L, T0 + ph); g.lineTo(L + pw, T0 + ph); g.stroke();
    g.textAlign = 'center'; g.textBaseline = 'top';
    for (const v of niceTicks(0, lastStep, 5)) g.fillText(fmtInt(v), sx(v), T0 + ph + 8);
    g.strokeStyle = '#999';
    for (const snap of D.snapshots) { g.beginPath(); g.moveTo(sx(snap.step), T0 + ph); g.lineTo(sx(snap.step), T0 + ph + 5); g.stroke(); }
    const now = stepAt(state.t);
    g.textAlign = 'left'; g.textBaseline = 'middle';
    if (D.loss) {
      const lv = D.loss.loss.filter((v) => v !== null), top = Math.max(...lv) * 1.08, bot = Math.min(0, Math.min(...lv));
      const sy = (v) => T0 + ph - (v - bot) / (top - bot) * ph;
      g.textAlign = 'right';
      for (const v of niceTicks(bot, top, 4)) g.fillText(String(v), L - 5, sy(v));
      for (const [color, upto] of [['#c6dbef', Infinity], ['#1f77b4', now]]) {
        g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath(); let started = false;
        D.loss.step.forEach((st, k) => {
          const v = D.loss.loss[k]; if (v === null || st > upto) return;
          if (started) g.lineTo(sx(st), sy(v)); else { g.moveTo(sx(st), sy(v)); started = true; }
        });
        g.stroke();
      }
      g.fillStyle = '#1f77b4'; g.textAlign = 'left'; g.fillText('training loss', L + 4, 8);
    } else {
      g.fillStyle = '#666'; g.textAlign = 'center'; g.fillText(D.loss_note || 'no loss curve', L + pw / 2, T0 + ph / 2);
    }
    if (hasAcc) {
      const sy = (v) => T0 + ph - v * ph;
      g.fillStyle = '#444'; g.textAlign = 'left';
      for (const v of [0, 0.5, 1]) g.fillText(Math.round(v * 100) + '%', L + pw + 5, sy(v));
      const series = [['accuracy', '#ff7f0e', 'eval accuracy'], ['knn_accuracy', '#2ca02c', 'kNN accuracy'],
        ['trustworthiness', '#9467bd', 'trustworthiness']];
      let lx = L + 100;
      for (const [key, color, name] of series) {
        if (!D.snapshots.some((s) => s[key] !== null)) continue;
        g.strokeStyle = g.fillStyle = color; g.lineWidth = 1.2; g.beginPath(); let started = false;
        for (const snap of D.snapshots) {
          if (snap[key] === null) continue;
          const x = sx(snap.step), y = sy(snap[key]), shown = snap.step <= now + 1e-9;
          if (started) g.lineTo(x, y); else { g.moveTo(x, y); started = true; }
          g.globalAlpha = shown ? 1 : 0.25; g.fillRect(x - 2, y - 2, 4, 4); g.globalAlpha = 1;
        }
        g.globalAlpha = 0.5; g.stroke(); g.globalAlpha = 1;
        g.fillText(name, lx, 8); lx += g.measureText(name).width + 16;
      }
    }
    g.strokeStyle = '#d62728'; g.lineWidth = 1.2; g.beginPath(); g.moveTo(sx(now), T0 - 4); g.lineTo(sx(now), T0 + ph); g.stroke();
  }

  // The 2-D picture's trustworthiness at the current snapshot (spotreview/analysis/trust.py), below
  // the training panel: a low value says the scatter misplaces which images are neighbours.
  const trustBox = document.createElement('p');
  trustBox.id = 'trust'; trustBox.className = 'note'; lossCanvas.after(trustBox);
  trustBox.title = `Trustworthiness (Venna & Kaski): how well the 2-D picture keeps each image's ${D.trust.k} ` +
    'nearest neighbours of the embedding among its nearest in 2-D. 1: every 2-D neighbour is a true neighbour; ' +
    `about 0.5: no better than a random picture; below ${D.trust.low} (flagged) an image's 2-D neighbours lie, ` +
    `on average, more than ${Math.round(100 * (1 - D.trust.low))}% of the set away in the embedding.`;
  function renderTrust() {
    const snap = D.snapshots[nearest()], t = snap.trustworthiness, low = t != null && t < D.trust.low;
    const knn = snap.knn_accuracy === null ? '' : ` \u00b7 kNN accuracy ${Math.round(snap.knn_accuracy * 100)}%`;
    trustBox.hidden = !D.snapshots.some((s) => s.trustworthiness != null);
    trustBox.dataset.low = low ? '1' : '';
    trustBox.style.color = low ? '#b00000' : '';
    const value = t == null ? 'n/a' : t.toFixed(2) + (low ? ' (low)' : '');
    const hint = t == null ? 'too few images to rank neighbours'
      : low ? `below ${D.trust.low}: here the picture misplaces which images are neighbours; ` +
        'judge nearness by the kNN accuracy and the outlier ranks, not by the distances drawn'
      : `how well the picture keeps each image's ${D.trust.k} nearest neighbours (1 = all, about 0.5 = random)`;
    trustBox.innerHTML = `<b>2-D picture: trustworthiness ${value}</b>${knn}<br>${escapeHtml(hint)}`;
  }

  // --- controls and the animation loop -----------------------------------------------------------
  const slider = $('slider'); slider.max = String(S - 1);
  const playButton = $('play');
  let legendButtons = [];
  function renderHeader() {
    const s = nearest(), snap = D.snapshots[s];
    $('title').textContent = snap.title;
    $('subtitle').textContent = `${D.subtitle ? D.subtitle + ': ' : ''}snapshot ${s + 1} of ${S}, ${fmtInt(N)} images`;
    $('step').textContent = `step ${fmtInt(snap.step)} \u00b7 ${s + 1}/${S}`;
    renderTrust();
    if (Number(slider.value) !== s && document.activeElement !== slider) slider.value = String(s);
  }
  function renderLegend() {  // the categories of the mode shown, then the excluded and issue toggles
    const el = $('legend'), v = currentView(), cls = v.key === 'class'; el.textContent = '';
    const at = v.key === 'correct' ? ` at step ${fmtInt(D.snapshots[v.snap].step)}` : '';
    legendButtons = v.names.map((name, c) => {
      const b = document.createElement('button'); b.dataset[cls ? 'class' : 'category'] = c;
      b.innerHTML = `<span class="swatch" style="background:${v.colors[c]}"></span>${escapeHtml(name)}` +
        (cls ? '' : ` <span class="count">${fmtInt(v.counts[c])}</span>`);
      b.title = `${fmtInt(v.counts[c])} images ${cls ? 'of ' + className(c) : name + at}; click to hide or show them`;
      b.classList.toggle('off', v.hidden.has(c));
      b.addEventListener('click', () => toggleCategory(c)); el.appendChild(b); return b;
    });
    const nEx = EXCLUDED.reduce((a, b) => a + b, 0);
    if (nEx) {
      const b = document.createElement('button'); b.id = 'toggle-excluded'; b.classList.toggle('off', !state.showExcluded);
      b.textContent = '\u00d7 excluded'; b.title = `${fmtInt(nEx)} images excluded by the reviewer; click to hide or show them`;
      b.addEventListener('click', () => { state.showExcluded = !state.showExcluded; b.classList.toggle('off', !state.showExcluded); gridT = -1; requestDraw(); });
      el.appendChild(b);
    }
    if (ISSUE) {
      const b = document.createElement('button'); b.id = 'toggle-issue'; b.classList.toggle('off', !state.showIssue);
      b.innerHTML = `<span class="swatch ring" style="border-color:${ISSUE.color}"></span>${escapeHtml(ISSUE.title)} (${fmtInt(ISSUE.rows.length)})`;
      b.title = `the ${fmtInt(ISSUE.rows.length)} images of the issue group "${ISSUE.title}", ringed; click to hide or show the rings`;
      b.addEventListener('click', () => { state.showIssue = !state.showIssue; b.classList.toggle('off', !state.showIssue); requestDraw(); });
      el.appendChild(b);
    }
  }
  function toggleCategory(c) {  // hide or show category c of the mode shown
    const v = currentView();
    if (v.hidden.has(c)) v.hidden.delete(c); else v.hidden.add(c);
    legendButtons[c].classList.toggle('off', v.hidden.has(c));
    if (state.hover >= 0 && isHidden(state.hover)) state.hover = -1;
    gridT = -1; requestDraw();
  }
  function toggleClass(c) {  // the class legend's toggle, whatever the points are coloured by
    if (state.colourBy === 'class') { toggleCategory(c); return; }
    if (state.hidden.has(c)) state.hidden.delete(c); else state.hidden.add(c);
  }
  const colourMenu = $('colour-by');
  for (const m of D.colour_by) {
    const o = document.createElement('option'); o.value = m.key; o.textContent = m.label;
    if (m.missing) { o.disabled = true; o.title = m.missing; o.textContent += ' (unavailable)'; }
    colourMenu.appendChild(o);
  }
  const unavailable = D.colour_by.filter((m) => m.missing);
  if (unavailable.length) colourMenu.title = unavailable.map((m) => `${m.label}: ${m.missing}`).join('\n');
  function colourBy(key) {  // colour the points by mode key; false when this run lacks what it needs
    const mode = MODES.get(key);
    if (!mode || mode.missing) return false;
    state.colourBy = key; colourMenu.value = key; gridT = -1; tipRow = -1;
    if (state.hover >= 0 && isHidden(state.hover)) state.hover = -1;
    renderLegend(); requestDraw();
    return true;
  }
  colourMenu.addEventListener('change', () => colourBy(colourMenu.value));
  function setPlaying(on) {
    state.playing = on; state.target = null;
    if (on && state.t >= S - 1) state.t = 0;
    playButton.innerHTML = on ? '&#x275A;&#x275A;' : '&#x25B6;&#xFE0E;';
    playButton.setAttribute('aria-label', on ? 'pause' : 'play');
    last = null; requestDraw();
  }
  function goTo(s) {  // glide to snapshot s (a short eased move, not a jump)
    state.playing = false; setPlaying(false);
    state.target = Math.max(0, Math.min(S - 1, s)); requestDraw();
  }

  let pending = false, last = null, lastNear = -1, lastLossT = -1;
  function requestDraw() { if (!pending) { pending = true; requestAnimationFrame(frame); } }
  function frame(now) {
    pending = false;
    const dt = last === null ? 0 : Math.min(0.1, (now - last) / 1000); last = now;
    if (state.playing) {
      if (state.t >= S - 1) {
        if (!state.holdUntil) state.holdUntil = now + 1500;  // hold the end state, then loop
        else if (now >= state.holdUntil) { state.t = 0; state.holdUntil = 0; }
      } else state.t = Math.min(S - 1, state.t + dt * D.pace * state.speed);
    } else if (state.target !== null) {
      const d = state.target - state.t, move = dt * Math.max(4, 6 * Math.abs(d));
      state.t = Math.abs(d) <= move ? state.target : state.t + Math.sign(d) * move;
      if (state.t === state.target) state.target = null;
    }
    drawScatter();
    if (nearest() !== lastNear) { lastNear = nearest(); renderHeader(); renderBoard(); if (state.colourBy === 'correct') renderLegend(); }
    if (lastLossT !== state.t) { lastLossT = state.t; drawLoss(); }
    showTooltip();
    if (stats.firstPaintMs === null) { stats.firstPaintMs = performance.now(); document.body.dataset.ready = '1'; }
    if (state.playing || state.target !== null || fpsProbe) requestDraw(); else last = null;
  }

  function canvasXY(ev) {  // the event's place in the canvas' drawing (CSS px), inside its border
    const r = canvas.getBoundingClientRect(), k = W / canvas.clientWidth;
    return [(ev.clientX - r.left - canvas.clientLeft) * k, (ev.clientY - r.top - canvas.clientTop) * k];
  }
  canvas.addEventListener('mousemove', (ev) => {
    hover(hitTest(...canvasXY(ev)));
  });
  canvas.addEventListener('mouseleave', () => hover(-1));
  canvas.addEventListener('click', (ev) => {
    if (dragged) { dragged = false; return; }  // the end of a drag, not a click
    const i = hitTest(...canvasXY(ev));
    if (i >= 0) pin(i);
  });
  canvas.addEventListener('wheel', (ev) => {
    ev.preventDefault();  // zoom the picture, not scroll the page
    const unit = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? H : 1;
    zoomAt(...canvasXY(ev), Math.exp(-0.002 * unit * ev.deltaY));
  }, { passive: false });
  let drag = null, dragged = false;
  canvas.addEventListener('mousedown', (ev) => {
    if (ev.button === 0) { drag = { x: ev.clientX, y: ev.clientY, moved: false }; dragged = false; }
  });
  window.addEventListener('mousemove', (ev) => {
    if (!drag) return;
    if (!(ev.buttons & 1)) { drag = null; return; }
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && dx * dx + dy * dy < 9) return;  // a click's jitter is not a drag
    drag = { x: ev.clientX, y: ev.clientY, moved: true }; canvas.style.cursor = 'grabbing';
    panBy(dx * W / canvas.clientWidth, dy * W / canvas.clientWidth);
  });
  window.addEventListener('mouseup', () => { dragged = !!(drag && drag.moved); drag = null; canvas.style.cursor = ''; });
  canvas.addEventListener('dblclick', (ev) => { ev.preventDefault(); resetView(); });
  playButton.addEventListener('click', () => setPlaying(!state.playing));
  $('prev').addEventListener('click', () => goTo(Math.ceil(state.t) - 1));
  $('next').addEventListener('click', () => goTo(Math.floor(state.t) + 1));
  slider.addEventListener('input', () => goTo(Number(slider.value)));
  $('speed').addEventListener('change', (ev) => { state.speed = Number(ev.target.value); });
  $('clear').addEventListener('click', () => { state.pinned.length = 0; renderPins(); renderBoard(true); requestDraw(); });
  document.addEventListener('keydown', (ev) => {
    if (ev.target.tagName === 'INPUT' || ev.target.tagName === 'SELECT') return;
    if (ev.key === ' ') { ev.preventDefault(); setPlaying(!state.playing); }
    if (ev.key === 'ArrowLeft') goTo(Math.ceil(state.t) - 1);
    if (ev.key === 'ArrowRight') goTo(Math.floor(state.t) + 1);
  });
  window.addEventListener('resize', resize);
  // The plot's width also changes without a window resize (the page's scrollbar appearing).
  new ResizeObserver(() => { if (Math.max(200, canvas.clientWidth) !== W) resize(); }).observe(canvas.parentElement);

  // measureFps(ms): play for ms and count the scatter draws (one per animation frame).
  let fpsProbe = false;
  function measureFps(ms) {
    return new Promise((resolve) => {
      const d0 = stats.draws, m0 = stats.drawMs, p0 = stats.stampMs, t0 = performance.now();
      fpsProbe = true; setPlaying(true);
      setTimeout(() => {
        fpsProbe = false; const sec = (performance.now() - t0) / 1000, draws = stats.draws - d0;
        const per = (ms) => ms / Math.max(draws, 1);  // stampMs: positions and points, of drawMs
        resolve({ fps: draws / sec, drawMs: per(stats.drawMs - m0), stampMs: per(stats.stampMs - p0), seconds: sec });
      }, ms);
    });
  }

  // setTime(t): show snapshot position t (2.5: half way from the third snapshot to the fourth)
  // at once, paused; for a page that drives this player's clock (the two-run comparison).
  function setTime(t) {
    if (state.playing) setPlaying(false);
    state.target = null; state.t = Math.max(0, Math.min(S - 1, t)); requestDraw();
  }

  window.player = {
    state, stats, project, goTo, pin, toggleClass, colourBy, measureFps, setTime,
    hover: (i) => hover(i, true),  // show point i's tooltip (-1: none) without announcing it
    play: () => setPlaying(true), pause: () => setPlaying(false),
    row: (id) => (ROW.has(id) ? ROW.get(id) : -1), nearest, size: () => [W, H],
    view: () => [V.x0, V.x1, V.y0, V.y1], zoomAt, panBy, resetView,  // the data range shown, and moving it
  };
  renderLegend(); renderPins(); renderHeader(); resize();
})();
