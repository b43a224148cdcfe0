"""tinyzoo.site: the zoo as a reader sees it, a static site of annotated source (`python -m tinyzoo docs`).

    from tinyzoo.site import build_site
    index = build_site("build/site")        # then open build/site/index.html in a browser

Needs the `docs` extra (markdown-it-py, pygments) and matplotlib (the `plot` extra) for the tapes.
"""

from tinyzoo.site.build import build_site, serve

__all__ = ["build_site", "serve"]
