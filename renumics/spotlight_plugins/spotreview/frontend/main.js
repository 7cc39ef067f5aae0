// The spotreview Spotlight plugin's page side: an exclude lens, an app-bar item that shows the
// run's state and approves it, and a widget that plays every snapshot's aligned 2-D coordinates.
//
// Spotlight imports this module when its page starts and calls `activate(app)`; React and
// Spotlight's library are globals of the page (`globalThis.React`, `globalThis.spotlight`),
// so this file needs no build step and loads nothing from the network. Before activating, the
// module asks its server whether `spotreview review` started it (GET ../../spotreview/state);
// in any other Spotlight server it registers nothing.

const React = globalThis.React;
const spotlight = globalThis.spotlight;
const h = React.createElement;
const { useCallback, useEffect, useMemo, useRef, useState } = React;
const useDataset = spotlight.useDataset;

// main.js is served at /api/plugins/spotreview/main.js; the routes are under /api/spotreview/.
const API = new URL('../../spotreview/', import.meta.url).href;

const SNAPSHOTS_WIDGET = 'spotreview-snapshots'; // spotreview.reviewing.layouts.SNAPSHOTS_WIDGET
const EXCLUDE_LENS = 'SpotreviewExcludeLens'; // spotreview.reviewing.layouts.EXCLUDE_LENS
const SNAPSHOTS_PER_SECOND = 2; // the HTML player's pace at 1x

const FONT = { fontSize: '12px', lineHeight: '16px' };
const BUTTON = {
    ...FONT,
    padding: '1px 6px',
    border: '1px solid #9ca3af',
    borderRadius: '3px',
    background: '#f9fafb',
    color: '#1f2937',
    cursor: 'pointer',
    whiteSpace: 'nowrap',
};
const PRIMARY = { ...BUTTON, background: '#2563eb', borderColor: '#1d4ed8', color: 'white', fontWeight: 'bold' };
const INPUT = { ...FONT, padding: '1px 4px', border: '1px solid #9ca3af', borderRadius: '3px', minWidth: 0 };

// --- server ---------------------------------------------------------------------------------

