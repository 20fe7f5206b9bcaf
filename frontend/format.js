// Human-readable text for vehicle fields (units as HFP sends them).

export function formatSpeed(spd) {
  if (spd === null || spd === undefined) return "unknown";
  return `${Math.round(spd * 3.6)} km/h`;
}

// dl is seconds ahead of the timetable: negative means late.
export function formatDelay(dl) {
  if (dl === null || dl === undefined) return "unknown";
  if (dl === 0) return "on time";
  const seconds = Math.abs(Math.round(dl));
  const text = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  return dl < 0 ? `${text} late` : `${text} early`;
}

// HFP occu: real percentages only for Suomenlinna ferries, otherwise 0 (room) or 100 (full).
export function formatOccupancy(occu) {
  if (occu === null || occu === undefined) return "unknown";
  if (occu >= 100) return "full";
  if (occu === 0) return "seats available";
  return `${occu} % full`;
}

export function formatAge(seconds) {
  if (!Number.isFinite(seconds)) return "unknown";
  const whole = Math.max(0, Math.round(seconds));
  if (whole < 60) return `${whole} s ago`;
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s ago`;
  return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min ago`;
}

export function formatCount(count) {
  return count.toLocaleString("en-US");
}

export function orUnknown(value) {
  return value === null || value === undefined || value === "" ? "unknown" : String(value);
}
