/* barometre dashboard: the "Données" section of the home page (the monthly report, GET
 * /v1/reports/barometer, and the CSV/Parquet export of the tables shown: the ranking, the presence series)
 * and, on an entity page, the export of each account's history. Links follow the filters chosen above.
 * Loaded after dashboard.js, whose helpers it reads from window.barometre. */
(function () {
  "use strict";

  const FORMATS = [["csv", "CSV"], ["parquet", "Parquet"]];
  const REPORT_MONTHS = 24;
  const MONTH_LONG = new Intl.DateTimeFormat("fr-FR", { month: "long", year: "numeric", timeZone: "UTC" });

  let b = null;

  function url(path, params) {
    const out = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(params)) {
      if (value !== "" && value !== null && value !== undefined) out.searchParams.set(key, value);
    }
    return out.pathname + out.search;
  }

  /** "CSV · Parquet" links whose accessible names say what they hold ("CSV — classement affiché"). */
  function fileLinks(path, params, what, kind) {
    const { h } = b;
    return h("span", { class: "downloads__formats" }, FORMATS.flatMap(([format, label], i) => [
      i ? " · " : "",
      h("a", { href: url(path, { ...params, format }), download: "", "data-download": kind + ":" + format },
        label, h("span", { class: "visually-hidden" }, " — " + what)),
    ]));
  }

  const value = (id) => {
    const el = document.getElementById(id);
    return el ? el.value : "";
  };
  const label = (id) => {
    const el = document.getElementById(id);
    return el && el.selectedOptions && el.selectedOptions[0] ? el.selectedOptions[0].textContent : "";
  };

  function monthKey(date) {
    return date.getUTCFullYear() + "-" + String(date.getUTCMonth() + 1).padStart(2, "0");
  }

  function renderReport() {
    const { h } = b;
    const select = document.getElementById("donnees-mois");
    const month = select.value;
    const name = select.selectedOptions[0].textContent;
    document.getElementById("donnees-rapport-liens").replaceChildren(
      h("a", { href: url("/v1/reports/barometer", { month, format: "html" }), "data-download": "report:html" },
        "Rapport de " + name + " (page imprimable)"),
      " · ",
      h("a", { href: url("/v1/reports/barometer", { month, format: "csv" }), download: "", "data-download": "report:csv" },
        "CSV", h("span", { class: "visually-hidden" }, " — rapport de " + name)),
      " · ",
      h("a", { href: url("/v1/reports/barometer", { month, format: "json" }), "data-download": "report:json" },
        "JSON", h("span", { class: "visually-hidden" }, " — rapport de " + name)),
      " · ",
      h("a", { href: url("/v1/exports/opendata", { month }), download: "", "data-download": "opendata:zip" },
        "Données ouvertes (Data Package, zip)", h("span", { class: "visually-hidden" }, " — " + name)));
  }

  /** The ranking and the presence series as the filters above show them. */
  function renderTables() {
    const { h } = b;
    const rankingParams = {
      platform: value("classement-reseau"), category: value("classement-categorie"),
      metric: value("classement-indicateur"), window: value("classement-fenetre"),
      region: value("classement-region"), departement: value("classement-departement"),
      limit: value("classement-nombre"),
    };
    const rankingFilters = [label("classement-reseau"), ...["classement-categorie", "classement-indicateur",
      "classement-fenetre"].map((id) => label(id).toLowerCase())].filter(Boolean).join(", ");
    const rankingWhat = "classement affiché : " + rankingFilters;
    const category = value("presence-categorie");
    const months = Number(value("presence-periode")) || 24;
    const thisMinute = new Date(Math.floor(Date.now() / 60000) * 60000);
    const from = b.isoDate(b.monthsBefore(thisMinute, months - 1));
    const platforms = Array.from(document.querySelectorAll("#presence-reseaux input:checked"), (el) => el.value);
    const items = [
      h("li", {}, h("span", { class: "downloads__what" }, "Classement affiché (" + rankingFilters + ")"), " : ",
        fileLinks("/v1/rankings", rankingParams, rankingWhat, "rankings")),
      ...platforms.map((platform) => {
        const what = "présence mois par mois des " + (b.CATEGORY_PLURAL[category] || category) + " sur " +
          (b.PLATFORM_LABEL[platform] || platform);
        return h("li", {}, h("span", { class: "downloads__what" }, what.charAt(0).toUpperCase() + what.slice(1)), " : ",
          fileLinks("/v1/presence/series", { platform, category, from, step: "month" }, what, "presence-" + platform));
      }),
    ];
    document.getElementById("donnees-tables").replaceChildren(...items);
  }

  function build() {
    const { h } = b;
    const section = document.getElementById("donnees");
    const now = new Date();
    const select = h("select", { id: "donnees-mois", name: "d_mois" });
    for (let k = 0; k < REPORT_MONTHS; k += 1) {
      const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - k, 1));
      select.append(h("option", { value: monthKey(first) }, MONTH_LONG.format(first) + (k === 0 ? " (en cours)" : "")));
    }
    section.replaceChildren(
      h("div", { class: "panel__head" },
        h("h2", { id: "donnees-titre" }, "Données"),
        h("p", { class: "panel__intro" },
          "Le baromètre mensuel, et les tableaux de cette page en fichiers : CSV (UTF-8, pour un tableur) " +
          "ou Parquet (colonnes typées, pour l'analyse). Les liens suivent les filtres choisis plus haut.")),
      h("h3", {}, "Baromètre mensuel"),
      h("form", { class: "filters filters--inline", id: "donnees-filtres" },
        h("div", { class: "field" }, h("label", { for: "donnees-mois" }, "Mois"), select)),
      h("p", { id: "donnees-rapport-liens", class: "downloads__report" }),
      h("h3", {}, "Télécharger"),
      h("ul", { id: "donnees-tables", class: "downloads" }),
      h("p", { class: "status" }, "L'historique de chaque compte se télécharge sur la page de sa collectivité."));
    section.hidden = false;
    const form = document.getElementById("donnees-filtres");
    form.addEventListener("submit", (event) => event.preventDefault());
    select.addEventListener("change", renderReport);
    for (const id of ["classement-filtres", "presence-filtres"]) {
      const other = document.getElementById(id);
      // After dashboard.js's own listeners (territory lists are filled on change).
      if (other) other.addEventListener("change", () => setTimeout(renderTables, 0));
    }
    renderReport();
    renderTables();
  }

  /** Under each account of an entity page: its history as a file, over the period chosen there. */
  function decorateAccounts() {
    const { h } = b;
    const days = Number(value("entite-periode")) || 365;
    const from = b.isoDate(new Date(Math.floor(Date.now() / 60000) * 60000 - days * 86400000));
    for (const card of document.querySelectorAll("#entite-comptes .account[data-account-id]")) {
      const accountId = card.dataset.accountId;
      const what = "historique du compte " + accountId;
      const line = h("p", { class: "account__downloads" }, "Télécharger l'historique : ",
        fileLinks("/v1/accounts/" + encodeURIComponent(accountId) + "/history", { from, limit: 10000 }, what, "history"));
      const old = card.querySelector(".account__downloads");
      if (old) old.replaceWith(line);
      else card.append(line);
    }
  }

  async function start() {
    b = window.barometre;
    if (!b || !b.h) return;
    const routes = await b.apiRoutes();
    if (document.getElementById("donnees") && (routes.has("/v1/rankings") || routes.has("/v1/reports/barometer"))) build();
    const accounts = document.getElementById("entite-comptes");
    if (accounts && routes.has("/v1/accounts/{account_id}/history")) {
      new MutationObserver(decorateAccounts).observe(accounts, { childList: true });
      const period = document.getElementById("entite-periode");
      if (period) period.addEventListener("change", decorateAccounts);
      decorateAccounts();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
