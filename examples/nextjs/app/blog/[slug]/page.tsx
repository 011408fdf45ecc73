import type { Metadata } from "next";
import { notFound } from "next/navigation";

import { getPost } from "@/lib/data";
import { CARD, imgate } from "@/lib/imgate";

type Props = { params: Promise<{ slug: string }> };

export async function generateMetadata({ params }: Props): Promise<Metadata> {
  const post = await getPost((await params).slug);
  if (!post) return {};
  const image = {
    url: imgate().card(
      "article",
      { title: post.title, author: post.author, date: post.date, site: "blog.example.com" },
      { v: post.updatedAt },
    ),
    ...CARD,
    alt: post.title,
    type: "image/png",
  };
  return {
    title: post.title,
    openGraph: {
      title: post.title,
      type: "article",
      authors: [post.author],
      publishedTime: post.date,
      images: [image],
    },
    twitter: { card: "summary_large_image", title: post.title, images: [image] },
  };
}

export default async function PostPage({ params }: Props) {
  const post = await getPost((await params).slug);
  if (!post) notFound();
  return (
    <article>
      <h1>{post.title}</h1>
      <p>
        {post.author} · {post.date}
      </p>
      <p>{post.body}</p>
    </article>
  );
}
