// Works out whose list is edited (`?input=ID` or `?feed=ID`) and loads what the editor needs.
// When there is nothing to edit here the answer is the page to show instead, `{page}`;
// otherwise it is `{env, stored}`, `stored` being the list as the server keeps it and `env`
// what every part of the editor reads:
//   isFeed, ownerId, owner        whose list it is (a virtual feed or an input)
//   getPath, setPath, ownerQuery  how to read and store that list
//   catalog, idMap                the processes by key, and their old numbers
//   inputs, inputsById, feeds     the user's inputs, and feeds (see feedStore)
//   allowedHere(process)          whether this kind of list may use the process

import { h } from '../../dom.js';
import { get } from '../../api.js';
import { ENGINE_VIRTUAL } from '../../feedmeta.js';
import { completeIdMap } from './stored.js';
import { feedLabel, feedStore, indexById } from './lookup.js';

const notice = (...children) => ({ page: [h('h1', 'Process list'), ...children] });
const asObject = (x) => (x && typeof x === 'object' ? x : {});
const asArray = (x) => (Array.isArray(x) ? x : []);

export async function loadEditor(params) {
  const inputId = params.get('input');
  const feedId = params.get('feed');
  const isFeed = !inputId && !!feedId;
  const ownerId = isFeed ? feedId : inputId;

  if (!ownerId || !/^\d+$/.test(ownerId)) {
    return notice(h('p', 'Choose an input to edit its process list: ',
      h('a', { href: '/app/inputs' }, 'go to inputs'), '.'));
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
      // A feed's list is read once the feed is known to be virtual: emoncms refuses the
      // others ("Feed is not Virtual").
      isFeed ? Promise.resolve(null) : get(getPath, ownerQuery),
    ]);
  } catch (e) {
    return notice(h('p.error', { role: 'alert' }, `Could not load: ${e.message}`));
  }
  catalog = asObject(catalog);
  idMap = completeIdMap(asObject(idMap), catalog);
  inputs = asArray(inputs);
  feeds = asArray(feeds);

  const owner = isFeed
    ? feeds.find((f) => String(f.id) === ownerId)
    : inputs.find((i) => String(i.id) === ownerId);
  if (!owner || stored === false) {
    return notice(
      h('p.error', { role: 'alert' }, isFeed ? `There is no feed ${ownerId} of yours.` : `There is no input ${ownerId} of yours.`),
      h('p', h('a', { href: isFeed ? '/app/feeds' : '/app/inputs' }, isFeed ? 'Back to feeds' : 'Back to inputs')));
  }
  if (isFeed && Number(owner.engine) !== ENGINE_VIRTUAL) {
    return notice(
      h('p', `The feed ${feedLabel(owner)} stores data; only virtual feeds have a process list. Process lists that write to it belong to inputs.`),
      h('p', h('a', { href: '/app/inputs' }, 'Go to inputs')));
  }
  if (isFeed) {
    try {
      stored = await get(getPath, ownerQuery);
    } catch (e) {
      return notice(h('p.error', { role: 'alert' }, `Could not load: ${e.message}`));
    }
  }

  const env = {
    isFeed,
    ownerId,
    owner,
    getPath,
    setPath,
    ownerQuery,
    catalog,
    idMap,
    inputs,
    inputsById: indexById(inputs),
    feeds: feedStore(feeds),
    allowedHere: (p) => (isFeed ? p.virtual_feed_context : p.input_context) && !p.deleted,
  };
  return { env, stored };
}
