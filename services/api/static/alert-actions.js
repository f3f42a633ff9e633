/* barometre dashboard: incidents in the live alert feed, and acting on alerts from it.
 *
 * Incidents (GET /v1/incidents, `event: incident` on the stream) are shown as one item of the feed with
 * the alerts of their accounts grouped under it (those already in the feed, and those the incident
 * inhibited: GET /v1/alerts?inhibited=true). Each alert can be acknowledged (POST /v1/alerts/{id}/ack)
 * and each alert or incident silenced (POST /v1/silences). Both need a token with the alerts:write scope,
 * asked once per browser session in a dialog and kept in sessionStorage only (never localStorage),
 * with a control to forget it. Loaded after dashboard.js, whose helpers it reads from window.barometre. */
(function () {
  "use strict";

  const TOKEN_KEY = "barometre.jeton";
  const DURATIONS = [["1h", "1 heure"], ["6h", "6 heures"], ["24h", "24 heures"], ["7d", "7 jours"], ["30d", "30 jours"]];
  const DEFAULT_DURATION = "24h";
  const DEFAULT_COMMENT = "Mis en sourdine depuis le tableau de bord";
  const INCIDENTS_SHOWN = 10;
  const GROUP_FETCH_LIMIT = 200;

  let b = null; // window.barometre, once dashboard.js has run
  const alertOf = new WeakMap(); // feed item -> its alert
  const incidents = new Map(); // incident_id -> { incident, item, members: Set }
  let counter = 0;

  // ---------------------------------------------------------------- the token (sessionStorage only)
  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      return null;
    }
  }

  function storeToken(token) {
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch (e) { /* storage refused: the token lasts as long as the page */ }
    memoryToken = token;
    renderTokenControl();
  }

  function forgetToken() {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* nothing stored */ }
    memoryToken = null;
    renderTokenControl();
  }

  let memoryToken = null;
  const currentToken = () => storedToken() || memoryToken;

  function renderTokenControl(forgotten) {
    const text = document.getElementById("alertes-jeton-texte");
    if (!text) return;
    const has = Boolean(currentToken());
    text.textContent = has ? "Jeton enregistré pour cette session." : forgotten ? "Jeton oublié." : "";
    document.getElementById("alertes-jeton-oublier").hidden = !has;
  }

  class AuthError extends Error {}

  /** POST ``body`` as JSON with the session's token; 401/403 forget the token and say why, in French. */
  async function post(path, body, token) {
    const response = await fetch(path, {
      method: "POST",
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body || {}),
    });
    let payload = null;
    try {
      payload = await response.json();
    } catch (e) { /* not JSON */ }
    const message = (payload && payload.error && payload.error.message) || response.statusText;
    if (response.status === 401) {
      forgetToken();
      throw new AuthError("Jeton refusé (401 : " + message + "). Saisissez un jeton valide.");
    }
    if (response.status === 403) {
      forgetToken();
      throw new AuthError("Ce jeton n'a pas le droit d'agir sur les alertes (403 : il faut la portée " +
        "alerts:write ou admin). Saisissez un autre jeton.");
    }
    if (!response.ok) throw new Error("Erreur " + response.status + " : " + message);
    return payload;
  }

  // ---------------------------------------------------------------- dialogs
  let tokenDialog = null;

  function buildTokenDialog() {
    const { h } = b;
    tokenDialog = h("dialog", { id: "jeton-dialogue", class: "dialog", "aria-labelledby": "jeton-titre", "aria-describedby": "jeton-aide" },
      h("form", { method: "dialog", class: "dialog__form" },
        h("h2", { id: "jeton-titre" }, "Jeton d'accès"),
        h("p", { id: "jeton-aide", class: "dialog__help" },
          "Prendre en compte une alerte ou la mettre en sourdine demande un jeton de portée alerts:write " +
          "(barometre token create --scope alerts:write). Il est gardé pour cette session du navigateur " +
          "seulement, et oublié à la fermeture de l'onglet."),
        h("p", { id: "jeton-erreur", class: "dialog__error", role: "alert" }),
        h("div", { class: "field" },
          h("label", { for: "jeton-valeur" }, "Jeton"),
          h("input", { id: "jeton-valeur", name: "jeton", type: "password", autocomplete: "off", spellcheck: "false", required: true })),
        h("div", { class: "dialog__buttons" },
          h("button", { type: "submit", value: "ok", class: "button button--primary" }, "Valider"),
          h("button", { type: "submit", value: "cancel", class: "button", formnovalidate: true }, "Annuler"))));
    document.body.append(tokenDialog);
  }

  /** Ask for a token (``error`` says why the last one was refused); resolves to it, or null if cancelled. */
  function askToken(error, opener) {
    if (!tokenDialog) buildTokenDialog();
    const input = tokenDialog.querySelector("#jeton-valeur");
    tokenDialog.querySelector("#jeton-erreur").textContent = error || "";
    input.value = "";
    return new Promise((resolve) => {
      tokenDialog.addEventListener("close", () => {
        const value = input.value.trim();
        if (opener && opener.isConnected) opener.focus();
        resolve(tokenDialog.returnValue === "ok" && value ? value : null);
      }, { once: true });
      tokenDialog.returnValue = "";
      tokenDialog.showModal();
      input.focus();
    });
  }

  /** Run ``action(token)``, asking for a token first when the session has none, and again after a
   * refusal; the dialog gives the focus back to ``opener`` (the button that asked). */
  async function withToken(action, opener) {
    let token = currentToken();
    let refusal = null;
    for (;;) {
      if (!token) {
        token = await askToken(refusal, opener);
        if (!token) throw new Error(refusal || "Action annulée : aucun jeton saisi.");
        storeToken(token);
      }
      try {
        return await action(token);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        refusal = err.message;
        token = null;
      }
    }
  }

  let silenceDialog = null;

  function buildSilenceDialog() {
    const { h } = b;
    silenceDialog = h("dialog", { id: "sourdine-dialogue", class: "dialog", "aria-labelledby": "sourdine-titre" },
      h("form", { method: "dialog", class: "dialog__form" },
        h("h2", { id: "sourdine-titre" }, "Mettre en sourdine"),
        h("p", { id: "sourdine-aide", class: "dialog__help" },
          "Les alertes qui correspondent ne seront plus publiées pendant la durée choisie."),
        h("fieldset", { class: "field" }, h("legend", {}, "Alertes à taire"), h("div", { id: "sourdine-portees", class: "radios" })),
        h("div", { class: "field" },
          h("label", { for: "sourdine-duree" }, "Durée"),
          h("select", { id: "sourdine-duree", name: "duree" },
            DURATIONS.map(([value, label]) => h("option", { value, selected: value === DEFAULT_DURATION }, label)))),
        h("div", { class: "field" },
          h("label", { for: "sourdine-motif" }, "Motif"),
          h("input", { id: "sourdine-motif", name: "motif", type: "text", maxlength: "1000", required: true })),
        h("div", { class: "dialog__buttons" },
          h("button", { type: "submit", value: "ok", class: "button button--primary" }, "Mettre en sourdine"),
          h("button", { type: "submit", value: "cancel", class: "button", formnovalidate: true }, "Annuler"))));
    document.body.append(silenceDialog);
  }

  /** Ask what to silence among ``scopes`` ([{label, matchers}]) and for how long; null if cancelled. */
  function askSilence(scopes, opener) {
    const { h } = b;
    if (!silenceDialog) buildSilenceDialog();
    silenceDialog.querySelector("#sourdine-portees").replaceChildren(...scopes.map((scope, i) =>
      h("div", { class: "radio" },
        h("input", { type: "radio", name: "portee", id: "sourdine-portee-" + i, value: String(i), checked: i === 0 }),
        h("label", { for: "sourdine-portee-" + i }, scope.label))));
    silenceDialog.querySelector("#sourdine-duree").value = DEFAULT_DURATION;
    silenceDialog.querySelector("#sourdine-motif").value = DEFAULT_COMMENT;
    return new Promise((resolve) => {
      silenceDialog.addEventListener("close", () => {
        if (opener && opener.isConnected) opener.focus();
        if (silenceDialog.returnValue !== "ok") return resolve(null);
        const checked = silenceDialog.querySelector("input[name=portee]:checked");
        const scope = scopes[checked ? Number(checked.value) : 0];
        resolve({
          scope,
          duration: silenceDialog.querySelector("#sourdine-duree").value,
          comment: silenceDialog.querySelector("#sourdine-motif").value.trim() || DEFAULT_COMMENT,
        });
      }, { once: true });
      silenceDialog.returnValue = "";
      silenceDialog.showModal();
      silenceDialog.querySelector("input[name=portee]").focus();
    });
  }

  async function silence(scopes, message, opener) {
    const choice = await askSilence(scopes, opener);
    if (!choice) return;
    message.textContent = "Mise en sourdine…";
    try {
      const created = await withToken((token) => post("/v1/silences",
        { ...choice.scope.matchers, duration: choice.duration, comment: choice.comment }, token), opener);
      message.textContent = "En sourdine jusqu'au " + b.DATETIME.format(new Date(created.ends_at)) +
        " : " + choice.scope.label + ".";
      message.dataset.silenceId = created.silence_id;
    } catch (err) {
      message.textContent = err.message;
    }
  }

  // ---------------------------------------------------------------- alerts: the buttons
  const typeLabel = (type) => b.ALERT_TYPE_LABEL[type] || type;
  const platformLabel = (platform) => b.PLATFORM_LABEL[platform] || platform;

  function decorate(item, alert) {
    if (!alert || !alert.alert_id || item.querySelector(".alert__actions")) return;
    const { h } = b;
    alertOf.set(item, alert);
    const id = "alerte-" + ++counter;
    const head = item.querySelector(".alert__head");
    if (head) head.id = id + "-titre";
    const message = h("p", { class: "alert__message", role: "status" });
    const platform = alert.platform || String(alert.account_id).split(":")[0];
    const buttons = [];
    if (alert.status !== "acknowledged") {
      buttons.push(h("button", {
        type: "button", class: "button button--small", "data-action": "ack", "aria-describedby": head ? head.id : null,
        onclick: (event) => acknowledge(item, alert, event.currentTarget, message),
      }, "Prendre en compte"));
    }
    buttons.push(h("button", {
      type: "button", class: "button button--small", "data-action": "silence", "aria-describedby": head ? head.id : null,
      onclick: (event) => {
        const opener = event.currentTarget;
        const who = item.querySelector(".alert__who a");
        const scopes = [{ label: "ce compte (" + alert.account_id + ")", matchers: { account_id: alert.account_id } }];
        if (alert.entity_id) {
          scopes.push({
            label: "cette collectivité (" + (who ? who.textContent : alert.entity_id) + "), tous réseaux",
            matchers: { entity_id: alert.entity_id },
          });
        }
        scopes.push({
          label: "toutes les alertes « " + typeLabel(alert.type) + " » sur " + platformLabel(platform),
          matchers: { platform, type: alert.type },
        });
        silence(scopes, message, opener);
      },
    }, "Mettre en sourdine…"));
    item.append(h("div", { class: "alert__actions" }, buttons), message);
    group(item, alert);
  }

  async function acknowledge(item, alert, button, message) {
    if (button.getAttribute("aria-busy") === "true") return; // already under way
    button.setAttribute("aria-busy", "true");
    message.textContent = "Prise en compte…";
    try {
      const updated = await withToken(
        (token) => post("/v1/alerts/" + encodeURIComponent(alert.alert_id) + "/ack", {}, token), button);
      const fresh = { ...alert, ...updated };
      delete fresh.details;
      let next;
      if (item.dataset.grouped === "inhibited") {
        next = inhibitedItem(fresh);
        item.replaceWith(next);
      } else {
        b.addAlert(fresh, false); // redrawn in place (and decorated again by the hook)
        next = document.querySelector('#alertes-liste li[data-alert-id="' + CSS.escape(alert.alert_id) + '"]');
      }
      const note = next && next.querySelector(".alert__message");
      if (note) {
        note.textContent = "Prise en compte" + (updated.ack ? " par " + updated.ack.acked_by : "") + ".";
      }
      const focus = next && next.querySelector("button[data-action=silence]");
      if (focus && document.activeElement === document.body) focus.focus();
    } catch (err) {
      button.removeAttribute("aria-busy");
      message.textContent = err.message;
    }
  }

  function inhibitedItem(alert) {
    const item = b.alertItem(alert, false);
    item.dataset.grouped = "inhibited";
    decorate(item, alert);
    return item;
  }

  // ---------------------------------------------------------------- incidents, with their alerts grouped
  function belongs(entry, alert) {
    return alert.platform === entry.incident.platform && alert.type === entry.incident.type &&
      entry.members.has(alert.account_id);
  }

  /** Move a feed item into the group of the incident its alert belongs to, if one is shown. */
  function group(item, alert) {
    for (const [id, entry] of incidents) {
      if (!entry.item.isConnected) {
        incidents.delete(id); // dropped from the feed (it keeps its latest items only)
        continue;
      }
      if (!belongs(entry, alert)) continue;
      const list = entry.item.querySelector(".incident__alerts");
      if (item.parentElement !== list) list.prepend(item);
      countGroup(entry);
      return;
    }
  }

  function countGroup(entry) {
    const n = entry.item.querySelectorAll(".incident__alerts > li").length;
    entry.item.querySelector(".incident__count").textContent = b.fmtInt(n);
  }

  const when = (item) => {
    const alert = alertOf.get(item);
    return item.dataset.detectedAt || (alert && alert.detected_at) || "";
  };

  function showIncident(incident) {
    const { h } = b;
    const list = document.getElementById("alertes-liste");
    const previous = incidents.get(incident.incident_id);
    const severity = incident.severity || "warning";
    const share = typeof incident.share === "number" ? " (" + b.fmtRate(incident.share) + " des comptes actifs)" : "";
    const detected = new Date(incident.detected_at);
    const change = typeof incident.total_change === "number" && incident.total_change !== 0
      ? h("p", { class: "alert__figures" }, "Écart à l'attendu : " +
        (incident.total_change > 0 ? "+" : "") + b.fmtInt(incident.total_change) + " abonnés au total")
      : null;
    const message = h("p", { class: "alert__message", role: "status" });
    const titleId = "incident-" + ++counter + "-titre";
    const groupList = previous ? previous.item.querySelector(".incident__alerts")
      : h("ol", { class: "alert-list incident__alerts" });
    const item = h("li", {
      class: "alert alert--incident alert--" + severity + (incident.status === "resolved" ? " alert--ack" : ""),
      "data-incident-id": incident.incident_id, "data-detected-at": incident.detected_at,
    },
      h("div", { class: "alert__head", id: titleId },
        h("span", { class: "badge badge--incident" }, "Incident"),
        h("span", { class: "badge badge--" + severity }, b.SEVERITY_LABEL[severity] || severity),
        h("strong", { class: "alert__type" }, typeLabel(incident.type))),
      h("p", { class: "alert__who" },
        platformLabel(incident.platform) + " · " + b.fmtInt(incident.accounts) + " comptes touchés" + share),
      change,
      h("p", { class: "alert__when" },
        Number.isNaN(detected.getTime()) ? null
          : h("time", { datetime: detected.toISOString(), title: b.DATETIME.format(detected) }, b.fmtRelative(detected)),
        incident.status === "resolved" ? " · terminé" : " · en cours",
        incident.silenced_by ? " · en sourdine" : ""),
      h("details", { class: "incident__details" },
        h("summary", {}, "Alertes regroupées (", h("span", { class: "incident__count" }, "0"), ")"),
        h("p", { class: "incident__note" },
          "Un même événement sur " + platformLabel(incident.platform) + " : les alertes de ses comptes " +
          "sont réunies ici, celles retenues par l'incident comprises."),
        groupList),
      h("div", { class: "alert__actions" },
        h("button", {
          type: "button", class: "button button--small", "data-action": "silence", "aria-describedby": titleId,
          onclick: (event) => silence([{
            label: "les alertes « " + typeLabel(incident.type) + " » sur " + platformLabel(incident.platform),
            matchers: { platform: incident.platform, type: incident.type },
          }], message, event.currentTarget),
        }, "Mettre en sourdine…")),
      message);
    const entry = { incident, item, members: new Set(incident.members || []) };
    incidents.set(incident.incident_id, entry);
    if (previous) {
      item.querySelector("details").open = previous.item.querySelector("details").open;
      previous.item.replaceWith(item);
    } else {
      // In the feed's order (newest first), by detection time.
      const before = Array.from(list.children).find((li) => when(li) && when(li) < incident.detected_at);
      list.insertBefore(item, before || null);
    }
    for (const li of Array.from(list.querySelectorAll(":scope > li[data-alert-id]"))) {
      const alert = alertOf.get(li);
      if (alert && belongs(entry, alert)) groupList.prepend(li);
    }
    countGroup(entry);
    document.getElementById("alertes-vide").hidden = true;
    fetchInhibited(entry);
  }

  /** The alerts the incident inhibited (never on the stream), from the list. */
  async function fetchInhibited(entry) {
    const { incident } = entry;
    try {
      const body = await b.getJSON("/v1/alerts", {
        inhibited: "true", platform: incident.platform, type: incident.type,
        since: incident.first_observed_at, limit: GROUP_FETCH_LIMIT,
      });
      const list = entry.item.querySelector(".incident__alerts");
      for (const alert of (body && body.items) || []) {
        if (!belongs(entry, alert)) continue;
        if (document.querySelector('#alertes-liste li[data-alert-id="' + CSS.escape(alert.alert_id) + '"]')) continue;
        list.append(inhibitedItem(alert));
      }
      countGroup(entry);
    } catch (err) {
      // the group keeps the alerts the feed has
    }
  }

  async function loadIncidents() {
    try {
      const body = await b.getJSON("/v1/incidents", { limit: INCIDENTS_SHOWN });
      for (const incident of ((body && body.items) || []).slice().reverse()) {
        if (!incidents.has(incident.incident_id)) showIncident(incident);
      }
    } catch (err) {
      // no incidents shown; the stream brings the new ones
    }
  }

  // ---------------------------------------------------------------- start
  function buildTokenControl() {
    const { h } = b;
    const head = document.querySelector("#alertes .panel__head");
    if (!head || document.getElementById("alertes-jeton")) return;
    head.append(h("div", { id: "alertes-jeton", class: "token-control" },
      h("span", { id: "alertes-jeton-texte", role: "status" }),
      h("button", {
        type: "button", id: "alertes-jeton-oublier", class: "button button--small button--link", hidden: true,
        onclick: () => {
          forgetToken();
          renderTokenControl(true);
          const title = document.getElementById("alertes-titre");
          title.setAttribute("tabindex", "-1");
          title.focus();
        },
      }, "Oublier le jeton")));
    renderTokenControl(false);
  }

  async function start() {
    b = window.barometre;
    if (!b || !b.on || !document.getElementById("alertes-liste")) return;
    const routes = await b.apiRoutes();
    if (routes.has("/v1/alerts/{alert_id}/ack") || routes.has("/v1/silences")) buildTokenControl();
    if (routes.has("/v1/incidents")) {
      b.on("incident", showIncident);
      await loadIncidents();
    }
    if (routes.has("/v1/alerts/{alert_id}/ack")) b.on("alert", decorate);
    else b.on("alert", (item, alert) => { alertOf.set(item, alert); group(item, alert); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
