// Proof of work for the letter form, self-hosted (ALTCHA's scheme, written here, no third-party code):
// fetch a challenge, find the number whose SHA-256 with the salt matches, send it with the form.
// Without JavaScript the form still works; the server then applies a stricter rate limit.
(function () {
  "use strict";
  var form = document.getElementById("letter-form");
  var field = document.getElementById("altcha");
  if (!form || !field || !window.crypto || !window.crypto.subtle || !window.TextEncoder) { return; }

  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  async function solve(challenge) {
    var encoder = new TextEncoder();
    for (var number = 0; number <= challenge.maxnumber; number += 1) {
      var digest = await window.crypto.subtle.digest("SHA-256", encoder.encode(challenge.salt + number));
      if (hex(digest) === challenge.challenge) { return number; }
    }
    return null;
  }

  var solved = fetch("/altcha/challenge", { credentials: "same-origin" })
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

  form.addEventListener("submit", function (event) {
    if (field.value) { return; }
    event.preventDefault();
    solved.then(function () { form.submit(); });
  });
})();
