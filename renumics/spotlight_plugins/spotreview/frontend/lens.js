// The exclude lens: in the inspector, for the image shown, an exclude toggle and the reason;
// with several rows selected, buttons that exclude or keep them all.

import {
    BUTTON,
    FONT,
    INPUT,
    h,
    idsSelector,
    useCallback,
    useDataset,
    useEffect,
    useReview,
    useState,
    writeExclusions,
} from './common.js';

const EXCLUDE_LENS = 'SpotreviewExcludeLens'; // spotreview.reviewing.layouts.EXCLUDE_LENS

// Writing exclusions for the lens of image `id`: what this page wrote last (shown until the
// refreshed table says the same), a message, and whether a write is under way.
function useExclusionWriter(id, served, reason) {
    const [written, setWritten] = useState(null);
    const [message, setMessage] = useState('');
    const [busy, setBusy] = useState(false);
    useEffect(() => setWritten(null), [served.excluded, served.reason, id]);
    const write = useCallback(
        (targets, exclude) => {
            setBusy(true);
            setMessage('');
            writeExclusions(targets, exclude, reason)
                .then((result) => {
                    if (targets.includes(id)) {
                        const mine = result.excluded[id];
                        setWritten({ excluded: mine !== undefined, reason: mine ?? '' });
                    }
                    const what = exclude ? 'excluded' : 'kept';
                    const n = targets.length > 1 ? ` ${targets.length} images` : '';
                    setMessage(`${what}${n}; ${result.exclusions} excluded in all`);
                })
                .catch((e) => setMessage(e.message))
                .finally(() => setBusy(false));
        },
        [id, reason]
    );
    return { now: written || served, message, busy, write };
}

function ReasonField({ reason, setReason, maxLength, disabled, onEnter }) {
    return h('input', {
        type: 'text',
        'data-spotreview': 'exclude-reason',
        placeholder: 'reason (optional)',
        value: reason,
        maxLength,
        disabled,
        style: { ...INPUT, flex: '1 1 auto' },
        onChange: (e) => setReason(e.target.value),
        onKeyDown: (e) => {
            if (e.key === 'Enter' && !disabled) onEnter();
            e.stopPropagation(); // keep Spotlight's table shortcuts out of the text field
        },
    });
}

function SelectionButtons({ ids, disabled, write }) {
    if (ids.length < 2) return null;
    return h(
        'div',
        { style: { display: 'flex', gap: '4px', marginTop: '3px' } },
        h(
            'button',
            { style: BUTTON, 'data-spotreview': 'exclude-selected', disabled, onClick: () => write(ids, true) },
            `exclude all ${ids.length} selected`
        ),
        h('button', { style: BUTTON, disabled, onClick: () => write(ids, false) }, `keep all ${ids.length}`)
    );
}

export function ExcludeLens({ values, rowIndex }) {
    const state = useReview() || {};
    const ids = useDataset(idsSelector);
    const selected = useDataset((d) => d.selectedIndices);
    const id = ids ? ids[rowIndex] : undefined;
    const served = { excluded: !!values[0], reason: values[1] == null ? '' : String(values[1]) };
    const [reason, setReason] = useState(served.reason);
    useEffect(() => setReason(served.reason), [served.excluded, served.reason, id]);
    const { now, message, busy, write } = useExclusionWriter(id, served, reason);

    const disabled = !state.writes || id === undefined || busy;
    const toggle = h(
        'label',
        { style: { ...FONT, display: 'flex', alignItems: 'center', gap: '4px', fontWeight: 'bold' } },
        h('input', {
            type: 'checkbox',
            'data-spotreview': 'exclude-toggle',
            checked: now.excluded,
            disabled,
            onChange: (e) => write([id], e.target.checked),
        }),
        now.excluded ? 'excluded' : 'exclude'
    );
    const field = h(ReasonField, {
        reason,
        setReason,
        maxLength: state.max_reason || 500,
        disabled,
        onEnter: () => write([id], true),
    });
    const save =
        now.excluded && reason.trim() !== now.reason
            ? h('button', { style: BUTTON, disabled, onClick: () => write([id], true) }, 'save reason')
            : null;
    const selectedIds = ids ? Array.from(selected, (row) => ids[row]) : [];
    const note = !state.writes && state.read_only ? `read-only: ${state.read_only}` : message;
    return h(
        'div',
        {
            'data-spotreview': 'exclude-lens',
            'data-id': id,
            'data-excluded': String(now.excluded),
            style: { padding: '4px 6px', display: 'flex', flexDirection: 'column', gap: '2px', height: '100%' },
        },
        h('div', { style: { display: 'flex', alignItems: 'center', gap: '6px' } }, toggle, field, save),
        h(SelectionButtons, { ids: selectedIds, disabled, write }),
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
// In Spotlight's "add view" dialog: the exclude column, then its reason.
ExcludeLens.filterAllowedColumns = (all, chosen) =>
    all.filter((c) => ['exclude', 'exclude_reason'].includes(c.key) && !chosen.includes(c));
ExcludeLens.isSatisfied = (columns) => columns.length === 2 && columns[0].key === 'exclude';
