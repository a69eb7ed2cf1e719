// A dashboard's stored content, emoncms's format: a flat run of absolutely placed boxes,
//   <div id="3" class="dial" style="position:absolute; margin: 0; top:40px; left:20px;
//        width:160px; height:160px;" feedid="12" max="3000">inner</div>
// one per widget, whose class names the widget and whose other attributes are its options.
// Content is only ever read as data: parsed inert (DOMParser runs nothing and loads nothing),
// each box turned into a plain model, and text widgets' inner HTML rebuilt from a short list
// of harmless elements. Nothing stored is put into the page as markup.

/** Elements a text widget may keep; anything else keeps only its text. */
const KEEP = new Set(['B', 'STRONG', 'I', 'EM', 'U', 'BR', 'P', 'SPAN', 'SMALL', 'BIG', 'SUB', 'SUP',
  'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'UL', 'OL', 'LI', 'A', 'DIV', 'CENTER', 'HR']);
/** Elements whose text is not meant to be seen. */
const DROP = new Set(['SCRIPT', 'STYLE', 'TEMPLATE', 'NOSCRIPT', 'TITLE']);
/** Widgets whose inner HTML is their text. */
export const TEXT_WIDGETS = new Set(['paragraph', 'heading', 'heading-center']);

/** `top:Ypx; left: 10%` … → {top: '40px', left: '10%', …}; only the four sizes, numbers with px or %. */
export function boxOf(style) {
  const box = { top: '0px', left: '0px', width: '100px', height: '40px' };
  for (const part of String(style || '').split(';')) {
    const [k, v] = part.split(':').map((s) => (s || '').trim().toLowerCase());
    if (k in box && /^-?\d+(\.\d+)?(px|%)?$/.test(v || '')) box[k] = /(px|%)$/.test(v) ? v : `${v}px`;
  }
  return box;
}

/** Attribute text escaped for a double-quoted value. */
export function escapeAttr(s) {
  return String(s).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Text escaped for element content, new lines as <br>. */
export function escapeText(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\n/g, '<br>');
}

/** An attribute name worth keeping: emoncms's options are plain words. */
const NAME = /^[a-z][a-z0-9_-]{0,40}$/i;

/** One widget's model as content text. */
export function widgetHtml(w) {
  const style = `position:absolute; margin: 0; top:${w.box.top}; left:${w.box.left}; width:${w.box.width}; height:${w.box.height};`;
  const attrs = Object.entries(w.attrs)
    .filter(([k]) => NAME.test(k) && !['id', 'class', 'style'].includes(k.toLowerCase()) && !/^on/i.test(k))
    .map(([k, v]) => ` ${k}="${escapeAttr(v)}"`).join('');
  return `<div id="${Number(w.id) || 0}" class="${escapeAttr(w.type)}" style="${style}"${attrs}>${w.inner || ''}</div>`;
}

/** Widgets' models as content text. */
export function serialize(widgets) {
  return widgets.map(widgetHtml).join('');
}

/** Pixels of a size ('40px' → 40; a percentage of `whole`). */
export function px(size, whole) {
  const n = parseFloat(size) || 0;
  return String(size).endsWith('%') ? (n * whole) / 100 : n;
}

/** The page height the content needs: the lowest box bottom. */
export function contentHeight(widgets, width) {
  return Math.ceil(Math.max(0, ...widgets.map((w) => px(w.box.top, 0) + px(w.box.height, width))));
}

/** A value snapped to the grid. */
export function snap(v, grid) {
  const g = Math.max(1, Number(grid) || 1);
  return Math.max(0, Math.round(v / g) * g);
}

/** The next free widget id (emoncms's: the largest plus one). */
export function nextId(widgets) {
  return Math.max(0, ...widgets.map((w) => Number(w.id) || 0)) + 1;
}

/**
 * A text widget's inner nodes rebuilt in `doc` from harmless elements only (an `a` keeps an
 * http(s) or relative href). Returns a fragment.
 */
export function sanitize(source, doc) {
  const out = doc.createDocumentFragment();
  for (const node of source.childNodes) {
    if (node.nodeType === 3) {
      out.append(doc.createTextNode(node.textContent));
    } else if (node.nodeType === 1 && !DROP.has(node.tagName)) {
      if (KEEP.has(node.tagName)) {
        const el = doc.createElement(node.tagName.toLowerCase());
        if (node.tagName === 'A') {
          const href = node.getAttribute('href') || '';
          if (/^(https?:\/\/|\/(?!\/)|#)/i.test(href)) {
            el.setAttribute('href', href);
            el.setAttribute('rel', 'noopener noreferrer');
            el.setAttribute('target', '_blank');
          }
        }
        el.append(sanitize(node, doc));
        out.append(el);
      } else {
        out.append(sanitize(node, doc));
      }
    }
  }
  return out;
}

/** The inner HTML of `source`'s sanitized children (for saving what was loaded). */
function sanitizedInner(source, doc) {
  const holder = doc.createElement('div');
  holder.append(sanitize(source, doc));
  return holder.innerHTML;
}

/**
 * Content text → widget models [{id, type, box, attrs, inner}]. `inner` is kept for text
 * widgets only, already sanitized. Boxes without a class are skipped.
 */
export function parse(content) {
  // A parsed document takes the page's policy, which refuses style attributes even there: the
  // boxes' styles are read under another name.
  const renamed = String(content || '').replace(/<[^>]*>/g, (tag) => tag.replace(/(\s)style(\s*=)/gi, '$1data-box$2'));
  const doc = new DOMParser().parseFromString(`<!doctype html><body>${renamed}`, 'text/html');
  const widgets = [];
  for (const el of doc.body.children) {
    const type = (el.getAttribute('class') || '').trim().split(/\s+/)[0];
    if (!type) continue;
    const attrs = {};
    for (const a of el.attributes) {
      if (!['id', 'class', 'style', 'data-box'].includes(a.name) && NAME.test(a.name) && !/^on/i.test(a.name)) attrs[a.name] = a.value;
    }
    widgets.push({
      id: Number(el.getAttribute('id')) || 0,
      type,
      box: boxOf(el.getAttribute('data-box')),
      attrs,
      inner: TEXT_WIDGETS.has(type) ? sanitizedInner(el, doc) : '',
    });
  }
  // Boxes without ids get fresh ones.
  for (const w of widgets) if (!w.id) w.id = nextId(widgets);
  return widgets;
}
