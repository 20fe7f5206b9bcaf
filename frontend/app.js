// Start the live map: read the server's config, build the map, connect the stream.

import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { VehicleLayer } from "./layer.js";
import { MODES } from "./modes.js";
import { VehicleStream } from "./stream.js";
import { Trail } from "./trail.js";
import { Controls, routeMatcher, routeTokens } from "./ui.js";
import { VehicleStore } from "./vehicles.js";

const DEFAULT_CONFIG = {
  tile_url: "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
  tile_attribution: "&copy; OpenStreetMap contributors",
  stale_seconds: 120,
  tick_seconds: 0.5,
};
const HELSINKI = [60.1699, 24.9384];
const FIT_MAX_ZOOM = 13;
const FOLLOW_MIN_ZOOM = 15;
const DETAILS_REFRESH_MS = 1000;

async function loadConfig() {
  try {
    const response = await fetch("/api/config", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return { ...DEFAULT_CONFIG, ...(await response.json()) };
  } catch (error) {
    console.warn("hsl_live: /api/config unavailable (%s); using defaults", error);
    return DEFAULT_CONFIG;
  }
}

function createMap(config) {
  const map = L.map("map", { zoomControl: false, center: HELSINKI, zoom: 12 });
  L.control.zoom({ position: "topright" }).addTo(map);
  L.control.scale({ position: "bottomright", imperial: false }).addTo(map);
  L.tileLayer(config.tile_url, { attribution: config.tile_attribution, maxZoom: 19 }).addTo(map);
  return map;
}

// Return the query parameters for the stream, or null when no mode is wanted at all.
// The server filters too, so a browser watching one route does not receive the whole feed;
// it matches route ids and HSL's upper-case designations exactly.
function streamParams(modes, query) {
  if (modes.size === 0) return null;
  const params = new URLSearchParams();
  if (modes.size < MODES.length) params.set("mode", [...modes].join(","));
  const routes = routeTokens(query).filter((token) => /^[a-z0-9]+$/.test(token));
  if (routes.length > 0) params.set("route", routes.map((token) => token.toUpperCase()).join(","));
  return params;
}

class LiveMap {
  constructor(config) {
    this.config = config;
    this.map = createMap(config);
    this.trail = new Trail(this.map);
    this.store = new VehicleStore(config.tick_seconds);
    this.selectedId = null;
    this.following = false;
    this.fitted = false;
    this._detailsShownAt = 0;
    this._detailsVersion = -1;

    this.layer = new VehicleLayer(this.store, {
      staleSeconds: config.stale_seconds,
      beforeDraw: (now) => this._follow(now),
      afterDraw: (stats) => this._afterDraw(stats),
    }).addTo(this.map);
    this.controls = new Controls({
      onModes: (modes) => this._filter(modes, this.query),
      onSearch: (query) => this._filter(this.modes, query),
      onSearchSubmit: () => this._selectNearestMatch(),
      onFollow: (following) => this._setFollowing(following),
      onClose: () => this.select(null),
    });
    this.stream = new VehicleStream({
      onSnapshot: (states) => this._received(() => this.store.snapshot(states)),
      onUpdate: (states) => this._received(() => this.store.update(states)),
      onRemove: (ids) => this._received(() => this.store.remove(ids)),
      onStatus: (status) => this.controls.setStatus(status),
    });

    this.map.on("click", (event) => this.select(this.layer.hitTest(event.containerPoint)));
    this.map.on("mousemove", (event) => this._hover(event.containerPoint));
    this.map.on("dragstart", () => this._setFollowing(false));
    this._filter(this.controls.selectedModes(), "");
  }

  select(id) {
    if (id !== this.selectedId) {
      if (id === null) this.trail.hide();
      else this.trail.show(id);
    }
    this.selectedId = id;
    this.layer.select(id);
    this._detailsVersion = -1;
    if (id === null) {
      this._setFollowing(false);
      this.controls.hideDetails();
    }
  }

  _filter(modes, query) {
    this.modes = modes;
    this.query = query;
    this.layer.setFilter(routeMatcher(query));
    const params = streamParams(modes, query);
    if (params === null) this.store.clear();
    this.stream.connect(params);
  }

  _received(queue) {
    queue();
    this.layer.requestDraw();
  }

  _afterDraw(stats) {
    this.controls.setCount(stats.matching, stats.drawn);
    if (!this.fitted && stats.matching > 0) this._fitOnce();
    if (this.selectedId !== null) this._refreshDetails();
  }

  _refreshDetails() {
    const vehicle = this.store.vehicles.get(this.selectedId);
    if (vehicle === undefined) {
      this.select(null);
      return;
    }
    const now = performance.now();
    const stale = now - this._detailsShownAt > DETAILS_REFRESH_MS;
    if (this._detailsVersion === this.store.changed && !stale) return;
    this.trail.extend(vehicle.state);
    this._detailsVersion = this.store.changed;
    this._detailsShownAt = now;
    this.controls.showDetails(vehicle, this.store.ageSeconds(vehicle));
  }

  // Frame the vehicles the first time there are some, so a capture from anywhere is in view.
  _fitOnce() {
    this.fitted = true;
    const points = [];
    for (const vehicle of this.store.vehicles.values()) {
      if (vehicle.positioned) points.push(this.layer.latLngOf(vehicle));
    }
    if (points.length > 0) {
      const options = { maxZoom: FIT_MAX_ZOOM, padding: [40, 40], animate: false };
      this.map.fitBounds(L.latLngBounds(points), options);
    }
  }

  _setFollowing(following) {
    const vehicle = this.store.vehicles.get(this.selectedId);
    this.following = following && vehicle !== undefined && vehicle.positioned;
    this.controls.setFollowing(this.following);
    if (this.following) {
      const zoom = Math.max(this.map.getZoom(), FOLLOW_MIN_ZOOM);
      this.map.setView(this.layer.latLngOf(vehicle), zoom);
    }
  }

  _follow(now) {
    if (!this.following) return;
    const vehicle = this.store.vehicles.get(this.selectedId);
    if (vehicle === undefined || !vehicle.positioned) return;
    this.store.advance(vehicle, now);
    const target = this.layer.latLngOf(vehicle);
    // Panning by nothing still fires moveend, which would request frames forever.
    const offset = this.map.latLngToContainerPoint(target).subtract(this.map.getSize().divideBy(2));
    if (Math.abs(offset.x) >= 1 || Math.abs(offset.y) >= 1) {
      this.map.panTo(target, { animate: false });
    }
  }

  _hover(point) {
    const hit = this.layer.hitTest(point) !== null;
    this.map.getContainer().classList.toggle("over-vehicle", hit);
  }

  // With a route search, Enter selects the matching vehicle nearest the map's centre.
  _selectNearestMatch() {
    const centre = this.map.getCenter();
    let best = null;
    let bestDistance = Infinity;
    for (const vehicle of this.store.vehicles.values()) {
      if (!vehicle.positioned || !this.layer.matches(vehicle.state)) continue;
      const distance = centre.distanceTo(this.layer.latLngOf(vehicle));
      if (distance < bestDistance) {
        best = vehicle;
        bestDistance = distance;
      }
    }
    if (best === null) return;
    this.select(best.id);
    this.map.setView(this.layer.latLngOf(best), Math.max(this.map.getZoom(), FOLLOW_MIN_ZOOM));
  }
}

async function start() {
  const config = await loadConfig();
  const live = new LiveMap(config);
  // For tests and the curious: the page's state, read-only by convention.
  window.__hslLive = {
    live,
    get count() {
      return live.layer.stats.matching;
    },
    get drawn() {
      return live.layer.stats.drawn;
    },
    get status() {
      return live.stream.status;
    },
    get stats() {
      return { ...live.layer.stats };
    },
    pointOf: (id) => live.layer.pointOf(id),
    trail: () => ({ id: live.trail.id, points: live.trail.points }),
    ids: () => [...live.store.vehicles.keys()],
  };
  document.body.dataset.ready = "true";
}

start();
