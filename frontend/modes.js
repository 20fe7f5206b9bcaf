// Transport modes and delay classes: the colours the map, the legend and the filters share.

export const MODES = [
  { key: "bus", label: "Bus", color: "#007ac9" },
  { key: "tram", label: "Tram", color: "#00985f" },
  { key: "train", label: "Train", color: "#8c4799" },
  { key: "metro", label: "Metro", color: "#ff6319" },
  { key: "ferry", label: "Ferry", color: "#00b9e4" },
  { key: "ubus", label: "U-line bus", color: "#7b7b7b" },
  { key: "robot", label: "Robot bus", color: "#5f5f5f" },
];

// HFP's mode level can be empty (a vehicle-system bug); such vehicles are drawn grey.
export const OTHER_COLOR = "#999999";

const COLORS = new Map(MODES.map((mode) => [mode.key, mode.color]));

export function modeColor(mode) {
  return COLORS.get(mode) ?? OTHER_COLOR;
}

// HFP's dl is seconds ahead of the timetable: negative means late.
export const DELAY_THRESHOLD_SECONDS = 60;

export const DELAY_CLASSES = [
  { key: "late", label: "Late over 1 min", color: "#dc0451" },
  { key: "early", label: "Early over 1 min", color: "#f5a700" },
  { key: "ontime", label: "On time (±1 min)", color: "#ffffff" },
  { key: "unknown", label: "No schedule data", color: "#c8c8c8" },
];

export function delayClass(dl) {
  if (dl === null || dl === undefined) return "unknown";
  if (dl < -DELAY_THRESHOLD_SECONDS) return "late";
  if (dl > DELAY_THRESHOLD_SECONDS) return "early";
  return "ontime";
}

const DELAY_COLORS = new Map(DELAY_CLASSES.map((entry) => [entry.key, entry.color]));

export function delayColor(key) {
  return DELAY_COLORS.get(key);
}
