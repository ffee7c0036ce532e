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

  // the parts of a block: descend while it has one visible child with a height, then take that child's children
  function parts(block, st) {
    let node = block;
    for (;;) {
      const kids = Array.from(node.children).filter(k => visible(k) && height(k, st) > 0);
      if (kids.length === 0) return null;
      if (kids.length > 1) return {node, kids};
      node = kids[0];
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

  function pieces(block, st, room, depth) {  // ``block`` as a list of blocks that each fit ``room``, where it can
    const h = height(block, st);
    if (h <= room || depth > 3) return [block];
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
    Reveal.sync();
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
