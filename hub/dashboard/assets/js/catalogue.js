// The sensor catalogue's quantities per component type (shared/BRIEF.md "Sensor catalogue"):
// which trend charts a component page draws. Units are the canonical ones of `protocol::Quantity`.

export const QUANTITIES_BY_TYPE = {
  manhole_cover: ["tilt", "opened", "water_level", "battery"],
  street_light: ["voltage", "current", "power", "lamp_on"],
  fire_hydrant: ["pressure", "tilt", "leak"],
  flood_gauge: ["water_level"],
  smoke_detector: ["smoke", "alarm", "battery"],
  gas_detector: ["gas"],
  door_contact: ["door_open"],
  intrusion: ["motion"],
  elevator: ["trapped", "fault_code", "door_open"],
  electrical_fire: ["residual_current", "cable_temp"],
  waste_bin: ["fill_level"],
  environment: ["pm25", "noise", "temperature", "humidity"],
};

export const UNITS = {
  tilt: "°", opened: "", water_level: "cm", battery: "%", voltage: "V", current: "A", power: "W",
  lamp_on: "", pressure: "MPa", leak: "", smoke: "%obs/m", alarm: "", gas: "%LEL", door_open: "",
  motion: "", trapped: "", fault_code: "", residual_current: "mA", cable_temp: "°C", fill_level: "%",
  pm25: "µg/m³", noise: "dB(A)", temperature: "°C", humidity: "%",
};

export const BOOLEAN = new Set(["opened", "lamp_on", "leak", "alarm", "door_open", "motion", "trapped"]);

export function quantitiesOf(type) {
  return QUANTITIES_BY_TYPE[type] || [];
}
