// Stand-ins for a real database. `updatedAt` versions each card URL, so an edit
// makes a new image and social networks never show a stale one.
export interface Product {
  id: string;
  name: string;
  tagline: string;
  price: string;
  brand: string;
  updatedAt: string;
}

export interface Post {
  slug: string;
  title: string;
  author: string;
  date: string;
  body: string;
  updatedAt: string;
}

const products: Product[] = [
  {
    id: "trail-runner",
    name: "Trail Runner 2",
    tagline: "Grip on wet rock, 240 g, recycled upper",
    price: "$89",
    brand: "Northwind",
    updatedAt: "2026-11-20T09:30:00Z",
  },
  {
    id: "espresso-kit",
    name: "Pocket Espresso Kit",
    tagline: "Nine bars by hand, anywhere",
    price: "$129",
    brand: "Crema & Co",
    updatedAt: "2026-11-18T16:05:00Z",
  },
];

const posts: Post[] = [
  {
    slug: "cards-that-never-go-stale",
    title: "Link previews that never go stale",
    author: "Ada Lovelace",
    date: "2026-11-21",
    body: "Version every card URL with the record's updated-at and the cache does the rest.",
    updatedAt: "2026-11-21T08:00:00Z",
  },
];

export async function getProduct(id: string): Promise<Product | undefined> {
  return products.find((p) => p.id === id);
}

export async function getPost(slug: string): Promise<Post | undefined> {
  return posts.find((p) => p.slug === slug);
}

export function allProducts(): Product[] {
  return products;
}

export function allPosts(): Post[] {
  return posts;
}
