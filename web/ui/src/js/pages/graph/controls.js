// The controls beside the chart: range presets, zoom and pan buttons, the Average / Bars /
// Delta options, and the feed picker. They change the shared state and leave the fetching
// to the callbacks they are given.

import { h } from '../../dom.js';
import { isCumulative } from '../../feedmeta.js';
import { HOUR, DAY, MODES } from './state.js';

const PRESETS = [['Hour', HOUR], ['Day', DAY], ['Week', 7 * DAY], ['Month', 30 * DAY], ['Year', 365 * DAY], ['All', 0]];

const btn = (label, onclick, attrs = {}) => h('button', { type: 'button', onclick, ...attrs }, label);

/**
 * The row of controls (.graph-controls). `nav` has the range actions (interact.js);
 * `changed` redraws the same range after an option changed; `selected` lists the chosen feeds.
 */
export function graphControls(state, nav, { changed, selected }) {
  const presetGroup = h('div.graph-group', { role: 'group', 'aria-label': 'Range' },
    PRESETS.map(([label, span]) => btn(label, () => nav.preset(span))));
  const navGroup = h('div.graph-group', { role: 'group', 'aria-label': 'Zoom and pan' },
    btn('←', () => nav.pan(-0.5), { 'aria-label': 'Pan left', title: 'Pan left' }),
    btn('Zoom in', () => nav.zoom(0.5)),
    btn('Zoom out', () => nav.zoom(2)),
    btn('→', () => nav.pan(0.5), { 'aria-label': 'Pan right', title: 'Pan right' }));

  const avgBox = h('input', { type: 'checkbox', id: 'graph-avg', checked: state.avg });
  const modeSel = h('select', { id: 'graph-mode' }, MODES.map((m) => h('option', { value: m }, m)));
  modeSel.value = state.mode;
  const deltaBox = h('input', { type: 'checkbox', id: 'graph-delta', checked: state.delta });
  avgBox.addEventListener('change', () => { state.avg = avgBox.checked; changed(); });
  deltaBox.addEventListener('change', () => { state.delta = deltaBox.checked; changed(); });
  modeSel.addEventListener('change', () => {
    const was = state.mode;
    state.mode = modeSel.value;
    // Bars of cumulative energy feeds only make sense as per-period differences.
    if (was === 'none' && state.mode !== 'none' && !state.delta
        && selected().length && selected().every((f) => isCumulative(f.unit))) {
      state.delta = true;
      deltaBox.checked = true;
    }
    changed();
  });
  const optGroup = h('div.graph-group', { role: 'group', 'aria-label': 'Options' },
    h('span.graph-check', avgBox, h('label', { for: 'graph-avg' }, 'Average')),
    h('span.graph-check', h('label', { for: 'graph-mode' }, 'Bars'), modeSel),
    h('span.graph-check', deltaBox, h('label', { for: 'graph-delta' }, 'Delta')));

  return h('div.graph-controls', presetGroup, navGroup, optGroup);
}

/**
 * The feed picker: the user's feeds by tag, a checkbox each and the axis it goes on.
 * `pickerCount` is the "(n chosen)" in its summary, kept up to date by the page.
 */
export function feedPicker(feeds, state, { open, changed, feedsChanged }) {
  const picker = h('details.graph-picker.card');
  picker.open = open;
  const pickerCount = h('span.muted');
  picker.append(h('summary', 'Feeds ', pickerCount));
  const groups = new Map();
  for (const f of feeds) {
    const tag = String(f.tag || '').trim();
    if (!groups.has(tag)) groups.set(tag, []);
    groups.get(tag).push(f);
  }
  for (const [tag, list] of groups) {
    const fs = h('fieldset', h('legend', tag || 'No tag'));
    for (const f of list) fs.append(feedRow(f, state, changed, feedsChanged));
    picker.append(fs);
  }
  return { picker, pickerCount };
}

function feedRow(f, state, changed, feedsChanged) {
  const id = `graph-feed-${f.id}`;
  const box = h('input', { type: 'checkbox', id, checked: state.feeds.includes(f.id) });
  const axis = h('select', { 'aria-label': `Axis for ${f.name}`, title: 'Axis' },
    h('option', { value: 'left' }, 'Left'), h('option', { value: 'right' }, 'Right'));
  axis.value = state.right.has(f.id) ? 'right' : 'left';
  axis.disabled = !box.checked;
  box.addEventListener('change', () => {
    if (box.checked) { if (!state.feeds.includes(f.id)) state.feeds.push(f.id); } else {
      state.feeds = state.feeds.filter((x) => x !== f.id);
      state.right.delete(f.id);
      // Ticked again later, a feed starts on the left axis, as the address no longer says otherwise.
      axis.value = 'left';
    }
    axis.disabled = !box.checked;
    feedsChanged();
  });
  axis.addEventListener('change', () => {
    if (axis.value === 'right') state.right.add(f.id); else state.right.delete(f.id);
    changed();
  });
  return h('div.graph-feed', box,
    h('label', { for: id }, f.name, f.unit ? h('span.muted', ` ${f.unit}`) : null), axis);
}
