// The helper against the contract's own test vectors (contract/tests/vectors.json,
// written by the Rust crate), plus what only JavaScript callers can get wrong.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import {
  cardKey,
  cardPath,
  createImgate,
  parseKeys,
  renditionKey,
  signPath,
} from "../index.js";

const vectors = JSON.parse(
  readFileSync(new URL("../../contract/tests/vectors.json", import.meta.url), "utf8"),
);
const BASE = "https://img.example.com";
const imgate = createImgate({ baseUrl: `${BASE}/`, signingKeys: vectors.signing_keys });

test("card URLs match the contract byte for byte", () => {
  assert.ok(vectors.cards.length >= 3);
  for (const c of vectors.cards) {
    const url = imgate.card(c.template, c.params, { format: c.format, v: c.v ?? undefined });
    assert.equal(url, BASE + c.url, c.template);
  }
});

test("card object keys match the contract", () => {
  for (const c of vectors.cards) {
    const key = cardKey(c.template, {
      revision: c.revision,
      params: c.canonical_params,
      format: c.format,
    });
    assert.equal(key, c.key, c.template);
  }
});

test("record card URLs match the contract", () => {
  for (const c of vectors.record_cards) {
    assert.equal(imgate.recordCard(c.template, c.id, { format: c.format, v: c.v }), BASE + c.url);
  }
});

test("rendition URLs and keys match the contract", () => {
  for (const r of vectors.renditions) {
    const url = imgate.rendition(r.preset, r.source, { format: r.format ?? undefined });
    assert.equal(url, BASE + r.url, `${r.preset} ${r.source}`);
    for (const [format, key] of Object.entries(r.keys)) {
      assert.equal(renditionKey(r.preset, r.source, format), key);
    }
  }
});

test("the order and spelling of parameters do not change the URL", () => {
  const a = imgate.card("product", { title: "Hi there", price: "$5", brand: "" });
  const b = imgate.card("product", { price: "$5", title: "Hi there", subtitle: null });
  assert.equal(a, b);
  assert.match(a, /\?price=%245&title=Hi%20there&k=v2&s=[A-Za-z0-9_-]{43}$/);
});

test("numbers are parameters too", () => {
  assert.equal(
    cardPath("product", { params: { title: "x", price: 19 }, v: 1732182000 }),
    "/og/product.png?price=19&title=x&v=1732182000",
  );
});

test("bad input is refused before a URL exists", () => {
  assert.throws(() => imgate.card("../etc", {}), /template names/);
  assert.throws(() => imgate.card("Product", {}), /template names/);
  assert.throws(() => imgate.card("product", { s: "forged" }), /reserved/);
  assert.throws(() => imgate.card("product", { "a b": "1" }), /parameter names/);
  assert.throws(() => imgate.card("product", { title: "x" }, { format: "gif" }), /format/);
  assert.throws(() => imgate.card("product", {}, { v: "x".repeat(65) }), /v is at most/);
  assert.throws(() => imgate.recordCard("listing", "../1"), /record ids/);
  assert.throws(() => imgate.rendition("thumbnail", "../secret"), /source keys/);
  assert.throws(() => imgate.rendition("thumbnail", "a//b.jpg"), /source keys/);
  assert.throws(() => imgate.rendition("thumbnail", ".env"), /source keys/);
  assert.throws(() => imgate.rendition("Thumb", "a.jpg"), /preset names/);
  assert.throws(() => imgate.rendition("thumbnail", "a.jpg", { format: "avif" }), /format/);
});

test("keys are required unless development says otherwise", () => {
  assert.throws(() => createImgate({ baseUrl: BASE }), /no signing keys/);
  assert.throws(() => createImgate({ baseUrl: "img.example.com", signingKeys: vectors.signing_keys }), /baseUrl/);
  assert.throws(() => parseKeys("k1:short"), /too short/);
  assert.throws(() => parseKeys("k1"), /id:secret/);
  const open = createImgate({ baseUrl: "http://127.0.0.1:8080", allowUnsigned: true });
  assert.equal(open.card("basic", { title: "Hi" }), "http://127.0.0.1:8080/og/basic.png?title=Hi");
  assert.equal(signPath("/og/basic.png"), "/og/basic.png");
});
