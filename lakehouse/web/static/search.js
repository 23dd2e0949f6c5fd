// Search as you type: 250 ms after the last keystroke, fetch the results fragment (HTML that
// the server rendered and escaped) and put it in place. Older answers that arrive late are dropped.
"use strict";
const form = document.getElementById("search-form");
const box = document.getElementById("q");
const results = document.getElementById("results");
const DEBOUNCE_MS = 250;
let timer = null;
let latest = 0;

async function search() {
  const q = box.value;
  const asked = ++latest;
  const url = new URL(form.dataset.endpoint, window.location.href);
  url.searchParams.set("q", q);
  results.setAttribute("aria-busy", "true");
  try {
    const response = await fetch(url, { headers: { Accept: "text/html" } });
    const body = await response.text();
    if (asked !== latest) return;
    results.innerHTML = body;
    const here = new URL(window.location.href);
    if (q) here.searchParams.set("q", q); else here.searchParams.delete("q");
    window.history.replaceState(null, "", here);
  } catch (error) {
    if (asked === latest) results.textContent = "Search failed: " + error.message;
  } finally {
    if (asked === latest) results.removeAttribute("aria-busy");
  }
}

box.addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(search, DEBOUNCE_MS);
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(timer);
  search();
});
