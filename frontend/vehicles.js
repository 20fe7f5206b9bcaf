// The browser's copy of the live view: the latest state of each vehicle, and its motion.
//
// Stream events only queue work here; `flush()` applies everything queued since the
// previous animation frame at once, so a burst of SSE frames costs one redraw.

const SNAP_METRES = 500;
const EARTH_RADIUS_METRES = 6371008.8;
const RADIANS = Math.PI / 180;

// Web Mercator as a fraction of the world (0..1); Leaflet's pixel space is this times
// crs.scale(zoom), so positions are projected once per update, not once per frame.
export function project(lat, lon) {
  const sin = Math.sin(lat * RADIANS);
  const x = (lon + 180) / 360;
  const y = 0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI);
  return [x, y];
}

export function distanceMetres(lat1, lon1, lat2, lon2) {
  const dLat = (lat2 - lat1) * RADIANS;
  const dLon = (lon2 - lon1) * RADIANS;
  const a =
    Math.sin(dLat / 2) ** 2 +
    Math.cos(lat1 * RADIANS) * Math.cos(lat2 * RADIANS) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_METRES * Math.asin(Math.min(1, Math.sqrt(a)));
}

export function hasPosition(state) {
  return Number.isFinite(state.lat) && Number.isFinite(state.lon);
}

export function parseTst(tst) {
  const ms = Date.parse(tst);
  return Number.isNaN(ms) ? 0 : ms;
}

function shortestTurn(from, to) {
  return ((to - from + 540) % 360) - 180;
}

export class VehicleStore {
  // tickSeconds is the server's broadcast interval: the shortest a move is spread over.
  constructor(tickSeconds) {
    this.tickMs = tickSeconds * 1000;
    this.vehicles = new Map();
    this.newestTst = 0;
    this.changed = 0;
    this._snapshot = null;
    this._updates = new Map();
    this._removals = new Set();
  }

  snapshot(states) {
    this._snapshot = states;
    this._updates.clear();
    this._removals.clear();
  }

  update(states) {
    for (const state of states) {
      this._updates.set(state.id, state);
      this._removals.delete(state.id);
    }
  }

  remove(ids) {
    for (const id of ids) {
      this._updates.delete(id);
      this._removals.add(id);
    }
  }

  clear() {
    this.snapshot([]);
  }

  get pending() {
    return this._snapshot !== null || this._updates.size > 0 || this._removals.size > 0;
  }

  // Apply what arrived since the last frame; return whether anything changed.
  flush(now) {
    if (!this.pending) return false;

    if (this._snapshot !== null) {
      this._applySnapshot(this._snapshot, now);
      this._snapshot = null;
    }
    for (const state of this._updates.values()) this._apply(state, now);
    for (const id of this._removals) this.vehicles.delete(id);
    this._updates.clear();
    this._removals.clear();
    this.changed += 1;

    return true;
  }

  // Set v.x, v.y (world fraction) and v.hdg for time `now`; return whether still moving.
  advance(vehicle, now) {
    const progress = Math.min(1, (now - vehicle.start) / vehicle.duration);
    vehicle.x = vehicle.fromX + (vehicle.toX - vehicle.fromX) * progress;
    vehicle.y = vehicle.fromY + (vehicle.toY - vehicle.fromY) * progress;
    if (vehicle.toHdg !== null) {
      const from = vehicle.fromHdg ?? vehicle.toHdg;
      vehicle.hdg = from + shortestTurn(from, vehicle.toHdg) * progress;
    }

    return progress < 1;
  }

  // Seconds since the vehicle's last report, on the data's own clock (replays show old days).
  ageSeconds(vehicle) {
    return (this.newestTst - vehicle.tst) / 1000;
  }

  _applySnapshot(states, now) {
    const previous = this.vehicles;
    this.vehicles = new Map();
    this.newestTst = 0;
    for (const state of states) {
      const existing = previous.get(state.id);
      if (existing !== undefined) this.vehicles.set(state.id, existing);
      this._apply(state, now);
    }
  }

  _apply(state, now) {
    const tst = parseTst(state.tst);
    if (tst > this.newestTst) this.newestTst = tst;

    let vehicle = this.vehicles.get(state.id);
    if (vehicle === undefined) {
      vehicle = { id: state.id, state, tst, positioned: false, arrivedAt: now };
      this.vehicles.set(state.id, vehicle);
    }
    const previousState = vehicle.state;
    vehicle.state = state;
    vehicle.tst = tst;
    if (!hasPosition(state)) return;

    const [x, y] = project(state.lat, state.lon);
    const heading = Number.isFinite(state.hdg) ? state.hdg : (vehicle.toHdg ?? null);
    if (!vehicle.positioned || this._isJump(previousState, state)) {
      this._place(vehicle, x, y, heading, now);
      return;
    }

    this.advance(vehicle, now);
    vehicle.fromX = vehicle.x;
    vehicle.fromY = vehicle.y;
    vehicle.toX = x;
    vehicle.toY = y;
    vehicle.fromHdg = vehicle.hdg ?? heading;
    vehicle.toHdg = heading;
    vehicle.start = now;
    // Spread the move over the gap between this vehicle's reports (HFP sends ~1 Hz), so it
    // glides instead of hopping once per tick; a long silence is not replayed in slow motion.
    const sinceLast = now - vehicle.arrivedAt;
    vehicle.duration = Math.min(Math.max(sinceLast, this.tickMs), 3 * this.tickMs);
    vehicle.arrivedAt = now;
  }

  _isJump(previous, state) {
    if (!hasPosition(previous)) return true;
    return distanceMetres(previous.lat, previous.lon, state.lat, state.lon) > SNAP_METRES;
  }

  _place(vehicle, x, y, heading, now) {
    vehicle.positioned = true;
    vehicle.fromX = vehicle.toX = vehicle.x = x;
    vehicle.fromY = vehicle.toY = vehicle.y = y;
    vehicle.fromHdg = vehicle.toHdg = vehicle.hdg = heading;
    vehicle.start = now;
    vehicle.duration = this.tickMs;
    vehicle.arrivedAt = now;
  }
}
