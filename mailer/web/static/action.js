// The letter form's own script (no third-party code). Everything it does is optional: without JavaScript
// the form still works, the server then applies a stricter rate limit.
(function () {
  "use strict";
  var form = document.getElementById("letter-form");
  if (!form) { return; }

  // An error summary gets the focus, so that a screen reader reads it and a keyboard starts from it.
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
    // Each link puts the cursor in its field (a closed "read or edit the letter" opens by itself).
    Array.prototype.forEach.call(summary.querySelectorAll("a[href^='#']"), function (link) {
      link.addEventListener("click", function (event) {
        var target = document.getElementById(link.getAttribute("href").slice(1));
        if (!target) { return; }
        event.preventDefault();
        var fold = target.closest("details");
        if (fold) { fold.open = true; }
        target.focus();
        target.scrollIntoView({ block: "center" });
      });
    });
  }

  // Who the letter reaches: once a governorate is picked, only the officials it adds are listed.
  var select = document.getElementById("governorate");
  function narrow() {
    var chosen = select.value;
    Array.prototype.forEach.call(form.querySelectorAll("[data-governorates]"), function (group) {
      group.hidden = Boolean(chosen) && group.getAttribute("data-governorates").split(" ").indexOf(chosen) < 0;
    });
  }
  if (select) { select.addEventListener("change", narrow); narrow(); }

  // Proof of work (ALTCHA's scheme, written here): fetch a challenge, find the number whose SHA-256 with
  // the salt matches, send it with the form.
  var field = document.getElementById("altcha");
  var solved = Promise.resolve();
  if (field && window.crypto && window.crypto.subtle && window.TextEncoder) {
    var hex = function (buffer) {
      return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
    };
    var solve = async function (challenge) {
      var encoder = new TextEncoder();
      for (var number = 0; number <= challenge.maxnumber; number += 1) {
        var digest = await window.crypto.subtle.digest("SHA-256", encoder.encode(challenge.salt + number));
        if (hex(digest) === challenge.challenge) { return number; }
      }
      return null;
    };
    solved = fetch("/altcha/challenge", { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (challenge) {
        return solve(challenge).then(function (number) {
          if (number === null) { return; }
          field.value = btoa(JSON.stringify({
            algorithm: challenge.algorithm, challenge: challenge.challenge, number: number,
            salt: challenge.salt, signature: challenge.signature
          }));
        });
      })
      .catch(function () { /* no proof: the stricter limit applies */ });
  }

  // Sent once: the button waits for the proof, then stays pressed; a second press does nothing.
  var button = document.getElementById("send");
  var status = document.getElementById("send-status");
  var label = button ? button.textContent : "";
  var sending = false;
  function busy(text) {
    if (button) { button.disabled = true; button.setAttribute("aria-disabled", "true"); }
    if (status) { status.textContent = text || ""; }
  }
  form.addEventListener("submit", function (event) {
    if (sending) { event.preventDefault(); return; }
    sending = true;
    if (field && !field.value) {
      event.preventDefault();
      busy(form.getAttribute("data-waiting"));
      solved.then(function () { busy(form.getAttribute("data-busy")); form.submit(); });
      return;
    }
    busy(form.getAttribute("data-busy"));
  });
  // Back from the next page (the browser's page cache): the form is usable again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted || !button) { return; }
    sending = false;
    button.disabled = false;
    button.removeAttribute("aria-disabled");
    button.textContent = label;
    if (status) { status.textContent = ""; }
  });
})();
