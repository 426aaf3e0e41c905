// epgembed explorer, the "Why?" panel (GET /v1/titles/<id>/explain, /v1/explain: the Explain
// shape of epgembed/query/shapes.py): the words of both titles highlighted by the share of the
// score each carried, what the guide features carried, and the tokenizer pieces on demand.
// Plain DOM; every text from the data goes in through textContent; styles through the CSSOM.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var PART = { text: 'words of the titles', context: 'description words', channel: 'channel',
               slot: 'time slot', day: 'day of the week', duration: 'duration',
               episodic: 'series-or-single flag', credit: 'credits (people)', year: 'production decade',
               country: 'country', rating: 'age rating' };
  var WORD = /[\p{L}\p{N}_]+(?:['’][\p{L}\p{N}_]+)*/gu;       // tokenize.words_of, as JS sees it

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fmt(x) { return Number(x).toFixed(3); }
  function pct(x, score) { return score > 0 ? Math.round(100 * x / score) + '%' : fmt(x); }
  function bare(token) { return token.replace(/^[[<]|[\]>]$/g, '').replace(/^▁/, ''); }
  function maxOf(xs) { return Math.max.apply(null, xs.concat([1e-9])); }

  // ------------------------------------------------------------ the words
  function wordShares(side, toks) {          // word index -> its pieces' and whole word's shares
    var shares = side.words.map(function () { return 0; });
    toks.forEach(function (t) {
      if (t.word !== null && t.word < shares.length && (t.kind === 'piece' || t.kind === 'word' || t.kind === 'ngram')) {
        shares[t.word] += t.share;
      }
    });
    return shares;
  }

  function contextWords(toks) {              // the description words that carried most
    return toks.filter(function (t) { return t.kind === 'context'; })
      .map(function (t) { return { text: bare(t.token), share: t.share }; })
      .sort(function (a, b) { return b.share - a.share; }).slice(0, 10);
  }

  function wordSpan(text, share, scale, score) {
    var w = el('span', share < 0 ? 'w neg' : 'w', text);
    var f = share > 0 ? Math.min(1, share / scale) : 0;
    if (f >= 0.03) {                                   // a near-zero share stays unmarked
      w.style.backgroundColor = 'rgba(47, 98, 196, ' + (0.08 + 0.8 * f).toFixed(3) + ')';
      w.style.borderBottomWidth = (1 + 3 * f).toFixed(1) + 'px';
    }
    if (f > 0.55) w.classList.add('strong');
    w.dataset.share = share.toFixed(6);
    w.title = 'carried ' + fmt(share) + ' of the score ' + fmt(score) + ' (' + pct(share, score) + ')';
    return w;
  }

  // The title as written, its words highlighted; the normalized words when they cannot be found in it.
  function titleLine(text, words, shares, scale, score) {
    var out = el('span', 'words'), found = [], k = 0, last = 0, m;
    WORD.lastIndex = 0;
    while (k < words.length && (m = WORD.exec(text)) !== null) {
      if (m[0].normalize('NFKC').toLowerCase() === words[k]) found.push([m.index, m[0], k++]);
    }
    if (k < words.length) {
      words.forEach(function (w, i) {
        if (i) out.appendChild(document.createTextNode(' '));
        out.appendChild(wordSpan(w, shares[i], scale, score));
      });
      return out;
    }
    found.forEach(function (f) {
      out.appendChild(document.createTextNode(text.slice(last, f[0])));
      out.appendChild(wordSpan(f[1], shares[f[2]], scale, score));
      last = f[0] + f[1].length;
    });
    out.appendChild(document.createTextNode(text.slice(last)));
    return out;
  }

  function renderWords(e) {
    var data = [['title', e.title, e.tokens.title], ['neighbor', e.neighbor, e.tokens.neighbor]].map(function (s) {
      return { who: s[0], side: s[1], shares: wordShares(s[1], s[2]), ctx: contextWords(s[2]) };
    });
    var all = [];
    data.forEach(function (d) { all = all.concat(d.shares, d.ctx.map(function (c) { return c.share; })); });
    var scale = maxOf(all), box = $('why-words');
    data.forEach(function (d) {
      var p = el('p', 'words-line ' + d.who);
      p.appendChild(el('span', 'who', d.who === 'title' ? 'title' : 'neighbour'));
      p.appendChild(titleLine(d.side.text, d.side.words, d.shares, scale, e.score));
      box.appendChild(p);
      if (!d.ctx.length) return;
      var c = el('p', 'words-line context ' + d.who), words = el('span', 'words');
      c.appendChild(el('span', 'who', 'its description'));
      d.ctx.forEach(function (w) {
        words.appendChild(wordSpan(w.text, w.share, scale, e.score));
        words.appendChild(document.createTextNode(' '));
      });
      c.appendChild(words);
      box.appendChild(c);
    });
  }

  // ------------------------------------------------------------ the parts (words, features)
  function renderParts(e) {
    var parts = (e.carried_by || []).map(function (p) { return { part: p.part, v: (p.title + p.neighbor) / 2 }; });
    if (parts.length < 2) return;                       // the titles' words alone: nothing to split
    parts.sort(function (a, b) { return b.v - a.v; });
    var scale = maxOf(parts.map(function (p) { return Math.abs(p.v); }));
    var top = parts.filter(function (p) { return p.v > 0; }).slice(0, 3).map(function (p) {
      return 'the ' + PART[p.part] + ' (' + fmt(p.v) + ', ' + pct(p.v, e.score) + ')';
    });
    var center = (e.center_share.title + e.center_share.neighbor) / 2;
    $('why-parts-text').textContent = 'Of the score ' + fmt(e.score) + ', '
      + (top.length ? 'most came from ' + top.slice(0, -1).join(', ') + (top.length > 1 ? ' and ' : '') + top[top.length - 1]
        : 'no part carried a positive share')
      + '. Each figure: that part’s share of the score, averaged over the two titles'
      + (Math.abs(center) >= 0.0005 ? '; the model’s centering adds ' + fmt(center) : '') + '.';
    parts.forEach(function (p) { $('why-part-bars').appendChild(partBar(p, scale, e.score)); });
    $('why-parts').hidden = false;
  }

  function partBar(p, scale, score) {
    var row = el('div', p.v < 0 ? 'part neg' : 'part'), bar = el('span', 'pbar'), fill = el('i');
    row.dataset.part = p.part;
    row.appendChild(el('span', 'name', PART[p.part] || p.part));
    fill.style.width = Math.max(2, Math.abs(p.v) / scale * 100).toFixed(1) + '%';   // small ones visible
    bar.appendChild(fill);
    row.appendChild(bar);
    row.appendChild(el('span', 'num', (p.v >= 0 ? '+' : '') + fmt(p.v)));
    row.appendChild(el('span', 'num muted', pct(p.v, score)));
    return row;
  }

  // ------------------------------------------------------------ summary and pieces
  function carrierText(e) {
    var c = e.carrier, side = e[c.side];
    var t = e.tokens[c.side].filter(function (x) { return x.id === c.id; })
      .sort(function (a, b) { return b.drop - a.drop; })[0];
    var of = ' of “' + side.text + '”';
    if (!t || t.word === undefined) return 'a token' + of;
    if (t.word !== null && (t.kind === 'piece' || t.kind === 'word' || t.kind === 'ngram')) return 'the word “' + side.words[t.word] + '”' + of;
    if (t.kind === 'context') return 'the description word “' + bare(t.token) + '”' + of;
    var f = bare(t.token);
    return 'the ' + (PART[t.feature] || 'feature') + ' “' + featureValue(t.feature, f.slice(f.indexOf('=') + 1)) + '”' + of;
  }

  function featureValue(kind, v) {           // features.py spells them for the tokenizer
    if (kind === 'slot' && /^[0-7]$/.test(v)) return (3 * v) + '–' + (3 * v + 3) + ' h';
    if (kind === 'duration') {                 // features.DURATION_BUCKETS: v is the bucket's upper edge
      var edges = [10, 20, 35, 50, 70, 100, 150], i = edges.indexOf(Number(v));
      if (v === 'long') return 'over 150 min';
      return i < 0 ? v + ' min' : (i === 0 ? 'up to 10' : edges[i - 1] + '–' + v) + ' min';
    }
    if (kind === 'episodic') return v === 'yes' ? 'a series' : 'not a series';
    return v;
  }

  function renderSummary(e) {
    var s = $('why-summary'), c = e.carrier;
    s.textContent = '';
    s.appendChild(el('span', null, 'Score ' + fmt(e.score) + ' · carried most by ' + carrierText(e) + ' (token '));
    s.appendChild(el('b', 'carrier', c.token));
    s.appendChild(el('span', null, ', ×' + c.count + (c.rare ? ', rare' : '') + '): without it the score drops by '
      + fmt(c.drop) + ' · ' + sharedText(e)));
    e.flags.forEach(function (f) { s.appendChild(el('span', 'flag', f.replace(/_/g, ' '))); });
  }

  function sharedText(e) {
    var inf = e.shared_informative_categories, broad = e.shared_categories.filter(function (c) {
      return inf.indexOf(c) < 0;
    });
    return 'shared categories: ' + (inf.length ? inf.join(', ') : 'none')
      + (broad.length ? ' (broad: ' + broad.join(', ') + ')' : '');
  }

  function tokenBar(t, scale) {
    var row = el('div', 'tok ' + t.kind + (t.rare ? ' rare' : ''));
    row.title = t.kind + (t.feature ? ' (' + t.feature + ')' : '') + ' · score without it ' + fmt(t.without)
      + ', additive share ' + fmt(t.share);
    row.appendChild(el('span', 'name', t.token));
    row.appendChild(el('span', 'muted', '×' + t.count));
    var bar = el('span', 'bar'), left = el('span', 'l'), right = el('span', 'r');
    var li = el('i'), ri = el('i');
    var w = t.drop === 0 ? 0 : Math.max(1.5, Math.min(100, Math.abs(t.drop) / scale * 100));
    (t.drop < 0 ? li : ri).style.width = w.toFixed(1) + '%';   // CSSOM: allowed by the CSP
    left.appendChild(li); right.appendChild(ri); bar.appendChild(left); bar.appendChild(right);
    row.appendChild(bar);
    row.appendChild(el('span', 'num', (t.drop >= 0 ? '+' : '') + fmt(t.drop)));
    return row;
  }

  function renderPieces(e) {
    var scale = maxOf(e.tokens.title.concat(e.tokens.neighbor).map(function (t) { return Math.abs(t.drop); }));
    $('why-title-tokens').textContent = 'Tokens of “' + e.title.text + '”';
    $('why-neighbor-tokens').textContent = 'Tokens of “' + e.neighbor.text + '”';
    e.tokens.title.forEach(function (t) { $('why-x').appendChild(tokenBar(t, scale)); });
    e.tokens.neighbor.forEach(function (t) { $('why-y').appendChild(tokenBar(t, scale)); });
  }

  window.epgembedWhy = {
    render: function (e) { renderSummary(e); renderWords(e); renderParts(e); renderPieces(e); }
  };
}());
