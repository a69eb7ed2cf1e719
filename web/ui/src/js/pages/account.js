// Account: profile (username, email, time zone), password, apikeys and device keys.

import { h, clear, field, toast, confirmAction } from '../dom.js';
import { get, post } from '../api.js';

/** Copies text; the async clipboard needs HTTPS or localhost, so fall back to a selection. */
async function copy(text, source) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const range = document.createRange();
    range.selectNodeContents(source);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    document.execCommand('copy');
  }
  toast('Copied');
}

function keyRow(label, key, regenerate) {
  const value = h('code.key', key);
  return h('tr', h('th', { scope: 'row' }, label), h('td', value),
    h('td', h('div.toolbar',
      h('button.small', { type: 'button', 'aria-label': `Copy ${label}`, onclick: () => copy(value.textContent, value) }, 'Copy'),
      h('button.small.danger', {
        type: 'button', 'aria-label': `Regenerate ${label}`,
        onclick: async () => {
          if (!(await confirmAction(`Make a new ${label}? Devices and scripts using the old one stop working.`))) return;
          try { value.textContent = await regenerate(); toast(`New ${label} made`); } catch (e) { toast(e.message, 'error'); }
        },
      }, 'Regenerate'))));
}

async function profile(user) {
  const username = h('input', { value: user.username, autocomplete: 'username', required: true });
  const email = h('input', { type: 'email', value: user.email, autocomplete: 'email', required: true });
  const zones = await get('user/gettimezones.json');
  const tz = h('select', zones.map((z) => h('option', { value: z.id }, `${z.id} (${z.gmt_offset_text})`)));
  if (user.timezone && !zones.some((z) => z.id === user.timezone)) {
    tz.prepend(h('option', { value: user.timezone }, user.timezone));
  }
  tz.value = user.timezone || 'UTC';
  const message = h('p.error', { role: 'alert' });
  return h('form.card', {
    onsubmit: async (e) => {
      e.preventDefault();
      message.textContent = '';
      try {
        if (username.value !== user.username) {
          await get('user/changeusername.json', { username: username.value });
          user.username = username.value;
        }
        if (email.value !== user.email) {
          await get('user/changeemail.json', { email: email.value });
          user.email = email.value;
        }
        if (tz.value !== user.timezone) {
          // user/set replaces the whole profile (as in emoncms): send every field back.
          const keep = ['gravatar', 'name', 'location', 'language', 'bio', 'tags', 'startingpage'];
          const data = Object.fromEntries(keep.map((k) => [k, user[k] ?? '']));
          await post('user/set.json', { data: { ...data, timezone: tz.value } });
          user.timezone = tz.value;
        }
        toast('Account saved');
      } catch (err) {
        message.textContent = err.message;
      }
    },
  }, h('h2', 'Profile'), field('Username', username), field('Email', email),
  field('Time zone', tz, 'Daily, weekly and monthly totals start at midnight here.'),
  message, h('button.primary', { type: 'submit' }, 'Save profile'));
}

function password(user) {
  // The hidden username lets password managers file the new password under the right login.
  const login = h('input', { type: 'text', autocomplete: 'username', value: user.username, hidden: true, readonly: true, tabindex: -1, 'aria-hidden': 'true' });
  const old = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 4 });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true });
  const message = h('p.error', { role: 'alert' });
  return h('form.card', {
    onsubmit: async (e) => {
      e.preventDefault();
      message.textContent = '';
      if (next.value !== again.value) {
        message.textContent = 'The new passwords differ';
        return;
      }
      try {
        await post('user/changepassword.json', { old: old.value, new: next.value });
        old.value = next.value = again.value = '';
        toast('Password changed');
      } catch (err) {
        message.textContent = err.message;
      }
    },
  }, h('h2', 'Password'), login, field('Current password', old), field('New password', next),
  field('New password again', again), message, h('button.primary', { type: 'submit' }, 'Change password'));
}

