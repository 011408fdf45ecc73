import type { Metadata } from "next";
import type { ReactNode } from "react";

export const metadata: Metadata = {
  // Where relative URLs in metadata resolve; card URLs are absolute anyway.
  metadataBase: new URL(process.env.SITE_URL ?? "http://127.0.0.1:3000"),
  title: { default: "imgate example shop", template: "%s · imgate example" },
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body style={{ fontFamily: "system-ui, sans-serif", maxWidth: 720, margin: "2rem auto" }}>
        {children}
      </body>
    </html>
  );
}
