//! Accessibility basics measured in the browser: every form control has a
//! label, text keeps WCAG AA contrast, and the page never scrolls sideways.

use anyhow::Result;
use serde_json::{json, Value};

use crate::webdriver::Browser;

/// Inputs, selects and text areas without a label or ARIA name; buttons
/// and links without text.
const UNLABELLED: &str = r#"
const bad = [];
for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
  if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
    bad.push(el.id || el.name || el.outerHTML.slice(0, 80));
}
for (const el of document.querySelectorAll('button, a[href]')) {
  if (!el.textContent.trim() && !el.getAttribute('aria-label')) bad.push(el.outerHTML.slice(0, 80));
}
return bad;
"#;

/// Visible text whose contrast with its background is under 4.5:1 (3:1 for
/// large text); backgrounds are taken from the nearest opaque ancestor.
const LOW_CONTRAST: &str = r#"
const parse = (s) => {
  const m = /rgba?\(([^)]+)\)/.exec(s);
  if (!m) return null;
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
  return { rgb: p.slice(0, 3), a: p.length > 3 ? p[3] : 1 };
};
const lum = (rgb) => {
  const [r, g, b] = rgb.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const background = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0.9) return c.rgb;
  }
  return [255, 255, 255];
};
const bad = [];
for (const el of document.querySelectorAll('body *')) {
  if (!el.getClientRects().length || el.closest(':disabled')) continue;
  const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own) continue;
  const cs = getComputedStyle(el);
  if (cs.visibility === 'hidden') continue;
  const fg = parse(cs.color);
  if (!fg) continue;
  const [a, b] = [lum(fg.rgb), lum(background(el))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(cs.fontSize);
  const large = size >= 24 || (parseInt(cs.fontWeight, 10) >= 700 && size >= 18.66);
  if (ratio < (large ? 3 : 4.5))
    bad.push(`${el.tagName.toLowerCase()}.${el.className}: ${ratio.toFixed(2)} "${el.textContent.trim().slice(0, 40)}"`);
}
return bad;
"#;

/// How far the page is wider than the window (0: no sideways scrolling).
const OVERFLOW: &str =
    "return Math.max(0, document.documentElement.scrollWidth - document.documentElement.clientWidth);";

fn strings(v: Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Controls without a name on the current page.
pub async fn unlabelled(b: &Browser) -> Result<Vec<String>> {
    Ok(strings(b.js(UNLABELLED, json!([])).await?))
}

/// Text under AA contrast on the current page.
pub async fn low_contrast(b: &Browser) -> Result<Vec<String>> {
    Ok(strings(b.js(LOW_CONTRAST, json!([])).await?))
}

/// Pixels the current page overflows the window sideways.
pub async fn overflow_px(b: &Browser) -> Result<i64> {
    Ok(b.js(OVERFLOW, json!([]))
        .await?
        .as_i64()
        .unwrap_or(i64::MAX))
}
