// The admin view's live part: /admin/live redrawn every second, keys made and revoked through
// the HTTP API with the admin session's cookie. Loaded by /admin only, never by a board.
"use strict";

const live = document.getElementById("admin-live");
const made = document.getElementById("admin-made");

async function redraw() {
  try {
    const answer = await fetch("/admin/live", { credentials: "same-origin", cache: "no-store" });
    if (answer.ok) live.innerHTML = await answer.text();
    else if (answer.status === 401 || answer.status === 403) location.assign("/login?next=/admin");
  } catch {
    // The server is restarting: the next turn tries again.
  }
  setTimeout(redraw, 1000);
}
setTimeout(redraw, 1000);

async function api(method, path, body) {
  const answer = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(json.message || `${answer.status} ${answer.statusText}`);
  return json;
}

function say(...lines) {
  made.replaceChildren(
    ...lines.map(([label, value]) => {
      const line = document.createElement("p");
      line.textContent = label;
      if (value) {
        const code = document.createElement("code");
        code.textContent = value;
        code.className = "admin-secret";
        line.append(" ", code);
      }
      return line;
    }),
  );
}

document.getElementById("admin-make-key").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const name = form.elements.name.value.trim();
  const scopes = form.elements.scopes.value.split(/[\s,]+/).filter(Boolean);
  try {
    const key = await api("POST", "/api/v1/keys", { name, scopes });
    const links = key.scopes
      .filter((scope) => scope.startsWith("read:") && scope !== "read:*")
      .map((scope) => [`Share link for ${scope.slice(5)}:`, `${location.origin}/b/${scope.slice(5)}?token=${key.secret}`]);
    say([`Key ${key.id} (“${key.name}”) made. Its secret, shown this once:`, key.secret], ...links);
    form.reset();
  } catch (error) {
    say([`Not made: ${error.message}`]);
  }
});

live.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-revoke]");
  if (!button) return;
  button.disabled = true;
  try {
    const key = await api("DELETE", `/api/v1/keys/${encodeURIComponent(button.dataset.revoke)}`);
    say([`Key ${key.id} (“${key.name}”) revoked: it is refused from now on.`]);
  } catch (error) {
    button.disabled = false;
    say([`Not revoked: ${error.message}`]);
  }
});
