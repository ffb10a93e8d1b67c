// Small SVG charts for the dashboard: lines over days, bars, a confidence interval and a stacked
// bar. Each function returns a new <svg>; every text in it is set with textContent.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 560;
const HEIGHT = 190;
const MARGIN = { left: 44, right: 12, top: 22, bottom: 24 };
const PLOT_WIDTH = WIDTH - MARGIN.left - MARGIN.right;

function element(name, attributes = {}, text = "") {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.textContent = text;
  return node;
}

function canvas(height, label) {
  return element("svg", { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": label });
}

function write(svg, x, y, text, anchor = "middle") {
  svg.append(element("text", { x, y, "text-anchor": anchor }, text));
}

export function formatValue(value, percent) {
  if (value === null || value === undefined) return "–";
  return percent ? `${(value * 100).toFixed(1)} %` : String(value);
}

// The y axis from 0 to a round top, with three grid lines labelled; returns value → y.
function yAxis(svg, values, percent) {
  const largest = Math.max(0, ...values.filter((value) => value !== null));
  const top = percent ? Math.min(1, Math.max(0.1, Math.ceil(largest * 10) / 10)) : Math.max(1, largest);
  const y = (value) => MARGIN.top + (1 - value / top) * (HEIGHT - MARGIN.top - MARGIN.bottom);
  for (const value of [0, top / 2, top]) {
    const line = { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value), class: "grid" };
    svg.append(element("line", line));
    const text = percent ? `${Math.round(value * 100)} %` : `${+value.toFixed(1)}`;
    write(svg, MARGIN.left - 6, y(value) + 4, text, "end");
  }
  return y;
}

function legend(svg, series, top = 6) {
  let x = MARGIN.left;
  for (const { name, color } of series) {
    svg.append(element("rect", { x, y: top, width: 10, height: 10, fill: color }));
    write(svg, x + 14, top + 9, name, "start");
    x += 24 + name.length * 7;
  }
}

// series: [{name, color, values: one number or null per label}]; a null breaks the line.
// The first, middle and last labels (days, shown as MM-DD) are written under the axis.
export function lineChart(series, labels, { percent = false, label = "" } = {}) {
  const svg = canvas(HEIGHT, label);
  if (!labels.length) return svg;
  const y = yAxis(svg, series.flatMap((s) => s.values), percent);
  const step = labels.length > 1 ? PLOT_WIDTH / (labels.length - 1) : 0;
  const x = (index) => MARGIN.left + (step ? index * step : PLOT_WIDTH / 2);
  for (const { name, color, values } of series) {
    let path = "";
    values.forEach((value, index) => {
      if (value === null) return;
      const move = index > 0 && values[index - 1] !== null ? "L" : "M";
      path += `${move}${x(index).toFixed(1)},${y(value).toFixed(1)} `;
      const dot = element("circle", { cx: x(index), cy: y(value), r: 3, fill: color });
      dot.append(element("title", {}, `${name} ${labels[index]}: ${formatValue(value, percent)}`));
      svg.append(dot);
    });
    svg.append(element("path", { d: path, stroke: color, fill: "none", "stroke-width": 2 }));
  }
  const last = labels.length - 1;
  for (const index of new Set([0, Math.floor(last / 2), last])) {
    const anchor = index === 0 ? "start" : index === last ? "end" : "middle";
    write(svg, x(index), HEIGHT - 6, String(labels[index]).replace(/^\d{4}-/, ""), anchor);
  }
  legend(svg, series);
  return svg;
}

// One bar per label, its value written above it.
export function barChart(values, labels, { percent = false, color = "#2563eb", label = "" } = {}) {
  const svg = canvas(HEIGHT, label);
  if (!labels.length) return svg;
  const y = yAxis(svg, values, percent);
  const slot = PLOT_WIDTH / labels.length;
  values.forEach((value, index) => {
    const middle = MARGIN.left + (index + 0.5) * slot;
    const height = y(0) - y(value ?? 0);
    const bar = { x: middle - slot * 0.35, y: y(0) - height, width: slot * 0.7, height, fill: color };
    svg.append(element("rect", bar));
    write(svg, middle, y(0) - height - 4, formatValue(value, percent));
    write(svg, middle, HEIGHT - 6, String(labels[index]));
  });
  return svg;
}

// A difference between two rates (a dot) and its interval (a bar) on an axis through zero,
// labelled in percentage points.
export function intervalChart({ difference, low, high }, label = "") {
  const svg = canvas(60, label);
  const reach = Math.max(0.05, Math.abs(low), Math.abs(high)) * 1.1;
  const x = (value) => MARGIN.left + ((value + reach) / (2 * reach)) * PLOT_WIDTH;
  svg.append(element("line", { x1: x(0), x2: x(0), y1: 8, y2: 40, class: "zero" }));
  svg.append(element("line", { x1: x(low), x2: x(high), y1: 24, y2: 24, class: "interval" }));
  svg.append(element("circle", { cx: x(difference), cy: 24, r: 6, class: "estimate" }));
  const apart = (value) => Math.min(Math.abs(x(value) - x(low)), Math.abs(x(value) - x(high))) > 36;
  for (const value of apart(0) ? [low, 0, high] : [low, high]) {
    write(svg, x(value), 56, `${value > 0 ? "+" : ""}${(value * 100).toFixed(1)}`);
  }
  return svg;
}

// parts: [{name, value, color}] side by side in one bar, with a legend of their counts under it.
export function stackedBar(parts, label = "") {
  const svg = canvas(44, label);
  const total = parts.reduce((sum, part) => sum + part.value, 0) || 1;
  let x = 0;
  for (const { name, value, color } of parts) {
    const rect = element("rect", { x, y: 0, width: (value / total) * WIDTH, height: 20, fill: color });
    rect.append(element("title", {}, `${name}: ${value}`));
    svg.append(rect);
    x += (value / total) * WIDTH;
  }
  legend(svg, parts.map(({ name, value, color }) => ({ name: `${name} ${value}`, color })), 28);
  return svg;
}
