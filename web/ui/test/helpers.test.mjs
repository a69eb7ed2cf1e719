// Unit tests of the UI's pure helpers (node --test web/ui/test); the pages themselves are
// tested in chromium by tests/e2e/browser.rs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ago, ageClass, fmtValue, fmtBytes } from '../src/js/dom.js';
import { fmtInterval, isCumulative } from '../src/js/feedmeta.js';
import { safeNext } from '../src/js/pages/login.js';

const ORIGIN = 'http://pi.local:8080';
const next = (n) => safeNext(new URLSearchParams({ next: n }), ORIGIN);

test('after login only views of this site are followed', () => {
  assert.equal(next('/app/graph?feeds=1,2&start=5'), '/app/graph?feeds=1,2&start=5');
  assert.equal(next('/app/process?input=3'), '/app/process?input=3');
  for (const bad of ['/app/../feed/delete.json?id=1', '/app/%2e%2e/user/newapikeywrite.json',
    'https://evil.example/app/inputs', '//evil.example/app/inputs', 'javascript:alert(1)',
    '/feed/set.json?id=1', '']) {
    assert.equal(next(bad), '/app/inputs', bad);
  }
});

test('ages and their freshness', () => {
  assert.equal(ago(1000, 1012), '12 s ago');
  assert.equal(ago(1000, 1000 + 300), '5 min ago');
  assert.equal(ago(1000, 1000 + 7200), '2 h ago');
  assert.equal(ago(1000, 1000 + 3 * 86400), '3 d ago');
  assert.equal(ago(0, 5), 'never');
  assert.equal(ageClass(1000, 1010), 'age-live');
  assert.equal(ageClass(1000, 1100), 'age-stale');
  assert.equal(ageClass(1000, 9000), 'age-dead');
});

test('values, sizes and intervals read naturally', () => {
  assert.equal(fmtValue(null), '—');
  assert.equal(fmtValue(12.5), '12.5');
  assert.equal(fmtValue(3), '3');
  assert.equal(fmtValue(0), '0');
  assert.equal(fmtValue(1234.56), '1235');
  assert.equal(fmtBytes(512), '512 B');
  assert.equal(fmtBytes(12.6 * 1024 * 1024), '12.6 MiB');
  assert.equal(fmtInterval(10), '10 s');
  assert.equal(fmtInterval(300), '5 min');
  assert.equal(fmtInterval(5400), '1.5 h');
  assert.equal(fmtInterval(86400), '1 d');
  assert.equal(fmtInterval(0), '');
  assert.ok(isCumulative('kWh') && isCumulative(' wh') && !isCumulative('W'));
});
