// Set-of-marks labelling: number the visible clickable elements of the viewport and draw a box with its number over
// each (the overlay ignores the pointer). Called as page.evaluate(MARKS_JS, maxMarks); the elements stay reachable
// as window.__trlMarks[mark] until the next call.
(maxMarks) => {
  const OVERLAY_ID = "__trl_ext_som";
  const old = document.getElementById(OVERLAY_ID);
  if (old) old.remove();
  const selector = [
    "a[href]", "button", "input:not([type=hidden])", "select", "textarea", "summary", "canvas", "[onclick]",
    "[role=button]", "[role=link]", "[role=tab]", "[role=menuitem]", "[role=checkbox]", "[role=switch]",
    "[tabindex]:not([tabindex='-1'])", "[contenteditable=true]",
  ].join(",");
  const candidates = new Set(document.querySelectorAll(selector));
  // Elements styled as clickable (cursor: pointer) whose parent is not: custom buttons built from divs.
  const all = document.body ? document.body.getElementsByTagName("*") : [];
  for (let i = 0; i < all.length && i < 4000; i++) {
    const el = all[i];
    if (getComputedStyle(el).cursor === "pointer" &&
        !(el.parentElement && getComputedStyle(el.parentElement).cursor === "pointer")) candidates.add(el);
  }
  const vw = window.innerWidth, vh = window.innerHeight;
  const marks = [], elements = [];
  for (const el of candidates) {
    if (marks.length >= maxMarks) break;
    if (el.disabled) continue;
    const rect = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (rect.width < 2 || rect.height < 2 || style.visibility === "hidden" || style.display === "none") continue;
    if (rect.bottom < 0 || rect.right < 0 || rect.top > vh || rect.left > vw) continue;
    const cx = Math.min(Math.max(rect.left + rect.width / 2, 0), vw - 1);
    const cy = Math.min(Math.max(rect.top + rect.height / 2, 0), vh - 1);
    const top = document.elementFromPoint(cx, cy);
    if (!top || !(el === top || el.contains(top) || top.contains(el))) continue;  // covered by something else
    // Skip an element nested in one already marked (the outer control gets the click).
    if (marks.some((m) => m.contains(el))) continue;
    const label = (el.getAttribute("aria-label") || el.innerText || el.value || el.placeholder || el.alt ||
      el.title || "").toString().trim().replace(/\s+/g, " ").slice(0, 60);
    const href = el.getAttribute("href");
    marks.push(el);
    elements.push({
      mark: marks.length - 1,
      tag: el.tagName.toLowerCase(),
      text: label,
      role: el.getAttribute("role") || "",
      type: (el.getAttribute("type") || "").toLowerCase(),
      in_page: el.tagName === "A" && (!href || href.startsWith("#") || href.startsWith("javascript:")),
      onclick: el.hasAttribute("onclick") || style.cursor === "pointer",
      box: [Math.round(rect.left), Math.round(rect.top), Math.round(rect.width), Math.round(rect.height)],
    });
  }
  window.__trlMarks = marks;
  const overlay = document.createElement("div");
  overlay.id = OVERLAY_ID;
  overlay.style.cssText = "position:fixed;inset:0;pointer-events:none;z-index:2147483647;";
  const colors = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080", "#9a6324", "#800000"];
  for (const e of elements) {
    const color = colors[e.mark % colors.length];
    const box = document.createElement("div");
    box.style.cssText = `position:fixed;left:${e.box[0]}px;top:${e.box[1]}px;width:${e.box[2]}px;` +
      `height:${e.box[3]}px;border:2px solid ${color};box-sizing:border-box;`;
    const tag = document.createElement("span");
    tag.textContent = String(e.mark);
    tag.style.cssText = `position:absolute;left:-2px;top:-18px;background:${color};color:#fff;` +
      "font:bold 12px/16px sans-serif;padding:0 4px;";
    box.appendChild(tag);
    overlay.appendChild(box);
  }
  document.documentElement.appendChild(overlay);
  return elements;
}