function devices() {
  const body = h('tbody');
  const nodeid = h('input', { required: true, maxlength: 64, placeholder: 'emontx' });
  const name = h('input', { maxlength: 64 });
  const message = h('p.error', { role: 'alert' });
  const reload = async () => {
    const list = await get('device/list.json');
    clear(body, list.length ? list.map((d) => {
      const key = h('code.key', d.devicekey || '—');
      return h('tr', h('td', d.nodeid), h('td', d.name), h('td', key), h('td', h('div.toolbar',
        h('button.small', {
          type: 'button', 'aria-label': `New key for ${d.nodeid}`,
          onclick: async () => {
            try { key.textContent = await get('device/newdevicekey.json', { id: d.id }); toast('New device key'); } catch (e) { toast(e.message, 'error'); }
          },
        }, 'New key'),
        d.devicekey ? h('button.small', { type: 'button', 'aria-label': `Copy key of ${d.nodeid}`, onclick: () => copy(key.textContent, key) }, 'Copy') : null,
        h('button.small.danger', {
          type: 'button', 'aria-label': `Delete device ${d.nodeid}`,
          onclick: async () => {
            if (!(await confirmAction(`Delete device "${d.nodeid}"? Its key stops working.`))) return;
            try { await get('device/delete.json', { id: d.id }); await reload(); } catch (e) { toast(e.message, 'error'); }
          },
        }, 'Delete'))));
    }) : h('tr', h('td', { colspan: 4 }, h('span.muted', 'No devices. A device key may post only its own node.'))));
  };
  const section = h('section.card', h('h2', 'Device keys'),
    h('div.table-wrap', h('table', h('thead', h('tr', h('th', 'Node'), h('th', 'Name'), h('th', 'Key'), h('th', 'Actions'))), body)),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        message.textContent = '';
        try {
          const id = await get('device/create.json', { nodeid: nodeid.value, name: name.value || nodeid.value });
          await get('device/newdevicekey.json', { id });
          nodeid.value = name.value = '';
          await reload();
        } catch (err) {
          message.textContent = err.message;
        }
      },
    }, h('div.row', field('Node', nodeid), field('Device name', name), h('button.primary', { type: 'submit' }, 'Add device')), message));
  return { section, reload };
}

/** Share links: what each shares, until when, and a way to end it. */
function shares() {
  const body = h('tbody');
  const reload = async () => {
    const links = await get('share/list.json');
    const live = links.filter((l) => !l.revoked);
    clear(body, live.length ? live.map((l) => h('tr', { dataset: { share: l.id } },
      h('td', l.label || '—'),
      h('td', { app: `app ${l.app}`, dashboard: `dashboard ${l.dashboard}` }[l.kind] || `feeds ${l.feeds.join(', ')}`),
      h('td', l.expires ? new Date(l.expires * 1000).toISOString().slice(0, 10) : 'no end'),
      h('td', h('button.small.danger', {
        type: 'button', 'aria-label': `Revoke share link ${l.label || l.id}`,
        onclick: async () => {
          if (!(await confirmAction('Revoke this share link? Anyone using it loses access at once.'))) return;
          try { await get('share/revoke.json', { id: l.id }); await reload(); toast('Share link revoked'); } catch (e) { toast(e.message, 'error'); }
        },
      }, 'Revoke'))))
      : h('tr', h('td', { colspan: 4 }, h('span.muted', 'No share links. Make one on an app\'s or a dashboard\'s page.'))));
  };
  const section = h('section.card', { id: 'shares' }, h('h2', 'Share links'),
    h('p.muted', 'Each link reads only what it shares: no other feed, no inputs, no account details.'),
    h('div.table-wrap', h('table', h('thead', h('tr', h('th', 'Label'), h('th', 'Shares'), h('th', 'Ends'), h('th', 'Actions'))), body)));
  return { section, reload };
}

export async function render(main, ctx) {
  const user = ctx.user;
  const keys = h('section.card', h('h2', 'API keys'),
    h('p.muted', 'The write key posts data and changes settings; the read key only reads. Send them as apikey= or an Authorization: Bearer header.'),
    h('div.table-wrap', h('table', h('tbody',
      keyRow('read apikey', user.apikey_read, async () => (await get('user/newapikeyread.json')).read_apikey),
      keyRow('write apikey', user.apikey_write, async () => (await get('user/newapikeywrite.json')).write_apikey)))));
  const dev = devices();
  const links = shares();
  main.append(h('h1', 'Account'), await profile(user), password(user), keys, dev.section, links.section);
  await dev.reload();
  await links.reload();
}
