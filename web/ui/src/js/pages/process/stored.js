// The list as the server keeps it and as the editor sends it back. emoncms stores a list as
// "1:5,2:0.1,process__x:7:8": older lists name processes by number, newer ones by key. Its
// `process/set` takes JSON instead, `[{"fn":"process__log_to_feed","args":["5"]}, ...]`, so
// the editor only ever works with steps `{key, args}` named by key.

// emoncms's ProcessArg types.
export const VALUE = 0;
export const INPUTID = 1;
export const FEEDID = 2;
export const NONE = 3;
export const TEXT = 4;
export const SCHEDULEID = 5;

/** Adds number → key for every process the catalog numbers (id_num) that `idMap` lacks. */
export function completeIdMap(idMap, catalog) {
  // Catalogs without a map still carry id_num.
  for (const [key, p] of Object.entries(catalog)) {
    if (p.id_num !== undefined && p.id_num !== null && !idMap[p.id_num]) idMap[p.id_num] = key;
  }
  return idMap;
}

/** "1:5,2:0.1,process__x:7:8" → [{key, args}], numeric keys mapped to module__fn keys. */
export function parseStored(text, idMap, catalog) {
  if (typeof text !== 'string' || text.trim() === '') return [];
  return text.split(',').filter((s) => s.trim() !== '').map((step) => {
    const parts = step.split(':');
    let key = parts[0].trim();
    if (/^\d+$/.test(key) && idMap[key]) key = idMap[key];
    const args = parts.slice(1);
    const def = catalog[key];
    // Older lists store NONE steps as "24:" or "24"; the API wants one arg per declared arg.
    if (def) {
      def.args.forEach((a, i) => {
        if (args[i] === undefined) args.push(a.type === NONE ? '0' : (a.default ?? ''));
      });
    }
    return { key, args };
  });
}

/** A copy to edit, so the stored list stays as it was for "Discard changes". */
export const copySteps = (steps) => steps.map((s) => ({ ...s, args: [...s.args] }));

const asStored = (steps) => JSON.stringify(steps.map(({ key, args }) => ({ key, args })));

/** Whether two lists would store the same; the "new" marks on added steps do not count. */
export const sameSteps = (a, b) => asStored(a) === asStored(b);

/** The `processlist` parameter of `process/set`. */
export const encodeForSet = (steps) => JSON.stringify(steps.map(({ key, args }) => ({ fn: key, args: args.map(String) })));
