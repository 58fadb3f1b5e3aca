// Paying by card (templates/budgets/card/payment.jinja).
//
// The card fields have no name, so the browser never posts them to our server: on submit this sends them
// straight to Stripe (POST /v1/tokens with the publishable key), puts the token it gets back in the hidden
// field and only then submits the form. Problems show in an NHS error summary, as the server's own would.
// While a payment is being confirmed, the result page asks every two seconds whether it has arrived.

const MESSAGES = {
  numberMissing: "Enter your card number",
  number: "Enter your card number as it appears on your card, for example 4242 4242 4242 4242",
  month: "Enter the expiry month as a number from 1 to 12",
  year: "Enter the expiry year, for example 28",
  expired: "Your card has expired. Use a different card",
  cvc: "Enter the 3 digit security code from the back of your card",
  declined: "Your card was declined. No money has been taken. Use a different card or contact your card company",
  unreachable: "The card payment service could not be reached. No money has been taken. Try again in a few minutes",
  other: "Check your card details and try again. No money has been taken",
};

// Stripe's error codes for a token, and the field each is about.
const STRIPE_CODES = {
  incorrect_number: ["card-number", MESSAGES.number],
  invalid_number: ["card-number", MESSAGES.number],
  invalid_expiry_month: ["card-exp-month", MESSAGES.month],
  invalid_expiry_year: ["card-exp-year", MESSAGES.year],
  expired_card: ["card-exp-month", MESSAGES.expired],
  invalid_cvc: ["card-cvc", MESSAGES.cvc],
  incorrect_cvc: ["card-cvc", MESSAGES.cvc],
  card_declined: ["card-number", MESSAGES.declined],
};

function digits(input) {
  return input.value.replace(/[\s-]/g, "");
}

function luhn(number) {
  let sum = 0;
  for (let i = 0; i < number.length; i += 1) {
    let digit = Number(number[number.length - 1 - i]);
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

function readCard(form) {
  const field = (id) => form.querySelector(`#${id}`);
  const year = digits(field("card-exp-year"));
  return {
    number: digits(field("card-number")),
    month: digits(field("card-exp-month")),
    year: year.length === 2 ? `20${year}` : year,
    cvc: digits(field("card-cvc")),
  };
}

// What can be told without asking Stripe; Stripe checks the rest.
function checkCard(card) {
  const problems = [];
  if (!card.number) problems.push(["card-number", MESSAGES.numberMissing]);
  else if (!/^\d{12,19}$/.test(card.number) || !luhn(card.number)) problems.push(["card-number", MESSAGES.number]);
  const month = Number(card.month);
  const validMonth = /^\d{1,2}$/.test(card.month) && month >= 1 && month <= 12;
  if (!validMonth) problems.push(["card-exp-month", MESSAGES.month]);
  if (!/^\d{4}$/.test(card.year)) problems.push(["card-exp-year", MESSAGES.year]);
  else if (validMonth) {
    const now = new Date();
    const year = Number(card.year);
    if (year < now.getFullYear() || (year === now.getFullYear() && month < now.getMonth() + 1)) {
      problems.push(["card-exp-month", MESSAGES.expired]);
    }
  }
  if (!/^\d{3,4}$/.test(card.cvc)) problems.push(["card-cvc", MESSAGES.cvc]);
  return problems;
}

function clearErrors(form, summary) {
  summary.replaceChildren();
  form.querySelectorAll(".nhsuk-form-group--error").forEach((group) => group.classList.remove("nhsuk-form-group--error"));
  form.querySelectorAll(".nhsuk-input--error").forEach((input) => input.classList.remove("nhsuk-input--error"));
  form.querySelectorAll("[data-card-error]").forEach((message) => {
    const group = message.closest("[data-card-group]");
    group.querySelectorAll("input").forEach((input) => {
      const ids = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && id !== message.id);
      if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
      else input.removeAttribute("aria-describedby");
    });
    message.remove();
  });
  document.title = document.title.replace(/^Error: /, "");
}

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  Object.entries(attributes).forEach(([name, value]) => node.setAttribute(name, value));
  if (text) node.textContent = text;
  return node;
}

