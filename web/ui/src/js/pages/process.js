// The process-list editor for one input (`?input=ID`) or one virtual feed (`?feed=ID`).
// The list is edited here and stored with one Save: emoncms's `process/set` takes the whole
// list as JSON `[{"fn":"process__log_to_feed","args":["5"]}, ...]` and stores it encoded as
// "1:5,...". After a save the list is read back, so what is shown is what is stored.

import { h, clear, field, toast } from '../dom.js';
import { get, post } from '../api.js';
import {
  ENGINE_VIRTUAL, ENGINE_NAMES, CREATABLE_ENGINES as CREATABLE, FIXED_INTERVAL_ENGINES as FIXED_INTERVAL,
  INTERVALS, DEFAULT_INTERVAL, fmtInterval,
} from '../feedmeta.js';

// emoncms's ProcessArg types.
const VALUE = 0;
const INPUTID = 1;
const FEEDID = 2;
const NONE = 3;
const TEXT = 4;
const SCHEDULEID = 5;

/** "1:5,2:0.1,process__x:7:8" → [{key, args}], numeric keys mapped to module__fn keys. */
function parseStored(text, idMap, catalog) {
  if (typeof text !== 'string' || text.trim() === '') return [];
  return text.split(',').filter((s) => s.trim() !== '').map((step) => {
    const parts = step.split(':');
    let key = parts[0].trim();
    if (/^\d+$/.test(key) && idMap[key]) key = idMap[key];
    const args = parts.slice(1);
    const def = catalog[key];
    // Older lists store NONE steps as "24:" or "24"; the API wants one arg per declared arg.
    if (def) {
      def.args.forEach((a, i) => {
        if (args[i] === undefined) args.push(a.type === NONE ? '0' : (a.default ?? ''));
      });
    }
    return { key, args };
  });
}

const feedLabel = (f) => (f.tag ? `${f.tag}:${f.name}` : String(f.name));
const inputLabel = (i) => `${i.nodeid}:${i.name}`;

