// The console: a listener's page and their feedback, search, adding an episode, the dashboard.
// Every call goes to this app's /api routes with the key typed in (none locally). Text that comes
// from the API or from users is shown with textContent only.
import { barChart, formatValue, intervalChart, lineChart, stackedBar } from "./charts.js";

const API = "/api/";
const PAGE_SIZE = 5;
const EVENTS = ["like", "dislike", "skip", "listen", "complete"];
const COLORS = { loop: "#2563eb", blend: "#7c3aed", history_only: "#f59e0b" };
const POLL_MS = 2000;
const POLLS = 60; // how long to watch an episode that is pending: two minutes
const REASON_SOURCES = { cached: "LLM, written ahead", generated: "LLM, written now", fallback: "evidence" };

const $ = (selector) => document.querySelector(selector);
// The listener's page on screen, and what they did with it since it was shown.
let current = { userId: "", actions: [] };

function say(text, isError = false) {
  $("#message").textContent = text;
  $("#message").className = isError ? "error" : "";
}

function node(tag, text = "", className = "") {
  const element = document.createElement(tag);
  element.textContent = text;
  element.className = className;
  return element;
}

async function call(method, path, body) {
  const headers = {};
  const key = $("#key").value.trim();
  if (key) headers["x-functions-key"] = key;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(API + path, { method, headers, body: body && JSON.stringify(body) });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error;
    const text = error ? `${error.code}: ${error.message}` : `HTTP ${response.status}`;
    throw Object.assign(new Error(text), { status: response.status });
  }
  return data;
}

// An event handler that shows what went wrong instead of throwing.
function guarded(action) {
  return async (event) => {
    event?.preventDefault();
    try {
      await action();
    } catch (error) {
      say(error.message, true);
    }
  };
}

function userId() {
  const id = $("#user-id").value.trim();
  if (!id) throw new Error("enter a user id first");
  return id;
}

// --- the listener and their page ---------------------------------------------------------

async function saveListener() {
  const body = { user_id: userId(), listening_history: $("#history").value.trim() };
  if (!body.listening_history) throw new Error("write what they listen to first");
  const name = $("#user-name").value.trim();
  if (name) body.name = name;
  const saved = await call("POST", "update_user_history", body);
  say(`${saved.created ? "Created" : "Updated"} listener ${saved.user_id}.`);
  await showPage("Their page");
  await refreshDashboard();
}

function clearPage(note) {
  current = { userId: "", actions: [] };
  $("#page").replaceChildren();
  $("#variant").textContent = "";
  $("#prepared").textContent = "";
  $("#next-page").hidden = true;
  $("#page-note").textContent = note;
}

async function showPage(title) {
  const id = userId();
  const query = new URLSearchParams({ user_id: id, limit: PAGE_SIZE });
  let page;
  try {
    page = await call("GET", `recommend_podcasts?${query}`);
  } catch (error) {
    clearPage("No page: see the message above."); // never another listener's page under this id
    throw error;
  }
  // What the listener did on the last page, by episode: the items of this page it explains.
  const acted = new Map(current.userId === id ? current.actions.map((a) => [a.podcastId, a]) : []);
  const items = page.recommendations;
  $("#page").replaceChildren(...items.map((item) => pageItem(id, item, acted)));
  $("#variant").textContent = `variant ${page.variant}`;
  $("#prepared").textContent = page.prepared ? "prepared ahead" : "computed for this request";
  const following = items.filter((item) => acted.has(item.evidence?.podcast_id)).length;
  const why = acted.size ? `, ${following} of them because of what they did` : "";
  $("#page-note").textContent = `${title}: ${items.length} episodes${why}.`;
  $("#next-page").hidden = false;
  current = { userId: id, actions: [] };
}

function pageItem(id, item, acted) {
  const entry = node("li", "", "item");
  entry.dataset.podcastId = item.podcast_id;
  entry.append(node("strong", item.title, "title"));
  const similarity = item.similarity === null ? "–" : item.similarity.toFixed(3);
  const facts = [item.category || "no category", `strategy ${item.strategy}`, `similarity ${similarity}`];
  facts.push(`reason: ${REASON_SOURCES[item.reason_source] || item.reason_source}`);
  entry.append(node("div", facts.join(" · "), "facts"));
  entry.append(node("p", item.reason, "reason"));
  const cause = acted.get(item.evidence?.podcast_id);
  if (cause) entry.append(node("p", `Follows their ${cause.event} of “${cause.title}”.`, "follows"));
  const buttons = node("div", "", "buttons");
  for (const event of EVENTS) {
    const button = node("button", event, `feedback ${event}`);
    button.type = "button";
    button.dataset.event = event;
    button.addEventListener("click", guarded(() => sendFeedback(id, item, event, entry)));
    buttons.append(button);
  }
  entry.append(buttons, node("span", "", "done"));
  return entry;
}

