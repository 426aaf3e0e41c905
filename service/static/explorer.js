// epgembed explorer: catalog lookup as you type, related titles, and why (token contributions).
// Plain DOM, no dependencies; every text from the data goes in through textContent.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var state = { query: null, seq: 0, suggestSeq: 0, active: -1, timer: null };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function listOf(data, keys) {
    if (Array.isArray(data)) return data;
    for (var i = 0; i < keys.length; i++) {
      if (data && Array.isArray(data[keys[i]])) return data[keys[i]];
    }
    return [];
  }

  function titleOf(item) {
    return typeof item === 'string' ? item : (item.title || item.text || item.name || '');
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: 'application/json' } }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) {
          var msg = body && body.error ? (body.error.message || body.error) : r.statusText;
          throw new Error(r.status + ': ' + msg);
        }
        return body;
      });
    });
  }

  // ------------------------------------------------------------ suggestions
  function hideSuggestions() { $('suggestions').hidden = true; state.active = -1; }

  function suggest() {
    var q = $('q').value.trim();
    if (q.length < 2) { hideSuggestions(); return; }
    var mine = ++state.suggestSeq;
    getJSON('v1/titles?q=' + encodeURIComponent(q) + '&limit=8').then(function (data) {
      if (mine !== state.suggestSeq) return;
      var ul = $('suggestions');
      ul.textContent = '';
      listOf(data, ['titles', 'results', 'items', 'matches', 'hits']).slice(0, 8).forEach(function (item) {
        var li = el('li', null, titleOf(item));
        li.setAttribute('role', 'option');
        li.addEventListener('mousedown', function (ev) {
          ev.preventDefault();
          pick(titleOf(item));
        });
        ul.appendChild(li);
      });
      ul.hidden = ul.children.length === 0;
      state.active = -1;
    }).catch(function () { hideSuggestions(); });
  }

  function moveActive(step) {
    var items = $('suggestions').children;
    if ($('suggestions').hidden || !items.length) return false;
    if (state.active >= 0) items[state.active].classList.remove('active');
    state.active = (state.active + step + items.length) % items.length;
    items[state.active].classList.add('active');
    return true;
  }

  function pick(title) {
    $('q').value = title;
    hideSuggestions();
    loadRelated(title);
  }

  // ------------------------------------------------------------ related titles
  function loadRelated(title) {
    var mine = ++state.seq;
    clearTimeout(state.timer);
    state.suggestSeq++;             // a late suggestion answer must not pop up over the results
    hideSuggestions();
    $('status').textContent = 'Looking up…';
    $('status').className = 'muted';
    $('related').textContent = '';
    $('why').hidden = true;
    getJSON('v1/related?title=' + encodeURIComponent(title) + '&k=20').then(function (data) {
      if (mine !== state.seq) return;
      var q = data.query && typeof data.query === 'object' ? data.query : data;   // {query: {known, id}}
      state.query = { title: title, id: q.known ? q.id : null };
      var hits = listOf(data, ['related', 'hits', 'results', 'items']);
      $('results-title').textContent = 'Related to “' + title + '”';
      $('status').textContent = (q.known ? 'In the catalog' : 'Not in the catalog: embedded from its tokens')
        + ' · ' + hits.length + ' related titles · click one to see why';
      hits.forEach(function (hit) { $('related').appendChild(relatedItem(hit)); });
    }).catch(function (e) {
      if (mine !== state.seq) return;
      $('status').textContent = 'Error ' + e.message;
      $('status').className = 'error';
    });
  }

  function relatedItem(hit) {
    var li = el('li');
    li.tabIndex = 0;
    li.appendChild(el('span', 'score', Number(hit.score).toFixed(3)));
    li.appendChild(el('span', 'title', titleOf(hit)));
    li.appendChild(document.createTextNode(' '));
    (hit.categories || []).slice(0, 3).forEach(function (c) { li.appendChild(el('span', 'cat', c)); });
    var open = function () {
      Array.prototype.forEach.call($('related').children, function (x) { x.classList.remove('selected'); });
      li.classList.add('selected');
      loadWhy(hit);
    };
    li.addEventListener('click', open);
    li.addEventListener('keydown', function (ev) { if (ev.key === 'Enter') open(); });
    return li;
  }

  // ------------------------------------------------------------ why
  function explainUrl(hit) {
    var q = state.query;
    var hasId = hit.id !== undefined && hit.id !== null;
    if (q.id !== null && q.id !== undefined && hasId) {
      return 'v1/titles/' + encodeURIComponent(q.id) + '/explain?neighbor=' + encodeURIComponent(hit.id);
    }
    return 'v1/explain?title=' + encodeURIComponent(q.title)
      + (hasId ? '&neighbor=' + encodeURIComponent(hit.id) : '&neighbor_title=' + encodeURIComponent(titleOf(hit)));
  }

  function loadWhy(hit) {
    var mine = ++state.seq;
    $('why').hidden = false;
    $('why-title').textContent = 'Why “' + titleOf(hit) + '”?';
    $('why-summary').textContent = 'Explaining…';
    $('why-x').textContent = '';
    $('why-y').textContent = '';
    getJSON(explainUrl(hit)).then(function (e) {
      if (mine !== state.seq) return;
      renderWhy(e);
    }).catch(function (err) {
      if (mine !== state.seq) return;
      $('why-summary').textContent = 'Error ' + err.message;
    });
  }

  function renderWhy(e) {
    var s = $('why-summary');
    s.textContent = '';
    var c = e.carrier;
    s.appendChild(el('span', null, 'score ' + e.score.toFixed(3) + ' · carried most by '));
    s.appendChild(el('b', 'carrier', c.token));
    s.appendChild(el('span', null, ' (' + (c.side === 'title' ? 'the title' : 'the neighbour')
      + ', ×' + c.count + '): without it the score drops by ' + c.drop.toFixed(3) + ' · ' + sharedText(e)));
    e.flags.forEach(function (f) { s.appendChild(el('span', 'flag', f.replace(/_/g, ' '))); });
    var toks = e.tokens.title.concat(e.tokens.neighbor);
    var scale = Math.max.apply(null, toks.map(function (t) { return Math.abs(t.drop); }).concat([e.score, 1e-9]));
    $('why-title-tokens').textContent = 'Tokens of “' + e.title.text + '”';
    $('why-neighbor-tokens').textContent = 'Tokens of “' + e.neighbor.text + '”';
    e.tokens.title.forEach(function (t) { $('why-x').appendChild(tokenBar(t, scale)); });
    e.tokens.neighbor.forEach(function (t) { $('why-y').appendChild(tokenBar(t, scale)); });
  }

  function sharedText(e) {
    var inf = e.shared_informative_categories, broad = e.shared_categories.filter(function (c) {
      return inf.indexOf(c) < 0;
    });
    return 'shared categories: ' + (inf.length ? inf.join(', ') : 'none')
      + (broad.length ? ' (broad: ' + broad.join(', ') + ')' : '');
  }

  function tokenBar(t, scale) {
    var row = el('div', t.rare ? 'tok rare' : 'tok');
    row.title = 'score without it ' + t.without.toFixed(3) + ', additive share ' + t.share.toFixed(3);
    row.appendChild(el('span', 'name', t.token));
    row.appendChild(el('span', 'muted', '×' + t.count));
    var bar = el('span', 'bar'), left = el('span', 'l'), right = el('span', 'r');
    var li = el('i'), ri = el('i');
    var w = Math.min(100, Math.abs(t.drop) / scale * 100);
    (t.drop < 0 ? li : ri).style.width = w.toFixed(1) + '%';   // CSSOM: allowed by the CSP
    left.appendChild(li); right.appendChild(ri); bar.appendChild(left); bar.appendChild(right);
    row.appendChild(bar);
    row.appendChild(el('span', 'num', (t.drop >= 0 ? '+' : '') + t.drop.toFixed(3)));
    return row;
  }

  // ------------------------------------------------------------ wiring
  document.addEventListener('DOMContentLoaded', function () {
    $('q').addEventListener('input', function () {
      clearTimeout(state.timer);
      state.timer = setTimeout(suggest, 150);
    });
    $('q').addEventListener('keydown', function (ev) {
      if (ev.key === 'ArrowDown' && moveActive(1)) ev.preventDefault();
      else if (ev.key === 'ArrowUp' && moveActive(-1)) ev.preventDefault();
      else if (ev.key === 'Escape') hideSuggestions();
      else if (ev.key === 'Enter' && state.active >= 0) {
        ev.preventDefault();
        pick($('suggestions').children[state.active].textContent);
      }
    });
    $('q').addEventListener('blur', function () { setTimeout(hideSuggestions, 100); });
    $('search').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var q = $('q').value.trim();
      if (q) { hideSuggestions(); loadRelated(q); }
    });
  });
}());
