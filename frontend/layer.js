// One canvas layer that draws every vehicle, redrawn at most once per animation frame.
//
// Each vehicle is a pre-rendered sprite (a disc with a heading pointer, filled by mode,
// ringed by delay; see sprites.js) copied with drawImage, which keeps thousands of
// vehicles within a frame. Clicks are hit-tested against the positions of the last frame.

import * as L from "/vendor/leaflet/leaflet-src.esm.js";
import { delayClass, delayColor, modeColor } from "./modes.js";
import { Sprites } from "./sprites.js";

const LABEL_ZOOM = 14;
const FADE_START_SECONDS = 30;
const MIN_ALPHA = 0.25;
const HIT_SLOP_PX = 6;
const SELECTED_COLOR = "#1b2a3a";
const SELECTED_FILL = "rgba(255, 255, 255, 0.55)";

function markerRadius(zoom) {
  if (zoom < 11) return 3.5;
  if (zoom < 13) return 5.5;
  if (zoom < LABEL_ZOOM) return 7.5;
  return 11;
}

function labelFont(radius, text) {
  const size = text.length <= 2 ? radius : text.length === 3 ? radius * 0.85 : radius * 0.7;
  return `700 ${Math.round(size)}px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif`;
}

function fadeAlpha(ageSeconds, staleSeconds) {
  if (ageSeconds <= FADE_START_SECONDS) return 1;
  const span = Math.max(1, staleSeconds - FADE_START_SECONDS);
  return Math.max(MIN_ALPHA, 1 - ((ageSeconds - FADE_START_SECONDS) / span) * (1 - MIN_ALPHA));
}

