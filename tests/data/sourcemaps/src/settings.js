// Settings stored as JSON text; bad text makes JSON.parse (a native frame) throw.
export function loadSettings(text) {
  const parsed = parseSettings(text);
  return Object.assign({ theme: 'light', pageSize: 25 }, parsed);
}

function parseSettings(text) {
  return JSON.parse(text);
}
