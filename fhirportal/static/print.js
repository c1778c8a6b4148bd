// The printable summary's "Print this page" button: shown only when scripts run (the page says how to
// print without it). Loaded from this origin: the page's CSP allows no inline script.
(function () {
  var button = document.getElementById("print-button");
  if (!button) return;
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
})();
