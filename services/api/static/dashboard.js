/* barometre dashboard: plain JavaScript over the JSON API (docs/CONTRACT.md), nothing from the network
 * but this server. Views: the home page (presence barometer, live rankings) and an entity page
 * (/entite/COM:38185, or #/entite/COM:38185), with the live alert feed beside both. */
(function () {
  "use strict";

  // ---------------------------------------------------------------- words and formats (fr-FR)
  // Colours: at least 3:1 against the white panels and the checked filter pills (WCAG 1.4.11, graphics),
  // checked by tests/unit/api/test_dashboard_colours.py.
  const PLATFORMS = [
    ["facebook", "Facebook", "#1d4ed8"],
    ["x", "X", "#111827"],
    ["instagram", "Instagram", "#c026d3"],
    ["youtube", "YouTube", "#dc2626"],
    ["linkedin", "LinkedIn", "#0f766e"],
    ["tiktok", "TikTok", "#c2410c"],
    ["mastodon", "Mastodon", "#6d28d9"],
    ["bluesky", "Bluesky", "#0284c7"],
    ["threads", "Threads", "#78716c"],
  ];
  const PLATFORM_LABEL = Object.fromEntries(PLATFORMS.map(([id, label]) => [id, label]));
  const PLATFORM_COLOR = Object.fromEntries(PLATFORMS.map(([id, , color]) => [id, color]));
  const DEFAULT_PRESENCE_PLATFORMS = ["facebook", "x", "instagram", "youtube", "linkedin"];
  const CATEGORY_LABEL = {
    commune: "Commune", epci: "Intercommunalité", departement: "Département", region: "Région",
  };
  const CATEGORY_PLURAL = {
    commune: "communes", epci: "intercommunalités", departement: "départements", region: "régions",
  };
  const KIND_CATEGORY = { COM: "commune", EPCI: "epci", DEP: "departement", REG: "region" };
  const WINDOW_LABEL = { "1d": "1 jour", "7d": "7 jours", "30d": "30 jours", "90d": "90 jours", "365d": "1 an" };
  const METRIC_LABEL = {
    growth_abs: "Croissance (abonnés)",
    growth_pct: "Croissance (%)",
    per_1000_inhabitants: "Abonnés pour 1 000 habitants",
    followers: "Abonnés",
  };
  const METRIC_COLUMN = {
    growth_abs: "Croissance",
    growth_pct: "Croissance",
    per_1000_inhabitants: "Pour 1 000 hab.",
    followers: "Abonnés",
  };
  const ALERT_TYPE_LABEL = {
    audience_spike: "Pic d'audience",
    audience_drop: "Chute d'audience",
    account_gone: "Compte disparu",
    account_new: "Nouveau compte",
    dormant: "Compte inactif",
  };
  const SEVERITY_LABEL = { info: "Information", warning: "Attention", critical: "Critique" };
  const STATUS_LABEL = { active: "actif", deleted: "supprimé", suspended: "suspendu" };

  const INT = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 0 });
  const DEC1 = new Intl.NumberFormat("fr-FR", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const SIGNED_INT = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 0, signDisplay: "exceptZero" });
  const SIGNED_DEC2 = new Intl.NumberFormat("fr-FR", {
    minimumFractionDigits: 2, maximumFractionDigits: 2, signDisplay: "exceptZero",
  });
  const PERCENT = new Intl.NumberFormat("fr-FR", { style: "percent", maximumFractionDigits: 1 });
  const MONTH = new Intl.DateTimeFormat("fr-FR", { month: "short", year: "numeric", timeZone: "UTC" });
  const MONTH_LONG = new Intl.DateTimeFormat("fr-FR", { month: "long", year: "numeric", timeZone: "UTC" });
  const DAY = new Intl.DateTimeFormat("fr-FR", { day: "numeric", month: "short", year: "numeric" });
  const DATETIME = new Intl.DateTimeFormat("fr-FR", { dateStyle: "medium", timeStyle: "short" });
  const TIME = new Intl.DateTimeFormat("fr-FR", { timeStyle: "medium" });
  const RELATIVE = new Intl.RelativeTimeFormat("fr-FR", { numeric: "auto" });

  const fmtInt = (v) => (v === null || v === undefined || Number.isNaN(v) ? "–" : INT.format(v));
  const PERCENT_SMALL = new Intl.NumberFormat("fr-FR", { style: "percent", maximumFractionDigits: 2 });
  const fmtRate = (v) => (v === null || v === undefined ? "–" : (v !== 0 && v < 0.01 ? PERCENT_SMALL : PERCENT).format(v));

  function fmtMetric(metric, value) {
    if (value === null || value === undefined) return "–";
    switch (metric) {
      case "growth_abs": return SIGNED_INT.format(value);
      case "growth_pct": return SIGNED_DEC2.format(value) + " %";
      case "per_1000_inhabitants": return DEC1.format(value);
      default: return INT.format(value);
    }
  }

  function fmtRelative(date) {
    const seconds = (date.getTime() - Date.now()) / 1000;
    const abs = Math.abs(seconds);
    if (abs < 60) return RELATIVE.format(Math.round(seconds), "second");
    if (abs < 3600) return RELATIVE.format(Math.round(seconds / 60), "minute");
    if (abs < 86400) return RELATIVE.format(Math.round(seconds / 3600), "hour");
    return RELATIVE.format(Math.round(seconds / 86400), "day");
  }

  // ---------------------------------------------------------------- small helpers
  const $ = (selector, root) => (root || document).querySelector(selector);

  /** An element with attributes and children (strings become text: no HTML is ever parsed from data). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** GET a JSON document of the API; parameters that are empty are left out. */
  async function getJSON(path, params, signal) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
    }
    const response = await fetch(url, { signal, headers: { Accept: "application/json" } });
    if (!response.ok) {
      let message = response.statusText;
      try {
        const body = await response.json();
        if (body && body.error && body.error.message) message = body.error.message;
      } catch (e) { /* not JSON: keep the status text */ }
      throw new ApiError(response.status, message);
    }
    return response.json();
  }

  const isAbort = (err) => err && err.name === "AbortError";

  /** The API's routes, from its OpenAPI document: optional routes (alerts) are used only when served,
   *  so that a server without them gives an empty feed instead of failed requests. */
  let routesPromise = null;
  function apiRoutes() {
    if (!routesPromise) {
      routesPromise = getJSON("/openapi.json")
        .then((doc) => new Set(Object.keys((doc && doc.paths) || {})))
        .catch(() => new Set());
    }
    return routesPromise;
  }

  /** Names of entities already seen (rankings, territories, entity pages), and lookups for the others. */
  const entityNames = new Map();
  const nameLookups = new Map();

  function lookupName(entityId) {
    if (entityNames.has(entityId)) return Promise.resolve(entityNames.get(entityId));
    if (!nameLookups.has(entityId)) {
      nameLookups.set(entityId, getJSON("/v1/entities/" + encodeURIComponent(entityId))
        .then((body) => {
          const name = (body && body.name) || null;
          if (name) entityNames.set(entityId, name);
          return name;
        })
        .catch(() => null));
    }
    return nameLookups.get(entityId);
  }

  function entityHref(entityId) {
    return "/entite/" + encodeURIComponent(entityId).replace(/%3A/gi, ":");
  }

  function entityLink(entityId, name) {
    return h("a", { href: entityHref(entityId), "data-route": true }, name || entityId);
  }

  function isoDate(date) {
    return date.toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  /** ``date`` moved back ``k`` calendar months, the day clamped to the month's length (as the API steps). */
  function monthsBefore(date, k) {
    const moved = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() - k, 1,
      date.getUTCHours(), date.getUTCMinutes()));
    const days = new Date(Date.UTC(moved.getUTCFullYear(), moved.getUTCMonth() + 1, 0)).getUTCDate();
    moved.setUTCDate(Math.min(date.getUTCDate(), days));
    return moved;
  }

  // ---------------------------------------------------------------- URL state of the filters
  // #carte-filtres: the map's (map.js builds it and restores its own fields; saved here with the others).
  const FILTER_FORMS = ["#presence-filtres", "#classement-filtres", "#carte-filtres"];

  function restoreFilters() {
    const params = new URLSearchParams(window.location.search);
    for (const selector of FILTER_FORMS) {
      if (!$(selector)) continue;
      for (const el of $(selector).elements) {
        if (!el.name || !params.has(el.name)) continue;
        if (el.type === "checkbox") {
          el.checked = params.getAll(el.name).includes(el.value);
        } else if (el.tagName === "SELECT") {
          const wanted = params.get(el.name);
          if (Array.from(el.options).some((o) => o.value === wanted)) el.value = wanted;
          else el.dataset.pending = wanted; // options not loaded yet (territories)
        }
      }
    }
  }

  function saveFilters() {
    if (currentView() !== "home") return;
    const params = new URLSearchParams();
    for (const selector of FILTER_FORMS) {
      if (!$(selector)) continue;
      for (const el of $(selector).elements) {
        if (!el.name) continue;
        if (el.type === "checkbox") {
          if (el.checked) params.append(el.name, el.value);
        } else if (el.value !== "") {
          params.set(el.name, el.value);
        }
      }
    }
    const query = params.toString();
    history.replaceState(history.state, "", window.location.pathname + (query ? "?" + query : "") + window.location.hash);
  }

  // ---------------------------------------------------------------- charts (uPlot)
  const charts = new Map(); // container element -> uPlot instance

  function chartWidth(container) {
    return Math.max(280, Math.floor(container.getBoundingClientRect().width));
  }

  /** Ticks of the presence chart: its own points (one a month), labelled as many as fit. */
  function pointSplits(u) {
    return u.data[0].slice();
  }

  function monthAxisValues(u, splits) {
    const width = u.bbox.width / (window.devicePixelRatio || 1);
    const stride = Math.max(1, Math.ceil(splits.length / Math.max(1, Math.floor(width / 72))));
    const last = splits.length - 1;
    // Count from the last point (now), so the latest month is always labelled.
    return splits.map((s, i) => ((last - i) % stride === 0 ? MONTH.format(new Date(s * 1000)) : ""));
  }

  function dayAxisValues(u, splits) {
    let previous = null;
    return splits.map((s) => {
      const label = DAY.format(new Date(s * 1000));
      if (label === previous) return "";
      previous = label;
      return label;
    });
  }

  function drawChart(container, options, data) {
    const old = charts.get(container);
    if (old) old.destroy();
    container.replaceChildren();
    const chart = new uPlot({ width: chartWidth(container), height: options.height || 300, ...options }, data, container);
    charts.set(container, chart);
    return chart;
  }

  const resizeObserver = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const chart = charts.get(entry.target);
      if (chart) chart.setSize({ width: chartWidth(entry.target), height: chart.height });
    }
  });

  const baseAxis = {
    stroke: "#475569",
    grid: { stroke: "#e2e8f0", width: 1 },
    ticks: { stroke: "#cbd5e1", width: 1 },
    font: "12px system-ui, sans-serif",
  };

  // ---------------------------------------------------------------- presence barometer
  const presence = { controller: null };

  function buildPlatformChecks() {
    const box = $("#presence-reseaux");
    for (const [id, label, color] of PLATFORMS) {
      const inputId = "presence-reseau-" + id;
      box.append(
        h("div", { class: "check" },
          h("input", {
            type: "checkbox", id: inputId, name: "p_reseau", value: id,
            checked: DEFAULT_PRESENCE_PLATFORMS.includes(id),
          }),
          h("label", { for: inputId },
            h("span", { class: "swatch", style: "background:" + color, "aria-hidden": "true" }), label)));
    }
    const select = $("#classement-reseau");
    for (const [id, label] of PLATFORMS) select.append(h("option", { value: id }, label));
  }

  async function loadPresence() {
    const form = $("#presence-filtres");
    const category = form.elements.p_categorie.value;
    const months = Number(form.elements.p_mois.value);
    const stratum = form.elements.p_strate ? form.elements.p_strate.value : ""; // search-strata.js
    const platforms = Array.from(form.querySelectorAll("input[name=p_reseau]:checked")).map((el) => el.value);
    const status = $("#presence-etat");
    const container = $("#presence-graphique");
    if (presence.controller) presence.controller.abort();
    const controller = (presence.controller = new AbortController());
    if (platforms.length === 0) {
      status.textContent = "Choisissez au moins un réseau.";
      return;
    }
    status.textContent = "Chargement…";
    container.setAttribute("aria-busy", "true");
    // Monthly points ending now (to the minute): the last point is today's presence. Without `to` the
    // API steps up to its own now, and the same minute gives the same (cached) answer.
    const thisMinute = new Date(Math.floor(Date.now() / 60000) * 60000);
    const from = isoDate(monthsBefore(thisMinute, months - 1));
    try {
      const series = await Promise.all(platforms.map((platform) =>
        getJSON("/v1/presence/series", { platform, category, stratum, from, step: "month" }, controller.signal)
          .then((body) => ({ platform, points: (body && body.points) || [] }))));
      renderPresence(category, series);
      loadPresenceCoverage(category, platforms, controller.signal);
    } catch (err) {
      if (isAbort(err)) return;
      status.textContent = "Impossible de charger la présence : " + err.message;
    } finally {
      if (presence.controller === controller) container.removeAttribute("aria-busy");
    }
  }

  const AXIS_PERCENT = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 2 });

  /** The top of the percentage axis: a round value just above the data (rates can be tiny). */
  function niceTop(value) {
    for (const top of [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90]) {
      if (value <= top) return top;
    }
    return 100;
  }

  function renderPresence(category, series) {
    const container = $("#presence-graphique");
    const times = Array.from(new Set(series.flatMap((s) => s.points.map((p) => Date.parse(p.at) / 1000))))
      .filter((t) => !Number.isNaN(t))
      .sort((a, b) => a - b);
    const byPlatform = series.map((s) => {
      const rates = new Map(s.points.map((p) => [Date.parse(p.at) / 1000, p]));
      return { platform: s.platform, rates };
    });
    // A point the API says is not observed (before barometre saw any account) has no value: a gap in
    // the line and "pas de données" in the table, never 0 %.
    const data = [times, ...byPlatform.map((s) => times.map((t) => {
      const p = s.rates.get(t);
      return p && isObserved(p) && p.rate !== null && p.rate !== undefined ? p.rate * 100 : null;
    }))];
    const max = Math.max(0, ...data.slice(1).flat().filter((v) => v !== null));
    const top = niceTop(max * 1.1);
    // The leading months where no platform shown has data: shaded and labelled on the chart.
    const firstData = times.findIndex((t, i) => data.slice(1).some((values) => values[i] !== null));
    const noDataUntil = firstData < 0 ? times.length : firstData;

    drawChart(container, {
      height: 300,
      padding: [12, 36, 0, 0], // room for the last month's label
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { x: { time: true }, y: { range: () => [0, top] } },
      legend: { live: true },
      cursor: { points: { size: 7 } },
      hooks: { drawClear: [(u) => drawNoData(u, noDataUntil)] },
      series: [
        { label: "Mois", value: (u, v) => (v === null ? "–" : MONTH_LONG.format(new Date(v * 1000))) },
        ...byPlatform.map((s) => ({
          label: PLATFORM_LABEL[s.platform],
          stroke: PLATFORM_COLOR[s.platform],
          width: 2,
          spanGaps: false,
          points: { show: true, size: 5, fill: PLATFORM_COLOR[s.platform] },
          // No cursor on the chart (idx null): nothing to say; a point without a value: no data.
          value: (u, v, si, idx) => (v !== null ? fmtRate(v / 100) : idx === null || idx === undefined ? "–" : NO_DATA),
        })),
      ],
      axes: [
        { ...baseAxis, splits: pointSplits, values: monthAxisValues },
        { ...baseAxis, values: (u, splits) => splits.map((v) => AXIS_PERCENT.format(v) + " %"), size: 64 },
      ],
    }, data);

    const categoryText = CATEGORY_PLURAL[category];
    const noDataText = noDataUntil === 0 ? ""
      : noDataUntil >= times.length ? " Pas de données sur la période : aucun compte n'était encore relevé."
        : " Pas de données avant " + MONTH_LONG.format(new Date(times[noDataUntil] * 1000)) +
          " : aucun compte n'était encore relevé (ce n'est pas 0 %).";
    container.setAttribute("aria-label",
      "Taux de présence des " + categoryText + " par réseau, de " +
      (times.length ? MONTH_LONG.format(new Date(times[0] * 1000)) : "–") + " à " +
      (times.length ? MONTH_LONG.format(new Date(times[times.length - 1] * 1000)) : "–") +
      " (le tableau des données est plus bas)." + noDataText);
    $("#presence-etat").textContent = times.length
      ? "Taux de présence des " + categoryText + ", en % des " + categoryText + " du panel." + noDataText
      : "Aucune donnée de présence pour ces " + categoryText + ".";

    // The latest figure of each platform.
    const kpis = $("#presence-chiffres");
    kpis.replaceChildren(...series.map((s) => {
      const last = s.points.length ? s.points[s.points.length - 1] : null;
      return h("li", { class: "kpi", style: "--accent:" + PLATFORM_COLOR[s.platform] },
        h("span", { class: "kpi__label" }, PLATFORM_LABEL[s.platform]),
        h("span", { class: "kpi__value" }, last && isObserved(last) ? fmtRate(last.rate) : "–"),
        h("span", { class: "kpi__detail" },
          last && isObserved(last) ? fmtInt(last.present) + " sur " + fmtInt(last.total) : NO_DATA));
    }));

    // The same figures as a table (for screen readers, and to read exact values).
    const table = $("#presence-table");
    table.tHead.replaceChildren(h("tr", {},
      h("th", { scope: "col" }, "Mois"),
      byPlatform.map((s) => h("th", { scope: "col", class: "num" }, PLATFORM_LABEL[s.platform]))));
    table.tBodies[0].replaceChildren(...times.slice().reverse().map((t) => h("tr", {},
      h("th", { scope: "row" }, MONTH_LONG.format(new Date(t * 1000))),
      byPlatform.map((s) => {
        const p = s.rates.get(t);
        if (p && !isObserved(p)) return h("td", { class: "num no-data" }, NO_DATA);
        return h("td", { class: "num" }, p ? fmtRate(p.rate) + " (" + fmtInt(p.present) + "/" + fmtInt(p.total) + ")" : "–");
      }))));
  }

  const NO_DATA = "pas de données";

  /** Whether a presence point had any observation (GET /v1/presence/series: `observed`). */
  function isObserved(point) {
    return point.observed !== false;
  }

  /** Shade the first ``count`` points of the presence chart (no platform had data then) and say so. */
  function drawNoData(u, count) {
    if (!count || !u.data[0].length) return;
    const xs = u.data[0];
    const left = u.bbox.left;
    const right = count >= xs.length ? u.bbox.left + u.bbox.width
      : (u.valToPos(xs[count - 1], "x", true) + u.valToPos(xs[count], "x", true)) / 2;
    const { ctx } = u;
    ctx.save();
    ctx.fillStyle = "#f1f5f9";
    ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
    ctx.fillStyle = "#475569";
    ctx.font = Math.round(13 * (window.devicePixelRatio || 1)) + "px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    // Written only where it fits (a narrow band is explained by the table and the description).
    if (ctx.measureText(NO_DATA).width + 8 < right - left) {
      ctx.fillText(NO_DATA, (left + right) / 2, u.bbox.top + u.bbox.height / 2);
    }
    ctx.restore();
  }

  // ---------------------------------------------------------------- coverage and simulated data
  /** Which figures shown include simulated data; the banner is there while any does. */
  const simulatedIn = { presence: false, ranking: false };

  function setSimulated(figure, simulated) {
    simulatedIn[figure] = Boolean(simulated);
    const banner = $("#donnees-simulees");
    const shown = Object.values(simulatedIn).some(Boolean); // presence, ranking, map (map.js)…
    // A live region is announced when its content changes: fill it, or empty it (hidden by CSS when empty).
    if (shown && !banner.childElementCount) {
      banner.replaceChildren(
        h("strong", { class: "banner__title" }, "Données simulées"),
        h("span", {}, "Les chiffres affichés viennent en tout ou partie du simulateur de barometre " +
          "(comptes inventés) : ils ne décrivent pas la présence réelle des collectivités."));
    } else if (!shown && banner.childElementCount) {
      banner.replaceChildren();
    }
  }

  // ---------------------------------------------------------------- catching up (GET /v1/status)
  const STATUS_MS = 5000;
  const catchingUp = { provisional: false, timer: null };

  /** "~40 s", "~3 min", or "durée inconnue" while the worker's rate is not known yet. */
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "durée inconnue";
    if (seconds < 90) return "~" + INT.format(Math.max(5, Math.ceil(seconds / 5) * 5)) + " s";
    return "~" + INT.format(Math.ceil(seconds / 60)) + " min";
  }

  /** The banner says how far behind the scoring worker is while the figures are provisional; once it
   * has caught up the banner goes and the figures are loaded again, complete. */
  function renderCatchingUp(scoring) {
    const banner = $("#calcul-en-cours");
    const provisional = Boolean(scoring && scoring.provisional);
    if (provisional) {
      // Rounded, so that the live region speaks only when the figures move noticeably.
      const behind = scoring.events_behind >= 10000 ? Math.round(scoring.events_behind / 1000) * 1000 : scoring.events_behind;
      const title = "Calcul en cours : ";
      const text = fmtInt(behind) + " événements en retard, " + fmtDuration(scoring.seconds_to_catch_up) +
        " — les chiffres sont provisoires.";
      if (banner.textContent !== title + text) {
        banner.replaceChildren(h("strong", { class: "banner__title" }, title), h("span", {}, text));
      }
    } else if (banner.childElementCount) {
      banner.replaceChildren();
    }
    markProvisional(provisional);
    if (catchingUp.provisional && !provisional && currentView() === "home") {
      loadPresence();
      loadRanking(false);
    }
    catchingUp.provisional = provisional;
  }

  /** While the worker catches up, every figure shown is provisional: the "provisoire" badges show
   * (html[data-provisional], dashboard.css) and the charts and tables that point to #chiffres-provisoires
   * (aria-describedby) are described as such; the description is empty otherwise. */
  function markProvisional(provisional) {
    const root = document.documentElement;
    if (provisional) root.dataset.provisional = "true";
    else delete root.dataset.provisional;
    $("#chiffres-provisoires").textContent = provisional
      ? "Chiffres provisoires : le calcul est en cours, ils peuvent encore changer." : "";
  }

  async function watchStatus() {
    clearTimeout(catchingUp.timer);
    const routes = await apiRoutes();
    if (!routes.has("/v1/status")) return;
    try {
      const body = await getJSON("/v1/status");
      renderCatchingUp(body && body.scoring);
    } catch (err) {
      // Kafka not answering says nothing about the figures: keep what is shown, ask again.
    }
    catchingUp.timer = setTimeout(watchStatus, STATUS_MS);
  }

  /** "1 234 observées, 56 anciennes, 78 sans compte connu ou jamais relevées". */
  function coverageText(observed, stale, missing) {
    return fmtInt(observed) + " observées, " + fmtInt(stale) + " anciennes, " +
      fmtInt(missing) + " sans compte connu ou jamais relevées";
  }

  const COVERAGE_HELP = " (observée : un compte relevé dans les 45 derniers jours ; ancienne : relevé plus ancien)";

  /** The coverage of the presence figure's platforms today (GET /v1/coverage, one request). */
  async function loadPresenceCoverage(category, platforms, signal) {
    const box = $("#presence-couverture");
    const routes = await apiRoutes();
    if (!routes.has("/v1/coverage")) return;
    try {
      const body = await getJSON("/v1/coverage", { category }, signal);
      const rows = new Map(((body && body.items) || []).map((row) => [row.platform, row]));
      box.querySelector(".coverage__lead").textContent =
        "Couverture aujourd'hui, en " + CATEGORY_PLURAL[category] + COVERAGE_HELP + " :";
      box.querySelector(".coverage__list").replaceChildren(...platforms.filter((p) => rows.has(p)).map((p) => {
        const row = rows.get(p);
        return h("li", {}, PLATFORM_LABEL[p] + " : " +
          coverageText(row.observed, row.stale, row.without_account + row.never_observed));
      }));
      box.hidden = false;
      setSimulated("presence", body.simulated);
    } catch (err) {
      if (isAbort(err)) return;
      box.hidden = true;
    }
  }

  function renderRankingCoverage(query, coverage) {
    const line = $("#classement-couverture");
    if (!coverage) {
      line.hidden = true;
      return;
    }
    line.textContent = "Couverture : " + coverageText(coverage.observed, coverage.stale, coverage.missing) +
      " sur " + PLATFORM_LABEL[query.platform] + COVERAGE_HELP + ".";
    line.hidden = false;
    setSimulated("ranking", coverage.simulated);
  }

  /** The least base of a relative ranking (min_base of GET /v1/rankings), as the caption's end. */
  function minBaseText(base) {
    if (!base) return "";
    const parts = [];
    if (base.followers) parts.push("au moins " + fmtInt(base.followers) + " abonnés au début de la période");
    if (base.population) parts.push("au moins " + fmtInt(base.population) + " habitants");
    return parts.length ? " — collectivités ayant " + parts.join(" et ") : "";
  }

  // ---------------------------------------------------------------- territories (région, département)
  const territories = { regions: [], departements: [], loaded: null };

  async function loadTerritories() {
    try {
      const body = await getJSON("/v1/territories");
      territories.regions = body.regions || [];
      territories.departements = body.departements || [];
    } catch (err) {
      territories.regions = [];
      territories.departements = [];
    }
    for (const t of [...territories.regions, ...territories.departements]) entityNames.set(t.entity_id, t.name);
    const region = $("#classement-region");
    region.replaceChildren(h("option", { value: "" }, "Toutes les régions"),
      ...territories.regions.map((r) => h("option", { value: r.code }, r.name)));
    applyPending(region);
    fillDepartements();
  }

  function applyPending(select) {
    const wanted = select.dataset.pending;
    if (wanted !== undefined && Array.from(select.options).some((o) => o.value === wanted)) select.value = wanted;
    delete select.dataset.pending;
  }

  function fillDepartements() {
    const region = $("#classement-region").value;
    const select = $("#classement-departement");
    const current = select.dataset.pending !== undefined ? select.dataset.pending : select.value;
    const list = territories.departements.filter((d) => !region || d.region === region);
    select.replaceChildren(h("option", { value: "" }, "Tous les départements"),
      ...list.map((d) => h("option", { value: d.code }, d.code + " – " + d.name)));
    select.value = list.some((d) => d.code === current) ? current : "";
    delete select.dataset.pending;
  }

  // ---------------------------------------------------------------- live rankings
  const REFRESH_MS = 5000;
  const ranking = { controller: null, timer: null, previous: new Map(), key: "" };

  function rankingQuery() {
    const f = $("#classement-filtres").elements;
    return {
      platform: f.reseau.value,
      category: f.categorie.value,
      metric: f.indicateur.value,
      window: f.fenetre.value,
      region: f.region.value,
      departement: f.departement.value,
      stratum: f.strate ? f.strate.value : "", // search-strata.js
      limit: f.nombre.value,
    };
  }

  function scheduleRanking() {
    clearTimeout(ranking.timer);
    ranking.timer = null;
    if ($("#classement-auto").checked && currentView() === "home" && !document.hidden) {
      ranking.timer = setTimeout(() => loadRanking(false), REFRESH_MS);
    }
  }

  async function loadRanking(userChange) {
    clearTimeout(ranking.timer);
    const query = rankingQuery();
    const growth = query.metric === "growth_abs" || query.metric === "growth_pct";
    $("#classement-fenetre").disabled = !growth; // only growth metrics have a window
    if (ranking.controller) ranking.controller.abort();
    const controller = (ranking.controller = new AbortController());
    const table = $("#classement");
    const status = $("#classement-etat");
    if (userChange) {
      table.setAttribute("aria-busy", "true");
      status.textContent = "Chargement…";
    }
    try {
      const body = await getJSON("/v1/rankings", { ...query, by: "entity" }, controller.signal);
      const items = (body && body.items) || [];
      renderRanking(query, items);
      renderRankingCoverage(query, body && body.coverage);
      const stratum = $("#classement-strate");
      if (stratum && stratum.value && stratum.selectedOptions[0]) {
        $("#classement-legende").textContent += " — strate : " + stratum.selectedOptions[0].textContent;
      }
      $("#classement-legende").textContent += minBaseText(body && body.min_base);
      // Screen readers hear about the rankings a user asked for, not about every automatic refresh.
      if (userChange) $("#classement-annonce").textContent = $("#classement-legende").textContent + " : " +
        (items.length ? fmtInt(items.length) + " collectivités." : "aucune collectivité.");
      status.textContent = "Mis à jour à " + TIME.format(new Date()) +
        ($("#classement-auto").checked ? " · actualisation toutes les " + REFRESH_MS / 1000 + " s" : "");
    } catch (err) {
      if (isAbort(err)) return;
      status.textContent = "Impossible de charger le classement : " + err.message;
    } finally {
      if (ranking.controller === controller) {
        table.removeAttribute("aria-busy");
        ranking.controller = null;
        scheduleRanking();
      }
    }
    if (userChange) loadScore(query);
  }

  function renderRanking(query, items) {
    const growth = query.metric === "growth_abs" || query.metric === "growth_pct";
    const key = JSON.stringify(query);
    const previous = key === ranking.key ? ranking.previous : new Map();
    $("#classement-col-valeur").textContent = METRIC_COLUMN[query.metric];
    const before = $("#classement-col-avant");
    before.textContent = "Il y a " + WINDOW_LABEL[query.window];
    before.hidden = !growth;
    const where = [];
    if (query.departement) {
      const d = territories.departements.find((x) => x.code === query.departement);
      where.push(d ? d.name : query.departement);
    } else if (query.region) {
      const r = territories.regions.find((x) => x.code === query.region);
      where.push(r ? r.name : query.region);
    }
    $("#classement-legende").textContent =
      "Classement des " + CATEGORY_PLURAL[query.category] + (where.length ? " (" + where[0] + ")" : "") +
      " sur " + PLATFORM_LABEL[query.platform] + " : " + METRIC_LABEL[query.metric].toLowerCase() +
      (growth ? " sur " + WINDOW_LABEL[query.window] : "");

    const tbody = $("#classement").tBodies[0];
    if (items.length === 0) {
      tbody.replaceChildren(h("tr", { class: "empty-row" },
        h("td", { colspan: growth ? 5 : 4 }, "Aucune collectivité classée pour ces critères.")));
    } else {
      tbody.replaceChildren(...items.map((item) => {
        const old = previous.get(item.entity_id);
        let move = null;
        if (old && old.rank !== item.rank) move = old.rank > item.rank ? "up" : "down";
        const changed = old && old.value !== item.value;
        return h("tr", { "data-entity-id": item.entity_id, class: changed ? "changed" : null },
          h("td", { class: "num rank" }, INT.format(item.rank),
            move ? h("span", { class: "move move--" + move, title: move === "up" ? "en hausse" : "en baisse" },
              move === "up" ? " ▲" : " ▼") : null),
          h("th", { scope: "row", class: "name" }, entityLink(item.entity_id, item.name)),
          h("td", { class: "num value" + (growth && item.value < 0 ? " negative" : "") }, fmtMetric(query.metric, item.value)),
          h("td", { class: "num" }, fmtInt(item.followers)),
          growth ? h("td", { class: "num" }, fmtInt(item.followers_before)) : null);
      }));
    }
    ranking.key = key;
    ranking.previous = new Map(items.map((item) => [item.entity_id, item]));
    for (const item of items) entityNames.set(item.entity_id, item.name);
  }

  /** The average good-practice score of the category on the platform (GET /v1/scores), when served. */
  async function loadScore(query) {
    const note = $("#classement-score");
    const routes = await apiRoutes();
    if (!routes.has("/v1/scores")) return;
    try {
      const body = await getJSON("/v1/scores", { platform: query.platform, category: query.category });
      const value = pickNumber(body, ["score", "average", "mean", "value"]);
      if (value === null) {
        note.hidden = true;
        return;
      }
      const formula = body.formula || body.formula_version || body.version;
      note.replaceChildren("Score moyen de bonnes pratiques : ",
        h("strong", {}, DEC1.format(value) + " / 5"),
        formula ? " (formule " + formula + ")" : "");
      note.hidden = false;
    } catch (err) {
      note.hidden = true;
    }
  }

  function pickNumber(obj, keys) {
    for (const key of keys) {
      if (obj && typeof obj[key] === "number") return obj[key];
    }
    return null;
  }

  // ---------------------------------------------------------------- entity page
  const entity = { controller: null, id: null };

  async function loadEntity(entityId) {
    entity.id = entityId;
    if (entity.controller) entity.controller.abort();
    const controller = (entity.controller = new AbortController());
    const status = $("#entite-etat");
    $("#entite-titre").textContent = entityId;
    $("#entite-sous-titre").textContent = "";
    $("#entite-faits").replaceChildren();
    $("#entite-comptes").replaceChildren();
    status.textContent = "Chargement…";
    document.title = entityId + " — Baromètre des collectivités";
    let body;
    try {
      body = await getJSON("/v1/entities/" + encodeURIComponent(entityId), {}, controller.signal);
    } catch (err) {
      if (isAbort(err)) return;
      status.textContent = err.status === 404
        ? "Collectivité introuvable : " + entityId + "."
        : "Impossible de charger la collectivité : " + err.message;
      return;
    }
    status.textContent = "";
    await territories.loaded;
    if (controller.signal.aborted) return;
    if (body && body.name) entityNames.set(entityId, body.name);
    renderEntity(entityId, body);
    document.dispatchEvent(new CustomEvent("barometre:entity", { detail: { entityId, body } })); // search-strata.js
    await loadAccountHistories(controller.signal);
  }

  /** The entity's accounts, each with its platform (GET /v1/entities/{id} groups them by platform). */
  function entityAccounts(body) {
    if (Array.isArray(body.platforms)) {
      return body.platforms.flatMap((p) => (p.accounts || []).map((a) => ({ platform: p.platform, ...a })));
    }
    return Array.isArray(body.accounts) ? body.accounts : [];
  }

  function renderEntity(entityId, body) {
    const name = body.name || entityId;
    const category = body.category || KIND_CATEGORY[entityId.split(":")[0]];
    $("#entite-titre").textContent = name;
    document.title = name + " — Baromètre des collectivités";
    $("#entite-sous-titre").textContent = (CATEGORY_LABEL[category] || "Collectivité") + " · " + entityId;

    const facts = [];
    if (typeof body.population === "number") facts.push(["Population", fmtInt(body.population) + " hab."]);
    const dep = territoryName(body.departement, territories.departements);
    if (dep && category !== "departement") facts.push(["Département", dep]);
    const reg = territoryName(body.region, territories.regions, false);
    if (reg && category !== "region") facts.push(["Région", reg]);
    const accounts = entityAccounts(body);
    if (Array.isArray(body.present_on)) {
      facts.push(["Présente sur", body.present_on.length
        ? PLATFORMS.filter(([id]) => body.present_on.includes(id)).map(([, label]) => label).join(", ")
        : "aucun réseau"]);
    }
    facts.push(["Comptes suivis", fmtInt(accounts.length)]);
    const followers = accounts.reduce((sum, a) => sum + (typeof a.followers === "number" ? a.followers : 0), 0);
    if (accounts.length) facts.push(["Abonnés (tous réseaux)", fmtInt(followers)]);
    const score = entityScore(body);
    const dl = $("#entite-faits");
    dl.replaceChildren(...facts.map(([term, value]) => h("div", { class: "fact" }, h("dt", {}, term), h("dd", {}, value))));
    if (score !== null) {
      dl.append(h("div", { class: "fact fact--score" },
        h("dt", {}, "Score de bonnes pratiques"),
        h("dd", {},
          h("meter", { min: 0, max: 5, low: 2, high: 3.5, optimum: 5, value: score, "aria-label": "Score de bonnes pratiques" }),
          " ", h("strong", {}, DEC1.format(score)), " / 5",
          body.formula ? h("span", { class: "fact__note" }, " (formule " + body.formula + ")") : null)));
    }

    const list = $("#entite-comptes");
    if (!accounts.length) {
      list.replaceChildren(h("p", { class: "empty" }, "Aucun compte connu pour cette collectivité."));
      return;
    }
    const order = (a) => {
      const i = PLATFORMS.findIndex(([id]) => id === (a.platform || String(a.account_id).split(":")[0]));
      return i < 0 ? PLATFORMS.length : i;
    };
    list.replaceChildren(...accounts.slice().sort((a, b) => order(a) - order(b) ||
      String(a.account_id).localeCompare(String(b.account_id))).map((a) => accountCard(a)));
  }

  /** "Isère (38)" from a code ("38"), an object ({code, name}) or a name. */
  function territoryName(value, list, withCode = true) {
    if (!value) return null;
    if (typeof value === "object") return value.name || value.code || null;
    const found = list.find((t) => t.code === String(value) || t.entity_id === String(value));
    if (!found) return String(value);
    return withCode ? found.name + " (" + found.code + ")" : found.name;
  }

  function entityScore(body) {
    const direct = pickNumber(body, ["score"]);
    if (direct !== null) return direct;
    if (body.score && typeof body.score === "object") return pickNumber(body.score, ["score", "value", "average"]);
    const scores = entityAccounts(body).map((a) => accountScore(a)).filter((v) => v !== null);
    return scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : null;
  }

  function accountScore(account) {
    if (typeof account.score === "number") return account.score;
    if (account.score && typeof account.score === "object") return pickNumber(account.score, ["score", "value"]);
    return null;
  }

  function accountCard(account) {
    const platform = account.platform || String(account.account_id).split(":")[0];
    const score = accountScore(account);
    const before = account.followers_before && account.followers_before["30d"];
    const growth = typeof before === "number" && typeof account.followers === "number"
      ? account.followers - before : null;
    const chartId = "historique-" + String(account.account_id).replace(/[^A-Za-z0-9_-]/g, "_");
    return h("article", { class: "account", "data-account-id": account.account_id, style: "--accent:" + (PLATFORM_COLOR[platform] || "#334155") },
      h("header", { class: "account__head" },
        h("h3", {}, PLATFORM_LABEL[platform] || platform,
          h("span", { class: "account__handle" }, " " + (account.handle ? "@" + String(account.handle).replace(/^@/, "") : account.account_id))),
        account.status && account.status !== "active"
          ? h("span", { class: "badge badge--warning" }, STATUS_LABEL[account.status] || account.status) : null),
      h("dl", { class: "account__figures" },
        h("div", {}, h("dt", {}, "Abonnés"), h("dd", {}, fmtInt(account.followers))),
        growth !== null ? h("div", {}, h("dt", {}, "Croissance sur 30 jours"), h("dd", {}, SIGNED_INT.format(growth))) : null,
        h("div", {}, h("dt", {}, "Score"), h("dd", {}, score === null ? "–" : DEC1.format(score) + " / 5")),
        account.observed_at ? h("div", {}, h("dt", {}, "Dernier relevé"),
          h("dd", {}, h("time", { datetime: account.observed_at }, DATETIME.format(new Date(account.observed_at))))) : null),
      h("div", { class: "chart chart--small", id: chartId, role: "img", "aria-label": "Historique des abonnés" }),
      h("p", { class: "status account__status", role: "status" }, "Chargement de l'historique…"));
  }

  const HISTORY_LIMIT = 10000;

  async function loadAccountHistories(signal) {
    const days = Number($("#entite-periode").value);
    const from = isoDate(new Date(Date.now() - days * 86400000));
    const cards = Array.from(document.querySelectorAll("#entite-comptes .account"));
    await Promise.all(cards.map(async (card) => {
      const accountId = card.dataset.accountId;
      const status = $(".account__status", card);
      try {
        // Newest first, at most HISTORY_LIMIT snapshots: with dense polling a long period is cut (said below).
        const body = await getJSON("/v1/accounts/" + encodeURIComponent(accountId) + "/history",
          { from, limit: HISTORY_LIMIT }, signal);
        renderHistory(card, accountId, body);
      } catch (err) {
        if (isAbort(err)) return;
        status.textContent = "Historique indisponible : " + err.message;
      }
    }));
  }

  function historyPoints(body) {
    const raw = Array.isArray(body) ? body : body.points || body.items || body.history || body.snapshots || [];
    return raw
      .map((p) => ({ t: Date.parse(p.observed_at || p.at || p.day) / 1000, followers: p.followers, status: p.status }))
      .filter((p) => !Number.isNaN(p.t) && typeof p.followers === "number")
      .sort((a, b) => a.t - b.t);
  }

  function renderHistory(card, accountId, body) {
    const points = historyPoints(body);
    const container = $(".chart", card);
    const status = $(".account__status", card);
    const platform = accountId.split(":")[0];
    if (!points.length) {
      container.replaceChildren();
      status.textContent = "Aucun relevé sur la période.";
      return;
    }
    const color = PLATFORM_COLOR[platform] || "#334155";
    drawChart(container, {
      height: 200,
      padding: [12, 28, 0, 0],
      scales: { x: { time: true } },
      legend: { show: false },
      series: [
        { label: "Date", value: (u, v) => (v === null ? "–" : DATETIME.format(new Date(v * 1000))) },
        {
          label: "Abonnés", stroke: color, width: 2, fill: color + "1a",
          points: { show: points.length < 60, size: 4, fill: color },
          value: (u, v) => fmtInt(v),
        },
      ],
      axes: [
        { ...baseAxis, values: dayAxisValues, space: 90 },
        { ...baseAxis, values: (u, splits) => splits.map((v) => INT.format(v)), size: 70 },
      ],
    }, [points.map((p) => p.t), points.map((p) => p.followers)]);
    const first = points[0];
    const last = points[points.length - 1];
    container.setAttribute("aria-label", "Historique des abonnés " + (PLATFORM_LABEL[platform] || platform) +
      " : " + fmtInt(first.followers) + " le " + DAY.format(new Date(first.t * 1000)) + ", " +
      fmtInt(last.followers) + " le " + DAY.format(new Date(last.t * 1000)));
    status.textContent = fmtInt(points.length) + " relevés, du " + DAY.format(new Date(first.t * 1000)) +
      " au " + DAY.format(new Date(last.t * 1000)) +
      (body && body.truncated ? " (les plus récents seulement : la période en compte davantage)." : ".");
  }

  // ---------------------------------------------------------------- live alert feed (SSE)
  const MAX_ALERTS = 50;
  const alerts = { byId: new Map(), source: null, retry: 1000, newest: null, available: false };

  async function startAlerts() {
    const routes = await apiRoutes();
    const status = $("#alertes-etat");
    const hasList = routes.has("/v1/alerts");
    const hasStream = routes.has("/v1/alerts/stream");
    if (!hasList && !hasStream) {
      status.textContent = "Le flux d'alertes n'est pas disponible sur ce serveur.";
      renderAlertsEmpty();
      return;
    }
    alerts.available = true;
    if (hasList) await backfillAlerts();
    if (hasStream) connectAlerts();
    else status.textContent = "Alertes récentes (pas de flux en direct sur ce serveur).";
  }

  /** The latest alerts (newest first), or those since the newest one shown after a reconnection. */
  async function backfillAlerts() {
    try {
      const params = { limit: 20 };
      if (alerts.newest) params.since = alerts.newest;
      const body = await getJSON("/v1/alerts", params);
      const items = (body && body.items) || [];
      for (const alert of items.slice().reverse()) addAlert(alert, false);
    } catch (err) {
      // the feed stays as it is; the stream brings what is new
    }
    renderAlertsEmpty();
  }

  function connectAlerts() {
    const status = $("#alertes-etat");
    const source = (alerts.source = new EventSource("/v1/alerts/stream"));
    const onMessage = (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (e) {
        return; // a comment or keep-alive that is not JSON
      }
      for (const alert of Array.isArray(data) ? data : [data]) {
        if (alert && alert.alert_id) addAlert(alert, true);
      }
      renderAlertsEmpty();
    };
    source.addEventListener("alert", onMessage);
    source.addEventListener("incident", (event) => {
      let incident;
      try {
        incident = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (incident && incident.incident_id) emit("incident", incident);
    });
    source.addEventListener("message", onMessage);
    source.addEventListener("open", () => {
      alerts.retry = 1000;
      status.textContent = "En direct";
      status.classList.add("is-live");
    });
    source.addEventListener("error", () => {
      status.classList.remove("is-live");
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (the server refused the stream): try again later, and fill the gap from
        // the list. While CONNECTING, the browser reconnects by itself with Last-Event-ID.
        status.textContent = "Flux interrompu ; nouvelle tentative…";
        source.close();
        setTimeout(async () => {
          if (routesHasList()) await backfillAlerts();
          connectAlerts();
        }, alerts.retry);
        alerts.retry = Math.min(alerts.retry * 2, 60000);
      } else {
        status.textContent = "Reconnexion au flux…";
      }
    });
  }

  let knownRoutes = new Set();
  apiRoutes().then((routes) => { knownRoutes = routes; });
  const routesHasList = () => knownRoutes.has("/v1/alerts");

  function addAlert(alert, live) {
    const list = $("#alertes-liste");
    const existing = alerts.byId.get(alert.alert_id);
    const item = alertItem(alert, live && !existing);
    if (existing) {
      existing.replaceWith(item);
    } else {
      list.prepend(item);
    }
    alerts.byId.set(alert.alert_id, item);
    alertData.set(item, alert);
    emit("alert", item, alert);
    if (alert.detected_at && (!alerts.newest || alert.detected_at > alerts.newest)) alerts.newest = alert.detected_at;
    while (list.children.length > MAX_ALERTS) {
      const last = list.lastElementChild;
      alerts.byId.delete(last.dataset.alertId);
      last.remove();
    }
  }

  function alertItem(alert, fresh) {
    const severity = alert.severity || "info";
    const platform = alert.platform || String(alert.account_id || "").split(":")[0];
    const when = new Date(alert.observed_at || alert.detected_at);
    let figures = null;
    if (typeof alert.value === "number") {
      const unit = alert.type === "dormant" ? " jours sans publication" : " abonnés";
      figures = fmtInt(alert.value) + unit +
        (typeof alert.expected === "number" ? " (attendu : " + fmtInt(alert.expected) + ")" : "");
    }
    return h("li", {
      class: "alert alert--" + severity + (fresh ? " alert--fresh" : "") + (alert.status === "acknowledged" ? " alert--ack" : ""),
      "data-alert-id": alert.alert_id,
    },
      h("div", { class: "alert__head" },
        h("span", { class: "badge badge--" + severity }, SEVERITY_LABEL[severity] || severity),
        h("strong", { class: "alert__type" }, ALERT_TYPE_LABEL[alert.type] || alert.type)),
      h("p", { class: "alert__who" },
        alert.entity_id ? alertEntityLink(alert.entity_id) : alert.account_id,
        " · ", PLATFORM_LABEL[platform] || platform),
      figures ? h("p", { class: "alert__figures" }, figures) : null,
      Number.isNaN(when.getTime()) ? null
        : h("p", { class: "alert__when" },
          h("time", { datetime: when.toISOString(), title: DATETIME.format(when) }, fmtRelative(when)),
          alert.status === "acknowledged" ? " · prise en compte" : ""));
  }

  function alertEntityLink(entityId) {
    const link = entityLink(entityId, entityNames.get(entityId) || entityId);
    if (!entityNames.has(entityId)) {
      lookupName(entityId).then((name) => { if (name) link.textContent = name; });
    }
    return link;
  }

  function renderAlertsEmpty() {
    $("#alertes-vide").hidden = $("#alertes-liste").children.length > 0;
  }

  // Relative times ("il y a 3 minutes") age with the page.
  setInterval(() => {
    for (const el of document.querySelectorAll(".alert__when time")) {
      el.textContent = fmtRelative(new Date(el.getAttribute("datetime")));
    }
  }, 30000);

  // ---------------------------------------------------------------- views and navigation
  function entityIdFromLocation() {
    const path = window.location.pathname;
    if (path.startsWith("/entite/")) return decodeURIComponent(path.slice("/entite/".length));
    const hash = window.location.hash;
    if (hash.startsWith("#/entite/")) return decodeURIComponent(hash.slice("#/entite/".length));
    return null;
  }

  function currentView() {
    return entityIdFromLocation() ? "entity" : "home";
  }

  let homeLoaded = false;

  function route() {
    const entityId = entityIdFromLocation();
    $("#vue-accueil").hidden = Boolean(entityId);
    $("#vue-entite").hidden = !entityId;
    if (entityId) {
      clearTimeout(ranking.timer);
      loadEntity(entityId);
      window.scrollTo(0, 0);
    } else {
      document.title = "Baromètre des collectivités sur les réseaux sociaux";
      if (!homeLoaded) {
        homeLoaded = true;
        loadPresence();
        loadRanking(true);
      } else {
        // charts drawn while hidden have no width: redraw at the right size
        for (const [container, chart] of charts) {
          if (container.isConnected) chart.setSize({ width: chartWidth(container), height: chart.height });
        }
        loadRanking(false);
      }
      const target = window.location.hash && document.getElementById(window.location.hash.slice(1));
      if (target) target.scrollIntoView();
    }
  }

  function navigate(href) {
    history.pushState({}, "", href);
    route();
    $("#contenu").focus({ preventScroll: true });
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-route]");
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const url = new URL(link.href, window.location.origin);
    if (url.origin !== window.location.origin) return;
    event.preventDefault();
    const sameView = (url.pathname.startsWith("/entite/")) === (currentView() === "entity") && url.pathname === window.location.pathname;
    if (sameView && url.hash) {
      history.pushState({}, "", url.pathname + window.location.search + url.hash);
      const target = document.getElementById(url.hash.slice(1));
      if (target) target.scrollIntoView({ behavior: "smooth" });
      return;
    }
    navigate(url.pathname + (url.pathname === "/" ? homeSearch : "") + url.hash);
  });

  let homeSearch = ""; // the home page's filters, kept while an entity page is shown

  window.addEventListener("popstate", route);

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && currentView() === "home") loadRanking(false);
  });

  function init() {
    buildPlatformChecks();
    restoreFilters();
    homeSearch = window.location.search;

    $("#presence-filtres").addEventListener("change", () => {
      saveFilters();
      homeSearch = window.location.search;
      loadPresence();
    });
    $("#classement-filtres").addEventListener("change", (event) => {
      if (event.target.id === "classement-region") fillDepartements();
      if (event.target.id === "classement-auto") {
        if (event.target.checked) loadRanking(false);
        else clearTimeout(ranking.timer);
        return;
      }
      saveFilters();
      homeSearch = window.location.search;
      loadRanking(true);
    });
    for (const form of document.querySelectorAll("form.filters")) {
      form.addEventListener("submit", (event) => event.preventDefault());
    }
    $("#entite-periode").addEventListener("change", () => {
      if (entity.id) {
        if (entity.controller) entity.controller.abort();
        entity.controller = new AbortController();
        loadAccountHistories(entity.controller.signal);
      }
    });
    resizeObserver.observe($("#presence-graphique"));
    new MutationObserver(() => {
      for (const el of document.querySelectorAll(".chart")) resizeObserver.observe(el);
    }).observe($("#entite-comptes"), { childList: true });

    territories.loaded = loadTerritories();
    territories.loaded.then(() => {
      if (currentView() === "home" && ($("#classement-region").value || $("#classement-departement").value)) loadRanking(true);
    });
    route();
    startAlerts();
    watchStatus();
  }

  // ---------------------------------------------------------------- for the features in other files
  // (alert-actions.js, overlap.js, downloads.js): hooks on the alert feed and the helpers they share.
  // on("alert", fn): fn(item, alert) for each feed item drawn (and at once for those already shown);
  // on("incident", fn): fn(incident) for each incident of the stream.
  const listeners = { alert: [], incident: [] };
  const alertData = new WeakMap(); // feed item -> its alert
  function emit(name, ...args) {
    for (const fn of listeners[name]) {
      try {
        fn(...args);
      } catch (err) {
        console.error(err);
      }
    }
  }
  function on(name, fn) {
    listeners[name].push(fn);
    if (name === "alert") for (const item of alerts.byId.values()) fn(item, alertData.get(item));
  }
  // The helpers the feature scripts (alert-actions.js, overlap.js, downloads.js, map.js,
  // search-strata.js), loaded after this one, share with it: one place, so a name is exported once.
  window.barometre = Object.assign(window.barometre || {}, {
    on, h, $, getJSON, ApiError, isAbort, apiRoutes, isoDate, monthsBefore, addAlert, alertItem, entityLink,
    entityHref, navigate, territories, fmtInt, fmtRate, fmtMetric, fmtRelative, DATETIME, DAY, PLATFORMS,
    PLATFORM_LABEL, PLATFORM_COLOR, DEFAULT_PRESENCE_PLATFORMS, METRIC_LABEL, CATEGORY_LABEL, CATEGORY_PLURAL,
    ALERT_TYPE_LABEL, SEVERITY_LABEL, setSimulated,
    // map.js: its filters saved in the address with the others.
    keepFilters: () => {
      saveFilters();
      homeSearch = window.location.search;
    },
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();

})();
