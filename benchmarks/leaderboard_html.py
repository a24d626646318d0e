"""A leaderboard's markdown as HTML close to GitHub's rendering, to look at before publishing it.

    python benchmarks/leaderboard_html.py results/LEADERBOARD.md /tmp/lb.html [--open-details]
    chromium --headless --screenshot=/tmp/lb.png --window-size=1400,3000 file:///tmp/lb.html

CommonMark with GFM tables and raw HTML allowed (the `<details>` blocks), through markdown-it-py (a
dependency of rich). Image links stay relative: a `<base>` tag points them at the markdown's folder,
where `plots/` lies. `--open-details` expands every `<details>` block, to check what is inside.
Not GitHub itself: its stylesheet and sanitiser differ; the structure (tables, blocks, images) is the same.
"""
from __future__ import annotations

import argparse
from pathlib import Path

STYLE = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;line-height:1.5;
max-width:1012px;margin:20px auto;color:#1f2328}table{border-collapse:collapse;display:block;overflow:auto;max-width:100%}
td,th{border:1px solid #d1d9e0;padding:6px 13px}tr:nth-child(2n){background:#f6f8fa}img{max-width:100%}
h1,h2{border-bottom:1px solid #d1d9e0}code{background:#eff1f3;padding:.2em .4em;border-radius:6px}details{margin:8px 0}"""


def to_html(markdown: str, base: Path, open_details: bool = False) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)
    if open_details:
        body = body.replace("<details>", "<details open>")
    return f'<!doctype html><meta charset="utf-8"><base href="{base.resolve().as_uri()}/"><style>{STYLE}</style><body>{body}</body>'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("markdown", type=Path)
    ap.add_argument("html", type=Path)
    ap.add_argument("--open-details", action="store_true", help="expand every <details> block")
    args = ap.parse_args()
    args.html.write_text(to_html(args.markdown.read_text(), args.markdown.parent, args.open_details))


if __name__ == "__main__":
    main()
