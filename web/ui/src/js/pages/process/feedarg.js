// The feed argument: one of the user's feeds, or, in an input's list, a new feed made when the
// step is added. It is made then rather than on Save because the stored list names feeds by id.

import { h, field, toast } from '../../dom.js';
import { get, post } from '../../api.js';
import {
  ENGINE_VIRTUAL, ENGINE_NAMES, CREATABLE_ENGINES, FIXED_INTERVAL_ENGINES,
  INTERVALS, DEFAULT_INTERVAL, fmtInterval,
} from '../../feedmeta.js';
import { feedLabel, byLabel } from './lookup.js';

/** The feeds the step may use and the engines a new one may have (the process may limit both). */
function feedChoices(spec, env) {
  const engines = Array.isArray(spec.engines) ? spec.engines.map(Number) : null;
  const fits = (e) => !engines || engines.includes(e);
  const usable = env.feeds.list.filter((f) => {
    const e = Number(f.engine);
    if (env.isFeed && String(f.id) === env.ownerId) return false;
    // The server refuses virtual feeds in input lists: they are computed, never stored.
    if (!env.isFeed && e === ENGINE_VIRTUAL) return false;
    return fits(e);
  }).sort(byLabel(feedLabel));
  const creatable = env.isFeed ? [] : CREATABLE_ENGINES.filter(fits);
  return { usable, creatable };
}

/** A feed name not yet used under `tag`: "power1", then "power1_2", ... */
function freeName(feeds, tag, base) {
  const taken = new Set(feeds.filter((f) => String(f.tag) === tag).map((f) => String(f.name)));
  if (!taken.has(base)) return base;
  for (let k = 2; ; k++) if (!taken.has(`${base}_${k}`)) return `${base}_${k}`;
}

// Logging stores the input itself, so its feed takes the input's name; a feed of a derived
// value (kWh/d, on-time...) gets the process as a suffix so the two never clash.
function defaultFeedName(def, ownerName) {
  if (/^log_to_feed/.test(def.function)) return ownerName;
  const suffix = String(def.short || def.function).toLowerCase().replace(/[^a-z0-9_]/g, '') || def.function;
  return `${ownerName}_${suffix}`;
}

/** The "New feed" fieldset: name, tag, engine and (for fixed-interval engines) interval. */
function newFeedFields(spec, def, creatable, env) {
  const ownerNode = env.isFeed ? '' : String(env.owner.nodeid);
  const ownerName = String(env.owner.name);
  const suggest = (tag) => freeName(env.feeds.list, tag, defaultFeedName(def, ownerName));

  const tag = h('input', { type: 'text', name: 'tag', value: ownerNode, autocomplete: 'off' });
  const name = h('input', {
    type: 'text', name: 'feedname', required: true, autocomplete: 'off', value: suggest(ownerNode),
  });
  // The suggested name follows the tag until the user types a name of their own.
  let nameTouched = false;
  name.addEventListener('input', () => { nameTouched = true; });
  tag.addEventListener('input', () => {
    if (!nameTouched) name.value = suggest(tag.value.trim());
  });

  const engine = h('select', { name: 'engine' },
    creatable.map((e) => h('option', { value: String(e) }, ENGINE_NAMES[e] || `Engine ${e}`)));
  const interval = h('select', { name: 'interval' },
    INTERVALS.map((s) => h('option', { value: String(s) }, fmtInterval(s))));
  interval.value = String(DEFAULT_INTERVAL);
  const intervalField = field('Interval', interval, 'Seconds between stored values.');
  const showInterval = () => { intervalField.hidden = !FIXED_INTERVAL_ENGINES.has(Number(engine.value)); };
  engine.addEventListener('change', showInterval);
  showInterval();

  const unit = spec.unit || def.unit || '';
  const box = h('fieldset.new-feed',
    h('legend', 'New feed'),
    h('div.row', field('Feed name', name), field('Tag', tag), field('Engine', engine), intervalField),
    unit ? h('small.muted', `Unit: ${unit}`) : null);

  // Read when asked, not once: the fields stay editable while the feed is being made.
  return {
    box,
    nameBox: name,
    tag: () => tag.value.trim(),
    name: () => name.value.trim(),
    engine: () => Number(engine.value),
    interval: () => Number(interval.value),
    unit,
  };
}

/** Makes the feed described by `fields` and resolves to its id (a string). */
async function createFeed(fields, env) {
  const e = fields.engine();
  const res = await post('feed/create.json', null, {
    tag: fields.tag(),
    name: fields.name(),
    engine: e,
    options: FIXED_INTERVAL_ENGINES.has(e) ? { interval: fields.interval() } : {},
    unit: fields.unit,
  });
  const id = res && res.feedid;
  if (id === undefined || id === null) throw new Error('The server did not return the new feed id.');
  toast(`Feed ${fields.tag()}:${fields.name()} created`);

  // Later pickers and the step list must know the new feed. The server's list says best;
  // without it, what was just sent is enough to name it.
  const made = () => ({ id: String(id), name: fields.name(), tag: fields.tag(), engine: String(e) });
  let list = env.feeds.list;
  try {
    const fresh = await get('feed/list.json');
    if (Array.isArray(fresh)) list = fresh;
  } catch {
    list.push(made());
  }
  if (!list.some((f) => String(f.id) === String(id))) list.push(made());
  env.feeds.replace(list);
  return String(id);
}

/** The control (see args.js) for a FEEDID argument of process `def`. */
export function feedControl(spec, def, env) {
  const { usable, creatable } = feedChoices(spec, env);
  const sel = h('select', { name: 'feed', required: true },
    usable.map((f) => h('option', { value: String(f.id) }, feedLabel(f))),
    creatable.length ? h('option', { value: 'new' }, 'Create new feed…') : null);
  // Steps that write to a feed usually want a new one; steps that read one, an existing one.
  if (creatable.length && (def.nochange || !usable.length)) sel.value = 'new';

  const fields = newFeedFields(spec, def, creatable, env);
  const showNew = () => { fields.box.hidden = sel.value !== 'new'; };
  sel.addEventListener('change', showNew);
  showNew();

  const hint = !usable.length && !creatable.length ? 'No feed of a suitable engine exists.' : null;
  return {
    el: field('Feed', sel, hint),
    extra: fields.box,
    check: () => {
      if (!sel.value) return 'Choose a feed.';
      if (sel.value === 'new' && !fields.name()) return 'Feed name: enter a name for the new feed.';
      return null;
    },
    value: async () => (sel.value === 'new' ? createFeed(fields, env) : sel.value),
    focus: () => (sel.value === 'new' ? fields.nameBox : sel).focus(),
  };
}
