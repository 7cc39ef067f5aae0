// What the plugin's page modules share: React and Spotlight from the page, the routes, the
// review's state, and the look of buttons and fields.
//
// Served at /api/spotreview/frontend/common.js; the other modules import it relatively, so the
// page holds one copy (one state store).

export const React = globalThis.React;
export const spotlight = globalThis.spotlight;
export const h = React.createElement;
export const { useCallback, useEffect, useMemo, useRef, useState } = React;
export const useDataset = spotlight.useDataset;

const API = new URL('../', import.meta.url).href; // /api/spotreview/

export const FONT = { fontSize: '12px', lineHeight: '16px' };
export const BUTTON = {
    ...FONT,
    padding: '1px 6px',
    border: '1px solid #9ca3af',
    borderRadius: '3px',
    background: '#f9fafb',
    color: '#1f2937',
    cursor: 'pointer',
    whiteSpace: 'nowrap',
};
export const PRIMARY = { ...BUTTON, background: '#2563eb', borderColor: '#1d4ed8', color: 'white', fontWeight: 'bold' };
export const INPUT = { ...FONT, padding: '1px 4px', border: '1px solid #9ca3af', borderRadius: '3px', minWidth: 0 };

// --- the routes -----------------------------------------------------------------------------------

async function answer(response, path) {
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `${path}: HTTP ${response.status}`);
    return body;
}

export async function getJSON(path) {
    return answer(await fetch(API + path, { headers: { Accept: 'application/json' } }), path);
}

export async function postJSON(path, payload) {
    const response = await fetch(API + path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(payload),
    });
    return answer(response, path);
}

// --- the review's state (GET state), shared by every component; refetched after each write ----

export const review = {
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

export function useReview() {
    const [state, setState] = useState(review.state);
    useEffect(() => {
        review.listeners.add(setState);
        return () => review.listeners.delete(setState);
    }, []);
    return state;
}

// Exclude (or keep) images by id, as `spotreview exclude` does; the state's count follows.
export async function writeExclusions(ids, exclude, reason) {
    const result = await postJSON('exclude', { ids, exclude, reason });
    review.refresh();
    return result;
}

// A value that changes whenever the served table does in what the app bar shows: its rows, the
// last snapshot's coordinates (a new snapshot moves them) and the exclusions.
export const tableFingerprint = (d) => {
    const sum = (col) => {
        let total = 0;
        for (let i = 0; col && i < col.length; i++) total += Number.isFinite(Number(col[i])) ? Number(col[i]) : 0;
        return total;
    };
    return `${d.length}:${sum(d.columnData.pca_last_x)}:${sum(d.columnData.exclude)}`;
};

// The table's image ids (its `id` column), indexed by row.
export const idsSelector = (d) => d.columnData.id;
