// One imgate URL builder for the whole app. Server-only: the signing keys are
// read from the environment and never sent to the browser (this module is only
// imported by server components and generateMetadata).
import "server-only";
import { createImgate, type Imgate } from "imgate";

let instance: Imgate | undefined;

/** Built on first use, at request time: the keys are runtime configuration, not build input. */
export function imgate(): Imgate {
  instance ??= createImgate({
    // The public base URL of imgate (your CDN in front of the edge).
    baseUrl: process.env.IMGATE_URL ?? "http://127.0.0.1:8080",
    // The edge's signing_keys; the first key signs.
    signingKeys: process.env.IMGATE_SIGNING_KEYS ?? "",
    // `scripts/dev` runs imgate without keys; production never should.
    allowUnsigned: process.env.IMGATE_ALLOW_UNSIGNED === "true",
  });
  return instance;
}

/** The size every shipped card template renders at. */
export const CARD = { width: 1200, height: 630 } as const;