async function getJSON(path) {
    const response = await fetch(API + path, { headers: { Accept: 'application/json' } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `${path}: HTTP ${response.status}`);
    return body;
}

async function postJSON(path, payload) {
    const response = await fetch(API + path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(payload),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `${path}: HTTP ${response.status}`);
    return body;
}

// The review's state (app bar), shared by every component; refetched after each write.
const review = {
    state: null,
    listeners: new Set(),
    set(state) {
        this.state = state;
        this.listeners.forEach((listener) => listener(state));
    },
    async refresh() {
        try {
            this.set(await getJSON('state'));
        } catch (e) {
            this.set({ ...(this.state || {}), problem: e.message });
        }
    },
};

function useReview() {
    const [state, setState] = useState(review.state);
    useEffect(() => {
        review.listeners.add(setState);
        return () => review.listeners.delete(setState);
    }, []);
    return state;
}

// The table's image ids (the `id` column), and row -> id / id -> row.
const idsSelector = (d) => d.columnData.id;

function exclusionWrite(ids, exclude, reason) {
    return postJSON('exclude', { ids, exclude, reason }).then((result) => {
        review.refresh();
        return result;
    });
}

// --- the exclude lens -------------------------------------------------------------------------

function ExcludeLens({ values, rowIndex }) {
    const state = useReview() || {};
    const ids = useDataset(idsSelector);
    const selected = useDataset((d) => d.selectedIndices);
    const id = ids ? ids[rowIndex] : undefined;
    const served = { excluded: !!values[0], reason: values[1] == null ? '' : String(values[1]) };
    // What this page wrote last, shown until the refreshed table says the same.
    const [written, setWritten] = useState(null);
    const [reason, setReason] = useState(served.reason);
    const [message, setMessage] = useState('');
    const [busy, setBusy] = useState(false);
    const now = written || served;

    useEffect(() => {
        setWritten(null);
        setReason(served.reason);
    }, [served.excluded, served.reason, id]);

    const write = useCallback(
        (targets, exclude) => {
            setBusy(true);
            setMessage('');
            exclusionWrite(targets, exclude, reason)
                .then((result) => {
                    if (targets.includes(id)) {
                        const mine = result.excluded[id];
                        setWritten({ excluded: mine !== undefined, reason: mine ?? '' });
                    }
                    const n = targets.length;
                    setMessage(
                        n > 1
                            ? `${exclude ? 'excluded' : 'kept'} ${n} images; ${result.exclusions} excluded in all`
                            : `${exclude ? 'excluded' : 'kept'}; ${result.exclusions} excluded in all`
                    );
                })
                .catch((e) => setMessage(e.message))
                .finally(() => setBusy(false));
        },
        [id, reason]
    );

    const canWrite = state.writes && id !== undefined && !busy;
    const selectedIds = ids ? Array.from(selected, (row) => ids[row]) : [];
    const toggle = h(
        'label',
        { style: { ...FONT, display: 'flex', alignItems: 'center', gap: '4px', fontWeight: 'bold' } },
        h('input', {
            type: 'checkbox',
            'data-spotreview': 'exclude-toggle',
            checked: now.excluded,
            disabled: !canWrite,
            onChange: (e) => write([id], e.target.checked),
        }),
        now.excluded ? 'excluded' : 'exclude'
    );
    const reasonInput = h('input', {
        type: 'text',
        'data-spotreview': 'exclude-reason',
        placeholder: 'reason (optional)',
        value: reason,
        maxLength: state.max_reason || 500,
        disabled: !canWrite,
        style: { ...INPUT, flex: '1 1 auto' },
        onChange: (e) => setReason(e.target.value),
        onKeyDown: (e) => {
            if (e.key === 'Enter' && canWrite) write([id], true);
            e.stopPropagation(); // keep Spotlight's table shortcuts out of the text field
        },
    });
    const save =
        now.excluded && reason.trim() !== now.reason
            ? h('button', { style: BUTTON, disabled: !canWrite, onClick: () => write([id], true) }, 'save reason')
            : null;
    const many =
        selectedIds.length > 1
            ? h(
                  'div',
                  { style: { display: 'flex', gap: '4px', marginTop: '3px' } },
                  h(
                      'button',
                      {
                          style: BUTTON,
                          'data-spotreview': 'exclude-selected',
                          disabled: !canWrite,
                          onClick: () => write(selectedIds, true),
                      },
                      `exclude all ${selectedIds.length} selected`
                  ),
                  h(
                      'button',
                      { style: BUTTON, disabled: !canWrite, onClick: () => write(selectedIds, false) },
                      `keep all ${selectedIds.length}`
                  )
              )
            : null;
    const note = !state.writes && state.read_only ? `read-only: ${state.read_only}` : message;
    return h(
        'div',
        {
            'data-spotreview': 'exclude-lens',
            'data-id': id,
            'data-excluded': String(now.excluded),
            style: { padding: '4px 6px', display: 'flex', flexDirection: 'column', gap: '2px', height: '100%' },
        },
        h('div', { style: { display: 'flex', alignItems: 'center', gap: '6px' } }, toggle, reasonInput, save),
        many,
        note ? h('div', { 'data-spotreview': 'lens-message', style: { ...FONT, color: '#4b5563' } }, note) : null
    );
}
ExcludeLens.key = EXCLUDE_LENS;
ExcludeLens.displayName = 'Exclude (spotreview)';
ExcludeLens.dataTypes = ['bool', 'str'];
ExcludeLens.multi = true;
ExcludeLens.handlesNull = true;
ExcludeLens.minHeight = 40;
ExcludeLens.defaultHeight = 64;
ExcludeLens.filterAllowedColumns = (all, chosen) =>
    all.filter((c) => ['exclude', 'exclude_reason'].includes(c.key) && !chosen.includes(c));
ExcludeLens.isSatisfied = (columns) => columns.length === 2 && columns[0].key === 'exclude';

// --- the app-bar item ------------------------------------------------------------------------

const APPROVAL_COLOURS = { approved: '#16a34a', stale: '#d97706', missing: '#9ca3af' };
const APPROVAL_WORDS = { approved: 'approved', stale: 'stale', missing: 'not approved' };

function summary(state) {
    if (state.kind === 'bundle') return [`bundle`, `${state.exclusions} excluded`];
    const parts = [`${state.snapshots} snapshot${state.snapshots === 1 ? '' : 's'}`, state.training];
    parts.push(APPROVAL_WORDS[state.approval] || state.approval, `${state.exclusions} excluded`);
    return parts;
}

function ApproveDialog({ state, onClose }) {
    const [name, setName] = useState(state.user || '');
    const [message, setMessage] = useState('');
    const [busy, setBusy] = useState(false);
    const approve = () => {
        setBusy(true);
        setMessage('');
        postJSON('approve', { by: name })
            .then(() => review.refresh()) // the state's line then says who approved, when
            .catch((e) => setMessage(e.message))
            .finally(() => setBusy(false));
    };
    return h(
        'div',
        {
            'data-spotreview': 'approve-dialog',
            style: {
                ...FONT,
                position: 'fixed',
                top: '40px',
                right: '8px',
                zIndex: 1000,
                width: '360px',
                padding: '10px',
                background: 'white',
                border: '1px solid #9ca3af',
                borderRadius: '4px',
                boxShadow: '0 4px 12px rgba(0,0,0,0.2)',
                display: 'flex',
                flexDirection: 'column',
                gap: '6px',
            },
        },
        h('div', { style: { fontWeight: 'bold' } }, `Approve ${state.name} for export`),
        h('div', { 'data-spotreview': 'approval-message', style: { color: '#4b5563' } }, state.approval_message),
        state.training === 'training'
            ? h('div', { style: { color: '#b45309' } }, 'training has not finished: a later snapshot makes this stale')
            : null,
        h(
            'label',
            { style: { display: 'flex', alignItems: 'center', gap: '6px' } },
            'approved by',
            h('input', {
                type: 'text',
                'data-spotreview': 'approve-name',
                value: name,
                maxLength: state.max_name || 100,
                style: { ...INPUT, flex: '1 1 auto' },
                onChange: (e) => setName(e.target.value),
                onKeyDown: (e) => {
                    if (e.key === 'Enter' && name.trim() && !busy) approve();
                    e.stopPropagation();
                },
            })
        ),
        h(
            'div',
            { style: { display: 'flex', gap: '6px', justifyContent: 'flex-end' } },
            h('button', { style: BUTTON, onClick: onClose }, 'close'),
            h(
                'button',
                {
                    style: PRIMARY,
                    'data-spotreview': 'approve-confirm',
                    disabled: busy || !name.trim(),
                    onClick: approve,
                },
                'Approve'
            )
        ),
        message ? h('div', { 'data-spotreview': 'approve-message', style: { color: '#b91c1c' } }, message) : null
    );
}

function AppBarItem() {
    const state = useReview();
    const generation = useDataset((d) => d.generationID);
    const [open, setOpen] = useState(false);
    useEffect(() => {
        review.refresh(); // the table was re-served: exclusions or the analysis changed
    }, [generation]);
    if (!state || !state.active) return null;
    const colour = state.kind === 'bundle' ? '#6b7280' : APPROVAL_COLOURS[state.approval] || '#9ca3af';
    const title =
        state.kind === 'bundle'
            ? `decisions go to ${state.decisions}`
            : `${state.name}: ${state.approval_message}${state.analysis_error ? ` (${state.analysis_error})` : ''}`;
    return h(
        'div',
        {
            'data-spotreview': 'appbar',
            'data-approval': state.approval || '',
            style: { ...FONT, display: 'flex', alignItems: 'center', gap: '6px', margin: '0 6px' },
        },
        h('span', {
            style: { width: '9px', height: '9px', borderRadius: '50%', background: colour, display: 'inline-block' },
        }),
        h(
            'span',
            { title, 'data-spotreview': 'state', style: { whiteSpace: 'nowrap', color: '#1f2937' } },
            h('b', null, 'spotreview '),
            summary(state).join(' · ')
        ),
        state.problem ? h('span', { style: { color: '#b91c1c' } }, state.problem) : null,
        state.kind === 'run'
            ? h(
                  'button',
                  {
                      style: PRIMARY,
                      'data-spotreview': 'approve',
                      disabled: !state.writes,
                      title: state.writes ? 'record your approval, as `spotreview approve` does' : state.read_only,
                      onClick: () => setOpen(!open),
                  },
                  state.approval === 'approved' ? 'Approve again…' : 'Approve…'
              )
            : null,
        open ? h(ApproveDialog, { state, onClose: () => setOpen(false) }) : null
    );
}

// --- the snapshot player ------------------------------------------------------------------------

function decodeCoords(data) {
    const bytes = Uint8Array.from(atob(data.coords), (c) => c.charCodeAt(0));
    return new Float32Array(bytes.buffer);
}

// Equal scale on both axes: the limits widened along one axis to the canvas' aspect.
function viewport(limits, width, height, pad) {
    const [x0, x1, y0, y1] = limits;
    const w = Math.max(width - 2 * pad, 1);
    const hh = Math.max(height - 2 * pad, 1);
    const scale = Math.min(w / (x1 - x0 || 1), hh / (y1 - y0 || 1));
    const cx = (x0 + x1) / 2;
    const cy = (y0 + y1) / 2;
    return {
        scale,
        x: (v) => width / 2 + (v - cx) * scale,
        y: (v) => height / 2 - (v - cy) * scale,
    };
}

function PlayIcon() {
    return h('svg', { width: 14, height: 14, viewBox: '0 0 14 14' }, h('path', { d: 'M3 2 L12 7 L3 12 Z', fill: 'currentColor' }));
}

// The player's data, kept across remounts (Spotlight remounts widgets when it re-serves the
// table) and fetched again only when the table's coordinates change (a new analysis).
const snapshotCache = { key: null, data: null };

function useSnapshotData(ids) {
    const fingerprint = useDataset((d) => {
        const col = d.columnData.pca_last_x;
        if (!col) return String(d.length);
        let sum = 0;
        for (let i = 0; i < col.length; i++) sum += Number.isFinite(col[i]) ? col[i] : 0;
        return `${d.length}:${sum}`;
    });
    const cached = snapshotCache.key === fingerprint ? snapshotCache.data : null;
    const [data, setData] = useState(cached);
    const [error, setError] = useState('');
    useEffect(() => {
        if (snapshotCache.key === fingerprint) {
            setData(snapshotCache.data);
            return undefined;
        }
        let live = true;
        getJSON('snapshots')
            .then((d) => {
                const loaded = d.available === false ? null : { ...d, xy: decodeCoords(d) };
                snapshotCache.key = fingerprint;
                snapshotCache.data = loaded;
                if (!live) return;
                setData(loaded);
                setError(d.available === false ? d.reason : '');
            })
            .catch((e) => live && setError(e.message));
        return () => {
            live = false;
        };
    }, [fingerprint]);
    // points -> table rows, by id
    const rows = useMemo(() => {
        if (!data || !ids) return null;
        const rowOf = new Map();
        for (let r = 0; r < ids.length; r++) rowOf.set(String(ids[r]), r);
        return Int32Array.from(data.ids, (id) => (rowOf.has(id) ? rowOf.get(id) : -1));
    }, [data, ids]);
    return { data, rows, error };
}

function drawFrame(canvas, data, rows, t, view) {
    const { selected, filtered, excluded } = view;
    const ctx = canvas.getContext('2d');
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return null; // not laid out yet: the resize observer draws it then
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
        canvas.width = Math.round(width * ratio);
        canvas.height = Math.round(height * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);
    const [S, n] = data.shape;
    const k = Math.min(Math.floor(t), S - 1);
    const f = Math.min(t - k, 1);
    const next = Math.min(k + 1, S - 1);
    const vp = viewport(data.limits, width, height, 12);
    const radius = Math.max(3, Math.min(8, (data.marker.diameter * (width - 24)) / 2)); // the GIF's share of the width, legible when small
    const xy = data.xy;
    const positions = new Float32Array(2 * n);
    const anySelected = selected && selected.length > 0;
    const drawn = [];
    const highlighted = [];
    for (const p of data.order) {
        const a = (k * n + p) * 2;
        const b = (next * n + p) * 2;
        const x = xy[a] + (xy[b] - xy[a]) * f;
        const y = xy[a + 1] + (xy[b + 1] - xy[a + 1]) * f;
        positions[2 * p] = vp.x(x);
        positions[2 * p + 1] = vp.y(y);
        const row = rows ? rows[p] : -1;
        if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
        if (row >= 0 && filtered && filtered[row] === false) continue; // outside Spotlight's filter
        if (row >= 0 && anySelected && selected[row]) highlighted.push(p);
        else drawn.push(p);
    }
    const dot = (p, r, alpha, outline) => {
        const colour = data.colors[data.labels[p]] || '#888888';
        const row = rows ? rows[p] : -1;
        ctx.globalAlpha = alpha;
        ctx.beginPath();
        ctx.arc(positions[2 * p], positions[2 * p + 1], r, 0, 2 * Math.PI);
        if (row >= 0 && excluded && excluded[row]) {
            ctx.lineWidth = 1.5; // an excluded image: a ring in its class colour
            ctx.strokeStyle = colour;
            ctx.stroke();
        } else {
            ctx.fillStyle = colour;
            ctx.fill();
        }
        if (outline) {
            ctx.globalAlpha = 1;
            ctx.lineWidth = 2;
            ctx.strokeStyle = '#111827';
            ctx.stroke();
        }
    };
    const alpha = anySelected ? 0.35 : data.marker.alpha;
    for (const p of drawn) dot(p, radius, alpha, false);
    for (const p of highlighted) dot(p, radius * 1.8, 1, true);
    ctx.globalAlpha = 1;
    return { positions, drawn: drawn.concat(highlighted), highlighted, radius };
}

function Legend({ data }) {
    const shown = data.class_names.slice(0, 20);
    return h(
        'div',
        {
            style: {
                ...FONT,
                fontSize: '11px',
                position: 'absolute',
                right: '4px',
                top: '4px',
                background: 'rgba(255,255,255,0.85)',
                padding: '2px 4px',
                borderRadius: '3px',
                pointerEvents: 'none',
                maxHeight: '90%',
                overflow: 'hidden',
            },
        },
        shown.map((name, c) =>
            h(
                'div',
                { key: c, style: { display: 'flex', alignItems: 'center', gap: '3px' } },
                h('span', {
                    style: { width: '8px', height: '8px', borderRadius: '50%', background: data.colors[c] },
                }),
                name
            )
        ),
        data.class_names.length > shown.length ? h('div', null, `+${data.class_names.length - shown.length} more`) : null
    );
}

function SnapshotsWidget() {
    const ids = useDataset(idsSelector);
    const selected = useDataset((d) => d.isIndexSelected);
    const filtered = useDataset((d) => d.isIndexFiltered);
    const excluded = useDataset((d) => d.columnData.exclude);
    const selectRows = useDataset((d) => d.selectRows);
    const { data, rows, error } = useSnapshotData(ids);
    const S = data ? data.shape[0] : 0;
    const [t, setT] = useState(null); // position in snapshots (fractional while playing); null: the last
    const [playing, setPlaying] = useState(false);
    const [size, setSize] = useState([0, 0]);
    const [box, setBox] = useState(null); // a selection rectangle being dragged
    const [hover, setHover] = useState(null);
    const canvasRef = useRef(null);
    const frameRef = useRef(null);
    const rootRef = useRef(null);
    const position = t === null ? Math.max(S - 1, 0) : t;

    const positionRef = useRef(position);
    positionRef.current = position;

    // playing: advance at SNAPSHOTS_PER_SECOND, stop at the last snapshot
    useEffect(() => {
        if (!playing || S < 2) return undefined;
        let last = performance.now();
        let id = 0;
        const tick = (now) => {
            const to = Math.min(positionRef.current + ((now - last) / 1000) * SNAPSHOTS_PER_SECOND, S - 1);
            last = now;
            positionRef.current = to;
            setT(to);
            if (to >= S - 1) setPlaying(false);
            else id = requestAnimationFrame(tick);
        };
        id = requestAnimationFrame(tick);
        return () => cancelAnimationFrame(id);
    }, [playing, S]);

    useEffect(() => {
        const canvas = canvasRef.current;
        if (!canvas) return undefined;
        const observer = new ResizeObserver(() => setSize([canvas.clientWidth, canvas.clientHeight]));
        observer.observe(canvas);
        return () => observer.disconnect();
    }, [data]);

    useEffect(() => {
        if (!data || !canvasRef.current) return;
        const frame = drawFrame(canvasRef.current, data, rows, position, { selected, filtered, excluded });
        if (!frame) return;
        frameRef.current = frame;
        // for tests and tools: how many points the picture shows, and how many it rings
        rootRef.current.dataset.drawn = String(frameRef.current.drawn.length);
        rootRef.current.dataset.highlighted = String(frameRef.current.highlighted.length);
    }, [data, rows, position, selected, filtered, excluded, size]);

    const nearest = (mx, my) => {
        const frame = frameRef.current;
        if (!frame) return -1;
        let best = -1;
        let bestD = (frame.radius + 4) ** 2;
        for (const p of frame.drawn) {
            const d = (frame.positions[2 * p] - mx) ** 2 + (frame.positions[2 * p + 1] - my) ** 2;
            if (d <= bestD) {
                best = p;
                bestD = d;
            }
        }
        return best;
    };
    const local = (e) => {
        const r = canvasRef.current.getBoundingClientRect();
        return [e.clientX - r.left, e.clientY - r.top];
    };
    const select = (points, add) => {
        const picked = points.map((p) => rows[p]).filter((row) => row >= 0);
        selectRows((current) => (add ? Array.from(new Set([...current, ...picked])) : picked));
    };
    const onMouseDown = (e) => {
        const [x, y] = local(e);
        setBox({ x0: x, y0: y, x1: x, y1: y, add: e.shiftKey || e.ctrlKey || e.metaKey });
    };
    const onMouseMove = (e) => {
        const [x, y] = local(e);
        if (box) setBox({ ...box, x1: x, y1: y });
        const p = nearest(x, y);
        setHover(p >= 0 ? { p, x, y } : null);
    };
    const onMouseUp = (e) => {
        if (!box || !rows || !frameRef.current) return setBox(null);
        const [x, y] = local(e);
        const dragged = Math.abs(x - box.x0) > 4 || Math.abs(y - box.y0) > 4;
        if (dragged) {
            const [lx, hx] = [Math.min(box.x0, x), Math.max(box.x0, x)];
            const [ly, hy] = [Math.min(box.y0, y), Math.max(box.y0, y)];
            const frame = frameRef.current;
            const inside = frame.drawn.filter((p) => {
                const px = frame.positions[2 * p];
                const py = frame.positions[2 * p + 1];
                return px >= lx && px <= hx && py >= ly && py <= hy;
            });
            select(inside, box.add);
        } else {
            const p = nearest(x, y);
            select(p >= 0 ? [p] : [], box.add && p >= 0);
        }
        setBox(null);
    };

    const snapshot = Math.round(position);
    const step = data ? data.steps[Math.min(snapshot, S - 1)] : null;
    const menu = h(
        spotlight.WidgetMenu,
        null,
        h(
            'button',
            {
                'data-spotreview': 'play',
                style: { ...BUTTON, margin: '0 4px', display: 'flex', alignItems: 'center', gap: '3px' },
                disabled: S < 2,
                onClick: () => {
                    if (!playing && position >= S - 1) {
                        positionRef.current = 0;
                        setT(0);
                    }
                    setPlaying(!playing);
                },
            },
            playing ? '❚❚ pause' : h(React.Fragment, null, h(PlayIcon), 'play')
        ),
        h('input', {
            type: 'range',
            'data-spotreview': 'slider',
            min: 0,
            max: Math.max(S - 1, 0),
            step: 'any',
            value: position,
            style: { flex: '1 1 auto', minWidth: '60px' },
            onChange: (e) => {
                setPlaying(false);
                setT(Number(e.target.value));
            },
            onMouseUp: () => setT(Math.round(position)),
        }),
        h(
            'span',
            { style: { ...FONT, margin: '0 6px', whiteSpace: 'nowrap' }, 'data-spotreview': 'step' },
            data ? `step ${step} (${snapshot + 1}/${S})` : ''
        )
    );
    const tooltip =
        hover && data
            ? h(
                  'div',
                  {
                      style: {
                          ...FONT,
                          position: 'absolute',
                          left: `${hover.x + 10}px`,
                          top: `${hover.y + 10}px`,
                          background: 'rgba(17,24,39,0.9)',
                          color: 'white',
                          padding: '1px 5px',
                          borderRadius: '3px',
                          pointerEvents: 'none',
                          whiteSpace: 'nowrap',
                      },
                  },
                  `${data.ids[hover.p]} · ${data.class_names[data.labels[hover.p]]}`
              )
            : null;
    const rect = box
        ? h('div', {
              style: {
                  position: 'absolute',
                  left: `${Math.min(box.x0, box.x1)}px`,
                  top: `${Math.min(box.y0, box.y1)}px`,
                  width: `${Math.abs(box.x1 - box.x0)}px`,
                  height: `${Math.abs(box.y1 - box.y0)}px`,
                  border: '1px dashed #1d4ed8',
                  background: 'rgba(37,99,235,0.08)',
                  pointerEvents: 'none',
              },
          })
        : null;
    const body = data
        ? h(
              'div',
              { style: { position: 'absolute', inset: 0, overflow: 'hidden' } },
              h('canvas', {
                  ref: canvasRef,
                  'data-spotreview': 'snapshots-canvas',
                  style: { width: '100%', height: '100%', display: 'block', cursor: 'crosshair' },
                  onMouseDown,
                  onMouseMove,
                  onMouseUp,
                  onMouseLeave: () => {
                      setHover(null);
                      setBox(null);
                  },
              }),
              h(Legend, { data }),
              tooltip,
              rect
          )
        : h(
              'div',
              { style: { ...FONT, padding: '12px', color: '#4b5563', textAlign: 'center' } },
              error || 'loading the snapshots…'
          );
    return h(
        spotlight.WidgetContainer,
        null,
        h(
            'div',
            {
                'data-spotreview': 'snapshots',
                'data-snapshot': String(snapshot),
                'data-position': position.toFixed(3),
                'data-step': step === null ? '' : String(step),
                'data-playing': String(playing),
                ref: rootRef,
                style: { display: 'flex', flexDirection: 'column', width: '100%', height: '100%', minHeight: 0 },
            },
            menu,
            h(spotlight.WidgetContent, { style: { position: 'relative', flex: '1 1 0', minHeight: 0 } }, body)
        )
    );
}
SnapshotsWidget.key = SNAPSHOTS_WIDGET;
SnapshotsWidget.defaultName = 'Snapshots (spotreview)';
SnapshotsWidget.icon = PlayIcon;

// --- activation ---------------------------------------------------------------------------------

try {
    review.state = await getJSON('state');
} catch (e) {
    review.state = null; // not our server's routes: stay inert
}

export default {
    activate(app) {
        if (!review.state || !review.state.active) return;
        app.registerWidget(SnapshotsWidget);
        app.registerLens(ExcludeLens);
        app.addAppBarItem(h(AppBarItem, { key: 'spotreview' }));
    },
};
