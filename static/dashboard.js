// PayFuse dashboard charts. Loaded only by the dashboard, after
// echarts.min.js; the figures and every label come from the page's
// <script type="application/json" id="dashboard-data"> (the
// Content-Security-Policy allows no inline script). Amounts arrive in minor
// units (fen) and are shown as yuan in the page's language.
(function () {
  "use strict";

  var el = document.getElementById("dashboard-data");
  if (!el || !window.echarts) { return; }
  var d = JSON.parse(el.textContent);
  var L = d.labels;
  var lang = d.lang || document.documentElement.lang || "zh-CN";

  function fmt(opts) {
    try { return new Intl.NumberFormat(lang, opts); } catch (e) { return new Intl.NumberFormat("en", opts); }
  }
  var moneyFull = fmt({ style: "currency", currency: d.currency || "CNY", currencyDisplay: "narrowSymbol" });
  var moneyShort = fmt({ style: "currency", currency: d.currency || "CNY", currencyDisplay: "narrowSymbol",
    notation: "compact", maximumFractionDigits: 1 });
  var count = fmt({ maximumFractionDigits: 0 });
  var countShort = fmt({ notation: "compact", maximumFractionDigits: 1 });
  var pct = fmt({ minimumFractionDigits: 1, maximumFractionDigits: 2 });
  var score = fmt({ minimumFractionDigits: 1, maximumFractionDigits: 1 });

  function money(fen) { return moneyFull.format(fen / 100); }
  function moneyAxis(yuan) { return moneyShort.format(yuan); }
  function yuan(list) { return (list || []).map(function (v) { return v / 100; }); }
  function dash(v, f) { return v === null || v === undefined || isNaN(v) ? "—" : f(v); }

  var axisLabel = { color: "#64748b" };
  var splitLine = { lineStyle: { color: "#e5e7eb" } };
  var grid = { left: 8, right: 28, top: 40, bottom: 8, containLabel: true };
  var legend = { top: 0, type: "scroll", textStyle: { color: "#475569" } };
  var oneDay = d.dates.length <= 1;

  function dateAxis() {
    return { type: "category", data: d.dates, boundaryGap: oneDay, axisLabel: axisLabel,
      axisLine: { lineStyle: { color: "#cbd5e1" } } };
  }
  function valueAxis(formatter, extra) {
    var a = { type: "value", axisLabel: { color: "#64748b", formatter: formatter }, splitLine: splitLine };
    for (var k in extra) { a[k] = extra[k]; }
    return a;
  }
  // tooltip lists each series of a date with the given value formatter.
  function axisTooltip(format) {
    return {
      trigger: "axis",
      formatter: function (items) {
        if (!items.length) { return ""; }
        var out = [escapeHTML(items[0].axisValueLabel)];
        items.forEach(function (it) {
          var f = typeof format === "function" ? format : format[it.seriesIndex];
          out.push(it.marker + escapeHTML(it.seriesName) + "&nbsp;&nbsp;<b>" + escapeHTML(dash(it.value, f)) + "</b>");
        });
        return out.join("<br>");
      }
    };
  }
  function escapeHTML(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function line(name, data, colour, extra) {
    var s = { name: name, type: "line", data: data, smooth: 0.3, smoothMonotone: "x", showSymbol: oneDay, symbolSize: 6,
      connectNulls: false, itemStyle: { color: colour }, lineStyle: { width: 2 } };
    for (var k in extra) { s[k] = extra[k]; }
    return s;
  }
  function pie(shares, key) {
    return {
      tooltip: { trigger: "item", formatter: function (p) {
        var s = shares[p.dataIndex];
        return p.marker + escapeHTML(p.name) + "<br>" + escapeHTML(L.by_gmv) + " <b>" + escapeHTML(money(s.gmv)) +
          "</b><br>" + escapeHTML(L.by_payments) + " <b>" + escapeHTML(count.format(s.payments)) + "</b><br>" +
          escapeHTML(pct.format(p.percent)) + "%";
      } },
      legend: { bottom: 0, type: "scroll", textStyle: { color: "#475569" } },
      series: [{
        name: key === "gmv" ? L.by_gmv : L.by_payments, type: "pie", radius: ["40%", "68%"], center: ["50%", "45%"],
        avoidLabelOverlap: true, itemStyle: { borderColor: "#fff", borderWidth: 2 },
        label: { formatter: function (p) { return p.name + "\n" + pct.format(p.percent) + "%"; }, color: "#475569" },
        data: shares.map(function (s) {
          var item = { name: s.name, value: key === "gmv" ? s.gmv / 100 : s.payments };
          if (s.colour) { item.itemStyle = { color: s.colour }; }
          return item;
        })
      }]
    };
  }
  var noData = { title: { text: L.no_data, left: "center", top: "middle", textStyle: { color: "#94a3b8", fontSize: 13, fontWeight: "normal" } } };

  var options = {
    gmv: {
      legend: legend, grid: grid, tooltip: axisTooltip(function (v) { return moneyFull.format(v); }),
      xAxis: dateAxis(), yAxis: valueAxis(moneyAxis),
      series: d.channels.map(function (c) { return line(c.name, yuan(c.gmv), c.colour, { areaStyle: { opacity: 0.08 } }); })
    },
    payments: {
      legend: legend, grid: grid, tooltip: axisTooltip(function (v) { return count.format(v); }),
      xAxis: dateAxis(), yAxis: valueAxis(function (v) { return countShort.format(v); }, { minInterval: 1 }),
      series: d.channels.map(function (c) {
        return { name: c.name, type: "bar", stack: "payments", data: c.payments, itemStyle: { color: c.colour }, barMaxWidth: 28 };
      })
    },
    success: {
      legend: legend, grid: grid, tooltip: axisTooltip(function (v) { return pct.format(v) + "%"; }),
      xAxis: dateAxis(),
      yAxis: valueAxis(function (v) { return v + "%"; }, { max: 100, scale: true }),
      series: d.channels.map(function (c) { return line(c.name, c.success_rate, c.colour, { smooth: false, showSymbol: true, symbolSize: 4 }); })
    },
    score: d.score && d.score.some(function (v) { return v !== null; }) ? {
      legend: legend, grid: grid, tooltip: axisTooltip(function (v) { return score.format(v); }),
      xAxis: dateAxis(), yAxis: valueAxis(function (v) { return v; }, { min: 0, max: 100 }),
      series: [line(L.score, d.score, "#722ed1", { showSymbol: true, symbolSize: 4, areaStyle: { opacity: 0.08 } })]
    } : noData,
    channel_share: d.channel_share.length ? pie(d.channel_share, "gmv") : noData,
    method_share: d.method_share.length ? pie(d.method_share, "gmv") : noData,
    refunds_fees: {
      legend: legend, grid: grid,
      tooltip: axisTooltip([function (v) { return moneyFull.format(v); }, function (v) { return moneyFull.format(v); },
        function (v) { return count.format(v); }]),
      xAxis: dateAxis(),
      yAxis: [valueAxis(moneyAxis), valueAxis(function (v) { return countShort.format(v); }, { minInterval: 1, splitLine: { show: false } })],
      series: [
        { name: L.refund_amount, type: "bar", data: yuan(d.refund_amount), itemStyle: { color: "#fa8c16" }, barMaxWidth: 24 },
        { name: L.fees, type: "bar", data: yuan(d.fees), itemStyle: { color: "#8c8c8c" }, barMaxWidth: 24 },
        line(L.refunds, d.refunds, "#f5222d", { yAxisIndex: 1, showSymbol: true, symbolSize: 4 })
      ]
    }
  };

  var charts = [];
  document.querySelectorAll("[data-chart]").forEach(function (node) {
    var opt = options[node.getAttribute("data-chart")];
    if (!opt) { return; }
    var chart = window.echarts.init(node, null, { renderer: "canvas", locale: lang.indexOf("zh") === 0 ? "ZH" : "EN" });
    opt.animationDuration = 300;
    chart.setOption(opt);
    charts.push(chart);
  });

  // Charts follow the window and the sidebar (collapsing it widens the column).
  var pending = 0;
  function resizeAll() {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(function () { charts.forEach(function (c) { c.resize(); }); });
  }
  window.addEventListener("resize", resizeAll);
  if (window.ResizeObserver) {
    var ro = new ResizeObserver(resizeAll);
    document.querySelectorAll("[data-chart]").forEach(function (node) { ro.observe(node); });
  }
})();
