// siptrace serve: the only script its pages run (CSP script-src 'self').
// Table values reach the page only as text (textContent), never as markup.
'use strict';

function wireLadder() {
  const data = document.getElementById('msgs');
  const box = document.getElementById('msg');
  const ladder = document.getElementById('ladder');
  if (!data || !box || !ladder) return;
  const msgs = JSON.parse(data.textContent);
  const arrows = ladder.querySelectorAll('g.arrow');
  function select(i) {
    arrows.forEach(function (g) { g.classList.remove('sel'); });
    const g = ladder.querySelector('g.arrow[data-i="' + i + '"]');
    if (g) g.classList.add('sel');
    if (i >= 0 && i < msgs.length) box.textContent = msgs[i];
    const u = new URL(window.location.href);
    u.searchParams.set('m', String(i));
    window.history.replaceState(null, '', u.toString());
  }
  arrows.forEach(function (g) {
    g.addEventListener('click', function () { select(Number(g.dataset.i)); });
  });
  const sel = Number(ladder.dataset.sel || 0);
  arrows.forEach(function (g) {
    if (Number(g.dataset.i) === sel) g.classList.add('sel');
  });
  document.body.dataset.ready = '1';
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function wireLive() {
  const table = document.getElementById('live');
  if (!table) return;
  const body = table.querySelector('tbody');
  const stamp = document.getElementById('updated');
  const every = Number(table.dataset.every) || 2000;
  function poll() {
    fetch(table.dataset.src, { credentials: 'same-origin' })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        const rows = document.createDocumentFragment();
        (d.calls || []).forEach(function (c) {
          const tr = document.createElement('tr');
          const start = c.start_us == null ? c.start
            : c.start + '.' + String(Math.floor(c.start_us / 1000)).padStart(3, '0');
          cell(tr, start);
          cell(tr, String(c.duration_ms) + ' ms', 'num');
          cell(tr, String(c.rows), 'num');
          cell(tr, c.method);
          cell(tr, c.final_status);
          cell(tr, c.from_user);
          cell(tr, c.to_user);
          const a = document.createElement('a');
          a.className = 'call';
          a.href = '/call?id=' + encodeURIComponent(c.callid);
          a.textContent = c.callid;
          cell(tr, '').appendChild(a);
          rows.appendChild(tr);
        });
        body.replaceChildren(rows);
        stamp.textContent = 'updated ' + new Date().toLocaleTimeString();
        document.body.dataset.ready = '1';
      })
      .catch(function (e) { stamp.textContent = 'update failed: ' + e; })
      .finally(function () { window.setTimeout(poll, every); });
  }
  poll();
}

document.addEventListener('DOMContentLoaded', function () {
  wireLadder();
  wireLive();
});
