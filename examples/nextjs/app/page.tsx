import Link from "next/link";

import { allPosts, allProducts } from "@/lib/data";

export default function Home() {
  return (
    <main>
      <h1>imgate example</h1>
      <p>Share any of these pages: each has its own Open Graph card, rendered once by imgate.</p>
      <h2>Products</h2>
      <ul>
        {allProducts().map((p) => (
          <li key={p.id}>
            <Link href={`/products/${p.id}`}>{p.name}</Link>
          </li>
        ))}
      </ul>
      <h2>Blog</h2>
      <ul>
        {allPosts().map((p) => (
          <li key={p.slug}>
            <Link href={`/blog/${p.slug}`}>{p.title}</Link>
          </li>
        ))}
      </ul>
    </main>
  );
}
