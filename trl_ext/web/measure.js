// Design measurements of a rendered page, read by the offline design judge (trl_ext/web/design_judge.py).
// Evaluated with page.evaluate(): one arrow function returning a JSON-serialisable object.
() => {
  const MAX_ELEMENTS = 3000;
  const MAX_OVERLAP_CHECKS = 300000;
  const vw = window.innerWidth;
  const vh = window.innerHeight;
  const doc = document.documentElement;
  const body = document.body;

  const parseColor = (text) => {
    const m = text && text.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const parts = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return { r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1 };
  };
  const luminance = (c) => {
    const channel = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  };
  const blend = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  // Effective background behind an element: blend the ancestors' background colours; null when an image or
  // gradient is in the way (the contrast is then unknown and the element is skipped).
  const backgroundOf = (element) => {
    const layers = [];
    for (let node = element; node && node.nodeType === 1; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage && style.backgroundImage !== "none") return null;
      const color = parseColor(style.backgroundColor);
      if (color && color.a > 0) {
        layers.push(color);
        if (color.a >= 1) break;
      }
    }
    let result = { r: 255, g: 255, b: 255, a: 1 };
    for (let i = layers.length - 1; i >= 0; i--) result = blend(layers[i], result);
    return result;
  };
  const visible = (element, style, rect) =>
    rect.width > 0 && rect.height > 0 && style.visibility !== "hidden" && style.display !== "none" &&
    Number(style.opacity) > 0.05;

  // The browser's own look, to tell the author's styling from it: the initial font family and text colour (what an
  // unstyled document is drawn in), and the default colours of links.
  const probe = document.createElement("span");
  probe.style.all = "initial";
  doc.appendChild(probe);
  const probeStyle = getComputedStyle(probe);
  const uaFamily = probeStyle.fontFamily.split(",")[0].trim().toLowerCase();
  const uaColors = new Set([probeStyle.color, "rgb(0, 0, 238)", "rgb(85, 26, 139)", "rgb(255, 0, 0)"]);
  probe.remove();
  const UA_MONOSPACE = "pre, code, kbd, samp, tt, listing, xmp, plaintext";
  const CONTROLS = ["BUTTON", "INPUT", "SELECT", "TEXTAREA", "OPTION"];

  // Text blocks: elements with their own non-blank text. Painted boxes: elements (not the page itself, not form
  // controls, which the browser paints) that fill a background or cast a shadow over at least 1000 px^2 - cards,
  // buttons, bars, the faces of a CSS drawing.
  const blocks = [];
  const walker = document.createTreeWalker(body || doc, NodeFilter.SHOW_ELEMENT);
  let visited = 0, paintedBoxes = 0, paintedArea = 0;
  const paintedColors = new Set();
  for (let node = walker.currentNode; node && visited < 5000; node = walker.nextNode()) {
    visited++;
    if (["SCRIPT", "STYLE", "NOSCRIPT", "TEMPLATE", "SVG"].includes(node.tagName)) continue;
    if (visited <= 2000 && node !== body && !CONTROLS.includes(node.tagName)) {
      const style = getComputedStyle(node);
      const fill = parseColor(style.backgroundColor);
      const filled = fill && fill.a > 0.05;
      if (filled || style.backgroundImage !== "none" || style.boxShadow !== "none") {
        const rect = node.getBoundingClientRect();
        const area = rect.width * rect.height;
        if (area >= 1000 && visible(node, style, rect)) {
          paintedBoxes++;
          paintedArea += area;
          if (filled) paintedColors.add(style.backgroundColor);
        }
      }
    }
    let ownText = "";
    for (const child of node.childNodes) if (child.nodeType === 3) ownText += child.textContent;
    ownText = ownText.trim();
    if (!ownText) continue;
    const style = getComputedStyle(node);
    const rect = node.getBoundingClientRect();
    if (!visible(node, style, rect)) continue;
    blocks.push({ node, style, rect, chars: ownText.length, text: ownText, readable: true });
    if (blocks.length >= MAX_ELEMENTS) break;
  }

  // The page's extent: text placed outside it (left: -9999px, far below a fixed-height body) is not seen by anyone.
  const pageWidth = Math.max(doc.scrollWidth, vw);
  const pageBottom = Math.max(doc.scrollHeight, body ? body.scrollHeight : 0, vh);
  // Text outside the page's extent is still reachable when it lies inside the scrolled content of a scrolling
  // container (a documentation page that scrolls its main column, not the page); text pushed out of that container
  // (left: -9999px inside it) is not.
  const inScroller = (node, r) => {
    for (let box = node.parentElement; box && box !== body && box !== doc; box = box.parentElement) {
      const style = getComputedStyle(box);
      if (!/auto|scroll/.test(style.overflowX + style.overflowY)) continue;
      if (box.scrollHeight <= box.clientHeight + 1 && box.scrollWidth <= box.clientWidth + 1) continue;
      const c = box.getBoundingClientRect();
      const top = r.top - c.top + box.scrollTop, left = r.left - c.left + box.scrollLeft;
      return top + r.height > 0 && top < box.scrollHeight && left + r.width > 0 && left < box.scrollWidth;
    }
    return false;
  };
  let contrastChars = 0, goodContrastChars = 0, minContrast = 21, tinyChars = 0, totalChars = 0;
  let offscreenChars = 0, proseChars = 0, goodMeasureChars = 0, goodLeadingChars = 0, defaultStyleChars = 0;
  let styleCheckedChars = 0;
  const fontSizes = new Set(), fontFamilies = new Set(), lefts = new Map();
  for (const block of blocks) {
    const size = parseFloat(block.style.fontSize) || 16;
    const weight = parseInt(block.style.fontWeight) || 400;
    totalChars += block.chars;
    fontSizes.add(Math.round(size));
    const family = block.style.fontFamily.split(",")[0].trim().toLowerCase();
    fontFamilies.add(family);
    // Text in the browser's own look: its initial typeface (monospace where the browser sets it for code) and its
    // initial or default link colour.
    if (!block.node.closest("button, select, textarea, option")) {
      styleCheckedChars += block.chars;
      const uaFont = family === uaFamily || (family === "monospace" && block.node.closest(UA_MONOSPACE));
      if (uaFont && uaColors.has(block.style.color)) defaultStyleChars += block.chars;
    }
    if (size < 11) tinyChars += block.chars;
    const left = Math.round(block.rect.left / 4) * 4;
    lefts.set(left, (lefts.get(left) || 0) + 1);
    const r = block.rect;
    const scrollX = window.scrollX, scrollY = window.scrollY;
    const onPage = (r.right + scrollX > 0 && r.bottom + scrollY > 0 && r.left + scrollX < pageWidth &&
      r.top + scrollY < pageBottom) || inScroller(block.node, r);
    if (!onPage) offscreenChars += block.chars;
    block.readable = onPage && size >= 9;
    // Typesetting of running text (blocks of two lines or more): line length and line spacing.
    const lineHeight = block.style.lineHeight === "normal" ? 1.2 * size : parseFloat(block.style.lineHeight) || 1.2 * size;
    if (block.chars >= 80 && r.height >= 1.8 * lineHeight) {
      const charsPerLine = r.width / (0.5 * size);
      proseChars += block.chars;
      if (charsPerLine >= 30 && charsPerLine <= 110) goodMeasureChars += block.chars;
      if (lineHeight / size >= 1.35) goodLeadingChars += block.chars;
    }
    const fg = parseColor(block.style.color);
    const bg = backgroundOf(block.node);
    if (!fg || !bg) continue;
    const text = blend(fg, bg);
    const l1 = luminance(text), l2 = luminance(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const large = size >= 24 || (size >= 18.66 && weight >= 700);
    contrastChars += block.chars;
    if (ratio >= (large ? 3 : 4.5)) goodContrastChars += block.chars;
    minContrast = Math.min(minContrast, ratio);
    if (ratio < 2 || fg.a < 0.2) block.readable = false;  // text the eye cannot tell from its background
  }
  let readableText = "", readableChars = 0;
  for (const block of blocks) {
    if (!block.readable) continue;
    readableChars += block.chars;
    if (readableText.length < 20000) readableText += block.text + "\n";
  }

  // Overlap between text blocks that are not nested in one another (text drawn over text), anywhere in the page:
  // a sweep over the blocks sorted by their top edge compares only blocks that share some height.
  const n = blocks.length;
  const overlapped = new Array(n).fill(false);
  const order = blocks.map((_, i) => i).sort((i, j) => blocks[i].rect.top - blocks[j].rect.top);
  let checks = 0;
  for (let x = 0; x < n && checks < MAX_OVERLAP_CHECKS; x++) {
    const i = order[x], a = blocks[i].rect;
    for (let y = x + 1; y < n && checks < MAX_OVERLAP_CHECKS; y++) {
      const j = order[y], b = blocks[j].rect;
      if (b.top >= a.bottom - 1) break;
      checks++;
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w <= 1 || h <= 1) continue;
      if (blocks[i].node.contains(blocks[j].node) || blocks[j].node.contains(blocks[i].node)) continue;
      const smaller = Math.min(a.width * a.height, b.width * b.height);
      if (w * h > 0.2 * smaller) {
        overlapped[i] = overlapped[j] = true;
      }
    }
  }
  const overlapping = overlapped.filter(Boolean).length;

  // Horizontal overflow: content wider than the viewport, and elements sticking out of it.
  let overflowing = 0, clippedText = 0;
  for (const block of blocks) {
    if (block.rect.right > vw + 2 || block.rect.left < -2) overflowing++;
    const el = block.node;
    if (el.scrollWidth > el.clientWidth + 2 && ["hidden", "clip"].includes(block.style.overflowX)) clippedText++;
  }

  const alignedBlocks = [...lefts.values()].filter((count) => count > 1).reduce((s, c) => s + c, 0);
  const count = (selector) => document.querySelectorAll(selector).length;
  const pageHeight = Math.max(doc.scrollHeight, body ? body.scrollHeight : 0);
  return {
    viewport: { width: vw, height: vh },
    page_height: pageHeight,
    scroll_width: doc.scrollWidth,
    text_blocks: blocks.length,
    text_chars: totalChars,
    contrast_checked_chars: contrastChars,
    good_contrast_fraction: contrastChars ? goodContrastChars / contrastChars : null,
    min_contrast: contrastChars ? minContrast : null,
    tiny_text_fraction: totalChars ? tinyChars / totalChars : 0,
    font_sizes: fontSizes.size,
    font_families: fontFamilies.size,
    overlapping_blocks: overlapping,
    overflowing_blocks: overflowing,
    clipped_text_blocks: clippedText,
    aligned_fraction: blocks.length ? alignedBlocks / blocks.length : 0,
    left_edges: lefts.size,
    headings: count("h1,h2,h3,h4,h5,h6"),
    landmarks: count("header,nav,main,footer,section,article,aside"),
    images: count("img,svg,canvas,video,picture"),
    canvases: count("canvas"),
    interactive: count("a[href],button,input,select,textarea,[onclick],[role=button]"),
    title: document.title || "",
    text_sample: ((body && body.innerText) || "").slice(0, 4000),
    readable_text: readableText.slice(0, 20000),
    readable_chars: readableChars,
    offscreen_chars: offscreenChars,
    prose_chars: proseChars,
    good_measure_chars: goodMeasureChars,
    good_leading_chars: goodLeadingChars,
    style_checked_chars: styleCheckedChars,
    default_style_chars: defaultStyleChars,
    painted_boxes: paintedBoxes,
    painted_colors: paintedColors.size,
    painted_area_fraction: paintedArea / (Math.max(pageWidth, 1) * Math.max(pageBottom, 1)),
  };
}
