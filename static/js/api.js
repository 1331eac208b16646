// HTTP calls to the server with the person's token. Every failure becomes an ApiError carrying the
// server's JSON error body; a 401 also tells the app the token is no longer good (revoked, mistyped).

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || body.error || `HTTP ${status}`);
    this.status = status;
    this.error = body.error;
    this.errors = body.errors;
    this.body = body;
  }
}

let tokenOf = () => null;
let onUnauthorized = () => {};

export function configure({ token, unauthorized }) {
  tokenOf = token;
  onUnauthorized = unauthorized;
}

// `body` is sent as JSON; a string is sent as is (an import file's own text, already checked to parse).
// `as` asks with another token than the page's (a link's, before the person agrees to use it): its
// 401 only means that token is no good, not the page's.
export async function request(method, path, body, { as } = {}) {
  const headers = { Authorization: `Bearer ${as ?? tokenOf()}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { error: "network_error", message: "The server could not be reached." });
  }
  if (!response.ok) {
    let error;
    try {
      error = await response.json();
    } catch {
      error = { error: `http_${response.status}`, message: `The server answered ${response.status} ${response.statusText}.` };
    }
    if (response.status === 401 && as === undefined) onUnauthorized();
    throw new ApiError(response.status, error);
  }
  return response;
}

export async function json(method, path, body, options) {
  const response = await request(method, path, body, options);
  return response.status === 204 ? null : response.json();
}

// A validation error body ({errors: {messages: {"3": {content: ["..."]}}}}) as readable lines.
export function describeErrors(errors, prefix = "") {
  if (!errors || typeof errors !== "object") return [];
  if (Array.isArray(errors)) return [`${prefix || "request"}: ${errors.join(" ")}`];
  return Object.entries(errors).flatMap(([key, value]) => {
    const path = key === "_schema" ? prefix : prefix ? `${prefix} › ${key}` : key;
    return Array.isArray(value) && value.every((v) => typeof v === "string")
      ? [`${path || "document"}: ${value.join(" ")}`]
      : describeErrors(value, path);
  });
}
