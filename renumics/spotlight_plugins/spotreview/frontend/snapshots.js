// The snapshots widget: every snapshot's aligned 2-D coordinates with a step slider and a play
// button, following Spotlight's selection and filter both ways (selected rows are ringed;
// clicking a point or dragging a box selects rows).

import {
    BUTTON,
    FONT,
    React,
    getJSON,
    h,
    idsSelector,
    spotlight,
    useDataset,
    useEffect,
    useMemo,
    useRef,
    useState,
} from './common.js';
import { decodeCoords, drawFrame, nearestPoint, pointsInBox } from './picture.js';

const SNAPSHOTS_WIDGET = 'spotreview-snapshots'; // spotreview.reviewing.layouts.SNAPSHOTS_WIDGET
const SNAPSHOTS_PER_SECOND = 2; // the HTML player's pace at 1x

export function PlayIcon() {
    const triangle = h('path', { d: 'M3 2 L12 7 L3 12 Z', fill: 'currentColor' });
    return h('svg', { width: 14, height: 14, viewBox: '0 0 14 14' }, triangle);
}

// The data, kept across remounts (Spotlight remounts widgets when it re-serves the table) and
// fetched again only when the table's coordinates change (a new analysis).
const cache = { key: null, data: null, reason: '' };

const fingerprintSelector = (d) => {
    const col = d.columnData.pca_last_x;
    if (!col) return String(d.length);
    let sum = 0;
    for (let i = 0; i < col.length; i++) sum += Number.isFinite(col[i]) ? col[i] : 0;
    return `${d.length}:${sum}`;
};

function useSnapshotData(ids) {
    const fingerprint = useDataset(fingerprintSelector);
    const hit = cache.key === fingerprint;
    const [data, setData] = useState(hit ? cache.data : null);
    const [error, setError] = useState(hit ? cache.reason : '');
    useEffect(() => {
        if (cache.key === fingerprint) {
            setData(cache.data);
            setError(cache.reason);
            return undefined;
        }
        let live = true;
        getJSON('snapshots')
            .then((d) => {
                Object.assign(cache, {
                    key: fingerprint,
                    data: d.available === false ? null : { ...d, xy: decodeCoords(d) },
                    reason: d.available === false ? d.reason : '',
                });
                if (live) {
                    setData(cache.data);
                    setError(cache.reason);
                }
            })
            .catch((e) => live && setError(e.message));
        return () => {
            live = false;
        };
    }, [fingerprint]);
    const rows = useMemo(() => {
        if (!data || !ids) return null;
        const rowOf = new Map();
        for (let r = 0; r < ids.length; r++) rowOf.set(String(ids[r]), r);
        return Int32Array.from(data.ids, (id) => (rowOf.has(id) ? rowOf.get(id) : -1)); // point -> table row
    }, [data, ids]);
    return { data, rows, error };
}

// Where the widget was: Spotlight mounts a new widget (with a new id) each time it re-serves the
// table (an exclusion), which then goes on from there.
const place = { t: null, playing: false };

// The snapshot position (fractional while playing; starts at the last snapshot) and play/pause.
function usePlayback(S) {
    const [t, setT] = useState(place.t);
    const [playing, setPlaying] = useState(place.playing);
    const position = t === null ? Math.max(S - 1, 0) : Math.min(t, Math.max(S - 1, 0));
    const current = useRef(position);
    current.current = position;
    useEffect(() => {
        Object.assign(place, { t, playing });
    }, [t, playing]);
    useEffect(() => {
        if (!playing || S < 2) return undefined;
        let last = performance.now();
        let id = 0;
        const tick = (now) => {
            const to = Math.min(current.current + ((now - last) / 1000) * SNAPSHOTS_PER_SECOND, S - 1);
            last = now;
            current.current = to;
            setT(to);
            if (to >= S - 1) setPlaying(false);
            else id = requestAnimationFrame(tick);
        };
        id = requestAnimationFrame(tick);
        return () => cancelAnimationFrame(id);
    }, [playing, S]);
    const toggle = () => {
        if (!playing && position >= S - 1) {
            current.current = 0; // from the start again
            setT(0);
        }
        setPlaying(!playing);
    };
    const seek = (to) => {
        setPlaying(false);
        setT(to);
    };
    return { position, playing, toggle, seek };
}

