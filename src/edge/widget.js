// edgeseo chat widget: a launcher button and a chat panel talking to the site's chat endpoint.
// No dependencies; styles live in a shadow root so the host page's CSS cannot reach them.
(function () {
  "use strict";
  var me = document.currentScript || document.querySelector('script[src*="/__edgeseo/widget.js"]');
  if (!me || document.getElementById("edgeseo-chat")) return;
  var endpoint = me.getAttribute("data-endpoint") || "/api/chat";
  var locale = (me.getAttribute("data-locale") || document.documentElement.lang || "en").slice(0, 2).toLowerCase();
  var T = {
    en: ["Chat with us", "Customer service", "Type your question…", "Send", "Close chat",
      "Hello! Ask us about prices, MOQ, samples, shipping or certificates.", "Typing…",
      "Sorry, the chat is unavailable. Please try again.", "Too many messages. Please wait {s} s.", "Your message",
      "That message is too long. Please shorten it."],
    id: ["Chat dengan kami", "Layanan pelanggan", "Ketik pertanyaan Anda…", "Kirim", "Tutup chat",
      "Halo! Tanya kami soal harga, MOQ, sampel, pengiriman atau sertifikat.", "Sedang mengetik…",
      "Maaf, chat sedang tidak tersedia. Silakan coba lagi.", "Terlalu banyak pesan. Tunggu {s} detik.", "Pesan Anda",
      "Pesan terlalu panjang. Mohon persingkat."],
    vi: ["Chat với chúng tôi", "Chăm sóc khách hàng", "Nhập câu hỏi của bạn…", "Gửi", "Đóng chat",
      "Xin chào! Hỏi chúng tôi về giá, MOQ, hàng mẫu, vận chuyển hoặc chứng nhận.", "Đang trả lời…",
      "Xin lỗi, chat hiện không khả dụng. Vui lòng thử lại.", "Quá nhiều tin nhắn. Vui lòng đợi {s} giây.", "Tin nhắn của bạn",
      "Tin nhắn quá dài. Vui lòng rút gọn."],
    th: ["แชทกับเรา", "ฝ่ายบริการลูกค้า", "พิมพ์คำถามของคุณ…", "ส่ง", "ปิดแชท",
      "สวัสดีค่ะ สอบถามราคา MOQ ตัวอย่างสินค้า การจัดส่ง หรือใบรับรองได้เลยค่ะ", "กำลังพิมพ์…",
      "ขออภัย แชทไม่พร้อมใช้งาน กรุณาลองใหม่อีกครั้ง", "ส่งข้อความมากเกินไป กรุณารอ {s} วินาที", "ข้อความของคุณ",
      "ข้อความยาวเกินไป กรุณาพิมพ์ให้สั้นลง"]
  };
  var t = T[locale] || T.en;
  if (!T[locale]) locale = "en";
  var session;
  try {
    session = sessionStorage.getItem("edgeseo-chat") || "";
    if (!session) {
      session = Array.prototype.map.call(crypto.getRandomValues(new Uint8Array(12)), function (b) {
        return (b + 256).toString(16).slice(1);
      }).join("");
      sessionStorage.setItem("edgeseo-chat", session);
    }
  } catch (e) { session = undefined; }

  var host = document.createElement("div");
  host.id = "edgeseo-chat";
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    "<style>" +
    ":host{all:initial}*{box-sizing:border-box;font:15px/1.4 system-ui,sans-serif}" +
    ".l{position:fixed;right:16px;bottom:16px;z-index:2147483000;min-width:48px;min-height:48px;padding:0 18px;border:0;border-radius:24px;background:#0b5fff;color:#fff;cursor:pointer;box-shadow:0 2px 8px #0004}" +
    ".p{position:fixed;right:16px;bottom:76px;z-index:2147483001;width:360px;max-width:calc(100vw - 32px);height:480px;max-height:calc(100vh - 96px);display:flex;flex-direction:column;background:#fff;color:#111;border-radius:12px;box-shadow:0 4px 24px #0005;overflow:hidden}" +
    ".p[hidden]{display:none}header{display:flex;align-items:center;justify-content:space-between;padding:10px 14px;background:#0b5fff;color:#fff}" +
    "h2{margin:0;font-weight:600}.x{min-width:44px;min-height:44px;border:0;background:none;color:inherit;font-size:22px;cursor:pointer}" +
    ".g{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px}" +
    ".m{max-width:85%;padding:8px 12px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere}" +
    ".m a{color:inherit;text-decoration:underline}" +
    ".u{align-self:flex-end;background:#0b5fff;color:#fff}.b{align-self:flex-start;background:#eef1f6}" +
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #ddd}" +
    "input{flex:1;min-width:0;min-height:44px;padding:0 12px;border:1px solid #999;border-radius:8px}" +
    "form button{min-height:44px;padding:0 16px;border:0;border-radius:8px;background:#0b5fff;color:#fff;cursor:pointer}" +
    ":focus-visible{outline:3px solid #111;outline-offset:2px;box-shadow:0 0 0 2px #fff}" +
    ".v{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}" +
    "@media (max-width:480px){.p{inset:0;width:100%;max-width:none;height:100%;max-height:none;border-radius:0}}" +
    ":host(.docked){display:flex;justify-content:flex-end}:host(.docked) .l{position:static;box-shadow:none}" +
    "</style>" +
    '<button class="l" type="button" aria-haspopup="dialog" aria-expanded="false" aria-controls="p"></button>' +
    '<div class="p" id="p" role="dialog" aria-labelledby="h" hidden>' +
    '<header><h2 id="h"></h2><button class="x" type="button">×</button></header>' +
    '<div class="g" role="log" aria-live="polite"></div>' +
    '<form><label class="v" for="i"></label><input id="i" autocomplete="off" maxlength="2000">' +
    '<button type="submit"></button></form></div>';
  var q = function (s) { return root.querySelector(s); };
  var launcher = q(".l"), panel = q(".p"), log = q(".g"), form = q("form"), input = q("input"), close = q(".x");
  launcher.textContent = t[0];
  q("h2").textContent = t[1];
  input.placeholder = t[2];
  q("label").textContent = t[9];
  q("form button").textContent = t[3];
  close.setAttribute("aria-label", t[4]);
  panel.setAttribute("lang", locale);

  function say(text, who, lang) {
    var m = document.createElement("div");
    m.className = "m " + who;
    m.textContent = text;
    if (lang) m.setAttribute("lang", lang);
    log.appendChild(m);
    log.scrollTop = log.scrollHeight;
    return m;
  }
  // Shows an answer with its links clickable: absolute http(s) URLs and site paths ("/id/...")
  // become anchors; everything else stays text, so nothing the answer holds is parsed as HTML.
  var linkPattern = /(^|\s)(https?:\/\/[^\s<>"]+|\/(?!\/)[^\s<>"]*)/g;
  function show(m, text) {
    m.textContent = "";
    var at = 0, match;
    linkPattern.lastIndex = 0;
    while ((match = linkPattern.exec(text)) !== null) {
      var url = match[2].replace(/[.,;:!?)\]]+$/, "");
      var start = match.index + match[1].length;
      if (url.length < 2) continue;
      m.appendChild(document.createTextNode(text.slice(at, start)));
      var a = document.createElement("a");
      a.href = url;
      a.textContent = url;
      if (url.charAt(0) !== "/") { a.target = "_blank"; a.rel = "noopener noreferrer"; }
      m.appendChild(a);
      at = start + url.length;
    }
    m.appendChild(document.createTextNode(text.slice(at)));
  }
  function toggle(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    if (open) {
      if (!log.firstChild) say(t[5], "b", locale);
      input.focus();
    } else {
      launcher.focus();
    }
  }
  launcher.addEventListener("click", function () { toggle(panel.hidden); });
  close.addEventListener("click", function () { toggle(false); });
  panel.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { e.preventDefault(); toggle(false); }
  });

  // A text/event-stream reply arrives in pieces: each `data:` line extends the answer.
  function stream(resp, m) {
    var reader = resp.body.getReader(), decoder = new TextDecoder(), buf = "";
    m.textContent = "";
    // JSON data with `answer` replaces the text, with `delta` or `text` extends it; other JSON
    // (metadata, end markers) is not for the buyer's eyes. Anything else is text.
    function piece(data) {
      var j;
      try { j = JSON.parse(data); } catch (e) { j = undefined; }
      if (j !== null && typeof j === "object") {
        if (typeof j.answer === "string") m.textContent = j.answer;
        else if (typeof j.delta === "string") m.textContent += j.delta;
        else if (typeof j.text === "string") m.textContent += j.text;
      } else if (data !== "[DONE]") {
        m.textContent += data;
      }
    }
    function pump() {
      return reader.read().then(function (r) {
        buf += decoder.decode(r.value || new Uint8Array(), { stream: !r.done });
        var events = buf.split(/\r\n\r\n|\n\n|\r\r/);
        buf = r.done ? "" : events.pop();
        events.forEach(function (ev) {
          var data = ev.split(/\r\n|\n|\r/).filter(function (l) { return l.indexOf("data:") === 0; })
            .map(function (l) { return l.slice(5).replace(/^ /, ""); });
          if (data.length) piece(data.join("\n"));
        });
        log.scrollTop = log.scrollHeight;
        if (!r.done) return pump();
        show(m, m.textContent);
      });
    }
    return pump();
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    say(text, "u");
    var m = say(t[6], "b");
    m.setAttribute("aria-busy", "true");
    fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ message: text, session: session, locale: locale })
    }).then(function (resp) {
      var type = resp.headers.get("content-type") || "";
      var lang = resp.headers.get("x-edgeseo-language");
      if (lang) m.setAttribute("lang", lang);
      m.setAttribute("data-intent", resp.headers.get("x-edgeseo-intent") || "");
      if (resp.status === 413) {
        m.textContent = t[10];
      } else if (resp.status === 429) {
        m.textContent = t[8].replace("{s}", resp.headers.get("retry-after") || "1");
      } else if (!resp.ok) {
        m.textContent = t[7];
      } else if (type.indexOf("text/event-stream") === 0 && resp.body) {
        return stream(resp, m);
      } else if (type.indexOf("json") >= 0) {
        return resp.json().then(function (j) {
          show(m, typeof j.answer === "string" ? j.answer : t[7]);
          if (j.language) m.setAttribute("lang", j.language);
          if (j.intent) m.setAttribute("data-intent", j.intent);
        });
      } else {
        return resp.text().then(function (s) { m.textContent = s; });
      }
    }).catch(function () {
      // A stream cut short keeps what arrived, with the apology after it.
      var partial = m.textContent && m.textContent !== t[6];
      m.textContent = partial ? m.textContent + "\n" + t[7] : t[7];
    }).then(function () {
      m.removeAttribute("aria-busy");
      log.scrollTop = log.scrollHeight;
    });
  });
  // On a phone a floating button would sit over the page's prices and forms: there the launcher
  // docks at the top, in the language switcher's bar (or a strip of its own: a switcher placed in
  // the site's navigation may sit in a collapsed menu), in one corner with it; the open panel
  // still fills the screen.
  var phone = window.matchMedia ? window.matchMedia("(max-width: 480px)") : null;
  function place() {
    var docked = !!(phone && phone.matches);
    var bar = document.querySelector(".edgeseo-lang-bar");
    host.className = docked ? "docked" : "";
    if (docked && bar) {
      if (host.parentNode !== bar) bar.appendChild(host);
    } else if (docked) {
      if (document.body.firstChild !== host) document.body.insertBefore(host, document.body.firstChild);
    } else if (host.parentNode !== document.body || host.nextSibling) {
      document.body.appendChild(host);
    }
  }
  place();
  if (phone) {
    if (phone.addEventListener) phone.addEventListener("change", place);
    else phone.addListener(place);
  }
})();
