"""Sphinx extension of the book: every script tag once per page.

Sphinx 7's HTML builder adds a script that an extension registers after the builder started
(``app.add_js_file(None, body=...)``, as sphinx-thebe and sphinx-togglebutton do) twice: once
when it is registered (file name ``None``) and again when writing starts (file name ``""``);
the two do not compare equal, so both reach the page. sphinx-thebe's inline script declares
``const THEBE_JS_URL``, and its second copy stopped every page with "Identifier 'THEBE_JS_URL'
has already been declared". This keeps the first of any scripts that are the same tag.
"""


def _key(script):
    attributes = getattr(script, "attributes", {})
    return (getattr(script, "filename", script) or "", tuple(sorted(attributes.items())))


def _unique_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept  # the builder's own list: it restores it before the next page


def setup(app):
    # After the handlers that add a page's own scripts (the default priority is 500).
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
