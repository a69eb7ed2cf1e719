// Unit tests of the dashboard content helpers (node --test web/ui/test); drawing and the
// editor are tested in chromium by tests/browser/dashboards.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boxOf, serialize, snap, contentHeight, nextId, px } from '../src/js/pages/dashboards/content.js';
import { shown, option } from '../src/js/pages/dashboards/widgets.js';

test('a box keeps only its four sizes, in px or %', () => {
  assert.deepEqual(boxOf('position:absolute; margin: 0; top:40px; left: 10%; width:160; height:80px;'),
    { top: '40px', left: '10%', width: '160px', height: '80px' });
  assert.deepEqual(boxOf('top: expression(alert(1)); left:url(x); width:1e9px'),
    { top: '0px', left: '0px', width: '100px', height: '40px' });
});

test('widgets serialize in emoncms\'s format with every value escaped', () => {
  const html = serialize([{
    id: 3, type: 'feedvalue', box: { top: '40px', left: '20px', width: '160px', height: '60px' },
    attrs: { feedid: '12', append: ' "W" <b>', onclick: 'alert(1)', 'bad name': 'x', style: 'x' }, inner: '',
  }]);
  assert.equal(html, '<div id="3" class="feedvalue" style="position:absolute; margin: 0; top:40px; left:20px; '
    + 'width:160px; height:60px;" feedid="12" append=" &quot;W&quot; &lt;b&gt;"></div>');
});

test('grid, heights and ids', () => {
  assert.equal(snap(29, 20), 20);
  assert.equal(snap(31, 20), 40);
  assert.equal(snap(-15, 20), 0);
  assert.equal(px('50%', 800), 400);
  const ws = [{ id: 2, box: { top: '20px', height: '100px' } }, { id: 7, box: { top: '200px', height: '10%' } }];
  assert.equal(contentHeight(ws, 1000), 300);
  assert.equal(nextId(ws), 8);
  assert.equal(nextId([]), 1);
});

test('values are scaled and fixed as the widget says', () => {
  assert.equal(shown(1234.567, 1, 1), '1234.6');
  assert.equal(shown(0.5, 1000, 0), '500');
  assert.equal(shown(null, 1, 1), '—');
  assert.equal(shown('abc', 1, 1), '—');
  assert.equal(option({ type: 'dial', attrs: {} }, 'max'), '1000');
  assert.equal(option({ type: 'dial', attrs: { max: '5000' } }, 'max'), '5000');
});
