/* barometre dashboard: the entity search box (GET /v1/entities?q=), the stratum filters of presence and
 * rankings, and the "among its peers" block of the entity page (GET /v1/entities/{id}/peers).
 * Loaded after dashboard.js, whose helpers it reads from window.barometre. */
(function () {
  "use strict";

  const B = window.barometre;
  const $ = (selector, root) => (root || document).querySelector(selector);

  // ---------------------------------------------------------------- strata (docs/SCORING.md, "Strata")
  const STRATA = {
    commune: [
      ["commune_lt_3500", "Moins de 3 500 hab."],
      ["commune_3500_19999", "3 500 à 19 999 hab."],
      ["commune_20000_99999", "20 000 à 99 999 hab."],
      ["commune_100000_plus", "100 000 hab. et plus"],
    ],
    epci: [
      ["metropole", "Métropoles"],
      ["communaute_urbaine", "Communautés urbaines"],
      ["communaute_agglomeration", "Communautés d'agglomération"],
      ["communaute_communes", "Communautés de communes"],
    ],
  };
  const STRATUM_LABEL = {
    commune_lt_3500: "communes de moins de 3 500 habitants",
    commune_3500_19999: "communes de 3 500 à 19 999 habitants",
    commune_20000_99999: "communes de 20 000 à 99 999 habitants",
    commune_100000_plus: "communes de 100 000 habitants et plus",
    metropole: "métropoles",
    communaute_urbaine: "communautés urbaines",
    communaute_agglomeration: "communautés d'agglomération",
    communaute_communes: "communautés de communes",
  };

  /** Every stratum as an option (those of another category disabled), so that the filters restored from
   *  the URL find their value before dashboard.js reads them. */
  function fillStrata(select) {
    select.replaceChildren(B.h("option", { value: "" }, "Toutes les strates"),
      B.h("optgroup", { label: "Communes" }, STRATA.commune.map(([v, l]) => B.h("option", { value: v }, l))),
      B.h("optgroup", { label: "Intercommunalités" }, STRATA.epci.map(([v, l]) => B.h("option", { value: v }, l))));
  }

  /** Only the strata of the chosen category are offered; départements and régions have none. */
  function syncStrata(categorySelect, stratumSelect) {
    const category = categorySelect.value;
    const own = new Set((STRATA[category] || []).map(([v]) => v));
    for (const option of stratumSelect.querySelectorAll("option")) {
      if (option.value) option.disabled = !own.has(option.value);
    }
    for (const group of stratumSelect.querySelectorAll("optgroup")) {
      group.hidden = !Array.from(group.children).some((o) => !o.disabled);
    }
    if (stratumSelect.value && !own.has(stratumSelect.value)) stratumSelect.value = "";
    stratumSelect.disabled = own.size === 0;
  }

  const STRATUM_FILTERS = [["#presence-categorie", "#presence-strate"], ["#classement-categorie", "#classement-strate"]];
  for (const [, stratum] of STRATUM_FILTERS) fillStrata($(stratum));
  // On the category's own element, before dashboard.js's handler on the form reads the filters.
  for (const [category, stratum] of STRATUM_FILTERS) {
    $(category).addEventListener("change", () => syncStrata($(category), $(stratum)));
  }

  // ---------------------------------------------------------------- search box (ARIA combobox)
  const search = {
    input: $("#recherche-champ"), list: $("#recherche-liste"), announce: $("#recherche-annonce"),
    items: [], active: -1, timer: null, controller: null, query: "",
  };
  const CATEGORY_SHORT = { commune: "Commune", epci: "Intercommunalité", departement: "Département", region: "Région" };

  function close() {
    search.list.hidden = true;
    search.input.setAttribute("aria-expanded", "false");
    search.input.removeAttribute("aria-activedescendant");
    search.active = -1;
  }

  function setActive(index) {
    const options = search.list.querySelectorAll("[role=option]");
    if (!options.length) return;
    search.active = (index + options.length) % options.length;
    options.forEach((el, i) => el.setAttribute("aria-selected", i === search.active ? "true" : "false"));
    const el = options[search.active];
    search.input.setAttribute("aria-activedescendant", el.id);
    el.scrollIntoView({ block: "nearest" });
  }

  function describe(item) {
    const parts = [CATEGORY_SHORT[item.category] || item.category];
    if (item.category === "commune" && item.departement) parts.push(item.departement);
    if (item.postal_codes && item.postal_codes.length) {
      parts.push(item.postal_codes.length > 2 ? item.postal_codes[0] + "…" : item.postal_codes.join(", "));
    }
    if (typeof item.population === "number") parts.push(B.fmtInt(item.population) + " hab.");
    return parts.join(" · ");
  }

  function render(items) {
    search.items = items;
    search.active = -1;
    search.input.removeAttribute("aria-activedescendant");
    if (!items.length) {
      search.list.replaceChildren(B.h("li", { class: "search__empty", role: "option", id: "recherche-aucun",
        "aria-disabled": "true", "aria-selected": "false" }, "Aucune collectivité trouvée"));
      search.announce.textContent = "Aucune collectivité trouvée.";
    } else {
      search.list.replaceChildren(...items.map((item, i) => B.h("li", {
        id: "recherche-option-" + i, role: "option", "aria-selected": "false", class: "search__option",
        "data-entity": item.entity_id,
        onmousedown: (event) => event.preventDefault(), // keep the focus in the field
        onclick: () => open(i),
      }, B.h("span", { class: "search__name" }, item.name), B.h("span", { class: "search__meta" }, describe(item)))));
      search.announce.textContent = items.length + (items.length > 1 ? " collectivités trouvées" : " collectivité trouvée") +
        " : flèche bas pour les parcourir.";
    }
    search.list.hidden = false;
    search.input.setAttribute("aria-expanded", "true");
  }

  async function lookup(query) {
    if (search.controller) search.controller.abort();
    const controller = (search.controller = new AbortController());
    try {
      const body = await B.getJSON("/v1/entities", { q: query, limit: 8 }, controller.signal);
      if (search.input.value.trim() !== query) return; // typed on since
      render((body && body.items) || []);
    } catch (err) {
      if (B.isAbort(err)) return;
      search.list.replaceChildren(B.h("li", { class: "search__empty", role: "option", id: "recherche-erreur",
        "aria-disabled": "true", "aria-selected": "false" }, "Recherche impossible : " + err.message));
      search.list.hidden = false;
      search.input.setAttribute("aria-expanded", "true");
    }
  }

  function open(index) {
    const item = search.items[index];
    if (!item) return;
    close();
    search.input.value = "";
    B.navigate(B.entityHref(item.entity_id));
  }

  search.input.addEventListener("input", () => {
    clearTimeout(search.timer);
    const query = search.input.value.trim();
    if (!query) {
      close();
      search.list.replaceChildren();
      search.items = [];
      return;
    }
    search.timer = setTimeout(() => lookup(query), 150);
  });

  search.input.addEventListener("keydown", (event) => {
    const expanded = !search.list.hidden && search.items.length > 0;
    switch (event.key) {
      case "ArrowDown":
        event.preventDefault();
        if (search.list.hidden && search.items.length) render(search.items);
        setActive(search.active + 1);
        break;
      case "ArrowUp":
        event.preventDefault();
        if (search.list.hidden && search.items.length) render(search.items);
        setActive(search.active < 0 ? -1 : search.active - 1);
        break;
      case "Home":
      case "End":
        if (expanded && search.active >= 0) {
          event.preventDefault();
          setActive(event.key === "Home" ? 0 : search.items.length - 1);
        }
        break;
      case "Enter":
        event.preventDefault();
        if (expanded) open(search.active >= 0 ? search.active : 0);
        break;
      case "Escape":
        if (!search.list.hidden) {
          event.preventDefault();
          close();
        } else if (search.input.value) {
          event.preventDefault();
          search.input.value = "";
        }
        break;
      default:
        break;
    }
  });
  search.input.addEventListener("blur", () => setTimeout(close, 100));
  search.input.addEventListener("focus", () => {
    if (search.items.length && search.input.value.trim()) render(search.items);
  });
  $("#recherche").addEventListener("submit", (event) => event.preventDefault());

  // ---------------------------------------------------------------- peers on the entity page
  const peers = { entityId: null, body: null, controller: null };

  function fillPeerPlatforms(body) {
    const select = $("#pairs-reseau");
    const present = new Set(body.present_on || []);
    const previous = select.value;
    select.replaceChildren(...B.PLATFORMS.map(([id, label]) =>
      B.h("option", { value: id }, label + (present.has(id) ? "" : " (absente)"))));
    const first = B.PLATFORMS.map(([id]) => id).find((id) => present.has(id));
    select.value = previous && peers.keepPlatform ? previous : (first || "facebook");
  }

  function regionName(code) {
    const found = (B.territories.regions || []).find((r) => r.code === code);
    return found ? found.name : code;
  }

  function groupText(group) {
    let who = group.stratum ? STRATUM_LABEL[group.stratum] : (B.CATEGORY_PLURAL[group.category] || group.category);
    if (!group.stratum && group.category === "commune") who = "communes";
    if (group.region) who += " de la région " + regionName(group.region);
    else if (group.category === "region") who = "toutes les régions";
    return who;
  }

  async function loadPeers() {
    const status = $("#pairs-etat");
    const dl = $("#pairs-chiffres");
    if (!peers.entityId) return;
    if (peers.controller) peers.controller.abort();
    const controller = (peers.controller = new AbortController());
    const platform = $("#pairs-reseau").value;
    const metric = $("#pairs-indicateur").value;
    status.textContent = "Chargement…";
    dl.setAttribute("aria-busy", "true");
    try {
      const body = await B.getJSON("/v1/entities/" + encodeURIComponent(peers.entityId) + "/peers",
        { platform, metric, window: "30d" }, controller.signal);
      renderPeers(body);
      status.textContent = "";
    } catch (err) {
      if (B.isAbort(err)) return;
      dl.replaceChildren();
      status.textContent = "Impossible de situer la collectivité parmi ses pairs : " + err.message;
    } finally {
      if (peers.controller === controller) dl.removeAttribute("aria-busy");
    }
  }

  function renderPeers(body) {
    const group = body.group;
    const platform = B.PLATFORM_LABEL[body.platform] || body.platform;
    $("#pairs-groupe").textContent = "Pairs : " + groupText(group) + " (" + B.fmtInt(group.size) +
      (group.size > 1 ? " collectivités" : " collectivité") + "), sur " + platform + ".";
    const fmt = (v) => B.fmtMetric(body.metric, v);
    const facts = [];
    facts.push(["Rang", body.rank === null ? "non classée" : body.rank + (body.rank === 1 ? "er" : "e") +
      " sur " + B.fmtInt(body.count)]);
    facts.push([B.METRIC_LABEL[body.metric] || body.metric, fmt(body.value)]);
    facts.push(["Médiane des pairs", fmt(body.median)]);
    const best = body.best
      ? [B.entityLink(body.best.entity_id, body.best.name), " (", fmt(body.best.value), ")"]
      : ["–"];
    facts.push(["Meilleure", best]);
    facts.push(["Pairs présents sur " + platform, B.fmtRate(group.presence_rate) + " (" + B.fmtInt(group.present) +
      " sur " + B.fmtInt(group.size) + ")"]);
    $("#pairs-chiffres").replaceChildren(...facts.map(([term, value]) =>
      B.h("div", { class: "fact" }, B.h("dt", {}, term), B.h("dd", {}, value))));
    if (body.rank === null) {
      $("#pairs-etat").textContent = "";
    }
  }

  document.addEventListener("barometre:entity", (event) => {
    const { entityId, body } = event.detail;
    peers.keepPlatform = peers.entityId === entityId;
    peers.entityId = entityId;
    peers.body = body;
    fillPeerPlatforms(body || {});
    loadPeers();
  });
  $("#pairs-filtres").addEventListener("change", () => {
    peers.keepPlatform = true;
    loadPeers();
  });
  $("#pairs-filtres").addEventListener("submit", (event) => event.preventDefault());

  function init() {
    for (const [category, stratum] of STRATUM_FILTERS) syncStrata($(category), $(stratum));
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
