/** Card image formats. */
export type CardFormat = "png" | "jpg" | "webp";
/** Rendition formats; `auto` picks WebP or JPEG from the browser's `Accept`. */
export type RenditionFormat = "jpg" | "png" | "webp" | "auto";
/** Template parameters; empty, null and undefined values are left out. */
export type Params = Record<string, string | number | null | undefined>;

export interface SigningKey {
  id: string;
  secret: string;
}

export interface ImgateOptions {
  /** The public base URL, e.g. `https://img.example.com` (the CDN in front of the edge). */
  baseUrl: string;
  /** `id:secret[,id:secret…]`, the edge's `signing_keys`; the first key signs. */
  signingKeys?: string;
  /** Build unsigned URLs when no keys are given (local development only). */
  allowUnsigned?: boolean;
}

export interface Imgate {
  /** A signed, absolute card URL, e.g. `card("product", { title: "Hi" }, { v: updatedAt })`. */
  card(template: string, params?: Params, options?: { format?: CardFormat; v?: string | number }): string;
  /** A signed, absolute URL of a data-source card for record `id`, versioned by `v`. */
  recordCard(template: string, id: string | number, options?: { format?: CardFormat; v?: string | number }): string;
  /** A signed, absolute rendition URL of the original at `originals/{source}`. */
  rendition(preset: string, source: string, options?: { format?: RenditionFormat }): string;
}

export function createImgate(options: ImgateOptions): Imgate;

/** Percent-encodes all but RFC 3986 unreserved characters. */
export function encode(value: string): string;
/** Parameters sorted by name, empty values dropped, percent-encoded. */
export function canonicalQuery(params?: Params): string;
export function parseKeys(spec?: string): SigningKey[];
/** HMAC-SHA256 of `signed`, base64url without padding. */
export function signature(secret: string, signed: string): string;
/** Appends `k` and `s` (nothing without a key). */
export function signPath(signed: string, key?: SigningKey): string;
export function cardPath(
  template: string,
  options?: { params?: Params; format?: CardFormat; id?: string | number; v?: string | number },
): string;
export function checkSourceKey(source: string): void;
export function renditionPath(preset: string, source: string, options?: { format?: RenditionFormat }): string;
export function renditionKey(preset: string, source: string, format: CardFormat): string;
export function cardKey(
  template: string,
  options: { revision: number; params?: Params; format?: CardFormat; id?: string | number },
): string;
