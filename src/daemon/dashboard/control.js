'use strict';
// Control: the daemon's bearer token, entered once and held in this closure only, for cancelling runs.
// It never goes into a URL, localStorage, sessionStorage or a cookie: reloading the page forgets it.
// The CSP keeps it on this origin (connect-src 'self'), and the form never submits (form-action 'none').

const control = (() => {
  let token = null;
  const form = document.querySelector('#token-form');
  const input = document.querySelector('#token-input');
  const note = document.querySelector('#token-note');
  const forget = document.querySelector('#token-forget');
  const listeners = [];

  function show() {
    input.hidden = token !== null;
    form.querySelector('button[type=submit]').hidden = token !== null;
    forget.hidden = token === null;
    note.textContent = token === null ? 'read-only' : 'controls unlocked (token held in this tab only)';
    document.body.classList.toggle('unlocked', token !== null);
    for (const f of listeners) f();
  }
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value.trim();
    input.value = '';
    if (value) token = value;
    show();
  });
  forget.addEventListener('click', () => { token = null; show(); });
  show();

  /** Cancels a run after the user confirms; reports the outcome in `say`. */
  async function cancelRun(id, say) {
    if (token === null) {
      say('enter the daemon token (its home\'s token file) in the header first');
      input.focus();
      return false;
    }
    if (!window.confirm(`Cancel run ${id}? A running run stops after its current step, with a checkpoint.`)) return false;
    const response = await fetch('/runs/' + encodeURIComponent(id) + '/cancel', { method: 'POST', headers: { authorization: 'Bearer ' + token }, cache: 'no-store' });
    const body = await response.json().catch(() => ({}));
    if (response.status === 401) {
      token = null;
      show();
      say('the daemon refused the token; enter it again');
      return false;
    }
    if (!response.ok) { say(`cancel refused: ${body.error || response.status}`); return false; }
    say(body.state === 'cancelled' ? `run ${id} cancelled` : `run ${id}: cancel requested, it stops after its current step`);
    return true;
  }

  return { cancelRun, unlocked: () => token !== null, onChange: (f) => listeners.push(f) };
})();
