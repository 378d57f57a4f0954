// Charts through chart.js (loaded as its UMD build, window.Chart). Time runs on a linear axis of
// milliseconds labelled by our own formatter, which spares a date adapter library.
import { bytes } from './dom.js';

const charts = new Set();

export function destroyCharts() {
  for (const c of charts) c.destroy();
  charts.clear();
}

function shortTime(ms, withSeconds = false) {
  const iso = new Date(ms).toISOString();
  return withSeconds ? iso.slice(11, 19) : iso.slice(5, 16).replace('T', ' ');
}

function chartLib() {
  const Chart = window.Chart;
  if (!Chart) throw new Error('chart.js did not load');
  Chart.defaults.animation = false;
  Chart.defaults.font.family = '"DejaVu Sans", system-ui, sans-serif';
  Chart.defaults.font.size = 13;
  Chart.defaults.color = '#1b1f24';
  return Chart;
}

/**
 * The time axis around the points with a margin: chart.js would stretch one point (or points
 * seconds apart) over years of empty axis.
 */
function xRange(series) {
  const xs = series.flatMap((s) => s.points.map((p) => p.x)).filter(Number.isFinite);
  if (xs.length === 0) return {};
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  const pad = Math.max((hi - lo) * 0.05, 60_000);
  return { min: lo - pad, max: hi + pad };
}

/** series: [{ label, color, points: [{ x: ms, y: bytes, note? }], pointStyle?, radius? }] */
export function timeChart(canvas, series, { stepped = false, showLine = true } = {}) {
  const Chart = chartLib();
  const range = xRange(series);
  // Ticks less than a few minutes apart need seconds, or neighbours read the same.
  const fine = range.max !== undefined && range.max - range.min < 15 * 60_000;
  const chart = new Chart(canvas, {
    type: 'line',
    data: {
      datasets: series.map((s) => ({
        label: s.label, data: s.points, borderColor: s.color, backgroundColor: s.color,
        stepped, showLine, pointRadius: s.radius ?? 4, pointStyle: s.pointStyle ?? 'circle', borderWidth: 2,
      })),
    },
    options: {
      maintainAspectRatio: false,
      parsing: false,
      scales: {
        x: { type: 'linear', ...range, ticks: { callback: (v) => shortTime(v, fine), maxTicksLimit: 6 }, title: { display: true, text: 'time (UTC)' } },
        y: { beginAtZero: true, ticks: { callback: (v) => bytes(v) } },
      },
      plugins: {
        legend: { position: 'bottom' },
        tooltip: {
          callbacks: {
            title: (items) => items.map((i) => i.raw.note ?? shortTime(i.raw.x)).join(', '),
            label: (i) => `${i.dataset.label}: ${bytes(i.raw.y)}`,
          },
        },
      },
    },
  });
  charts.add(chart);
  return chart;
}
