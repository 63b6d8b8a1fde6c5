/* edgeseo language switcher and locale suggestion banner.
   The page itself is the same for every visitor; this script reads the page's own hreflang links
   to draw the switcher and asks /__edgeseo/suggest whether to offer another language. */
(function () {
  "use strict";
  var d = document;
  var names = { "en": "English", "id-ID": "Bahasa Indonesia", "vi-VN": "Tiếng Việt", "th-TH": "ไทย" };
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
      ".edgeseo-lang{position:fixed;left:12px;bottom:12px;z-index:2147483000;font:14px/1.3 system-ui,sans-serif}" +
      ".edgeseo-lang select{padding:6px 8px;border:1px solid #888;border-radius:6px;background:#fff;color:#111}" +
      ".edgeseo-banner{position:fixed;left:0;right:0;top:0;z-index:2147483001;display:flex;flex-wrap:wrap;gap:8px;" +
      "align-items:center;justify-content:center;padding:10px 14px;background:#0b5394;color:#fff;font:15px/1.4 system-ui,sans-serif}" +
      ".edgeseo-banner a,.edgeseo-banner button{padding:6px 12px;border-radius:6px;border:1px solid #fff;font:inherit;cursor:pointer}" +
      ".edgeseo-banner a{background:#fff;color:#0b5394;text-decoration:none}" +
      ".edgeseo-banner button{background:transparent;color:#fff}";
    d.head.appendChild(s);
  }
  function switcher() {
    var links = d.querySelectorAll('link[rel="alternate"][hreflang]');
    var opts = [];
    for (var i = 0; i < links.length; i++) {
      var lang = links[i].getAttribute("hreflang");
      if (lang !== "x-default" && names[lang]) opts.push([lang, new URL(links[i].href).pathname + location.search]);
    }
    if (opts.length < 2) return;
    var label = el("label", { "class": "edgeseo-lang" });
    var select = el("select", { "aria-label": "Language" });
    opts.forEach(function (o) {
      var opt = el("option", { value: o[1] }, names[o[0]]);
      if (o[0] === current) opt.selected = true;
      opt.dataset.code = o[0].slice(0, 2);
      select.appendChild(opt);
    });
    select.addEventListener("change", function () {
      var opt = select.options[select.selectedIndex];
      location.href = go(opt.dataset.code, opt.value);
    });
    label.appendChild(select);
    d.body.appendChild(label);
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
