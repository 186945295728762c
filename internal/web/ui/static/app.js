// Hallmark console: small progressive enhancements; every page works without it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  // Filters submit when a select or checkbox changes.
  document.querySelectorAll(".autosubmit").forEach(function (el) {
    el.addEventListener("change", function () { if (el.form) el.form.submit(); });
  });
  // Copy buttons (hidden without JavaScript; the text is shown anyway).
  document.querySelectorAll("button.copy").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      // The text is the button's data-copy, else its command block's.
      var pre = b.parentNode && b.parentNode.querySelector("pre");
      var text = b.getAttribute("data-copy") || (pre ? pre.textContent : "");
      var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () { b.textContent = "Select and copy"; });
      }
    });
  });
})();