// Clicks select the nearest point's row, a dragged box every point in it (Shift, Ctrl or Cmd
// add to the selection); hovering names the point.
function usePointer(canvasRef, frameRef, rows) {
    const selectRows = useDataset((d) => d.selectRows);
    const [box, setBox] = useState(null);
    const [hover, setHover] = useState(null);
    const local = (e) => {
        const r = canvasRef.current.getBoundingClientRect();
        return [e.clientX - r.left, e.clientY - r.top];
    };
    const select = (points, add) => {
        const picked = points.map((p) => rows[p]).filter((row) => row >= 0);
        selectRows((current) => (add ? Array.from(new Set([...current, ...picked])) : picked));
    };
    const handlers = {
        onMouseDown: (e) => {
            const [x, y] = local(e);
            setBox({ x0: x, y0: y, x1: x, y1: y, add: e.shiftKey || e.ctrlKey || e.metaKey });
        },
        onMouseMove: (e) => {
            const [x, y] = local(e);
            if (box) setBox({ ...box, x1: x, y1: y });
            const p = frameRef.current ? nearestPoint(frameRef.current, x, y) : -1;
            setHover(p >= 0 ? { p, x, y } : null);
        },
        onMouseUp: (e) => {
            const frame = frameRef.current;
            setBox(null);
            if (!box || !rows || !frame) return;
            const [x, y] = local(e);
            if (Math.abs(x - box.x0) > 4 || Math.abs(y - box.y0) > 4) {
                select(pointsInBox(frame, box.x0, box.y0, x, y), box.add);
            } else {
                const p = nearestPoint(frame, x, y);
                select(p >= 0 ? [p] : [], box.add && p >= 0); // a click beside every point clears
            }
        },
        onMouseLeave: () => {
            setHover(null);
            setBox(null);
        },
    };
    return { handlers, box, hover };
}

const OVERLAY = { ...FONT, position: 'absolute', pointerEvents: 'none', borderRadius: '3px' };

function Legend({ data }) {
    const shown = data.class_names.slice(0, 20);
    const more = data.class_names.length - shown.length;
    const style = { ...OVERLAY, fontSize: '11px', right: '4px', top: '4px', maxHeight: '90%', overflow: 'hidden' };
    return h(
        'div',
        { style: { ...style, background: 'rgba(255,255,255,0.85)', padding: '2px 4px' } },
        shown.map((name, c) =>
            h(
                'div',
                { key: c, style: { display: 'flex', alignItems: 'center', gap: '3px' } },
                h('span', { style: { width: '8px', height: '8px', borderRadius: '50%', background: data.colors[c] } }),
                name
            )
        ),
        more > 0 ? h('div', null, `+${more} more`) : null
    );
}

function Hover({ data, hover }) {
    if (!hover) return null;
    const style = { ...OVERLAY, left: `${hover.x + 10}px`, top: `${hover.y + 10}px`, whiteSpace: 'nowrap' };
    const text = `${data.ids[hover.p]} · ${data.class_names[data.labels[hover.p]]}`;
    return h('div', { style: { ...style, background: 'rgba(17,24,39,0.9)', color: 'white', padding: '1px 5px' } }, text);
}

function Box({ box }) {
    if (!box) return null;
    const [left, top] = [Math.min(box.x0, box.x1), Math.min(box.y0, box.y1)];
    const [width, height] = [Math.abs(box.x1 - box.x0), Math.abs(box.y1 - box.y0)];
    const style = { position: 'absolute', left: `${left}px`, top: `${top}px`, width: `${width}px`, height: `${height}px` };
    return h('div', {
        style: { ...style, border: '1px dashed #1d4ed8', background: 'rgba(37,99,235,0.08)', pointerEvents: 'none' },
    });
}

