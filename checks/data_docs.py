"""The GX suite's validations as Data Docs: a static site in the lake, linked from the row contract.

Each validation (a day, or the range a backfill validated together) is rendered by GX's own
renderers (`ValidationResultsPageRenderer`, `DefaultJinjaPageView`) to `<name>/data_docs/<day>/index.html`,
and `<name>/data_docs/index.html` lists every page, newest first. Rendering takes the result the check
already has: no data context, no second validation.
"""

from __future__ import annotations

import html
from functools import cache

from assets.common import data_docs_key
from ml.spec import UseCaseSpec
from resources.storage import Storage


@cache
def _page_view():
    """One view per process: its Jinja environment compiles GX's templates once (most of a first render)."""
    from great_expectations.render.view import DefaultJinjaPageView

    return DefaultJinjaPageView()


def render_page(result) -> str:
    """A GX validation result as a Data Docs page."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer

    return _page_view().render(ValidationResultsPageRenderer().render(result))


def index_page(spec: UseCaseSpec, pages: list[str]) -> str:
    """Links to every validation's page (`<day>/index.html`, relative), newest first."""
    items = "\n".join(f'<li><a href="{html.escape(p)}/index.html">{html.escape(p)}</a></li>'
                      for p in sorted(pages, reverse=True))
    title = html.escape(f"{spec.name}: Great Expectations suite {spec.name}_validated")
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>\n"
            f"<body><h1>{title}</h1>\n<ul>\n{items}\n</ul></body></html>\n")


def publish(spec: UseCaseSpec, storage: Storage, result, first_day: str, last_day: str) -> str:
    """Write the validation's page and the site's index; returns the page's key."""
    key = data_docs_key(spec, first_day, last_day)
    storage.write_bytes(key, render_page(result).encode())
    prefix = f"{spec.name}/data_docs/"
    pages = {k[len(prefix):].split("/", 1)[0] for k in storage.list_keys(prefix) if k.count("/") == 3}
    storage.write_bytes(prefix + "index.html", index_page(spec, sorted(pages)).encode())
    return key
