// How the editor names inputs and feeds, and the user's feeds as they stand: adding a step can
// create a feed, which later pickers and the step list must then know.

export const feedLabel = (f) => (f.tag ? `${f.tag}:${f.name}` : String(f.name));
export const inputLabel = (i) => `${i.nodeid}:${i.name}`;

/** Compares by label with numbers read as numbers, so "power2" comes before "power10". */
export const byLabel = (label) => (a, b) => label(a).localeCompare(label(b), undefined, { numeric: true });

export const indexById = (list) => new Map(list.map((x) => [String(x.id), x]));

/** The feeds `list` and `byId`; `replace` swaps in a newer list. */
export function feedStore(list) {
  const store = {
    list,
    byId: indexById(list),
    replace(next) {
      store.list = next;
      store.byId = indexById(next);
    },
  };
  return store;
}