// Feedback is recorded on the item and the page stays: a listener may act on several items of
// a page, then ask for the next one (which says which of its items follow from what they did).
async function sendFeedback(id, item, event, entry) {
  const body = { user_id: id, podcast_id: item.podcast_id, suggestion_id: item.suggestion_id, event };
  await call("POST", "feedback", body);
  current.actions = current.actions.filter((action) => action.podcastId !== item.podcast_id);
  current.actions.push({ podcastId: item.podcast_id, title: item.title, event });
  entry.classList.add("acted");
  entry.querySelector(".done").textContent = `✓ ${event}`;
  const done = current.actions.map((action) => `${action.event} on “${action.title}”`).join(", ");
  say(`Recorded ${done}. Act on more items, or get the next page.`);
  await refreshDashboard();
}

async function nextPage() {
  const done = current.actions.map((action) => action.event);
  await showPage(done.length ? `Next page, after ${done.join(" and ")}` : "Next page");
  await refreshDashboard();
}

// --- search and adding an episode ---------------------------------------------------------

async function search() {
  const query = new URLSearchParams({ q: $("#q").value.trim(), limit: PAGE_SIZE });
  const category = $("#search-category").value.trim();
  const language = $("#search-language").value.trim();
  const minutes = $("#search-minutes").value;
  const after = $("#search-after").value;
  if (category) query.set("category", category);
  if (language) query.set("language", language);
  if (minutes) query.set("max_duration_seconds", Math.round(Number(minutes) * 60));
  if (after) query.set("published_after", `${after}T00:00:00Z`);
  const found = await call("GET", `search?${query}`);
  const results = found.results.map((result) => {
    const entry = node("li", "", "item");
    entry.append(node("strong", result.title, "title"));
    const length = result.duration_seconds ? `${Math.round(result.duration_seconds / 60)} min` : "";
    const facts = [result.category, result.language, length, `score ${result.score}`];
    entry.append(node("div", facts.filter(Boolean).join(" · "), "facts"));
    entry.append(node("p", result.summary || "", "reason"));
    return entry;
  });
  $("#search-results").replaceChildren(...(results.length ? results : [node("li", "Nothing matches.")]));
}

function showEpisode(episode) {
  const summary = episode.status === "ready" && episode.summary ? `: ${episode.summary}` : "";
  const state = `Episode ${episode.id} “${episode.title}” is ${episode.status}`;
  $("#add-status").textContent = state + summary;
}

async function addEpisode() {
  const body = { title: $("#add-title").value.trim(), transcript: $("#add-transcript").value.trim() };
  const category = $("#add-category").value.trim();
  const description = $("#add-description").value.trim();
  if (category) body.category = category;
  if (description) body.description = description;
  let episode = await call("POST", "add_podcast", body);
  showEpisode(episode);
  for (let poll = 0; episode.status === "pending" && poll < POLLS; poll += 1) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    episode = await call("GET", `podcasts/${episode.id}/status`);
    showEpisode(episode);
  }
  await refreshDashboard();
}

// --- the dashboard --------------------------------------------------------------------------

function chart(selector, svg) {
  $(selector).replaceChildren(svg);
}

function points(value) {
  return `${value > 0 ? "+" : ""}${(value * 100).toFixed(1)}`;
}

function abText(figures, ab = figures.ab_test, control = "history_only") {
  if (!ab) return `The A/B read-out needs suggestions in both variants (loop and ${control}).`;
  const arms = Object.fromEntries(figures.variants.map((v) => [v.variant, v]));
  const arm = (name) => {
    const { engagement_rate: rate, engaged, suggestions } = arms[name];
    return `${name} ${formatValue(rate, true)} (${engaged}/${suggestions})`;
  };
  const verdict = ab.significant ? "a real difference" : "not distinguishable from no difference yet";
  return `${arm(ab.treatment)} vs ${arm(ab.control)}: ${points(ab.difference)} points, ` +
    `95 % interval ${points(ab.low)} to ${points(ab.high)} points (${verdict}).`;
}

function rankerText(ranker) {
  if (!ranker.version) return "Ranker: the hand-set blend ranks until a learned ranker beats it.";
  const [first, second] = Object.entries(ranker.importances).sort((a, b) => b[1] - a[1]);
  const verdict = ranker.adopted ? "adopted" : "not adopted: the blend ranks";
  return `Ranker v${ranker.version} (${ranker.kind}, ${ranker.rows} shown items): NDCG@5 ` +
    `${ranker.validation_ndcg.toFixed(3)} against the blend's ${ranker.blend_ndcg.toFixed(3)} on held-out ` +
    `listeners, ${verdict}. Leans most on ${first[0]} and ${second[0]}. ${blendText(ranker.blend)}`;
}

