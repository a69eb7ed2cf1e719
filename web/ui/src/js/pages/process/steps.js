// The steps as a numbered list, each with Up, Down and Remove. Moving and removing change the
// edited list in place; `changed` then redraws the whole editor, this list included, because
// the unsaved-changes state depends on the list too.

import { h, clear } from '../../dom.js';
import { VALUE, INPUTID, FEEDID, NONE, TEXT, SCHEDULEID } from './stored.js';
import { feedLabel, inputLabel } from './lookup.js';

/** How an argument reads in the list: {text, title} or {text, missing}; null to leave it out. */
function describeArg(spec, value, env) {
  const v = value === undefined ? '' : String(value);
  switch (spec?.type) {
    case NONE:
      return null;
    case VALUE:
      return { text: v === '' ? '(no value)' : v, title: 'Value' };
    case TEXT:
      return { text: `“${v}”`, title: 'Text' };
    case INPUTID: {
      const i = env.inputsById.get(v);
      return i ? { text: inputLabel(i), title: `Input ${v}` } : { text: `input ${v} (missing)`, missing: true };
    }
    case FEEDID: {
      const f = env.feeds.byId.get(v);
      return f ? { text: feedLabel(f), title: `Feed ${v}` } : { text: `feed ${v} (missing)`, missing: true };
    }
    case SCHEDULEID:
      return { text: `schedule ${v}`, title: 'Schedule' };
    default:
      return { text: v, title: 'Argument' };
  }
}

/** Why the step cannot be saved as it is, or null. */
function problemOf(def, env) {
  if (!def) return 'This process is not known to the server; saving will fail until the step is removed.';
  if (!env.allowedHere(def)) return `This process cannot be used in ${env.isFeed ? 'a virtual feed' : 'an input'} list.`;
  return null;
}

// Each button is named with the step's number and process, since screen readers may reach it
// without the row around it.
const actionButton = (act, label, text, disabled, onclick) => h('button.small', {
  type: 'button', 'aria-label': label, title: label, disabled, dataset: { act }, onclick,
}, text);

function stepItem(step, i, count, env, { move, remove }) {
  const def = env.catalog[step.key];
  // Put in front of a list that looped (not offered in the catalog, so named here).
  const stopped = step.key === 'process__error_found'
    ? 'Error found: this list looped and was stopped; remove this step to run it again'
    : null;
  const name = def ? def.name : (stopped || `Unknown process ${step.key}`);
  const n = i + 1;
  const specs = def ? def.args : [];
  const argParts = [];
  step.args.forEach((a, k) => {
    const d = describeArg(specs[k], a, env);
    if (!d) return;
    argParts.push(h(d.missing ? 'span.arg.missing' : 'span.arg', { title: d.title || null }, d.text));
  });
  const problem = problemOf(def, env);
  return h('li', { dataset: { index: i, key: step.key }, class: step.isNew ? 'pending' : null },
    h('span.n', `${n}.`),
    h('span.what',
      h('strong.pname', name),
      argParts.length ? [' ', argParts] : null,
      step.isNew ? [' ', h('span.badge.new', 'new')] : null,
      def?.description ? h('small.muted.pdesc', def.description) : null,
      problem ? h('small.error.pdesc', problem) : null),
    h('span.step-actions',
      actionButton('up', `Move step ${n} (${name}) up`, '↑ Up', i === 0, () => move(i, -1)),
      actionButton('down', `Move step ${n} (${name}) down`, '↓ Down', i === count - 1, () => move(i, 1)),
      actionButton('remove', `Remove step ${n} (${name})`, 'Remove', false, () => remove(i))));
}

/**
 * The `<ol id="steps">`; `draw(steps)` shows a list, whose later moves and removals call
 * `changed()`. `focusOutside()` takes the focus when the last step is removed.
 */
export function stepList(env, { changed, focusOutside }) {
  const el = h('ol.steps', { id: 'steps', 'aria-label': 'Steps' });
  let steps = [];

  // Redrawing replaces every button, so the focus is put back where the keyboard user was:
  // on the same action of the step that moved, or the nearest one still usable.
  function focusStep(index, act) {
    const li = el.children[index];
    if (!li) { focusOutside(); return; }
    const b = li.querySelector(`button[data-act="${act}"]`);
    if (b && !b.disabled) b.focus();
    else li.querySelector('button:not([disabled])')?.focus();
  }

  function move(i, delta) {
    const j = i + delta;
    if (j < 0 || j >= steps.length) return;
    [steps[i], steps[j]] = [steps[j], steps[i]];
    changed();
    focusStep(j, delta < 0 ? 'up' : 'down');
  }

  function remove(i) {
    steps.splice(i, 1);
    changed();
    focusStep(Math.min(i, steps.length - 1), 'remove');
  }

  function draw(list) {
    steps = list;
    clear(el, steps.map((step, i) => stepItem(step, i, steps.length, env, { move, remove })));
  }

  return { el, draw };
}