export async function render(main, ctx) {
  const inputId = ctx.params.get('input');
  const feedId = ctx.params.get('feed');
  const isFeed = !inputId && !!feedId;
  const ownerId = isFeed ? feedId : inputId;

  if (!ownerId || !/^\d+$/.test(ownerId)) {
    clear(main,
      h('h1', 'Process list'),
      h('p', 'Choose an input to edit its process list: ',
        h('a', { href: '/app/inputs' }, 'go to inputs'), '.'));
    return undefined;
  }

  const getPath = isFeed ? 'feed/process/get.json' : 'input/process/get.json';
  const setPath = isFeed ? 'feed/process/set.json' : 'input/process/set.json';
  const ownerQuery = isFeed ? { id: ownerId } : { inputid: ownerId };

  let catalog;
  let idMap;
  let inputs;
  let feeds;
  let stored;
  try {
    [catalog, idMap, inputs, feeds, stored] = await Promise.all([
      get('process/list.json'),
      get('process/map.json').catch(() => ({})),
      isFeed ? Promise.resolve([]) : get('input/list.json'),
      get('feed/list.json'),
      get(getPath, ownerQuery),
    ]);
  } catch (e) {
    clear(main, h('h1', 'Process list'), h('p.error', { role: 'alert' }, `Could not load: ${e.message}`));
    return undefined;
  }
  catalog = catalog && typeof catalog === 'object' ? catalog : {};
  idMap = idMap && typeof idMap === 'object' ? idMap : {};
  inputs = Array.isArray(inputs) ? inputs : [];
  feeds = Array.isArray(feeds) ? feeds : [];
  // Catalogs without a map still carry id_num.
  for (const [key, p] of Object.entries(catalog)) {
    if (p.id_num !== undefined && p.id_num !== null && !idMap[p.id_num]) idMap[p.id_num] = key;
  }

  const owner = isFeed
    ? feeds.find((f) => String(f.id) === ownerId)
    : inputs.find((i) => String(i.id) === ownerId);
  if (!owner || stored === false) {
    clear(main,
      h('h1', 'Process list'),
      h('p.error', { role: 'alert' }, isFeed ? `There is no feed ${ownerId} of yours.` : `There is no input ${ownerId} of yours.`),
      h('p', h('a', { href: isFeed ? '/app/feeds' : '/app/inputs' }, isFeed ? 'Back to feeds' : 'Back to inputs')));
    return undefined;
  }
  if (isFeed && Number(owner.engine) !== ENGINE_VIRTUAL) {
    clear(main,
      h('h1', 'Process list'),
      h('p', `The feed ${feedLabel(owner)} stores data; only virtual feeds have a process list. Process lists that write to it belong to inputs.`),
      h('p', h('a', { href: '/app/inputs' }, 'Go to inputs')));
    return undefined;
  }

  const allowedHere = (p) => (isFeed ? p.virtual_feed_context : p.input_context) && !p.deleted;
  let saved = parseStored(stored, idMap, catalog);
  let steps = saved.map((s) => ({ ...s, args: [...s.args] }));

  const inputsById = new Map(inputs.map((i) => [String(i.id), i]));
  let feedsById = new Map(feeds.map((f) => [String(f.id), f]));

  // ---------------------------------------------------------------- the list of steps
  const stepList = h('ol.steps', { id: 'steps', 'aria-label': 'Steps' });
  const emptyNote = h('p.muted.empty-steps', isFeed
    ? 'No steps yet: a virtual feed needs at least a "Source Feed" step.'
    : 'No steps yet: values of this input are not stored anywhere. Add a "Log to feed" step to record them.');
  const unsaved = h('p.unsaved', { hidden: true }, 'Unsaved changes: press Save to store them.');
  const saveStatus = h('span.save-status', { role: 'status' });
  const saveAlert = h('p.error', { role: 'alert' });
  const saveBtn = h('button.primary', { type: 'button', onclick: () => save() }, 'Save');
  const discardBtn = h('button', {
    type: 'button',
    onclick: () => {
      steps = saved.map((s) => ({ ...s, args: [...s.args] }));
      saveAlert.textContent = '';
      drawSteps();
      toast('Changes discarded');
    },
  }, 'Discard changes');

  const isDirty = () => JSON.stringify(steps.map(({ key, args }) => ({ key, args })))
    !== JSON.stringify(saved.map(({ key, args }) => ({ key, args })));

  function describeArg(spec, value) {
    const v = value === undefined ? '' : String(value);
    switch (spec?.type) {
      case NONE:
        return null;
      case VALUE:
        return { text: v === '' ? '(no value)' : v, title: 'Value' };
      case TEXT:
        return { text: `“${v}”`, title: 'Text' };
      case INPUTID: {
        const i = inputsById.get(v);
        return i ? { text: inputLabel(i), title: `Input ${v}` } : { text: `input ${v} (missing)`, missing: true };
      }
      case FEEDID: {
        const f = feedsById.get(v);
        return f ? { text: feedLabel(f), title: `Feed ${v}` } : { text: `feed ${v} (missing)`, missing: true };
      }
      case SCHEDULEID:
        return { text: `schedule ${v}`, title: 'Schedule' };
      default:
        return { text: v, title: 'Argument' };
    }
  }

  function stepItem(step, i) {
    const def = catalog[step.key];
    const name = def ? def.name : `Unknown process ${step.key}`;
    const n = i + 1;
    const argParts = [];
    const specs = def ? def.args : [];
    step.args.forEach((a, k) => {
      const d = describeArg(specs[k], a);
      if (!d) return;
      argParts.push(h(d.missing ? 'span.arg.missing' : 'span.arg', { title: d.title || null }, d.text));
    });
    const problem = !def
      ? 'This process is not known to the server; saving will fail until the step is removed.'
      : (!allowedHere(def) ? `This process cannot be used in ${isFeed ? 'a virtual feed' : 'an input'} list.` : null);
    const btn = (act, label, text, disabled, onclick) => h('button.small', {
      type: 'button', 'aria-label': label, title: label, disabled, dataset: { act }, onclick,
    }, text);
    return h('li', { dataset: { index: i, key: step.key }, class: step.isNew ? 'pending' : null },
      h('span.n', `${n}.`),
      h('span.what',
        h('strong.pname', name),
        argParts.length ? [' ', argParts] : null,
        step.isNew ? [' ', h('span.badge.new', 'new')] : null,
        def?.description ? h('small.muted.pdesc', def.description) : null,
        problem ? h('small.error.pdesc', problem) : null),
      h('span.step-actions',
        btn('up', `Move step ${n} (${name}) up`, '↑ Up', i === 0, () => move(i, -1)),
        btn('down', `Move step ${n} (${name}) down`, '↓ Down', i === steps.length - 1, () => move(i, 1)),
        btn('remove', `Remove step ${n} (${name})`, 'Remove', false, () => removeStep(i))));
  }

  function drawSteps() {
    clear(stepList, steps.map(stepItem));
    emptyNote.hidden = steps.length > 0;
    const dirty = isDirty();
    unsaved.hidden = !dirty;
    saveBtn.disabled = !dirty;
    discardBtn.disabled = !dirty;
    if (dirty) saveStatus.textContent = '';
  }

  function focusStep(index, act) {
    const li = stepList.children[index];
    if (!li) { procSelect.focus(); return; }
    const b = li.querySelector(`button[data-act="${act}"]`);
    if (b && !b.disabled) b.focus();
    else li.querySelector('button:not([disabled])')?.focus();
  }

  function move(i, delta) {
    const j = i + delta;
    if (j < 0 || j >= steps.length) return;
    [steps[i], steps[j]] = [steps[j], steps[i]];
    drawSteps();
    focusStep(j, delta < 0 ? 'up' : 'down');
  }

  function removeStep(i) {
    steps.splice(i, 1);
    drawSteps();
    focusStep(Math.min(i, steps.length - 1), 'remove');
  }

  async function loadStored() {
    const text = await get(getPath, ownerQuery);
    saved = parseStored(text, idMap, catalog);
    steps = saved.map((s) => ({ ...s, args: [...s.args] }));
    drawSteps();
  }

  async function save() {
    saveAlert.textContent = '';
    saveStatus.textContent = '';
    saveBtn.disabled = true;
    const list = steps.map(({ key, args }) => ({ fn: key, args: args.map(String) }));
    try {
      await post(setPath, { processlist: JSON.stringify(list) }, ownerQuery);
    } catch (e) {
      saveAlert.textContent = `Not saved: ${e.message}`;
      saveBtn.disabled = false;
      return;
    }
    try {
      await loadStored();
      saveStatus.textContent = 'Saved';
      toast('Saved');
    } catch (e) {
      saveAlert.textContent = `Saved, but reading the list back failed: ${e.message}`;
    }
  }

  // ---------------------------------------------------------------- the add-step form
  const procSelect = h('select', { name: 'process', required: true });
  const groups = new Map();
  for (const [key, p] of Object.entries(catalog)) {
    if (!allowedHere(p)) continue;
    // Schedules are not part of this server: nothing could be chosen for them.
    if (p.args.some((a) => a.type === SCHEDULEID)) continue;
    const g = p.group || 'Other';
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(h('option', { value: key }, p.name));
  }
  for (const [g, options] of groups) procSelect.append(h('optgroup', { label: g }, options));

  const procHint = h('p.muted.proc-hint');
  const argBox = h('div.row.arg-fields');
  const extraBox = h('div.arg-extra');
  const addAlert = h('p.error', { role: 'alert' });
  const addBtn = h('button.primary', { type: 'submit' }, 'Add step');
  let controls = [];

  const ownerNode = isFeed ? '' : String(owner.nodeid);
  const ownerName = String(owner.name);

  /** A feed name not yet used under `tag`: "power1", then "power1_2", ... */
  function freeName(tag, base) {
    const taken = new Set(feeds.filter((f) => String(f.tag) === tag).map((f) => String(f.name)));
    if (!taken.has(base)) return base;
    for (let k = 2; ; k++) if (!taken.has(`${base}_${k}`)) return `${base}_${k}`;
  }

  function defaultFeedName(def) {
    if (/^log_to_feed/.test(def.function)) return ownerName;
    const suffix = String(def.short || def.function).toLowerCase().replace(/[^a-z0-9_]/g, '') || def.function;
    return `${ownerName}_${suffix}`;
  }

  function valueControl(spec, label) {
    const box = h('input', {
      type: 'number', step: 'any', inputmode: 'decimal', required: true,
      value: spec.default ?? '', name: 'value',
    });
    return {
      el: field(label, box),
      check: () => (box.value.trim() !== '' && Number.isFinite(Number(box.value)) ? null : `${label}: enter a number.`),
      value: async () => String(Number(box.value)),
      focus: () => box.focus(),
    };
  }

  function textControl(spec, label) {
    const box = h('input', { type: 'text', required: true, name: 'text', value: spec.default ?? '' });
    return {
      el: field(label, box, 'Letters, digits, spaces and _ - . / { } only.'),
      check: () => {
        const v = box.value.trim();
        if (!v) return `${label}: enter some text.`;
        if (/[,:]/.test(v)) return `${label}: commas and colons cannot be stored in a process list.`;
        return null;
      },
      value: async () => box.value.trim(),
      focus: () => box.focus(),
    };
  }

  function inputControl() {
    const sel = h('select', { name: 'input', required: true },
      [...inputs]
        .sort((a, b) => inputLabel(a).localeCompare(inputLabel(b), undefined, { numeric: true }))
        .map((i) => h('option', { value: String(i.id) }, inputLabel(i))));
    return {
      el: field('Input', sel),
      check: () => (sel.value ? null : 'There is no input to choose.'),
      value: async () => sel.value,
      focus: () => sel.focus(),
    };
  }

  function scheduleControl() {
    const box = h('input', { type: 'number', min: 1, step: 1, required: true, name: 'schedule' });
    return {
      el: field('Schedule id', box),
      check: () => (/^\d+$/.test(box.value.trim()) ? null : 'Schedule id: enter a number.'),
      value: async () => box.value.trim(),
      focus: () => box.focus(),
    };
  }

  function feedControl(spec, def) {
    const engines = Array.isArray(spec.engines) ? spec.engines.map(Number) : null;
    const usable = feeds.filter((f) => {
      const e = Number(f.engine);
      if (isFeed && String(f.id) === ownerId) return false;
      // The server refuses virtual feeds in input lists: they are computed, never stored.
      if (!isFeed && e === ENGINE_VIRTUAL) return false;
      return !engines || engines.includes(e);
    }).sort((a, b) => feedLabel(a).localeCompare(feedLabel(b), undefined, { numeric: true }));
    const creatable = isFeed ? [] : CREATABLE.filter((e) => !engines || engines.includes(e));

    const sel = h('select', { name: 'feed', required: true },
      usable.map((f) => h('option', { value: String(f.id) }, feedLabel(f))),
      creatable.length ? h('option', { value: 'new' }, 'Create new feed…') : null);
    // Steps that write to a feed usually want a new one; steps that read one, an existing one.
    if (creatable.length && (def.nochange || !usable.length)) sel.value = 'new';

    const tag = h('input', { type: 'text', name: 'tag', value: ownerNode, autocomplete: 'off' });
    const name = h('input', {
      type: 'text', name: 'feedname', required: true, autocomplete: 'off',
      value: freeName(ownerNode, defaultFeedName(def)),
    });
    let nameTouched = false;
    name.addEventListener('input', () => { nameTouched = true; });
    tag.addEventListener('input', () => {
      if (!nameTouched) name.value = freeName(tag.value.trim(), defaultFeedName(def));
    });
    const engine = h('select', { name: 'engine' },
      creatable.map((e) => h('option', { value: String(e) }, ENGINE_NAMES[e] || `Engine ${e}`)));
    const interval = h('select', { name: 'interval' },
      INTERVALS.map((s) => h('option', { value: String(s) }, fmtInterval(s))));
    interval.value = String(DEFAULT_INTERVAL);
    const intervalField = field('Interval', interval, 'Seconds between stored values.');
    const unitText = spec.unit || def.unit || '';
    const newBox = h('fieldset.new-feed',
      h('legend', 'New feed'),
      h('div.row', field('Feed name', name), field('Tag', tag), field('Engine', engine), intervalField),
      unitText ? h('small.muted', `Unit: ${unitText}`) : null);
    const sync = () => {
      newBox.hidden = sel.value !== 'new';
      intervalField.hidden = !FIXED_INTERVAL.has(Number(engine.value));
    };
    sel.addEventListener('change', sync);
    engine.addEventListener('change', sync);
    sync();

    const hint = !usable.length && !creatable.length ? 'No feed of a suitable engine exists.' : null;
    return {
      el: field('Feed', sel, hint),
      extra: newBox,
      check: () => {
        if (!sel.value) return 'Choose a feed.';
        if (sel.value === 'new' && !name.value.trim()) return 'Feed name: enter a name for the new feed.';
        return null;
      },
      value: async () => {
        if (sel.value !== 'new') return sel.value;
        const e = Number(engine.value);
        const res = await post('feed/create.json', null, {
          tag: tag.value.trim(),
          name: name.value.trim(),
          engine: e,
          options: FIXED_INTERVAL.has(e) ? { interval: Number(interval.value) } : {},
          unit: unitText,
        });
        const id = res && res.feedid;
        if (id === undefined || id === null) throw new Error('The server did not return the new feed id.');
        toast(`Feed ${tag.value.trim()}:${name.value.trim()} created`);
        try {
          const list = await get('feed/list.json');
          if (Array.isArray(list)) feeds = list;
        } catch {
          feeds.push({ id: String(id), name: name.value.trim(), tag: tag.value.trim(), engine: String(e) });
        }
        if (!feeds.some((f) => String(f.id) === String(id))) {
          feeds.push({ id: String(id), name: name.value.trim(), tag: tag.value.trim(), engine: String(e) });
        }
        feedsById = new Map(feeds.map((f) => [String(f.id), f]));
        return String(id);
      },
      focus: () => (sel.value === 'new' ? name : sel).focus(),
    };
  }

  function buildArgs() {
    const def = catalog[procSelect.value];
    addAlert.textContent = '';
    if (!def) { clear(argBox); controls = []; return; }
    procHint.textContent = def.description || '';
    controls = def.args.map((spec) => {
      switch (spec.type) {
        case VALUE: return valueControl(spec, def.function === 'power_to_kwh_custom' ? 'Minutes' : 'Value');
        case TEXT: return textControl(spec, /mqtt/i.test(def.function) ? 'Topic' : 'Text');
        case INPUTID: return inputControl();
        case FEEDID: return feedControl(spec, def);
        case SCHEDULEID: return scheduleControl();
        default: return { el: null, check: () => null, value: async () => '0' };
      }
    });
    clear(argBox, controls.map((c) => c.el), controls.length && controls.every((c) => !c.el)
      ? h('p.muted.no-arg', 'This step takes no argument.') : null);
    // The new-feed fields go on their own line below.
    clear(extraBox, controls.map((c) => c.extra));
  }

  procSelect.addEventListener('change', buildArgs);

  const addForm = h('form.card.add-step', {
    noValidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      addAlert.textContent = '';
      const key = procSelect.value;
      const def = catalog[key];
      if (!def) { addAlert.textContent = 'Choose a process.'; return; }
      for (const c of controls) {
        const problem = c.check();
        if (problem) {
          addAlert.textContent = problem;
          c.focus?.();
          return;
        }
      }
      addBtn.disabled = true;
      const args = [];
      try {
        // Checked first, so a bad value never leaves a feed created for nothing.
        for (const c of controls) args.push(await c.value());
      } catch (err) {
        addAlert.textContent = err.message;
        addBtn.disabled = false;
        return;
      }
      addBtn.disabled = false;
      steps.push({ key, args, isNew: true });
      drawSteps();
      buildArgs();
      toast(`Step ${steps.length} added: press Save to store the list`);
    },
  },
  h('h2', 'Add step'),
  h('div.row', field('Process', procSelect), argBox),
  procHint,
  extraBox,
  addAlert,
  h('div.toolbar', addBtn));

  // ---------------------------------------------------------------- the page
  const heading = isFeed
    ? h('p.owner', 'Virtual feed ', h('strong', feedLabel(owner)), ' · ', h('a', { href: '/app/feeds' }, 'Back to feeds'))
    : h('p.owner', 'Input ', h('strong', inputLabel(owner)),
      owner.description ? [' (', owner.description, ')'] : null,
      ' · ', h('a', { href: '/app/inputs' }, 'Back to inputs'));

  clear(main,
    h('div.process-page',
      h('h1', 'Process list'),
      heading,
      h('section.card', { 'aria-labelledby': 'steps-h' },
        h('h2', { id: 'steps-h' }, 'Steps'),
        h('p.muted.small', 'Each step gets the value from the one before it, from top to bottom.'),
        stepList,
        emptyNote,
        unsaved,
        saveAlert,
        h('div.toolbar', saveBtn, discardBtn, saveStatus)),
      addForm));

  buildArgs();
  drawSteps();

  const beforeUnload = (e) => {
    if (!isDirty()) return;
    e.preventDefault();
    e.returnValue = '';
  };
  window.addEventListener('beforeunload', beforeUnload);
  return () => window.removeEventListener('beforeunload', beforeUnload);
}
