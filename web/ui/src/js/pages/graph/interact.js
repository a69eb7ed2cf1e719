// Zooming and panning: the buttons, mouse wheel, shift-drag, touch and keys. A gesture in
// progress only moves the axis over the data already drawn (preview); when it ends, the
// range is committed and fetched again at the resolution it now needs.

import { DAY, clamp, writeUrl } from './state.js';
import { baseStep, lastDataTime, firstDataTime } from './resolution.js';

const WHEEL_WAIT = 100; // ms of quiet after the last wheel step before fetching
const MAX_SPAN = 100 * 365 * DAY;
// The browser test measures from this mark to the draw that follows (see graph.js).
export const MARK_START = 'ynni:graph:redraw-start';

/**
 * The range actions on the page's shared `view` (see graph.js); `refresh` fetches and draws
 * the current state.
 */
export function navigation(view, refresh) {
  const { state } = view;
  let wheelTimer = 0;

  /** Sets the range (and the axis, with the data already there) without fetching. */
  function preview(a, b) {
    if (!(b > a) || !Number.isFinite(a) || !Number.isFinite(b)) return false;
    const minSpan = Math.max(60, 10 * baseStep(view.selected()));
    let span = clamp(b - a, minSpan, MAX_SPAN);
    const centre = (a + b) / 2;
    a = centre - span / 2;
    span = Math.round(span);
    state.start = Math.round(a);
    state.end = state.start + span;
    writeUrl(state);
    if (view.u) view.u.setScale('x', { min: state.start, max: state.end });
    return true;
  }

  /** A zoom, pan or preset the user asked for: mark it and fetch at the new resolution. */
  function commit() {
    clearTimeout(wheelTimer);
    performance.mark(MARK_START);
    view.pendingMeasure = true;
    refresh();
  }

  /** Commits once the wheel has rested, so one turn of it costs one fetch. */
  function commitSoon() {
    clearTimeout(wheelTimer);
    wheelTimer = setTimeout(commit, WHEEL_WAIT);
  }

  function setRange(a, b) {
    if (preview(a, b)) commit();
  }

  function zoom(factor, anchor = (state.start + state.end) / 2) {
    setRange(anchor - (anchor - state.start) * factor, anchor + (state.end - anchor) * factor);
  }

  function pan(fraction) {
    const d = (state.end - state.start) * fraction;
    setRange(state.start + d, state.end + d);
  }

  /** The last `span` seconds of data, or with span 0 all of it. */
  function preset(span) {
    const list = view.selected();
    const end = lastDataTime(list);
    if (span) {
      setRange(end - span, end);
      return;
    }
    const first = firstDataTime(list);
    if (first > 0 && first < end) setRange(first, end);
    else setRange(end - DAY, end);
  }

  return {
    preview, commit, commitSoon, setRange, zoom, pan, preset,
    stop: () => clearTimeout(wheelTimer),
  };
}

/**
 * Mouse wheel, shift-drag, touch and keys on the chart. Plain drags and double-clicks are
 * uPlot's own (see chart.js). Returns what ends a drag in progress, for leaving the page.
 */
