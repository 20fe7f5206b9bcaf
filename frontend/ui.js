// The page's controls: mode filters with the legend, route search, count, banner, details.

import { DELAY_CLASSES, MODES, modeColor } from "./modes.js";
import {
  formatAge,
  formatCount,
  formatDelay,
  formatOccupancy,
  formatSpeed,
  orUnknown,
} from "./format.js";

const SEARCH_DEBOUNCE_MS = 200;

function byId(id) {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`index.html lacks #${id}`);
  return element;
}

function swatch(color, className) {
  const element = document.createElement("span");
  element.className = className;
  element.style.setProperty("--swatch", color);
  element.setAttribute("aria-hidden", "true");
  return element;
}

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

// Return the lower-case words of a route search like "550, 4 m1".
export function routeTokens(query) {
  return query
    .toLowerCase()
    .split(/[\s,]+/)
    .filter((token) => token.length > 0);
}

// Return a predicate over vehicle states: does desi or route id equal a searched word?
export function routeMatcher(query) {
  const tokens = routeTokens(query);
  if (tokens.length === 0) return () => true;
  const wanted = new Set(tokens);
  return (state) =>
    wanted.has(String(state.desi ?? "").toLowerCase()) ||
    wanted.has(String(state.route ?? "").toLowerCase());
}

export class Controls {
  // handlers: onModes(Set of keys), onSearch(query), onSearchSubmit(), onFollow(bool), onClose()
  constructor(handlers) {
    this.handlers = handlers;
    this.count = byId("count");
    this.banner = byId("banner");
    this.search = byId("route-search");
    this.details = byId("details");
    this.detailsTitle = byId("details-title");
    this.detailsFields = byId("details-fields");
    this.follow = byId("follow");
    this._fields = new Map();
    this._searchTimer = null;

    this._buildModes(byId("modes"));
    this._buildDelayLegend(byId("delay-legend"));
    this._buildDetailFields();
    this._wire();
  }

  selectedModes() {
    const checked = this._modeBoxes.filter((box) => box.checked).map((box) => box.value);
    return new Set(checked);
  }

  setCount(matching, drawn) {
    setText(this.count, formatCount(matching));
    this.count.dataset.matching = String(matching);
    this.count.dataset.drawn = String(drawn);
  }

  setStatus(status) {
    this.banner.hidden = status !== "down";
    document.body.dataset.stream = status;
  }

  setFollowing(following) {
    this.follow.setAttribute("aria-pressed", String(following));
    setText(this.follow, following ? "Following" : "Follow");
  }

  showDetails(vehicle, ageSeconds) {
    const state = vehicle.state;
    const mode = MODES.find((entry) => entry.key === state.mode);
    const route = state.desi || state.route || "—";
    const title = state.headsign ? `${route} → ${state.headsign}` : route;
    setText(this.detailsTitle, title);
    this.detailsTitle.style.setProperty("--swatch", modeColor(state.mode));

    this._field("mode", mode ? mode.label : orUnknown(state.mode));
    this._field("route", `${orUnknown(state.desi)} (route ${orUnknown(state.route)})`);
    this._field("speed", formatSpeed(state.spd));
    this._field("delay", formatDelay(state.dl));
    this._field("next", orUnknown(state.next_stop ?? state.stop));
    this._field("occupancy", formatOccupancy(state.occu));
    this._field("age", formatAge(ageSeconds));
    this._field("vehicle", `${state.id}, last event ${orUnknown(state.event)}`);
    this.details.dataset.vehicle = state.id;
    this.details.hidden = false;
  }

  hideDetails() {
    this.details.hidden = true;
    delete this.details.dataset.vehicle;
  }

  _field(key, text) {
    setText(this._fields.get(key), text);
  }

  _buildModes(fieldset) {
    this._modeBoxes = MODES.map((mode) => {
      const label = document.createElement("label");
      label.className = "mode";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = mode.key;
      box.checked = true;
      box.name = "mode";
      label.append(box, swatch(mode.color, "swatch mode-swatch"), mode.label);
      fieldset.append(label);
      return box;
    });
  }

  _buildDelayLegend(list) {
    for (const entry of DELAY_CLASSES) {
      const item = document.createElement("li");
      item.append(swatch(entry.color, "swatch ring-swatch"), entry.label);
      list.append(item);
    }
  }

  _buildDetailFields() {
    const rows = [
      ["mode", "Mode"],
      ["route", "Route"],
      ["speed", "Speed"],
      ["delay", "Delay"],
      ["next", "Next stop"],
      ["occupancy", "Occupancy"],
      ["age", "Last update"],
      ["vehicle", "Vehicle"],
    ];
    for (const [key, name] of rows) {
      const term = document.createElement("dt");
      term.textContent = name;
      const value = document.createElement("dd");
      value.dataset.field = key;
      this.detailsFields.append(term, value);
      this._fields.set(key, value);
    }
  }

  _wire() {
    for (const box of this._modeBoxes) {
      box.addEventListener("change", () => this.handlers.onModes(this.selectedModes()));
    }
    this.search.addEventListener("input", () => {
      clearTimeout(this._searchTimer);
      this._searchTimer = setTimeout(
        () => this.handlers.onSearch(this.search.value),
        SEARCH_DEBOUNCE_MS,
      );
    });
    this.search.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      clearTimeout(this._searchTimer);
      this.handlers.onSearch(this.search.value);
      this.handlers.onSearchSubmit();
    });
    this.follow.addEventListener("click", () => {
      const following = this.follow.getAttribute("aria-pressed") !== "true";
      this.handlers.onFollow(following);
    });
    byId("close-details").addEventListener("click", () => this.handlers.onClose());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.details.hidden) this.handlers.onClose();
    });
  }
}
