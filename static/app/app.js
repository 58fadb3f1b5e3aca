// NHS.UK frontend components, plus the idle-session warning.
import { initAll } from "../vendor/nhsuk/nhsuk-frontend.min.js";

initAll();

function startSessionTimeout(dialog) {
  const idleMs = Number(dialog.dataset.idleSeconds) * 1000;
  const warningMs = Number(dialog.dataset.warningSeconds) * 1000;
  const countdown = dialog.querySelector("[data-countdown]");
  const form = dialog.querySelector("form");
  let warnTimer;
  let signOutTimer;
  let tick;

  function describe(ms) {
    const seconds = Math.max(0, Math.round(ms / 1000));
    if (seconds >= 60) {
      const minutes = Math.ceil(seconds / 60);
      return `${minutes} minute${minutes === 1 ? "" : "s"}`;
    }
    return `${seconds} second${seconds === 1 ? "" : "s"}`;
  }

  function schedule() {
    clearTimeout(warnTimer);
    clearTimeout(signOutTimer);
    clearInterval(tick);
    warnTimer = setTimeout(() => {
      const deadline = Date.now() + warningMs;
      countdown.textContent = describe(warningMs);
      dialog.showModal();
      tick = setInterval(() => { countdown.textContent = describe(deadline - Date.now()); }, 1000);
    }, Math.max(0, idleMs - warningMs));
    signOutTimer = setTimeout(() => { window.location.assign(dialog.dataset.signedOutUrl); }, idleMs);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin",
    });
    if (response.ok) {
      dialog.close();
      schedule();
    } else {
      window.location.assign(dialog.dataset.signedOutUrl);
    }
  });
  schedule();
}

const sessionDialog = document.getElementById("session-timeout");
if (sessionDialog) startSessionTimeout(sessionDialog);