function blendText(blend) {
  if (!blend) return "";
  const weights = Object.entries(blend.weights).map(([name, w]) => `${name} ${w}`).join(", ");
  const evidence = blend.validation_ndcg === null ? "too few pages to tell" :
    `NDCG@5 ${blend.validation_ndcg.toFixed(3)} out of sample against the configured ` +
    `${blend.configured_ndcg.toFixed(3)}, on ${blend.pages} pages`;
  return `Blend fitted to this data: ${weights} (${evidence}; ` +
    `${blend.adopted ? "adopted" : "not adopted: the configured weights rank"}).`;
}

function topicItem(topic) {
  const entry = node("li", "", "topic");
  entry.append(node("strong", topic.label));
  entry.append(node("span", ` ${topic.episodes} episodes · engagement ${topic.engagement}`, "facts"));
  const titles = node("ul");
  titles.append(...topic.podcasts.map((podcast) => node("li", podcast.title)));
  entry.append(titles);
  return entry;
}

function showFigures(figures) {
  $("#total-suggestions").textContent = figures.totals.suggestions;
  $("#total-engaged").textContent = figures.totals.engaged;
  $("#total-events").textContent = figures.totals.events;
  $("#listeners").replaceChildren(
    ...figures.listeners.map((listener) => {
      const option = node("option", listener.name || "");
      option.value = listener.user_id;
      return option;
    }),
  );
  const rates = figures.variants.map((v) => ({
    name: v.variant,
    color: COLORS[v.variant] || "#64748b",
    values: v.daily.map((day) => day.engagement_rate),
  }));
  chart("#chart-rates", lineChart(rates, figures.days, { percent: true, label: "engagement rate per day" }));
  $("#ab").textContent = abText(figures);
  $("#ranker").textContent = `${rankerText(figures.ranker)} ${abText(figures, figures.ranker_test, "blend")}`;
  const interval = figures.ab_test ? [intervalChart(figures.ab_test, "difference and its interval")] : [];
  $("#chart-interval").replaceChildren(...interval);
  const ranks = figures.by_rank;
  const rankRates = ranks.map((rank) => rank.engagement_rate);
  chart("#chart-ranks", barChart(rankRates, ranks.map((rank) => `#${rank.rank}`), { percent: true }));
  const activity = [
    { name: "suggestions", color: "#64748b", values: figures.activity.map((day) => day.suggestions) },
    { name: "events", color: "#16a34a", values: figures.activity.map((day) => day.events) },
  ];
  chart("#chart-activity", lineChart(activity, figures.days, { label: "suggestions and events per day" }));
  const topics = figures.trending_topics.map(topicItem);
  const none = node("li", "No topic yet: it takes several related episodes with engagement.");
  $("#topics").replaceChildren(...(topics.length ? topics : [none]));
}

function showBacklog(health) {
  const { ready, pending, failed } = health.podcasts;
  const parts = [
    { name: "ready", value: ready, color: "#16a34a" },
    { name: "pending", value: pending - failed, color: "#f59e0b" },
    { name: "failed", value: failed, color: "#dc2626" },
  ];
  chart("#chart-backlog", stackedBar(parts, "episodes by enrichment status"));
}

function signalText(collaborative) {
  if (!collaborative || !collaborative.refreshed_at) return "Models: not trained yet.";
  const { learns_from: signal, validation_recall_at_20: recalls } = collaborative.signal;
  const evidence = Object.entries(recalls)
    .map(([name, recall]) => `${name} ${recall === null ? "untested" : recall.toFixed(3)}`).join(", ");
  return `Models learn from ${signal} (` +
    (evidence ? `EASE's recall@20 of the held-out episodes: ${evidence}).` : "nothing held out to compare on yet).");
}

async function refreshDashboard() {
  const health = await call("GET", "health");
  showBacklog(health);
  $("#signal").textContent = signalText(health.collaborative);
  try {
    showFigures(await call("GET", "dashboard"));
  } catch (error) {
    $("#ab").textContent = error.status === 401 ? "The dashboard needs the admin key." : error.message;
  }
}

$("#listener-form").addEventListener("submit", guarded(saveListener));
$("#show-page").addEventListener("click", guarded(() => showPage("Their page")));
$("#next-page").addEventListener("click", guarded(nextPage));
$("#search-form").addEventListener("submit", guarded(search));
$("#add-form").addEventListener("submit", guarded(addEpisode));
$("#refresh-dashboard").addEventListener("click", guarded(refreshDashboard));
$("#key").addEventListener("change", guarded(refreshDashboard));
guarded(refreshDashboard)();
