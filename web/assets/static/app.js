// walq dashboard: live reload of the figures and "select all". No framework.
(function () {
  "use strict";
  var main = document.getElementById("main");
  function busy() {
    // Never swap the page under someone choosing jobs or typing.
    if (document.hidden) return true;
    if (main.querySelector("input[type=checkbox]:checked")) return true;
    var a = document.activeElement;
    return a && main.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }
  function wire() {
    var all = main.querySelectorAll("input.all");
    all.forEach(function (box) {
      box.addEventListener("change", function () {
        box.closest("form").querySelectorAll("input[name=id]").forEach(function (c) { c.checked = box.checked; });
      });
    });
    var btn = document.getElementById("live");
    if (btn) btn.addEventListener("click", function () {
      live = !live;
      btn.setAttribute("aria-pressed", String(live));
      btn.textContent = live ? "● live" : "○ paused";
    });
  }
  var live = true;
  var period = main && parseInt(main.getAttribute("data-refresh") || "0", 10);
  if (period > 0) {
    setInterval(function () {
      if (!live || busy()) return;
      fetch(location.href, { headers: { "X-Walq-Live": "1" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html || !live || busy()) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("main");
          if (!fresh) return;
          main.innerHTML = fresh.innerHTML;
          var btn = document.getElementById("live");
          if (btn) { btn.setAttribute("aria-pressed", "true"); btn.textContent = "● live"; }
          wire();
        })
        .catch(function () {});
    }, period);
  }
  if (main) wire();
})();
