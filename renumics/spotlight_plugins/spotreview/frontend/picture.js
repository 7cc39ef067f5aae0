// The snapshots widget's picture: every point at a (fractional) snapshot, drawn on a canvas as
// the export draws it (class colours, marker size, drawing order, fixed axes), and which
// points lie under the pointer or in a dragged box. Plain functions, no React.

// The data of GET snapshots: (S, n, 2) float32 coordinates from base64, little-endian.
export function decodeCoords(data) {
    const bytes = Uint8Array.from(atob(data.coords), (c) => c.charCodeAt(0));
    return new Float32Array(bytes.buffer);
}

// Equal scale on both axes: the limits widened along one axis to the canvas' aspect.
function viewport(limits, width, height, pad) {
    const [x0, x1, y0, y1] = limits;
    const scale = Math.min(
        Math.max(width - 2 * pad, 1) / (x1 - x0 || 1),
        Math.max(height - 2 * pad, 1) / (y1 - y0 || 1)
    );
    const cx = (x0 + x1) / 2;
    const cy = (y0 + y1) / 2;
    return { x: (v) => width / 2 + (v - cx) * scale, y: (v) => height / 2 - (v - cy) * scale };
}

// A canvas sized to its box in device pixels, cleared; null before it is laid out.
function prepare(canvas) {
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return null; // the resize observer draws it once laid out
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
        canvas.width = Math.round(width * ratio);
        canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, width, height);
    return { ctx, width, height };
}

// Screen positions (2n) at snapshot position t, interpolated between its two snapshots, and the
// points to draw: those inside Spotlight's filter, the selected ones apart (drawn last).
function place(data, rows, t, vp, selected, filtered) {
    const [S, n] = data.shape;
    const k = Math.min(Math.floor(t), S - 1);
    const f = Math.min(t - k, 1);
    const next = Math.min(k + 1, S - 1);
    const xy = data.xy;
    const positions = new Float32Array(2 * n);
    const plain = [];
    const highlighted = [];
    const anySelected = selected && selected.some(Boolean);
    for (const p of data.order) {
        const a = (k * n + p) * 2;
        const b = (next * n + p) * 2;
        const x = xy[a] + (xy[b] - xy[a]) * f;
        const y = xy[a + 1] + (xy[b + 1] - xy[a + 1]) * f;
        positions[2 * p] = vp.x(x);
        positions[2 * p + 1] = vp.y(y);
        const row = rows ? rows[p] : -1;
        if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
        if (row >= 0 && filtered && filtered[row] === false) continue;
        if (row >= 0 && anySelected && selected[row]) highlighted.push(p);
        else plain.push(p);
    }
    return { positions, plain, highlighted, anySelected };
}

// Draw snapshot position t; returns what was drawn (for picking), or null when not laid out.
// `view`: Spotlight's isIndexSelected and isIndexFiltered, and the table's exclude column.
export function drawFrame(canvas, data, rows, t, view) {
    const surface = prepare(canvas);
    if (!surface) return null;
    const { ctx, width, height } = surface;
    const vp = viewport(data.limits, width, height, 12);
    const { positions, plain, highlighted, anySelected } = place(data, rows, t, vp, view.selected, view.filtered);
    // the GIF's marker as a share of the width, kept legible in a small widget
    const radius = Math.max(3, Math.min(8, (data.marker.diameter * (width - 24)) / 2));
    const dot = (p, r, alpha, outline) => {
        const colour = data.colors[data.labels[p]] || '#888888';
        const row = rows ? rows[p] : -1;
        ctx.globalAlpha = alpha;
        ctx.beginPath();
        ctx.arc(positions[2 * p], positions[2 * p + 1], r, 0, 2 * Math.PI);
        if (row >= 0 && view.excluded && view.excluded[row]) {
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
    for (const p of plain) dot(p, radius, anySelected ? 0.35 : data.marker.alpha, false);
    for (const p of highlighted) dot(p, radius * 1.8, 1, true);
    ctx.globalAlpha = 1;
    return { positions, drawn: plain.concat(highlighted), highlighted, radius };
}

// The drawn point nearest to (x, y) within its marker (plus a few pixels), or -1.
export function nearestPoint(frame, x, y) {
    let best = -1;
    let bestD = (frame.radius + 4) ** 2;
    for (const p of frame.drawn) {
        const d = (frame.positions[2 * p] - x) ** 2 + (frame.positions[2 * p + 1] - y) ** 2;
        if (d <= bestD) {
            best = p;
            bestD = d;
        }
    }
    return best;
}

// The drawn points inside the box with corners (x0, y0) and (x1, y1).
export function pointsInBox(frame, x0, y0, x1, y1) {
    const [lx, hx] = [Math.min(x0, x1), Math.max(x0, x1)];
    const [ly, hy] = [Math.min(y0, y1), Math.max(y0, y1)];
    return frame.drawn.filter((p) => {
        const px = frame.positions[2 * p];
        const py = frame.positions[2 * p + 1];
        return px >= lx && px <= hx && py >= ly && py <= hy;
    });
}
