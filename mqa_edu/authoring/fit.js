/* mqa_edu decks: make every slide fit the reveal.js stage (960 x 700).
   A slide taller than the stage is split into sub-slides (one more down-arrow), cell by cell; a cell taller than the
   stage is split into its parts (code, then each output; a text cell paragraph by paragraph); a single part that is
   still too tall (a long code listing, a tall figure) is scaled down to fit. Runs once the page, its images and its
   mathematics have settled, and again on each slide shown, in case something rendered late. */
(function () {
  const PAD = 24;  // stage units kept free: the slide's own padding
  const LABEL = 40;  // the "(continued)" line at the top of a continued slide

  function stage(Reveal) {
    return {h: Reveal.getConfig().height, box: document.querySelector('.reveal .slides').getBoundingClientRect(),
            scale: Reveal.getScale ? Reveal.getScale() : 1};
  }
  // heights in stage units, whatever zoom or transform reveal.js applied to fit the window
  function height(el, st) { return el.getBoundingClientRect().height / st.scale; }
  function visible(el) { return el.nodeType === 1 && el.tagName !== 'ASIDE' && el.tagName !== 'SCRIPT'; }

  function withShown(section, fn) {  // measure a slide that reveal.js keeps hidden
    const chain = [];
    for (let a = section; a && a.tagName === 'SECTION'; a = a.parentElement) chain.push([a, a.style.display]);
    chain.forEach(([a]) => { a.style.display = 'block'; });
    try { return fn(); } finally { chain.forEach(([a, d]) => { a.style.display = d; }); }
  }

  // what a reader sees in an element: text, a figure or a widget (not an empty prompt or collapser bar)
  function hasContent(el) {
    return el.textContent.trim().length > 0 || !!el.querySelector('img, svg, canvas, video, .jupyter-widgets, ' +
                                                                 'script[type="application/vnd.jupyter.widget-view+json"]');
  }
  function sideBySide(kids) {  // a row (a prompt beside its code): its children cannot be split top from bottom
    const boxes = kids.map(k => k.getBoundingClientRect());
    return boxes.some((a, i) => boxes.slice(i + 1).some(b =>
      Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5 * Math.min(a.height, b.height)));
  }
  // the parts of a block: descend while it has one child with content, or a row of them (into its tallest),
  // then take that child's children, stacked top to bottom
  function parts(block, st) {
    let node = block;
    for (;;) {
      const kids = Array.from(node.children).filter(k => visible(k) && height(k, st) > 0 && hasContent(k));
      if (kids.length === 0) return null;
      if (kids.length === 1) { node = kids[0]; continue; }
      if (sideBySide(kids)) { node = kids.reduce((a, b) => (height(a, st) >= height(b, st) ? a : b)); continue; }
      return {node, kids};
    }
  }
  function shell(block, node, kids) {  // a copy of the path block -> node, holding only ``kids`` (moved, not copied)
    const path = [];
    for (let a = node; a !== block; a = a.parentElement) path.unshift(a);
    const top = block.cloneNode(false);
    let at = top;
    for (const a of path) { const c = a.cloneNode(false); at.appendChild(c); at = c; }
    kids.forEach(k => at.appendChild(k));
    top.removeAttribute('id');
    return top;
  }

  function onlyPre(block) {  // the <pre> a block comes down to (printed output, a code listing), if it does
    let node = block;
    for (;;) {
      if (node.tagName === 'PRE') return node;
      const kids = Array.from(node.children).filter(k => visible(k) && hasContent(k));
      if (kids.length === 1) { node = kids[0]; continue; }
      const pre = kids.length > 1 && sideBySide(kids) ? kids.find(k => k.querySelector('pre')) : null;
      if (!pre) return null;
      node = pre;
    }
  }
  function splitLines(block, pre, st, room) {  // a long listing: the same block, a slice of its lines each
    for (const n of Array.from(pre.childNodes)) {  // end a top-level text node at every line break
      if (n.nodeType !== 3) continue;
      let rest = n;
      for (let i = rest.data.indexOf('\n'); i >= 0 && i < rest.data.length - 1; i = rest.data.indexOf('\n')) {
        rest = rest.splitText(i + 1);
      }
    }
    const nodes = Array.from(pre.childNodes);
    const breaks = nodes.map(n => (n.textContent.match(/\n/g) || []).length);
    const lines = Math.max(1, breaks.reduce((a, b) => a + b, 0));
    const perLine = height(pre, st) / lines, around = height(block, st) - height(pre, st);
    const fit = Math.max(3, Math.floor((room - around) / perLine));
    if (lines <= fit) return [block];
    const chunks = [[]];
    let used = 0;
    nodes.forEach((n, i) => {
      if (used >= fit && chunks[chunks.length - 1].length) { chunks.push([]); used = 0; }
      chunks[chunks.length - 1].push(n); used += breaks[i];
    });
    const made = chunks.map(chunk => {
      const copy = shell(block, pre.parentElement, []);
      const slice = pre.cloneNode(false);
      chunk.forEach(n => slice.appendChild(n));
      let inner = copy;
      while (inner.lastElementChild) inner = inner.lastElementChild;
      inner.appendChild(slice);
      return copy;
    });
    block.replaceWith(...made);
    return made;
  }

  function pieces(block, st, room, depth) {  // ``block`` as a list of blocks that each fit ``room``, where it can
    const h = height(block, st);
    if (h <= room || depth > 4) return [block];
    const pre = onlyPre(block);
    if (pre) return splitLines(block, pre, st, room);
    const p = parts(block, st);
    if (!p) return [block];
    const groups = [[]];
    let used = 0;
    for (const k of p.kids) {
      const kh = height(k, st);
      if (groups[groups.length - 1].length && used + kh > room) { groups.push([]); used = 0; }
      groups[groups.length - 1].push(k); used += kh;
    }
    if (groups.length === 1) {  // the children fit together after all (margins): split them one by one
      if (p.kids.length < 2) return [block];
      groups.length = 0; p.kids.forEach(k => groups.push([k]));
    }
    const made = groups.map(g => shell(block, p.node, g));
    block.replaceWith(...made);
    return made.flatMap(m => pieces(m, st, room, depth + 1));
  }

  function paginate(Reveal) {
    const st = stage(Reveal), room = st.h - PAD;
    const leaves = Array.from(document.querySelectorAll('.reveal .slides > section > section'));
    for (const sec of leaves) {
      withShown(sec, () => {
        if (height(sec, st) <= room) return;
        let blocks = Array.from(sec.children).filter(visible);
        blocks = blocks.flatMap(b => pieces(b, st, room, 0));
        const notes = Array.from(sec.children).filter(k => k.tagName === 'ASIDE');
        const pages = [[]];
        let used = 0;
        for (const b of blocks) {
          const bh = height(b, st);
          if (pages[pages.length - 1].length && used + bh > room) { pages.push([]); used = LABEL; }
          pages[pages.length - 1].push(b); used += bh;
        }
        const heading = sec.querySelector('h1, h2, h3');
        const title = heading ? heading.textContent.replace(/\u00b6$/, '').trim() : '';
        let after = sec;
        pages.slice(1).forEach(page => {
          const s = document.createElement('section');
          if (title) {  // a continued slide says what it continues
            const label = document.createElement('p');
            label.className = 'mqa-continued';
            label.textContent = title + ' (continued)';
            s.appendChild(label);
          }
          page.forEach(b => s.appendChild(b));
          after.after(s); after = s;
        });
        notes.forEach(n => sec.appendChild(n));
      });
    }
    const at = Reveal.getIndices();
    Reveal.sync();
    Reveal.slide(at.h, at.v);  // sync() leaves the shown slide without reveal.js's "present" state: show it again
    fitCurrent(Reveal);
    window.mqaFitDone = true;
  }

  function fitCurrent(Reveal) {  // a slide still taller than the stage (one tall part, a late render): scale it down
    const sec = Reveal.getCurrentSlide(), st = stage(Reveal), room = st.h - PAD;
    if (!sec) return;
    sec.style.zoom = '';
    const h = height(sec, st);
    if (h > room) { sec.style.zoom = String(room / h); Reveal.layout(); }
  }

  window.mqaFit = function (Reveal) {
    if (/[?&]fit=off/.test(location.search)) { window.mqaFitDone = true; return; }  // the slides as nbconvert made them
    let done = false;
    const run = () => {
      if (done) return; done = true;
      const go = () => paginate(Reveal);
      if (window.MathJax && MathJax.Hub && MathJax.Hub.Queue) MathJax.Hub.Queue(go); else go();
    };
    const whenLoaded = () => (document.readyState === 'complete' ? run() : window.addEventListener('load', run));
    if (Reveal.isReady()) whenLoaded(); else Reveal.on('ready', whenLoaded);
    Reveal.on('slidechanged', () => fitCurrent(Reveal));
  };
})();
