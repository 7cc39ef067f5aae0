// The app-bar item: where the run stands (snapshots, training, approval, exclusions), and an
// Approve… button whose dialog records the approval as `spotreview approve --by NAME` does.

import {
    BUTTON,
    FONT,
    INPUT,
    PRIMARY,
    h,
    postJSON,
    review,
    tableFingerprint,
    useDataset,
    useEffect,
    useReview,
    useState,
} from './common.js';

const APPROVAL_COLOURS = { approved: '#16a34a', stale: '#d97706', missing: '#9ca3af' };
const APPROVAL_WORDS = { approved: 'approved', stale: 'stale', missing: 'not approved' };
const DIALOG = {
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
};

function summary(state) {
    if (state.kind === 'bundle') return ['bundle', `${state.exclusions} excluded`];
    const snapshots = `${state.snapshots} snapshot${state.snapshots === 1 ? '' : 's'}`;
    return [snapshots, state.training, APPROVAL_WORDS[state.approval] || state.approval, `${state.exclusions} excluded`];
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
    const nameField = h('input', {
        type: 'text',
        'data-spotreview': 'approve-name',
        value: name,
        maxLength: state.max_name || 100,
        style: { ...INPUT, flex: '1 1 auto' },
        onChange: (e) => setName(e.target.value),
        onKeyDown: (e) => {
            if (e.key === 'Enter' && name.trim() && !busy) approve();
            e.stopPropagation(); // keep Spotlight's shortcuts out of the text field
        },
    });
    const confirm = h(
        'button',
        { style: PRIMARY, 'data-spotreview': 'approve-confirm', disabled: busy || !name.trim(), onClick: approve },
        'Approve'
    );
    return h(
        'div',
        { 'data-spotreview': 'approve-dialog', style: DIALOG },
        h('div', { style: { fontWeight: 'bold' } }, `Approve ${state.name} for export`),
        h('div', { 'data-spotreview': 'approval-message', style: { color: '#4b5563' } }, state.approval_message),
        state.training === 'training'
            ? h('div', { style: { color: '#b45309' } }, 'training has not finished: a later snapshot makes this stale')
            : null,
        h('label', { style: { display: 'flex', alignItems: 'center', gap: '6px' } }, 'approved by', nameField),
        h(
            'div',
            { style: { display: 'flex', gap: '6px', justifyContent: 'flex-end' } },
            h('button', { style: BUTTON, onClick: onClose }, 'close'),
            confirm
        ),
        message ? h('div', { 'data-spotreview': 'approve-message', style: { color: '#b91c1c' } }, message) : null
    );
}

function ApproveButton({ state, onClick }) {
    if (state.kind !== 'run') return null; // a bundle's run is approved where it lives
    return h(
        'button',
        {
            style: PRIMARY,
            'data-spotreview': 'approve',
            disabled: !state.writes,
            title: state.writes ? 'record your approval, as `spotreview approve` does' : state.read_only,
            onClick,
        },
        state.approval === 'approved' ? 'Approve again…' : 'Approve…'
    );
}

export function AppBarItem() {
    const state = useReview();
    const fingerprint = useDataset(tableFingerprint);
    const [open, setOpen] = useState(false);
    useEffect(() => {
        review.refresh(); // the table was re-served: a new snapshot, exclusions or the analysis changed
    }, [fingerprint]);
    if (!state || !state.active) return null;
    const colour = state.kind === 'bundle' ? '#6b7280' : APPROVAL_COLOURS[state.approval] || '#9ca3af';
    const trouble = state.analysis_error ? ` (${state.analysis_error})` : '';
    const title =
        state.kind === 'bundle' ? `decisions go to ${state.decisions}` : `${state.name}: ${state.approval_message}${trouble}`;
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
        h(ApproveButton, { state, onClick: () => setOpen(!open) }),
        open ? h(ApproveDialog, { state, onClose: () => setOpen(false) }) : null
    );
}
