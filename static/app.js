// PayFuse console behaviour. Loaded as a file: the Content-Security-Policy
// allows no inline script.
(function () {
  "use strict";

  // Sidebar: collapse on wide screens (remembered), slide in on narrow ones.
  function applySidebar() {
    var collapsed = localStorage.getItem("pf-sidebar") === "collapsed";
    document.documentElement.classList.toggle("sidebar-collapsed", collapsed);
  }
  applySidebar();

  document.addEventListener("click", function (ev) {
    var t = ev.target.closest("[data-toggle]");
    if (t) {
      var what = t.getAttribute("data-toggle");
      if (what === "sidebar") {
        if (window.matchMedia("(min-width: 1024px)").matches) {
          var on = !document.documentElement.classList.contains("sidebar-collapsed");
          localStorage.setItem("pf-sidebar", on ? "collapsed" : "open");
          applySidebar();
        } else {
          document.documentElement.classList.toggle("sidebar-open");
        }
      } else {
        var menu = document.getElementById(what);
        if (menu) {
          var hidden = menu.classList.toggle("hidden");
          t.setAttribute("aria-expanded", hidden ? "false" : "true");
        }
      }
      ev.preventDefault();
      return;
    }
    // Close open menus on an outside click.
    document.querySelectorAll("[data-menu]:not(.hidden)").forEach(function (m) {
      if (!m.contains(ev.target)) { m.classList.add("hidden"); }
    });
    // Rows that open a detail page.
    var row = ev.target.closest("tr[data-href]");
    if (row && !ev.target.closest("a,button,input,select,form")) {
      window.location.href = row.getAttribute("data-href");
    }
  });

  // Destructive actions say what will happen and ask first.
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); }
  }, true);

  // Paired inputs (a weight's slider and its number box) follow each other.
  document.addEventListener("input", function (ev) {
    var id = ev.target.getAttribute && ev.target.getAttribute("data-sync");
    var other = id && document.getElementById(id);
    if (other) { other.value = ev.target.value; }
  }, true);

  // Language switch submits on change.
  document.addEventListener("change", function (ev) {
    if (ev.target.matches("[data-autosubmit]")) { ev.target.form.requestSubmit(); }
  });

  // "/" focuses the page's search box; Escape closes menus.
  document.addEventListener("keydown", function (ev) {
    var tag = (ev.target.tagName || "").toLowerCase();
    if (ev.key === "/" && tag !== "input" && tag !== "textarea" && tag !== "select" && !ev.target.isContentEditable) {
      var s = document.querySelector("[data-search]");
      if (s) { ev.preventDefault(); s.focus(); s.select(); }
    }
    if (ev.key === "Escape") {
      document.querySelectorAll("[data-menu]").forEach(function (m) { m.classList.add("hidden"); });
      document.documentElement.classList.remove("sidebar-open");
    }
  });

  // Copy buttons (used for one-time passwords).
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-copy]");
    if (!b || !navigator.clipboard) { return; }
    var src = document.getElementById(b.getAttribute("data-copy"));
    if (src) { navigator.clipboard.writeText(src.textContent.trim()); b.textContent = b.getAttribute("data-copied") || "✓"; }
  });

  // Statement uploads: show the bytes sent, then go where the server says
  // (it answers an HX-Request upload with HX-Redirect to the progress or
  // result page; anything else — a form error — replaces the page).
  document.addEventListener("submit", function (ev) {
    var form = ev.target, bar = form.querySelector && form.querySelector("#upload-progress");
    if (ev.defaultPrevented || !form.matches("form[data-upload-progress]") || !bar) { return; }
    ev.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("HX-Request", "true");
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) { bar.value = Math.round(e.loaded * 100 / e.total); }
    });
    xhr.addEventListener("load", function () {
      var to = xhr.getResponseHeader("HX-Redirect");
      if (to) { window.location.href = to; return; }
      document.open(); document.write(xhr.responseText); document.close();
    });
    xhr.addEventListener("error", function () { form.submit(); });
    bar.classList.remove("hidden");
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    xhr.send(new FormData(form));
  }, false);
})();
