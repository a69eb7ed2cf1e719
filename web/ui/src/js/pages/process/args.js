// The fields that ask for a new step's arguments, one control per argument the process
// declares. A control is {el, extra?, check, value, focus}: `check()` returns a problem to show
// or null, and `value()` resolves to the argument as stored. The form checks every control
// before asking any for its value, because the feed picker's value() may create a feed.

import { h, field } from '../../dom.js';
import { VALUE, INPUTID, FEEDID, TEXT, SCHEDULEID } from './stored.js';
import { inputLabel, byLabel } from './lookup.js';
import { feedControl } from './feedarg.js';

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
      // The stored form "key:arg,key:arg" has no escaping.
      if (/[,:]/.test(v)) return `${label}: commas and colons cannot be stored in a process list.`;
      return null;
    },
    value: async () => box.value.trim(),
    focus: () => box.focus(),
  };
}

function inputControl(env) {
  const sel = h('select', { name: 'input', required: true },
    [...env.inputs]
      .sort(byLabel(inputLabel))
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

// An argument with nothing to ask (NONE) still has to be sent: the API wants one per declared
// argument.
const nothingToAsk = () => ({ el: null, check: () => null, value: async () => '0' });

/** The controls for the arguments of process `def`, in order. */
export function argControls(def, env) {
  return def.args.map((spec) => {
    switch (spec.type) {
      case VALUE: return valueControl(spec, def.function === 'power_to_kwh_custom' ? 'Minutes' : 'Value');
      case TEXT: return textControl(spec, /mqtt/i.test(def.function) ? 'Topic' : 'Text');
      case INPUTID: return inputControl(env);
      case FEEDID: return feedControl(spec, def, env);
      case SCHEDULEID: return scheduleControl();
      default: return nothingToAsk();
    }
  });
}
