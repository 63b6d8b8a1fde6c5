/* LIANHE site script: mobile menu, product tabs, inquiry form check. No external calls. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Mobile menu toggle
  var toggle = document.querySelector(".menu-toggle");
  var nav = document.getElementById("main-nav");
  if (toggle && nav) {
    toggle.addEventListener("click", function () {
      var open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  // Product page tabs (all panels stay visible when JS is off)
  var tabList = document.querySelector("[data-tabs]");
  if (tabList) {
    var buttons = tabList.querySelectorAll("button[role='tab']");
    var select = function (btn) {
      for (var i = 0; i < buttons.length; i++) {
        var b = buttons[i];
        var panel = document.getElementById(b.getAttribute("aria-controls"));
        var on = b === btn;
        b.setAttribute("aria-selected", on ? "true" : "false");
        b.tabIndex = on ? 0 : -1;
        if (panel) { panel.hidden = !on; }
      }
    };
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function (e) { select(e.currentTarget); });
    }
    var fromHash = window.location.hash ? tabList.querySelector("button[aria-controls='" + window.location.hash.slice(1) + "']") : null;
    select(fromHash || buttons[0]);
  }

  // Inquiry form: light client-side check before posting to /contact
  var forms = document.querySelectorAll("form.inquiry-form");
  for (var f = 0; f < forms.length; f++) {
    forms[f].addEventListener("submit", function (e) {
      var form = e.currentTarget;
      var ok = true;
      var required = form.querySelectorAll("[required]");
      for (var r = 0; r < required.length; r++) {
        var el = required[r];
        var bad = !el.value.trim() || (el.type === "email" && el.value.indexOf("@") < 1);
        el.classList.toggle("field-error", bad);
        if (bad) { ok = false; }
      }
      var status = form.querySelector(".form-status");
      if (!ok) {
        e.preventDefault();
        if (status) { status.textContent = "Please fill in the highlighted fields."; }
      } else if (status) {
        status.textContent = "Sending your inquiry...";
      }
    });
  }
})();
