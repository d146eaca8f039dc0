// Supervisor dashboard: fetches its JSON, draws the table, the trend (inline SVG) and the lists,
// refreshes without reloading the page. No external code.
(function () {
  "use strict";
  const form = document.getElementById("filters");
  const statusEl = document.getElementById("status");
  const MEASURES = ["received", "finished", "early", "on_time", "late", "in_progress", "overdue", "withdrawn"];
  const VI = { received: "tiếp nhận", finished: "đã giải quyết", early: "trước hạn", on_time: "đúng hạn",
    late: "giải quyết quá hạn", in_progress: "đang giải quyết", overdue: "đang quá hạn", withdrawn: "đã rút" };
  const RESULT = { early: "Trước hạn", on_time: "Đúng hạn", late: "Quá hạn" };
  let last = null;

  function params() {
    const p = new URLSearchParams();
    for (const name of ["from", "to", "level", "agency", "procedure"]) {
      const el = form.elements[name];
      if (el && el.value && !el.disabled) p.set(name, el.value);
    }
    return p;
  }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function when(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    const z = new Intl.DateTimeFormat("vi-VN", { timeZone: "Asia/Ho_Chi_Minh", hour: "2-digit", minute: "2-digit",
      day: "2-digit", month: "2-digit", year: "numeric" });
    return z.format(d);
  }
  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error("HTTP " + r.status);
    return r.json();
  }

  function kpis(data) {
    const box = document.getElementById("kpis");
    box.replaceChildren();
    const t = data.total;
    const items = [
      ["Tiếp nhận", t.received], ["Đã giải quyết", t.finished], ["Quá hạn (đã giải quyết)", t.late, t.late > 0 ? "bad" : ""],
      ["Đang giải quyết", t.in_progress], ["Đang quá hạn", t.overdue, t.overdue > 0 ? "bad" : ""],
      ["Tỷ lệ đúng hạn", t.on_time_rate === "" ? "—" : t.on_time_rate + "%",
        t.on_time_rate === "" ? "" : (parseFloat(t.on_time_rate) >= data.target ? "good" : "bad")],
    ];
    for (const [label, value, cls] of items) {
      const k = el("div", { class: "kpi " + (cls || "") });
      k.append(el("span", {}, label), el("b", {}, String(value)));
      box.append(k);
    }
  }

  function cell(measure, key, value) {
    const td = el("td", { class: "n" });
    if (value > 0) {
      const a = el("a", { class: "cell", href: "#drilldown-card", "data-measure": measure, "data-key": key }, String(value));
      a.addEventListener("click", (ev) => { ev.preventDefault(); drill(measure, key); });
      td.append(a);
    } else td.textContent = "0";
    return td;
  }
  function table(data) {
    const body = document.querySelector("#by-agency tbody");
    const foot = document.querySelector("#by-agency tfoot");
    body.replaceChildren(); foot.replaceChildren();
    const add = (row, target, key, cls) => {
      const tr = el("tr", { "data-agency": row.key, class: cls || "" });
      tr.append(el("td", {}, row.key === "TOTAL" ? "Tổng" : row.name + " (" + row.key + ")"));
      for (const m of MEASURES) tr.append(cell(m, key, row[m]));
      tr.append(el("td", { class: "n rate" }, row.on_time_rate === "" ? "—" : row.on_time_rate));
      target.append(tr);
    };
    for (const row of data.rows) add(row, body, row.key);
    add(data.total, foot, "", "total");
  }

  function briefRows(tbody, items, empty) {
    tbody.replaceChildren();
    if (!items.length) { const tr = el("tr"); tr.append(el("td", { colspan: 7, class: "muted" }, empty)); tbody.append(tr); return; }
    for (const d of items) {
      const tr = el("tr", { "data-code": d.code, class: d.timeliness === "late" ? "late" : "" });
      tr.append(el("td", {}, d.code), el("td", {}, d.procedure), el("td", {}, d.agency_name),
        el("td", {}, when(d.received_at)), el("td", {}, when(d.due_at) + (d.paused ? " (tạm dừng)" : "")),
        el("td", {}, when(d.result_ready_at)), el("td", {}, RESULT[d.timeliness] || (d.apology ? "Đã xin lỗi, hẹn lại" : "")));
      tbody.append(tr);
    }
  }

  async function drill(measure, key) {
    const p = params();
    p.set("measure", measure);
    if (key) p.set("key", key);
    const data = await getJSON("/api/v1/dashboard/dossiers?" + p.toString());
    const card = document.getElementById("drilldown-card");
    card.hidden = false;
    card.dataset.measure = measure;
    card.dataset.key = key || "";
    document.getElementById("drilldown-title").textContent =
      "Hồ sơ " + VI[measure] + (key ? " — " + key : " — tất cả") + ": " + data.count;
    briefRows(document.querySelector("#drilldown tbody"), data.dossiers, "Không có hồ sơ");
    card.scrollIntoView({ block: "nearest" });
  }

  function trend(data) {
    const box = document.getElementById("trend");
    const ns = "http://www.w3.org/2000/svg";
    const W = 560, H = 220, L = 40, R = 10, T = 10, B = 30;
    const pts = data.trend.map((t, i) => ({ i, label: t.from.slice(5, 7) + "/" + t.from.slice(2, 4),
      rate: t.on_time_rate === "" ? null : parseFloat(t.on_time_rate) }));
    const rates = pts.filter((p) => p.rate !== null).map((p) => p.rate);
    const lo = Math.max(0, Math.floor(Math.min(95, ...rates) / 5) * 5);
    const x = (i) => L + (W - L - R) * (pts.length > 1 ? i / (pts.length - 1) : 0.5);
    const y = (v) => T + (H - T - B) * (100 - v) / (100 - lo);
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("width", "100%");
    const mk = (tag, attrs, text) => { const e = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text) e.textContent = text; svg.append(e); return e; };
    mk("line", { x1: L, x2: W - R, y1: y(100), y2: y(100), stroke: "#d5dbe3" });
    mk("line", { x1: L, x2: W - R, y1: y(lo), y2: y(lo), stroke: "#d5dbe3" });
    mk("text", { x: 2, y: y(100) + 4 }, "100%");
    mk("text", { x: 2, y: y(lo) + 4 }, lo + "%");
    mk("line", { class: "target", x1: L, x2: W - R, y1: y(data.target), y2: y(data.target) });
    mk("text", { x: W - R - 70, y: y(data.target) - 4 }, "mục tiêu 99%");
    const d = pts.filter((p) => p.rate !== null).map((p, k) => (k ? "L" : "M") + x(p.i) + "," + y(p.rate)).join(" ");
    if (d) mk("path", { class: "line", d });
    for (const p of pts) {
      mk("text", { x: x(p.i) - 12, y: H - 8 }, p.label);
      if (p.rate !== null) {
        const c = mk("circle", { class: "dot", cx: x(p.i), cy: y(p.rate), r: 3.5 });
        const title = document.createElementNS(ns, "title"); title.textContent = p.label + ": " + p.rate + "%"; c.append(title);
      }
    }
    box.replaceChildren(svg);
  }

  function scorecard(data) {
    const box = document.getElementById("scorecard");
    box.replaceChildren();
    const t = el("table", { class: "score" });
    const head = el("tr");
    for (const h of ["Cơ quan", "Chỉ số", "Tỷ lệ (%)", "Điểm"]) head.append(el("th", {}, h));
    t.append(head);
    for (const card of data.score_card) {
      card.indicators.forEach((ind, k) => {
        const tr = el("tr", { "data-agency": card.agency });
        if (k === 0) {
          const td = el("td", { rowspan: card.indicators.length }, card.name);
          td.append(el("br"), el("b", {}, card.points + " / " + card.maximum + " điểm"));
          tr.append(td);
        }
        const name = el("td", { title: ind.source }, ind.name);
        tr.append(name, el("td", { class: "n" }, ind.rate === "" ? "—" : ind.rate + " (" + ind.part + "/" + ind.whole + ")"),
          el("td", { class: "n" }, (ind.points === "" ? "—" : ind.points) + " / " + ind.maximum));
        t.append(tr);
      });
    }
    box.append(t);
  }

  function feedback(data) {
    const fb = data.feedback;
    if (!fb) return;
    document.getElementById("feedback-period").textContent = data.from + " → " + data.to;
    const csv = new URLSearchParams({ from: data.from, to: data.to, format: "csv" });
    if (data.filters.agency) csv.set("agency", data.filters.agency);
    document.getElementById("feedback-csv").setAttribute("href", "/api/v1/reports/feedback?" + csv.toString());
    const body = document.querySelector("#feedback tbody");
    const foot = document.querySelector("#feedback tfoot");
    body.replaceChildren(); foot.replaceChildren();
    const add = (row, target, cls) => {
      const tr = el("tr", { "data-agency": row.key, class: cls || "" });
      tr.append(el("td", {}, row.key === "TOTAL" ? "Tổng" : row.name + " (" + row.key + ")"));
      for (const m of ["all", "early", "on_time", "late", "dissatisfied"]) tr.append(el("td", { class: "n" }, String(row[m])));
      for (const m of ["on_time_rate", "satisfaction_rate"]) tr.append(el("td", { class: "n rate" }, row[m] === "" ? "—" : row[m]));
      target.append(tr);
    };
    if (!fb.rows.length) {
      const tr = el("tr"); tr.append(el("td", { colspan: 8, class: "muted" }, "Không có phản ánh, kiến nghị trong kỳ.")); body.append(tr);
    }
    for (const row of fb.rows) add(row, body);
    add(fb.total, foot, "total");
  }

  async function load() {
    statusEl.textContent = "Đang tải…";
    try {
      const data = await getJSON("/api/v1/dashboard/summary?" + params().toString());
      last = data;
      kpis(data); table(data); trend(data); scorecard(data); feedback(data);
      briefRows(document.querySelector("#due-soon tbody"), data.due_soon, "Không có hồ sơ sắp đến hạn");
      briefRows(document.querySelector("#overdue tbody"), data.overdue, "Không có hồ sơ quá hạn");
      briefRows(document.querySelector("#late tbody"), data.late, "Không có hồ sơ giải quyết quá hạn");
      document.body.dataset.loaded = "1";
      statusEl.textContent = "Cập nhật lúc " + when(data.now);
      const card = document.getElementById("drilldown-card");
      if (!card.hidden && card.dataset.measure) drill(card.dataset.measure, card.dataset.key);
    } catch (err) {
      statusEl.textContent = "Không tải được dữ liệu (" + err.message + ")";
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    history.replaceState(null, "", "/dashboard?" + params().toString());
    document.getElementById("drilldown-card").hidden = true;
    load();
  });
  document.getElementById("refresh").addEventListener("click", load);
  setInterval(load, 60000);
  load();
})();
