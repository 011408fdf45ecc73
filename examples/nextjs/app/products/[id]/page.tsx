import type { Metadata } from "next";
import { notFound } from "next/navigation";

import { getProduct } from "@/lib/data";
import { CARD, imgate } from "@/lib/imgate";

type Props = { params: Promise<{ id: string }> };

export async function generateMetadata({ params }: Props): Promise<Metadata> {
  const product = await getProduct((await params).id);
  if (!product) return {};
  // Signed, absolute, versioned by updatedAt: an edit makes a new card.
  const image = {
    url: imgate().card(
      "product",
      { title: product.name, subtitle: product.tagline, price: product.price, brand: product.brand },
      { v: product.updatedAt },
    ),
    ...CARD,
    alt: `${product.name}, ${product.price}`,
    type: "image/png",
  };
  return {
    title: product.name,
    description: product.tagline,
    openGraph: { title: product.name, description: product.tagline, type: "website", images: [image] },
    twitter: { card: "summary_large_image", title: product.name, images: [image] },
  };
}

export default async function ProductPage({ params }: Props) {
  const product = await getProduct((await params).id);
  if (!product) notFound();
  return (
    <main>
      <h1>{product.name}</h1>
      <p>{product.tagline}</p>
      <p>
        <strong>{product.price}</strong> · {product.brand}
      </p>
    </main>
  );
}
