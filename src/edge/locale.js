/* edgeseo language switcher and locale suggestion banner.
   The page itself is the same for every visitor; this script makes the switcher's links remember
   the choice and asks /__edgeseo/suggest whether to offer another language. */
(function () {
  "use strict";
  var d = document;
  var current = d.documentElement.getAttribute("lang") || "en";

  function go(code, url) {
    return "/__edgeseo/lang?l=" + encodeURIComponent(code) + "&next=" + encodeURIComponent(url);
  }
  function el(tag, attrs, text) {
    var e = d.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    return e;
  }
  function css() {
    var s = el("style");
    s.textContent =
      ".edgeseo-banner{display:flex;flex-wrap:wrap;gap:8px;" +
      "align-items:center;justify-content:center;padding:10px 14px;background:#0b5394;color:#fff;font:15px/1.4 system-ui,sans-serif}" +
      ".edgeseo-banner a,.edgeseo-banner button{padding:6px 12px;border-radius:6px;border:1px solid #fff;font:inherit;cursor:pointer}" +
      ".edgeseo-banner a{background:#fff;color:#0b5394;text-decoration:none}" +
      ".edgeseo-banner button{background:transparent;color:#fff}";
    d.head.appendChild(s);
  }
  // The switcher's links are real links to each version of the page (crawlable, and working
  // without this script); a click goes through /__edgeseo/lang so the choice is remembered.
  function switcher() {
    var links = d.querySelectorAll(".edgeseo-lang a[lang]");
    for (var i = 0; i < links.length; i++) {
      links[i].addEventListener("click", function (e) {
        if (e.button || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        var url = new URL(this.href);
        e.preventDefault();
        location.href = go(this.getAttribute("lang").slice(0, 2), url.pathname + url.search);
      });
    }
  }
  function banner() {
    if (current !== "en" || !window.fetch) return;
    fetch("/__edgeseo/suggest?path=" + encodeURIComponent(location.pathname + location.search), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (s) {
        if (!s || !s.locale) return;
        var bar = el("div", { "class": "edgeseo-banner", role: "region", "aria-label": s.message, lang: s.locale });
        bar.appendChild(el("span", {}, s.message));
        bar.appendChild(el("a", { href: go(s.locale, s.url), rel: "nofollow" }, s.accept));
        var no = el("button", { type: "button" }, s.dismiss);
        no.addEventListener("click", function () {
          d.cookie = "edgeseo_locale=en; Path=/; Max-Age=31536000; SameSite=Lax";
          bar.remove();
        });
        bar.appendChild(no);
        d.body.insertBefore(bar, d.body.firstChild);
      })
      .catch(function () {});
  }
  css();
  switcher();
  banner();
})();
