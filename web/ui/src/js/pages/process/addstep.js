// The "Add step" form: choose a process, fill in its arguments, and the step joins the list
// unsaved. Only the processes this kind of list may use are offered, grouped as in emoncms.

import { h, clear, field, toast } from '../../dom.js';
import { SCHEDULEID } from './stored.js';
import { argControls } from './args.js';

function processSelect(env) {
  const sel = h('select', { name: 'process', required: true });
  const groups = new Map();
  for (const [key, p] of Object.entries(env.catalog)) {
    if (!env.allowedHere(p)) continue;
    // Schedules are not part of this server: nothing could be chosen for them.
    if (p.args.some((a) => a.type === SCHEDULEID)) continue;
    const g = p.group || 'Other';
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(h('option', { value: key }, p.name));
  }
  for (const [g, options] of groups) sel.append(h('optgroup', { label: g }, options));
  return sel;
}

/**
 * `add(step)` appends the step to the edited list and returns the list's new length.
 * `refresh()` redraws the argument fields for the chosen process; `focus()` goes to the
 * process choice.
 */
export function addStepForm(env, add) {
  const procSelect = processSelect(env);
  const procHint = h('p.muted.proc-hint');
  const argBox = h('div.row.arg-fields');
  const extraBox = h('div.arg-extra');
  const addAlert = h('p.error', { role: 'alert' });
  const addBtn = h('button.primary', { type: 'submit' }, 'Add step');
  let controls = [];

  function refresh() {
    const def = env.catalog[procSelect.value];
    addAlert.textContent = '';
    if (!def) { clear(argBox); controls = []; return; }
    procHint.textContent = def.description || '';
    controls = argControls(def, env);
    clear(argBox, controls.map((c) => c.el), controls.length && controls.every((c) => !c.el)
      ? h('p.muted.no-arg', 'This step takes no argument.') : null);
    // The new-feed fields go on their own line below.
    clear(extraBox, controls.map((c) => c.extra));
  }

  /** The step's arguments, or null once the problem is shown. */
  async function readArgs() {
    for (const c of controls) {
      const problem = c.check();
      if (problem) {
        addAlert.textContent = problem;
        c.focus?.();
        return null;
      }
    }
    addBtn.disabled = true;
    const args = [];
    try {
      // Checked first, so a bad value never leaves a feed created for nothing.
      for (const c of controls) args.push(await c.value());
    } catch (err) {
      addAlert.textContent = err.message;
      return null;
    } finally {
      addBtn.disabled = false;
    }
    return args;
  }

  async function submit(e) {
    e.preventDefault();
    addAlert.textContent = '';
    const key = procSelect.value;
    if (!env.catalog[key]) { addAlert.textContent = 'Choose a process.'; return; }
    const args = await readArgs();
    if (!args) return;
    const count = add({ key, args, isNew: true });
    refresh();
    toast(`Step ${count} added: press Save to store the list`);
  }

  procSelect.addEventListener('change', refresh);

  const el = h('form.card.add-step', { noValidate: true, onsubmit: submit },
    h('h2', 'Add step'),
    h('div.row', field('Process', procSelect), argBox),
    procHint,
    extraBox,
    addAlert,
    h('div.toolbar', addBtn));

  return { el, refresh, focus: () => procSelect.focus() };
}
