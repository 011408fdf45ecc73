// imgate URLs for JavaScript servers: canonical, signed, absolute — the same
// bytes the Rust contract crate produces (contract/tests/vectors.json keeps the
// two from drifting). Server-side only: it needs the signing secret.
import { createHash, createHmac } from "node:crypto";

const FORMATS = ["png", "jpg", "webp"];
const RENDITION_FORMATS = ["jpg", "png", "webp", "auto"];
const MIN_SECRET_LEN = 32;
const MAX_TEMPLATE_NAME_LEN = 64;
const MAX_RECORD_ID_LEN = 128;
const MAX_SOURCE_KEY_LEN = 256;
const MAX_VERSION_CHARS = 64;
const MAX_PARAM_NAME_LEN = 64;

/** Percent-encodes everything but RFC 3986 unreserved characters, as the contract does. */
export function encode(value) {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

/**
 * The canonical query: parameters sorted by name, empty values dropped, each
 * name and value percent-encoded. `k` and `s` are never part of it.
 */
export function canonicalQuery(params = {}) {
  return Object.entries(params)
    .map(([name, value]) => [name, value == null ? "" : String(value)])
    .filter(([, value]) => value !== "")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${encode(name)}=${encode(value)}`)
    .join("&");
}

/** Parses `id:secret[,id:secret…]`; the first key signs. */
export function parseKeys(spec = "") {
  const keys = [];
  for (const entry of spec.split(",").map((e) => e.trim()).filter(Boolean)) {
    const at = entry.indexOf(":");
    if (at < 0) throw new Error("signing keys are written id:secret, separated by commas");
    const id = entry.slice(0, at);
    const secret = entry.slice(at + 1);
    if (!/^[A-Za-z0-9_-]+$/.test(id)) {
      throw new Error(`signing key id ${JSON.stringify(id)} must be letters, digits, '-' or '_'`);
    }
    if (Buffer.byteLength(secret) < MIN_SECRET_LEN) {
      throw new Error(`signing key ${JSON.stringify(id)} is too short; use at least ${MIN_SECRET_LEN} bytes`);
    }
    if (keys.some((k) => k.id === id)) throw new Error(`signing key id ${JSON.stringify(id)} appears twice`);
    keys.push({ id, secret });
  }
  return keys;
}

/** The signature over a canonical path-and-query: HMAC-SHA256, base64url without padding. */
export function signature(secret, signed) {
  return createHmac("sha256", secret).update(signed).digest("base64url");
}

/** Appends `k` and `s` for `key` (or nothing without a key). */
export function signPath(signed, key) {
  if (!key) return signed;
  const sep = signed.includes("?") ? "&" : "?";
  return `${signed}${sep}k=${key.id}&s=${signature(key.secret, signed)}`;
}

function withQuery(path, params) {
  const query = canonicalQuery(params);
  return query ? `${path}?${query}` : path;
}

function checkParams(params) {
  for (const [name, value] of Object.entries(params)) {
    if (name === "k" || name === "s") throw new TypeError(`"${name}" is reserved for the signature`);
    if (!/^[A-Za-z0-9_-]+$/.test(name) || name.length > MAX_PARAM_NAME_LEN) {
      throw new TypeError(`parameter names are 1-${MAX_PARAM_NAME_LEN} letters, digits, '-' or '_', not ${JSON.stringify(name)}`);
    }
    if (name === "v" && value != null && [...String(value)].length > MAX_VERSION_CHARS) {
      throw new TypeError(`v is at most ${MAX_VERSION_CHARS} characters`);
    }
  }
}

function checkFormat(format, allowed) {
  if (!allowed.includes(format)) {
    throw new TypeError(`format ${JSON.stringify(format)} is not one of ${allowed.join(", ")}`);
  }
}

/**
 * The canonical, unsigned path and query of a card: `/og/{template}.{format}?…`,
 * or `/og/{template}/{id}.{format}?v=…` for a data-source record.
 */
export function cardPath(template, { params = {}, format = "png", id, v } = {}) {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(template) || template.length > MAX_TEMPLATE_NAME_LEN) {
    throw new TypeError(`template names are 1-${MAX_TEMPLATE_NAME_LEN} lowercase letters, digits and '-', not ${JSON.stringify(template)}`);
  }
  checkFormat(format, FORMATS);
  const all = v == null ? { ...params } : { ...params, v };
  checkParams(all);
  if (id == null) return withQuery(`/og/${template}.${format}`, all);
  const record = String(id);
  if (!/^[A-Za-z0-9_-]+$/.test(record) || record.length > MAX_RECORD_ID_LEN) {
    throw new TypeError(`record ids are 1-${MAX_RECORD_ID_LEN} letters, digits, '-' and '_', not ${JSON.stringify(record)}`);
  }
  if (Object.keys(params).length > 0) {
    throw new TypeError("a record card takes its data from the data source: pass only v");
  }
  return withQuery(`/og/${template}/${record}.${format}`, all);
}

/** Source keys: `/`-separated segments of `[A-Za-z0-9._-]`, none empty or starting with '.'. */
export function checkSourceKey(source) {
  const ok =
    typeof source === "string" &&
    source.length > 0 &&
    Buffer.byteLength(source) <= MAX_SOURCE_KEY_LEN &&
    source.split("/").every((s) => s.length > 0 && !s.startsWith(".") && /^[A-Za-z0-9._-]+$/.test(s));
  if (!ok) {
    throw new TypeError(`source keys are 1-${MAX_SOURCE_KEY_LEN} bytes of '/'-separated segments of letters, digits, '.', '-' and '_', not ${JSON.stringify(source)}`);
  }
}

/** The canonical, unsigned path and query of a rendition: `/r/{preset}/{source}[?format=…]`. */
export function renditionPath(preset, source, { format } = {}) {
  if (!/^[a-z0-9-]{1,32}$/.test(preset)) {
    throw new TypeError(`preset names are 1-32 of a-z, 0-9 and '-', not ${JSON.stringify(preset)}`);
  }
  checkSourceKey(source);
  if (format != null) checkFormat(format, RENDITION_FORMATS);
  return withQuery(`/r/${preset}/${source}`, format == null ? {} : { format });
}

/** Where a rendition is stored: `renditions/{preset}/{source}.{ext}` (`format` resolved, never auto). */
export function renditionKey(preset, source, format) {
  checkFormat(format, FORMATS);
  return `renditions/${preset}/${source}.${format}`;
}

/**
 * Where a card is stored, given its template's revision and its canonical
 * parameters (the template's defaults filled in, `v` included): what the edge
 * and origin compute after checking the parameters against the template.
 */
export function cardKey(template, { revision, params = {}, format = "png", id } = {}) {
  const hash = createHash("sha256");
  for (const field of [template, String(revision), id == null ? "" : String(id), canonicalQuery(params)]) {
    const bytes = Buffer.from(field, "utf8");
    const length = Buffer.alloc(8);
    length.writeBigUInt64BE(BigInt(bytes.length));
    hash.update(length);
    hash.update(bytes);
  }
  return `og/${template}/${hash.digest("hex")}.${format}`;
}

/**
 * A URL builder for one deployment.
 *
 * @param {object} options
 * @param {string} options.baseUrl the public base URL (the CDN in front of the edge)
 * @param {string} [options.signingKeys] `id:secret[,…]`, the edge's `signing_keys`
 * @param {boolean} [options.allowUnsigned] build unsigned URLs when no keys are given (development)
 */
export function createImgate({ baseUrl, signingKeys = "", allowUnsigned = false } = {}) {
  if (!baseUrl || !/^https?:\/\//.test(baseUrl)) {
    throw new TypeError(`baseUrl must be an absolute http(s) URL, not ${JSON.stringify(baseUrl)}`);
  }
  const base = baseUrl.replace(/\/+$/, "");
  const [key] = parseKeys(signingKeys);
  if (!key && !allowUnsigned) {
    throw new Error("no signing keys: pass signingKeys (the edge's signing_keys), or allowUnsigned: true for local development");
  }
  return {
    /** A signed, absolute card URL. */
    card(template, params = {}, { format = "png", v } = {}) {
      return base + signPath(cardPath(template, { params, format, v }), key);
    },
    /** A signed, absolute URL of a data-source card for record `id`, versioned by `v`. */
    recordCard(template, id, { format = "png", v } = {}) {
      return base + signPath(cardPath(template, { id, format, v }), key);
    },
    /** A signed, absolute rendition URL; `format: "auto"` picks WebP or JPEG per browser. */
    rendition(preset, source, { format } = {}) {
      return base + signPath(renditionPath(preset, source, { format }), key);
    },
  };
}
