// The selected vehicle's track: the recent positions the server kept for it, then every
// position the stream brings while it stays selected.
//
// The server's part comes from /api/vehicles/{oper}/{veh}; stream positions that arrive
// before that answer are kept and joined after it by time, so no point is drawn twice.

import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { hasPosition, parseTst } from "./vehicles.js";

// Ten minutes at HSL's one position a second; older points leave the line.
const MAX_POINTS = 600;
const STYLE = {
  className: "vehicle-trail",
  color: "#1b2a3a",
  weight: 3,
  opacity: 0.55,
  lineJoin: "round",
  interactive: false,
};

export class Trail {
  constructor(map) {
    this.map = map;
    this.line = L.polyline([], STYLE);
    this.id = null;
    // [epoch ms, lat, lon], oldest first.
    this.points = [];
  }

  // Start the track of vehicle `id` ("oper/veh") from what the server remembers.
  async show(id) {
    this.id = id;
    this.points = [];
    this.line.setLatLngs([]).addTo(this.map);
    let trail;
    try {
      const response = await fetch(`/api/vehicles/${id}`, { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      ({ trail } = await response.json());
    } catch (error) {
      // The vehicle may have just left the server's view; the stream still extends the line.
      console.warn("hsl_live: no trail for %s (%s)", id, error);
      return;
    }
    if (this.id !== id) return; // another vehicle was selected while this one loaded
    const kept = trail.map((point) => [parseTst(point.tst), point.lat, point.lon]);
    const newest = kept.length > 0 ? kept[kept.length - 1][0] : -Infinity;
    this._set([...kept, ...this.points.filter((point) => point[0] > newest)]);
  }

  hide() {
    this.id = null;
    this.points = [];
    this.line.remove();
  }

  // Add the selected vehicle's position from its latest state, when it is a new one.
  // A state without a new position (a stop event) keeps the previous one: it is skipped.
  extend(state) {
    if (state.id !== this.id || !hasPosition(state)) return;
    const tst = parseTst(state.tst);
    const last = this.points[this.points.length - 1];
    if (last !== undefined && (tst <= last[0] || (last[1] === state.lat && last[2] === state.lon))) {
      return;
    }
    this.points.push([tst, state.lat, state.lon]);
    this._set(this.points);
  }

  _set(points) {
    this.points = points.length > MAX_POINTS ? points.slice(-MAX_POINTS) : points;
    this.line.setLatLngs(this.points.map(([, lat, lon]) => [lat, lon]));
  }
}
