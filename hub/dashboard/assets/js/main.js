// The app shell: sign-in, navigation, language switch, hash routing and live updates.

import * as api from "./api.js";
import { load as loadI18n, t, setLang, current, LANGS, registerNames } from "./i18n.js";
import { h, empty } from "./util.js";
import { Live } from "./live.js";
import * as overview from "./views/overview.js";
import * as map from "./views/map.js";
import * as component from "./views/component.js";
import * as events from "./views/events.js";
import * as edges from "./views/edges.js";
import * as evaluation from "./views/evaluation.js";

const VIEWS = { overview, map, component, events, edges, evaluation };
const NAV = ["overview", "map", "events", "edges", "evaluation"];

const app = document.getElementById("app");
let cleanup = null;
const liveListeners = new Set();
let signInMessage = "";

const live = new Live(
  (kind, data) => {
    for (const f of liveListeners) f(kind, data);
  },
  (up) => {
    const el = document.getElementById("live");
    if (el) {
      el.classList.toggle("up", up);
      el.textContent = up ? t("live.on") : t("live.off");
    }
  },
);

api.setUnauthorizedHandler((e) => {
  api.setToken("");
  live.stop();
  signInMessage = t("signin.rejected") + (e.message ? ": " + e.message : "");
  render();
});

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const name = VIEWS[parts[0]] ? parts[0] : "overview";
  return { name, args: parts.slice(1) };
}

function langSwitch() {
  return h(
    "span",
    { class: "seg langs" },
    LANGS.map((l) =>
      h("button", { class: l === current() ? "on" : "", "data-lang": l, onclick: () => { setLang(l); render(); } }, t("lang." + l)),
    ),
  );
}

function signIn() {
  const input = h("input", { type: "password", id: "token", autocomplete: "off", placeholder: "wgt_…" });
  const msg = h("div", { class: signInMessage ? "error" : "" }, signInMessage);
  const submit = async (ev) => {
    ev.preventDefault();
    const tok = input.value.trim();
    if (!tok) return;
    api.setToken(tok);
    try {
      await api.get("components", { limit: 1 });
      signInMessage = "";
      render();
    } catch (e) {
      api.setToken("");
      msg.className = "error";
      msg.textContent = (e.status === 401 ? t("signin.rejected") : t("error.generic")) + ": " + e.message;
    }
  };
  return h(
    "div",
    { class: "panel signin" },
    langSwitch(),
    h("h1", {}, t("app.title")),
    h("p", { class: "muted" }, t("signin.help")),
    h("form", { onsubmit: submit, id: "signin" },
      h("label", { for: "token" }, t("signin.token")),
      input,
      h("button", { class: "primary", type: "submit", id: "signin-submit" }, t("signin.submit")),
    ),
    msg,
  );
}

function header(active) {
  return h(
    "header",
    { class: "top" },
    h("span", { class: "brand" }, t("app.title")),
    h("nav", {}, NAV.map((n) => h("a", { href: "#/" + n, class: n === active ? "active" : "", id: "nav-" + n }, t("nav." + n)))),
    h("span", { class: "right" },
      h("span", { id: "live", class: "live" }, t("live.off")),
      langSwitch(),
      h("button", { id: "signout", onclick: () => { api.setToken(""); api.forgetDepartments(); live.stop(); render(); } }, t("signin.out")),
    ),
  );
}

async function render() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  liveListeners.clear();
  empty(app);
  document.title = t("app.title");
  if (!api.token()) {
    app.append(signIn());
    return;
  }
  const { name, args } = route();
  const main = h("main", { id: "view-" + name });
  app.append(header(name === "component" ? "map" : name), main);
  live.start();
  live.onState(live.up);
  // Department names for labels where the dictionary has none (a registry's own departments).
  registerNames("dept", Object.fromEntries((await api.departments()).map((d) => [d.id, d.name])));
  registerNames("grid", Object.fromEntries((await api.gridCells()).map((c) => [c.id, c.name])));
  const ctx = { onLive: (f) => liveListeners.add(f) };
  try {
    cleanup = (await VIEWS[name].render(main, args, ctx)) || null;
  } catch (e) {
    main.append(h("div", { class: "error" }, t("error.generic") + ": " + (e.message || e)));
  }
}

window.addEventListener("hashchange", render);
await loadI18n();
render();
