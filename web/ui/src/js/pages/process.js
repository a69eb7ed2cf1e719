// The process-list editor for one input (`?input=ID`) or one virtual feed (`?feed=ID`).
// The list is edited here and stored with one Save: emoncms's `process/set` takes the whole
// list as JSON `[{"fn":"process__log_to_feed","args":["5"]}, ...]` and stores it encoded as
// "1:5,...". After a save the list is read back, so what is shown is what is stored.
// The parts live in ./process/: loading (load.js), the stored form (stored.js), the step list
// (steps.js) and the add-step form with its argument fields (addstep.js, args.js, feedarg.js).

import { h, clear, toast } from '../dom.js';
import { get, post } from '../api.js';
import { loadEditor } from './process/load.js';
import { parseStored, copySteps, sameSteps, encodeForSet } from './process/stored.js';
import { feedLabel, inputLabel } from './process/lookup.js';
import { stepList } from './process/steps.js';
import { addStepForm } from './process/addstep.js';

function ownerLine(env) {
  const { owner } = env;
  return env.isFeed
    ? h('p.owner', 'Virtual feed ', h('strong', feedLabel(owner)), ' · ', h('a', { href: '/app/feeds' }, 'Back to feeds'))
    : h('p.owner', 'Input ', h('strong', inputLabel(owner)),
      owner.description ? [' (', owner.description, ')'] : null,
      ' · ', h('a', { href: '/app/inputs' }, 'Back to inputs'));
}

export async function render(main, ctx) {
  const loaded = await loadEditor(ctx.params);
  if (loaded.page) {
    clear(main, loaded.page);
    return undefined;
  }
  const { env } = loaded;
  const readList = (text) => parseStored(text, env.idMap, env.catalog);

  // `saved` is the list as stored; `steps` the edited copy the page shows.
  let saved = readList(loaded.stored);
  let steps = copySteps(saved);
  const isDirty = () => !sameSteps(steps, saved);

  const list = stepList(env, { changed: () => drawSteps(), focusOutside: () => addStep.focus() });
  const emptyNote = h('p.muted.empty-steps', env.isFeed
    ? 'No steps yet: a virtual feed needs at least a "Source Feed" step.'
    : 'No steps yet: values of this input are not stored anywhere. Add a "Log to feed" step to record them.');
  const unsaved = h('p.unsaved', { hidden: true }, 'Unsaved changes: press Save to store them.');
  const saveStatus = h('span.save-status', { role: 'status' });
  const saveAlert = h('p.error', { role: 'alert' });
  const saveBtn = h('button.primary', { type: 'button', onclick: () => save() }, 'Save');
  const discardBtn = h('button', {
    type: 'button',
    onclick: () => {
      steps = copySteps(saved);
      saveAlert.textContent = '';
      drawSteps();
      toast('Changes discarded');
    },
  }, 'Discard changes');

  function drawSteps() {
    list.draw(steps);
    emptyNote.hidden = steps.length > 0;
    const dirty = isDirty();
    unsaved.hidden = !dirty;
    saveBtn.disabled = !dirty;
    discardBtn.disabled = !dirty;
    if (dirty) saveStatus.textContent = '';
  }

  async function loadStored() {
    saved = readList(await get(env.getPath, env.ownerQuery));
    steps = copySteps(saved);
    drawSteps();
  }

  async function save() {
    saveAlert.textContent = '';
    saveStatus.textContent = '';
    saveBtn.disabled = true;
    try {
      await post(env.setPath, { processlist: encodeForSet(steps) }, env.ownerQuery);
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

  const addStep = addStepForm(env, (step) => {
    steps.push(step);
    drawSteps();
    return steps.length;
  });

  clear(main,
    h('div.process-page',
      h('h1', 'Process list'),
      ownerLine(env),
      h('section.card', { 'aria-labelledby': 'steps-h' },
        h('h2', { id: 'steps-h' }, 'Steps'),
        h('p.muted.small', 'Each step gets the value from the one before it, from top to bottom.'),
        list.el,
        emptyNote,
        unsaved,
        saveAlert,
        h('div.toolbar', saveBtn, discardBtn, saveStatus)),
      addStep.el));

  addStep.refresh();
  drawSteps();

  // Leaving with unsaved changes asks first: the edits live only in this page.
  const beforeUnload = (e) => {
    if (!isDirty()) return;
    e.preventDefault();
    e.returnValue = '';
  };
  window.addEventListener('beforeunload', beforeUnload);
  return () => window.removeEventListener('beforeunload', beforeUnload);
}