function showErrors(form, summary, problems) {
  clearErrors(form, summary);
  const list = element("ul", { class: "nhsuk-list nhsuk-error-summary__list" });
  problems.forEach(([fieldId, text]) => {
    const link = element("a", { href: `#${fieldId}` }, text);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      form.querySelector(`#${fieldId}`).focus();
    });
    const item = element("li", {});
    item.append(link);
    list.append(item);

    // The field's own message, once per group (month and year share the expiry group).
    const input = form.querySelector(`#${fieldId}`);
    const group = input.closest("[data-card-group]");
    group.classList.add("nhsuk-form-group--error");
    input.classList.add("nhsuk-input--error");
    if (!group.querySelector("[data-card-error]")) {
      const message = element("span", { class: "nhsuk-error-message", id: `${fieldId}-error`, "data-card-error": "" });
      message.append(element("span", { class: "nhsuk-u-visually-hidden" }, "Error:"), ` ${text}`);
      const hint = group.querySelector(".nhsuk-hint");
      hint.after(message);
      group.querySelectorAll("input").forEach((field) => {
        const ids = (field.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
        field.setAttribute("aria-describedby", [...ids, message.id].join(" "));
      });
    }
  });
  const body = element("div", { class: "nhsuk-error-summary__body" });
  body.append(list);
  const alert = element("div", { role: "alert" });
  alert.append(element("h2", { class: "nhsuk-error-summary__heading" }, "There is a problem"), body);
  const box = element("div", { class: "nhsuk-error-summary", tabindex: "-1" });
  box.append(alert);
  summary.append(box);
  document.title = `Error: ${document.title}`;
  box.focus();
}

async function createToken(form, card) {
  const body = new URLSearchParams({
    "card[number]": card.number,
    "card[exp_month]": card.month,
    "card[exp_year]": card.year,
    "card[cvc]": card.cvc,
    key: form.dataset.publishableKey,
  });
  let response;
  let answer;
  try {
    response = await fetch(`${form.dataset.stripeBase}/v1/tokens`, { method: "POST", body, credentials: "omit" });
    answer = await response.json();
  } catch {
    return { problem: ["card-number", MESSAGES.unreachable] };
  }
  if (response.ok && answer.id) return { token: answer.id };
  const error = answer.error || {};
  return { problem: STRIPE_CODES[error.decline_code] || STRIPE_CODES[error.code] || ["card-number", MESSAGES.other] };
}

function setUpCardForm(form) {
  const summary = document.getElementById("card-errors");
  const token = form.querySelector("#card-token");
  let sending = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (sending) return;
    const card = readCard(form);
    const problems = checkCard(card);
    if (problems.length) {
      showErrors(form, summary, problems);
      return;
    }
    sending = true;
    const result = await createToken(form, card);
    if (result.problem) {
      sending = false;
      showErrors(form, summary, [result.problem]);
      return;
    }
    clearErrors(form, summary);
    token.value = result.token;
    form.submit(); // does not fire "submit" again; only the token and the CSRF token are posted
  });
}

function pollWhileConfirming(note) {
  let tries = 0;
  const ask = async () => {
    tries += 1;
    try {
      const response = await fetch(note.dataset.pollUrl, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      const answer = await response.json();
      if (answer.status !== "processing") {
        window.location.reload();
        return;
      }
    } catch {
      // The "Check again" link still works.
    }
    if (tries < 30) setTimeout(ask, 2000);
  };
  setTimeout(ask, 2000);
}

const cardForm = document.getElementById("card-form");
if (cardForm) setUpCardForm(cardForm);
const confirming = document.getElementById("card-confirming");
if (confirming) pollWhileConfirming(confirming);