export function bindGestures(view, nav) {
  const { state, chartEl } = view;
  let endDrag = null;
  let touch = null;

  // Mouse wheel: zoom around the pointer at once, fetch when the wheel rests.
  function onWheel(e) {
    const { u } = view;
    if (!u || !e.target.closest('.u-over')) return;
    e.preventDefault();
    const r = u.over.getBoundingClientRect();
    const span = state.end - state.start;
    let dx = e.deltaX;
    let dy = e.deltaY;
    // deltaMode 1 is lines and 2 pages; make them pixels like the usual 0.
    const scale = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? r.height : 1;
    dx *= scale; dy *= scale;
    if (Math.abs(dx) > Math.abs(dy)) {
      const d = (dx / Math.max(1, r.width)) * span;
      nav.preview(state.start + d, state.end + d);
    } else {
      const anchor = state.start + clamp((e.clientX - r.left) / Math.max(1, r.width), 0, 1) * span;
      const factor = clamp(Math.exp(dy * 0.0015), 0.25, 4);
      nav.preview(anchor - (anchor - state.start) * factor, anchor + (state.end - anchor) * factor);
    }
    nav.commitSoon();
  }

  // Shift-drag pans; plain drags stay uPlot's selection (zoom). Listening in the capture
  // phase lets a shift-drag stop before uPlot starts a selection.
  function onMouseDown(e) {
    const { u } = view;
    if (!u || e.button !== 0 || !e.shiftKey || !e.target.closest('.u-over')) return;
    e.stopPropagation();
    e.preventDefault();
    const x0 = e.clientX;
    const s0 = state.start;
    const e0 = state.end;
    const w = Math.max(1, u.over.getBoundingClientRect().width);
    let moved = false;
    const move = (ev) => {
      const d = ((ev.clientX - x0) / w) * (e0 - s0);
      if (Math.abs(ev.clientX - x0) > 2) moved = true;
      nav.preview(s0 - d, e0 - d);
    };
    const up = () => {
      endDrag();
      if (moved) nav.commit();
    };
    // On window, so a drag that leaves the chart still ends.
    endDrag = () => {
      window.removeEventListener('mousemove', move);
      window.removeEventListener('mouseup', up);
      endDrag = null;
    };
    window.addEventListener('mousemove', move);
    window.addEventListener('mouseup', up);
  }

  // Touch: one finger pans, two pinch-zoom (vertical page scrolling is left to the browser).
  function touchStart(e) {
    const { u } = view;
    if (!u || !e.target.closest('.u-over')) return;
    const r = u.over.getBoundingClientRect();
    const t = e.touches;
    const base = { s0: state.start, e0: state.end, left: r.left, w: Math.max(1, r.width), moved: touch ? touch.moved : false };
    if (t.length === 1) touch = { ...base, mode: 'pan', x0: t[0].clientX };
    else if (t.length === 2) {
      const mid = (t[0].clientX + t[1].clientX) / 2;
      touch = {
        ...base,
        mode: 'pinch',
        d0: Math.max(10, Math.abs(t[0].clientX - t[1].clientX)),
        anchor: state.start + clamp((mid - r.left) / base.w, 0, 1) * (state.end - state.start),
      };
    }
  }

  function touchMove(e) {
    if (!touch) return;
    const t = e.touches;
    if (touch.mode === 'pan' && t.length === 1) {
      const dx = t[0].clientX - touch.x0;
      // A few pixels of wobble is a tap or a page scroll, not a pan.
      if (Math.abs(dx) < 4 && !touch.moved) return;
      touch.moved = true;
      if (e.cancelable) e.preventDefault();
      const d = (dx / touch.w) * (touch.e0 - touch.s0);
      nav.preview(touch.s0 - d, touch.e0 - d);
    } else if (touch.mode === 'pinch' && t.length === 2) {
      touch.moved = true;
      if (e.cancelable) e.preventDefault();
      const factor = touch.d0 / Math.max(10, Math.abs(t[0].clientX - t[1].clientX));
      const { anchor, s0, e0 } = touch;
      nav.preview(anchor - (anchor - s0) * factor, anchor + (e0 - anchor) * factor);
    }
  }

  function touchEnd(e) {
    if (!touch) return;
    if (e.touches.length === 0) {
      const { moved } = touch;
      touch = null;
      if (moved) nav.commit();
    } else if (e.touches.length === 1) {
      // From pinch to one finger: carry on as a pan from here.
      touch = { s0: state.start, e0: state.end, left: touch.left, w: touch.w, moved: touch.moved, mode: 'pan', x0: e.touches[0].clientX };
    }
  }

  function onKey(e) {
    if (e.target !== chartEl || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === 'ArrowLeft') nav.pan(-0.25);
    else if (e.key === 'ArrowRight') nav.pan(0.25);
    else if (e.key === '+' || e.key === '=') nav.zoom(0.5);
    else if (e.key === '-' || e.key === '_') nav.zoom(2);
    else return;
    e.preventDefault();
  }

  // Not passive where the gesture must stop the page from scrolling or zooming itself.
  chartEl.addEventListener('wheel', onWheel, { passive: false });
  chartEl.addEventListener('mousedown', onMouseDown, true);
  chartEl.addEventListener('touchstart', touchStart, { passive: true });
  chartEl.addEventListener('touchmove', touchMove, { passive: false });
  chartEl.addEventListener('touchend', touchEnd);
  chartEl.addEventListener('touchcancel', touchEnd);
  chartEl.addEventListener('keydown', onKey);

  return () => { if (endDrag) endDrag(); };
}
