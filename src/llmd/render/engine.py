"""Jinja environment for the file templates, and the parse-back check of every rendered file.

Templates hold file structure (header comments, document order); values enter as dicts through the
`to_yaml` filter. Each rendered file is parsed again with Go-like YAML rules and must equal the dicts
it was made from, so a quoting slip can never reach helm (rule 8).
"""
# The IDs cited here (rule N, F##) are defined in docs/behaviours.md.

from __future__ import annotations

import functools
from typing import Any

import jinja2

from llmd.errors import LlmdError
from llmd.paths import data_dir
from llmd.render import yamlsafe


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("templates")),  # templates/ at the top of the repository
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["to_yaml"] = yamlsafe.dump
    return env


def render_file(template: str, docs: list[Any], **context: Any) -> str:
    """Render `template` with `docs` (the YAML documents of the file) and verify the text parses back to them."""
    try:
        text = environment().get_template(template).render(docs=docs, **context)
    except jinja2.TemplateError as exc:
        raise LlmdError(f"internal: template {template} failed: {exc}") from exc
    try:
        parsed = yamlsafe.load_all(text)
    except Exception as exc:  # yaml.YAMLError and friends: a bug in a template or the dumper
        raise LlmdError(f"internal: rendered {template} is not valid YAML: {exc}") from exc
    diff = yamlsafe.first_difference(docs, parsed)
    if diff:
        raise LlmdError(f"internal: rendered {template} does not read back as written: {diff}")
    return text