function PlayerMenu({ data, playback }) {
    const S = data ? data.shape[0] : 0;
    const snapshot = Math.round(playback.position);
    const button = h(
        'button',
        {
            'data-spotreview': 'play',
            style: { ...BUTTON, margin: '0 4px', display: 'flex', alignItems: 'center', gap: '3px' },
            disabled: S < 2,
            onClick: playback.toggle,
        },
        playback.playing ? '❚❚ pause' : h(React.Fragment, null, h(PlayIcon), 'play')
    );
    const slider = h('input', {
        type: 'range',
        'data-spotreview': 'slider',
        min: 0,
        max: Math.max(S - 1, 0),
        step: 'any',
        value: playback.position,
        style: { flex: '1 1 auto', minWidth: '60px' },
        onChange: (e) => playback.seek(Number(e.target.value)),
        onMouseUp: () => playback.seek(Math.round(playback.position)), // let go on a snapshot
    });
    const where = data ? `step ${data.steps[Math.min(snapshot, S - 1)]} (${snapshot + 1}/${S})` : '';
    const label = h('span', { style: { ...FONT, margin: '0 6px', whiteSpace: 'nowrap' }, 'data-spotreview': 'step' }, where);
    return h(spotlight.WidgetMenu, null, button, slider, label);
}

export function SnapshotsWidget() {
    const ids = useDataset(idsSelector);
    const selected = useDataset((d) => d.isIndexSelected);
    const filtered = useDataset((d) => d.isIndexFiltered);
    const excluded = useDataset((d) => d.columnData.exclude);
    const { data, rows, error } = useSnapshotData(ids);
    const S = data ? data.shape[0] : 0;
    const playback = usePlayback(S);
    const [size, setSize] = useState([0, 0]);
    const canvasRef = useRef(null);
    const frameRef = useRef(null);
    const rootRef = useRef(null);
    const { handlers, box, hover } = usePointer(canvasRef, frameRef, rows);

    useEffect(() => {
        const canvas = canvasRef.current;
        if (!canvas) return undefined;
        const observer = new ResizeObserver(() => setSize([canvas.clientWidth, canvas.clientHeight]));
        observer.observe(canvas);
        return () => observer.disconnect();
    }, [data]);

    useEffect(() => {
        if (!data || !canvasRef.current) return;
        const frame = drawFrame(canvasRef.current, data, rows, playback.position, { selected, filtered, excluded });
        if (!frame) return;
        frameRef.current = frame;
        // for tests and tools: how many points the picture shows, and how many it rings
        rootRef.current.dataset.drawn = String(frame.drawn.length);
        rootRef.current.dataset.highlighted = String(frame.highlighted.length);
    }, [data, rows, playback.position, selected, filtered, excluded, size]);

    const canvas = h('canvas', {
        ref: canvasRef,
        'data-spotreview': 'snapshots-canvas',
        style: { width: '100%', height: '100%', display: 'block', cursor: 'crosshair' },
        ...handlers,
    });
    const body = data
        ? h(
              'div',
              { style: { position: 'absolute', inset: 0, overflow: 'hidden' } },
              canvas,
              h(Legend, { data }),
              h(Hover, { data, hover }),
              h(Box, { box })
          )
        : h('div', { style: { ...FONT, padding: '12px', color: '#4b5563', textAlign: 'center' } }, error || 'loading…');
    const snapshot = Math.round(playback.position);
    return h(
        spotlight.WidgetContainer,
        null,
        h(
            'div',
            {
                ref: rootRef,
                'data-spotreview': 'snapshots',
                'data-snapshot': String(snapshot),
                'data-position': playback.position.toFixed(3),
                'data-step': data ? String(data.steps[Math.min(snapshot, S - 1)]) : '',
                'data-playing': String(playback.playing),
                style: { display: 'flex', flexDirection: 'column', width: '100%', height: '100%', minHeight: 0 },
            },
            h(PlayerMenu, { data, playback }),
            h(spotlight.WidgetContent, { style: { position: 'relative', flex: '1 1 0', minHeight: 0 } }, body)
        )
    );
}
SnapshotsWidget.key = SNAPSHOTS_WIDGET;
SnapshotsWidget.defaultName = 'Snapshots (spotreview)';
SnapshotsWidget.icon = PlayIcon;
