// epgembed explorer: the serving model, catalog lookup as you type, related titles; the "Why?"
// panel is drawn by explorer-why.js.
// Plain DOM, no dependencies; every text from the data goes in through textContent.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var state = { query: null, seq: 0, suggestSeq: 0, active: -1, timer: null, model: null };

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
      var served = r.headers.get('X-Model-Version');        // a reload swapped the model: show it
      if (served && state.model && served !== state.model.version && url !== 'v1/model') loadModel();
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) {
          var msg = body && body.error ? (body.error.message || body.error) : r.statusText;
          throw new Error(r.status + ': ' + msg);
        }
        return body;
      });
    });
  }

  // ------------------------------------------------------------ the serving model
  function ago(iso, now) {
    var t = Date.parse(iso);
    if (isNaN(t)) return 'built at an unknown time';
    var min = Math.floor((now - t) / 60000);
    if (min < -1) return 'built in the future (clocks disagree)';
    if (min < 1) return 'built just now';
    if (min < 60) return 'built ' + min + ' min ago';
    var h = Math.floor(min / 60);
    if (h < 48) return 'built ' + h + ' h ago';
    return 'built ' + Math.floor(h / 24) + ' days ago';
  }

  function num(n) { return Number(n).toLocaleString('en'); }

  function modelCounts(m) {
    var c = m.counts || {}, out = [num(m.shows) + ' shows'];
    if (c.labelled_shows !== undefined) out[0] += ' (' + num(c.labelled_shows) + ' labelled)';
    if (c.categories !== undefined) out.push(num(c.categories) + ' categories');
    if (c.airings !== undefined) out.push(num(c.airings) + ' airings');
    return out.join(' · ');
  }

  function modelTraining(m) {
    var t = m.training || {}, out = [];
    if (t.epochs_run !== null && t.epochs_run !== undefined) out.push(t.epochs_run + ' epochs');
    if (t.seconds !== null && t.seconds !== undefined) out.push(Number(t.seconds).toFixed(1) + ' s');
    var q = m.quality || {}, held = typeof q.p_at_10 === 'number' ? q.p_at_10 : (q.new || {}).p_at_10;
    if (typeof held === 'number') out.push('held-out P@10 ' + held.toFixed(3));   // the nightly's figure
    else if (typeof t.val_p_at_10 === 'number') out.push('val P@10 ' + t.val_p_at_10.toFixed(3));
    return out.length ? 'trained: ' + out.join(', ') : '';
  }

  function showModel() {
    var m = state.model, s = $('model-status');
    s.textContent = 'Model ';
    s.appendChild(el('b', 'version', m.version));
    var age = el('span', 'age', ago(m.created, Date.now()));
    age.title = 'created ' + m.created + ' (UTC)';
    [age, el('span', 'counts', modelCounts(m)), el('span', 'training', modelTraining(m))].forEach(function (x) {
      if (!x.textContent) return;
      s.appendChild(document.createTextNode(' · '));
      s.appendChild(x);
    });
  }

  function loadModel() {
    getJSON('v1/model').then(function (m) {
      state.model = m;
      showModel();
    }).catch(function (e) {
      $('model-status').textContent = 'Model: not available (' + e.message + ')';
      $('model-status').classList.add('error');
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
        + ' · ' + hits.length + ' related shows, one title each · click one to see why';
      hits.forEach(function (hit) { $('related').appendChild(relatedItem(hit)); });
    }).catch(function (e) {
      if (mine !== state.seq) return;
      $('status').textContent = 'Error ' + e.message;
      $('status').className = 'error';
    });
  }

  function relatedItem(hit, inSeries) {
    var li = el('li');
    li.tabIndex = 0;
    li.appendChild(el('span', 'score', Number(hit.score).toFixed(3)));
    li.appendChild(el('span', 'title', titleOf(hit)));
    li.appendChild(document.createTextNode(' '));
    (hit.categories || []).slice(0, 3).forEach(function (c) { li.appendChild(el('span', 'cat', c)); });
    if (hit.series_titles > 1 && !inSeries) li.appendChild(moreButton(li, hit));
    var open = function () {
      Array.prototype.forEach.call($('related').querySelectorAll('li'), function (x) { x.classList.remove('selected'); });
      li.classList.add('selected');
      loadWhy(hit);
    };
    li.addEventListener('click', open);
    li.addEventListener('keydown', function (ev) { if (ev.key === 'Enter' && ev.target === li) open(); });
    return li;
  }

  // an answer stands for its series: "N more" lists the series' other titles under it
  function moreButton(li, hit) {
    var more = el('button', 'more', '+' + (hit.series_titles - 1) + ' more');
    more.type = 'button';
    more.title = 'the other titles of this series in the catalog';
    more.addEventListener('click', function (ev) {   // a click on it is no click on the row
      ev.stopPropagation();
      var open = li.querySelector(':scope > ul.series');
      if (open) { open.remove(); more.textContent = '+' + (hit.series_titles - 1) + ' more'; return; }
      var list = el('ul', 'series');
      li.appendChild(list);
      more.textContent = 'fewer';
      var q = state.query;
      getJSON('v1/related?title=' + encodeURIComponent(q.title) + '&k=' + Math.min(100, hit.series_titles)
              + '&expand=' + encodeURIComponent(hit.series)).then(function (data) {
        listOf(data, ['related']).filter(function (h) { return h.id !== hit.id; })
          .forEach(function (h) { list.appendChild(relatedItem(h, true)); });
      }).catch(function (e) { list.appendChild(el('li', 'error', 'Error ' + e.message)); });
    });
    return more;
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
    ['why-words', 'why-x', 'why-y', 'why-part-bars'].forEach(function (id) { $(id).textContent = ''; });
    $('why-parts').hidden = true;
    getJSON(explainUrl(hit)).then(function (e) {
      if (mine !== state.seq) return;
      window.epgembedWhy.render(e);               // explorer-why.js
    }).catch(function (err) {
      if (mine !== state.seq) return;
      $('why-summary').textContent = 'Error ' + err.message;
    });
  }

  // ------------------------------------------------------------ wiring
  document.addEventListener('DOMContentLoaded', function () {
    loadModel();
    setInterval(function () { if (state.model) showModel(); }, 60000);   // the age moves on
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
