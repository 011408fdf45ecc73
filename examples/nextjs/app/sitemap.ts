import type { MetadataRoute } from "next";

import { allPosts, allProducts } from "@/lib/data";

// Built per request so SITE_URL is read at run time. `imgate-origin warm
// --sitemap https://shop.example.com/sitemap.xml` pre-renders every page's card.
export const dynamic = "force-dynamic";

export default function sitemap(): MetadataRoute.Sitemap {
  const site = process.env.SITE_URL ?? "http://127.0.0.1:3000";
  return [
    ...allProducts().map((p) => ({ url: `${site}/products/${p.id}`, lastModified: p.updatedAt })),
    ...allPosts().map((p) => ({ url: `${site}/blog/${p.slug}`, lastModified: p.updatedAt })),
  ];
}
