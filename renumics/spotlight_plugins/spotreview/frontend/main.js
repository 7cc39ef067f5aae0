// The spotreview Spotlight plugin's page side: an exclude lens (lens.js), an app-bar item that
// shows the run's state and approves it (appbar.js), and a widget that plays every snapshot's
// aligned 2-D coordinates (snapshots.js, picture.js).
//
// Spotlight imports this module when its page starts and calls `activate(app)`. React and
// Spotlight's library are globals of the page (`globalThis.React`, `globalThis.spotlight`), so
// the modules need no build step and nothing from the network. This one first asks the server
// whether `spotreview review` started it (GET /api/spotreview/state); only then does it load
// the rest (from /api/spotreview/frontend/) and register it. In any other Spotlight server it
// registers nothing.

// Served at /api/plugins/spotreview/main.js; the plugin's routes are under /api/spotreview/.
const API = new URL('../../spotreview/', import.meta.url).href;

async function served() {
    try {
        const response = await fetch(API + 'state', { headers: { Accept: 'application/json' } });
        const state = response.ok ? await response.json() : null;
        return state && state.active ? state : null;
    } catch (e) {
        return null; // not our server's routes: stay inert
    }
}

async function load(state) {
    const [common, lens, appbar, snapshots] = await Promise.all(
        ['common', 'lens', 'appbar', 'snapshots'].map((name) => import(`${API}frontend/${name}.js`))
    );
    common.review.set(state);
    return {
        widgets: [snapshots.SnapshotsWidget],
        lenses: [lens.ExcludeLens],
        appBar: common.h(appbar.AppBarItem, { key: 'spotreview' }),
    };
}

const state = await served();
const parts = state ? await load(state) : null;

export default {
    activate(app) {
        if (!parts) return;
        parts.widgets.forEach((widget) => app.registerWidget(widget));
        parts.lenses.forEach((lens) => app.registerLens(lens));
        app.addAppBarItem(parts.appBar);
    },
};
