#!/usr/bin/env python3
"""Checks the internal links of the HTML site `mkdocs build` wrote: every
relative href must name a page that exists and, with a #fragment, an id on
that page.  (mkdocs --strict finds links to missing pages, not to missing
anchors.)  Usage: check-site-links.py SITE_DIR; exit status 1 on a broken link."""
import html.parser
import os
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.hrefs = set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])


def parse(path):
    p = Page()
    with open(path, encoding="utf-8") as f:
        p.feed(f.read())
    return p


def main(site):
    pages = {}
    for d, _, files in os.walk(site):
        for name in files:
            if name.endswith(".html"):
                path = os.path.join(d, name)
                pages[os.path.normpath(path)] = parse(path)
    broken = []
    for path, page in sorted(pages.items()):
        if os.path.relpath(path, site).startswith(("search", "404")):
            continue
        for href in page.hrefs:
            url = urllib.parse.urlsplit(href)
            if url.scheme or url.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            target = path
            if url.path:
                target = os.path.normpath(os.path.join(os.path.dirname(path), urllib.parse.unquote(url.path)))
                if os.path.isdir(target):
                    target = os.path.join(target, "index.html")
            if not os.path.exists(target):
                broken.append("%s: %s (no such file)" % (os.path.relpath(path, site), href))
            elif url.fragment and target in pages and url.fragment not in pages[target].ids:
                broken.append("%s: %s (no such anchor)" % (os.path.relpath(path, site), href))
    for b in broken:
        print("broken link in", b, file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
