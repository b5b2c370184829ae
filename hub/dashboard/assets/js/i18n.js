// All interface strings live in /assets/i18n.json, one dictionary per language.
// Chinese is the default; the choice is kept in localStorage.

const LANG_KEY = "wangge.lang";
export const LANGS = ["zh", "en"];
let dict = { zh: {}, en: {} };
let lang = LANGS.includes(localStorage.getItem(LANG_KEY)) ? localStorage.getItem(LANG_KEY) : "zh";

export async function load() {
  const resp = await fetch("/assets/i18n.json");
  dict = await resp.json();
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

export function current() {
  return lang;
}

export function setLang(l) {
  lang = LANGS.includes(l) ? l : "zh";
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

/** The string for `key`, with `{name}` placeholders filled from `vars`. */
export function t(key, vars) {
  let s = (dict[lang] && dict[lang][key]) ?? (dict.en && dict.en[key]) ?? key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replaceAll("{" + k + "}", String(v));
  return s;
}

/** Names the registry gives (departments…), used where the dictionary has no entry. */
const registryNames = {};
export function registerNames(prefix, names) {
  registryNames[prefix] = { ...(registryNames[prefix] || {}), ...names };
}

/**
 * A label for a value of an enumeration (status, severity, type…): `prefix.value` from the
 * dictionary, else the registry's name for it, else the value itself.
 */
export function label(prefix, value) {
  if (value === null || value === undefined || value === "") return "—";
  const key = prefix + "." + value;
  const s = t(key);
  if (s !== key) return s;
  return (registryNames[prefix] && registryNames[prefix][value]) || String(value);
}
