// Pre-rendered vehicle markers: one atlas per look, holding every heading in 5° steps.
//
// Stamping a rotated image costs several times an axis-aligned copy (much more when
// the canvas is rasterised in software), so rotation happens once per atlas cell
// here and each frame only copies whole device pixels.

const ANGLE_STEP = 5;
const ANGLES = 360 / ANGLE_STEP;
const COLUMNS = 12;

// A disc of `radius` whose outline runs out to a point beyond it, towards the top.
function tracePointer(ctx, radius, pointed) {
  ctx.beginPath();
  if (!pointed) {
    ctx.arc(0, 0, radius, 0, 2 * Math.PI);
    return;
  }
  const spread = 0.55;
  ctx.arc(0, 0, radius, -Math.PI / 2 + spread, -Math.PI / 2 - spread + 2 * Math.PI);
  ctx.lineTo(0, -radius * 1.75);
  ctx.closePath();
}

function drawMarker(ctx, fill, ring, radius, pointed) {
  const ringWidth = radius >= 7 ? 2.5 : 1.5;
  tracePointer(ctx, radius, pointed);
  ctx.fillStyle = fill;
  ctx.fill();
  ctx.lineWidth = ringWidth;
  ctx.lineJoin = "round";
  ctx.strokeStyle = ring;
  ctx.stroke();
  // A hairline outside the ring keeps white (on time) rings visible on light tiles.
  tracePointer(ctx, radius + ringWidth / 2 + 0.25, pointed);
  ctx.lineWidth = 0.6;
  ctx.strokeStyle = "rgba(0, 0, 0, 0.35)";
  ctx.stroke();
}

class Atlas {
  constructor(fill, ring, radius, pointed, ratio) {
    this.pointed = pointed;
    this.cell = 2 * Math.ceil((radius * 1.75 + 4) * ratio);
    const frames = pointed ? ANGLES : 1;
    const columns = Math.min(frames, COLUMNS);
    this.canvas = document.createElement("canvas");
    this.canvas.width = columns * this.cell;
    this.canvas.height = Math.ceil(frames / columns) * this.cell;
    const ctx = this.canvas.getContext("2d");
    for (let frame = 0; frame < frames; frame += 1) {
      const [sx, sy] = this._origin(frame);
      const angle = frame * ANGLE_STEP * (Math.PI / 180);
      ctx.setTransform(ratio, 0, 0, ratio, sx + this.cell / 2, sy + this.cell / 2);
      ctx.rotate(angle);
      drawMarker(ctx, fill, ring, radius, pointed);
    }
  }

  // Copy the marker for heading `hdg` (degrees, clockwise from north) centred on device pixel x, y.
  stamp(ctx, x, y, hdg) {
    const frame = this.pointed ? Math.round(hdg / ANGLE_STEP) % ANGLES : 0;
    const [sx, sy] = this._origin(frame < 0 ? frame + ANGLES : frame);
    const cell = this.cell;
    const half = cell / 2;
    ctx.drawImage(this.canvas, sx, sy, cell, cell, x - half, y - half, cell, cell);
  }

  _origin(frame) {
    return [(frame % COLUMNS) * this.cell, Math.floor(frame / COLUMNS) * this.cell];
  }
}

export class Sprites {
  constructor(ratio) {
    this.ratio = ratio;
    this._atlases = new Map();
  }

  get(fill, ring, radius, pointed) {
    const key = `${fill}|${ring}|${radius}|${pointed}`;
    let atlas = this._atlases.get(key);
    if (atlas === undefined) {
      atlas = new Atlas(fill, ring, radius, pointed, this.ratio);
      this._atlases.set(key, atlas);
    }

    return atlas;
  }
}