export const VehicleLayer = L.Layer.extend({
  options: {
    pane: "vehicles",
    staleSeconds: 120,
    // Called each frame: beforeDraw(now) may move the map; afterDraw(stats) reads results.
    beforeDraw: null,
    afterDraw: null,
  },

  initialize(store, options) {
    L.setOptions(this, options);
    this.store = store;
    this.selectedId = null;
    this.matches = () => true;
    this.stats = { matching: 0, drawn: 0, frames: 0, lastMs: 0, maxMs: 0, totalMs: 0 };
    this._sprites = null;
    this._hitX = new Float32Array(1024);
    this._hitY = new Float32Array(1024);
    this._hitIds = [];
    this._frameRequested = false;
    this._zooming = false;
  },

  onAdd(map) {
    if (!map.getPane(this.options.pane)) map.createPane(this.options.pane);
    this._canvas = L.DomUtil.create("canvas", "vehicle-canvas leaflet-zoom-animated");
    map.getPane(this.options.pane).appendChild(this._canvas);
    this._ctx = this._canvas.getContext("2d");
    this._resize();
    this.requestDraw();
  },

  onRemove() {
    L.DomUtil.remove(this._canvas);
    this._canvas = null;
  },

  getEvents() {
    return {
      move: this.requestDraw,
      moveend: this.requestDraw,
      viewreset: this.requestDraw,
      resize: this._resize,
      zoomanim: this._animateZoom,
      zoomend: this._endZoom,
    };
  },

  requestDraw() {
    if (this._frameRequested || !this._map) return;
    this._frameRequested = true;
    requestAnimationFrame((now) => this._frame(now));
  },

  setFilter(matches) {
    this.matches = matches;
    this.requestDraw();
  },

  select(id) {
    this.selectedId = id;
    this.requestDraw();
  },

  // Return the id of the vehicle drawn nearest to a container point, or null.
  hitTest(point) {
    const slop = markerRadius(this._map.getZoom()) + HIT_SLOP_PX;
    let best = null;
    let bestDistance = slop * slop;
    for (let i = this._hitIds.length - 1; i >= 0; i -= 1) {
      const dx = this._hitX[i] - point.x;
      const dy = this._hitY[i] - point.y;
      const distance = dx * dx + dy * dy;
      if (distance <= bestDistance) {
        best = this._hitIds[i];
        bestDistance = distance;
      }
    }

    return best;
  },

  // Return the container point where a vehicle was last drawn, or null.
  pointOf(id) {
    const index = this._hitIds.indexOf(id);
    return index < 0 ? null : L.point(this._hitX[index], this._hitY[index]);
  },

  latLngOf(vehicle) {
    const scale = this._map.options.crs.scale(0);
    return this._map.unproject(L.point(vehicle.x * scale, vehicle.y * scale), 0);
  },

  _frame(now) {
    this._frameRequested = false;
    if (this._zooming || !this._map) return;
    const started = performance.now();

    this.store.flush(now);
    if (this.options.beforeDraw) this.options.beforeDraw(now);
    const moving = this._draw(now);

    const stats = this.stats;
    stats.lastMs = performance.now() - started;
    stats.maxMs = Math.max(stats.maxMs, stats.lastMs);
    stats.totalMs += stats.lastMs;
    stats.frames += 1;
    if (this.options.afterDraw) this.options.afterDraw(stats);
    if (moving) this.requestDraw();
  },

  _draw(now) {
    const map = this._map;
    const size = map.getSize();
    const zoom = map.getZoom();
    const scale = map.options.crs.scale(zoom);
    const origin = map.containerPointToLayerPoint([0, 0]);
    const topLeft = origin.add(map.getPixelOrigin());
    L.DomUtil.setPosition(this._canvas, origin);
    this._topLeftLatLng = map.containerPointToLatLng([0, 0]);

    const ctx = this._ctx;
    const ratio = this._ratio;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.globalAlpha = 1;
    this._alpha = 1;
    ctx.clearRect(0, 0, this._canvas.width, this._canvas.height);

    const radius = markerRadius(zoom);
    const margin = radius * 2;
    const labels = zoom >= LABEL_ZOOM ? [] : null;
    const store = this.store;
    const staleSeconds = this.options.staleSeconds;
    let moving = false;
    let matching = 0;
    let drawn = 0;
    let selected = null;
    this._ensureHitCapacity(store.vehicles.size);

    for (const vehicle of store.vehicles.values()) {
      if (!this.matches(vehicle.state)) continue;
      matching += 1;
      if (!vehicle.positioned) continue;
      if (store.advance(vehicle, now)) moving = true;
      const x = vehicle.x * scale - topLeft.x;
      const y = vehicle.y * scale - topLeft.y;
      if (x < -margin || y < -margin || x > size.x + margin || y > size.y + margin) continue;

      this._hitX[drawn] = x;
      this._hitY[drawn] = y;
      this._hitIds[drawn] = vehicle.id;
      drawn += 1;
      if (vehicle.id === this.selectedId) {
        selected = { vehicle, x, y };
        continue;
      }
      const alpha = fadeAlpha(store.ageSeconds(vehicle), staleSeconds);
      this._stamp(ctx, vehicle, x, y, radius, alpha);
      if (labels !== null && vehicle.state.desi) labels.push(vehicle.state.desi, x, y, alpha);
    }
    this._hitIds.length = drawn;

    if (labels !== null) this._drawLabels(ctx, labels, radius, ratio);
    if (selected !== null) this._drawSelected(ctx, selected, radius, ratio, labels !== null);
    this.stats.matching = matching;
    this.stats.drawn = drawn;

    return moving;
  },

  _stamp(ctx, vehicle, x, y, radius, alpha) {
    if (this._alpha !== alpha) {
      ctx.globalAlpha = alpha;
      this._alpha = alpha;
    }
    const ratio = this._ratio;
    const atlas = this._atlas(vehicle, radius);
    atlas.stamp(ctx, Math.round(x * ratio), Math.round(y * ratio), vehicle.hdg);
  },

  // The vehicle's atlas, looked up again only when its state, the zoom or the sprites change.
  _atlas(vehicle, radius) {
    const state = vehicle.state;
    const pointed = vehicle.hdg !== null && vehicle.hdg !== undefined;
    const look = vehicle.look;
    if (
      look !== undefined &&
      look.state === state &&
      look.radius === radius &&
      look.pointed === pointed &&
      look.sprites === this._sprites
    ) {
      return look.atlas;
    }
    const ring = delayColor(delayClass(state.dl));
    const atlas = this._sprites.get(modeColor(state.mode), ring, radius, pointed);
    vehicle.look = { state, radius, pointed, sprites: this._sprites, atlas };

    return atlas;
  },

  // labels is a flat [text, x, y, alpha, ...] list; grouping by font keeps font switches rare.
  _drawLabels(ctx, labels, radius, ratio) {
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillStyle = "#ffffff";
    const byFont = new Map();
    for (let i = 0; i < labels.length; i += 4) {
      const font = labelFont(radius, labels[i]);
      if (!byFont.has(font)) byFont.set(font, []);
      byFont.get(font).push(i);
    }
    for (const [font, indexes] of byFont) {
      ctx.font = font;
      for (const i of indexes) {
        ctx.globalAlpha = labels[i + 3];
        this._alpha = labels[i + 3];
        ctx.fillText(labels[i], labels[i + 1], labels[i + 2] + 0.5, radius * 1.8);
      }
    }
    ctx.globalAlpha = 1;
    this._alpha = 1;
  },

  _drawSelected(ctx, { vehicle, x, y }, radius, ratio, withLabel) {
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.globalAlpha = 1;
    this._alpha = 1;
    ctx.beginPath();
    ctx.arc(x, y, radius * 2.3 + 4, 0, 2 * Math.PI);
    ctx.fillStyle = SELECTED_FILL;
    ctx.fill();
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = SELECTED_COLOR;
    ctx.stroke();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    this._stamp(ctx, vehicle, x, y, radius, 1);
    if (withLabel && vehicle.state.desi) {
      this._drawLabels(ctx, [vehicle.state.desi, x, y, 1], radius, ratio);
    }
  },

  _ensureHitCapacity(count) {
    if (this._hitX.length >= count) return;
    const capacity = Math.max(count, this._hitX.length * 2);
    this._hitX = new Float32Array(capacity);
    this._hitY = new Float32Array(capacity);
  },

  _resize() {
    const size = this._map.getSize();
    const ratio = window.devicePixelRatio || 1;
    if (ratio !== this._ratio) this._sprites = new Sprites(ratio);
    this._ratio = ratio;
    this._canvas.width = Math.round(size.x * ratio);
    this._canvas.height = Math.round(size.y * ratio);
    this._canvas.style.width = `${size.x}px`;
    this._canvas.style.height = `${size.y}px`;
    this.requestDraw();
  },

  // While Leaflet animates a zoom, scale the last frame along with the tiles.
  _animateZoom(event) {
    if (!this._topLeftLatLng) return;
    this._zooming = true;
    const scale = this._map.getZoomScale(event.zoom);
    const offset = this._map._latLngToNewLayerPoint(this._topLeftLatLng, event.zoom, event.center);
    L.DomUtil.setTransform(this._canvas, offset, scale);
  },

  _endZoom() {
    this._zooming = false;
    this.requestDraw();
  },
});
