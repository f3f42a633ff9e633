/* barometre dashboard: presence on several platforms at once (GET /v1/presence/overlap), on the home page.
 * A choice of platforms (two or more) gives the collectivités present on all of them; the matrix gives
 * every pair of the default platforms (the diagonal: present on that one). Loaded after dashboard.js,
 * whose helpers it reads from window.barometre. */
(function () {
  "use strict";

  const CATEGORIES = [
    ["commune", "Communes"], ["epci", "Intercommunalités"], ["departement", "Départements"], ["region", "Régions"],
  ];
  const DEFAULT_CHOICE = ["facebook", "x"];
  const state = { controller: null, matrixController: null };

  function build(b) {
    const { h } = b;
    const section = document.getElementById("recoupement");
    const presenceCategory = document.getElementById("presence-categorie");
    const category = h("select", { id: "recoupement-categorie", name: "r_categorie" },
      CATEGORIES.map(([value, label]) => h("option", { value }, label)));
    if (presenceCategory) category.value = presenceCategory.value;
    const checks = h("div", { class: "checks", id: "recoupement-reseaux" },
      b.PLATFORMS.map(([id, label, color]) => h("div", { class: "check" },
        h("input", {
          type: "checkbox", id: "recoupement-reseau-" + id, name: "r_reseau", value: id,
          checked: DEFAULT_CHOICE.includes(id),
        }),
        h("label", { for: "recoupement-reseau-" + id },
          h("span", { class: "swatch", style: "background:" + color, "aria-hidden": "true" }), label))));
    section.replaceChildren(
      h("div", { class: "panel__head" },
        h("h2", { id: "recoupement-titre" }, "Présence sur plusieurs réseaux"),
        h("p", { class: "panel__intro" },
          "Part des collectivités présentes à la fois sur chacun des réseaux choisis, aujourd'hui " +
          "(même définition de la présence que plus haut).")),
      h("form", { id: "recoupement-filtres", class: "filters" },
        h("div", { class: "field" }, h("label", { for: "recoupement-categorie" }, "Catégorie"), category),
        h("fieldset", { class: "field field--wide" },
          h("legend", {}, "Réseaux (au moins deux)"), checks)),
      h("div", { id: "recoupement-resultat", class: "overlap-result", role: "status", "aria-atomic": "true" },
        "Chargement…"),
      h("div", { class: "table-wrap" },
        h("table", { id: "recoupement-matrice", class: "data-table overlap-matrix" },
          h("caption", { id: "recoupement-matrice-legende" }, "Présence sur deux réseaux à la fois"),
          h("thead"), h("tbody"))),
      h("p", { id: "recoupement-matrice-etat", class: "status" }));
    section.hidden = false;
    const form = document.getElementById("recoupement-filtres");
    form.addEventListener("submit", (event) => event.preventDefault());
    form.addEventListener("change", (event) => {
      loadChoice(b);
      if (event.target.id === "recoupement-categorie") loadMatrix(b);
    });
  }

  const selected = () => Array.from(document.querySelectorAll("#recoupement-reseaux input:checked"), (el) => el.value);
  const categoryOf = () => document.getElementById("recoupement-categorie").value;

  function overlap(b, platforms, category, signal) {
    return b.getJSON("/v1/presence/overlap", { platforms: platforms.join(","), category }, signal);
  }

  async function loadChoice(b) {
    const { h } = b;
    const out = document.getElementById("recoupement-resultat");
    const platforms = selected();
    const category = categoryOf();
    if (state.controller) state.controller.abort();
    if (platforms.length < 2) {
      out.replaceChildren("Choisissez au moins deux réseaux.");
      return;
    }
    const controller = (state.controller = new AbortController());
    out.setAttribute("aria-busy", "true");
    try {
      const body = await overlap(b, platforms, category, controller.signal);
      const names = platforms.map((p) => b.PLATFORM_LABEL[p] || p).join(" + ");
      out.replaceChildren(
        h("span", { class: "overlap-result__value" }, b.fmtRate(body.rate)),
        h("span", { class: "overlap-result__text" },
          " des " + b.CATEGORY_PLURAL[category] + " sont présentes à la fois sur " + names + " : ",
          h("strong", { "data-present-all": body.present_all }, b.fmtInt(body.present_all)),
          " sur ", h("span", { "data-total": body.total }, b.fmtInt(body.total)), "."));
    } catch (err) {
      if (b.isAbort(err)) return;
      out.replaceChildren("Impossible de calculer la présence simultanée : " + err.message);
    } finally {
      if (state.controller === controller) out.removeAttribute("aria-busy");
    }
  }

  /** Every pair of the default platforms (and each alone, on the diagonal): one request each, in parallel. */
  async function loadMatrix(b) {
    const { h } = b;
    const platforms = b.DEFAULT_PRESENCE_PLATFORMS;
    const category = categoryOf();
    const table = document.getElementById("recoupement-matrice");
    const status = document.getElementById("recoupement-matrice-etat");
    if (state.matrixController) state.matrixController.abort();
    const controller = (state.matrixController = new AbortController());
    table.setAttribute("aria-busy", "true");
    status.textContent = "Chargement…";
    const pairs = [];
    platforms.forEach((a, i) => platforms.slice(i).forEach((c) => pairs.push([a, c])));
    try {
      const answers = await Promise.all(pairs.map(([a, c]) =>
        overlap(b, a === c ? [a] : [a, c], category, controller.signal).then((body) => [a + "|" + c, body])));
      const cells = new Map(answers);
      const cell = (a, c) => cells.get(a + "|" + c) || cells.get(c + "|" + a);
      const plural = b.CATEGORY_PLURAL[category];
      document.getElementById("recoupement-matrice-legende").textContent =
        "Part des " + plural + " présentes sur le réseau de la ligne et sur celui de la colonne " +
        "(sur la diagonale : sur ce réseau)";
      table.tHead.replaceChildren(h("tr", {},
        h("td"), platforms.map((p) => h("th", { scope: "col", class: "num" }, b.PLATFORM_LABEL[p]))));
      table.tBodies[0].replaceChildren(...platforms.map((a) => h("tr", {},
        h("th", { scope: "row" }, b.PLATFORM_LABEL[a]),
        platforms.map((c) => {
          const body = cell(a, c);
          const rate = body ? body.rate : null;
          const shade = rate === null || rate === undefined ? 0 : Math.round(Math.min(1, rate) * 22);
          return h("td", {
            class: "num overlap-cell" + (a === c ? " overlap-cell--self" : ""),
            "data-pair": a + "," + c,
            style: "background: rgba(30, 58, 138, " + (shade / 100) + ")",
          },
          h("span", { class: "overlap-cell__rate" }, b.fmtRate(rate)),
          h("span", { class: "overlap-cell__count" },
            body ? b.fmtInt(body.present_all) + " / " + b.fmtInt(body.total) : "–"));
        }))));
      status.textContent = "";
    } catch (err) {
      if (b.isAbort(err)) return;
      status.textContent = "Impossible de charger la matrice : " + err.message;
    } finally {
      if (state.matrixController === controller) table.removeAttribute("aria-busy");
    }
  }

  async function start() {
    const b = window.barometre;
    const section = document.getElementById("recoupement");
    if (!b || !section) return;
    const routes = await b.apiRoutes();
    if (!routes.has("/v1/presence/overlap")) return; // the section stays hidden
    build(b);
    loadChoice(b);
    loadMatrix(b);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
