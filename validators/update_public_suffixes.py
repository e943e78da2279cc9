"""Regenerate ``public_suffixes.txt`` and ``public_suffix_parents.txt`` from the
installed ``publicsuffixlist`` package.

The generated services refuse origin patterns broader than a registrable domain, or
with a public suffix below their parent (``*.amazonaws.com``), using ``publicsuffixlist``
at start-up; the questionnaire applies the same rules with these files, because Copier
validators are Jinja templates and cannot import Python.

    uv run python validators/update_public_suffixes.py
"""

from __future__ import annotations

from pathlib import Path

import publicsuffixlist

TARGET = Path(__file__).with_name("public_suffixes.txt")
PARENTS = Path(__file__).with_name("public_suffix_parents.txt")


def ascii_rule(rule: str) -> str:
    """The rule as browsers send hosts: each label in punycode."""
    prefix = "!" if rule.startswith("!") else ""
    labels = rule.removeprefix("!").split(".")
    return prefix + ".".join(
        label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
        for label in labels
    )


def public_suffix_rules() -> list[str]:
    source = Path(publicsuffixlist.__file__).with_name("public_suffix_list.dat")
    rules = set()
    for line in source.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("//"):
            rules.add(ascii_rule(line.lower()))
    return sorted(rules)


def render() -> str:
    return "\n".join(public_suffix_rules()) + "\n"


def parents() -> list[str]:
    """Every domain with a rule below it: a wildcard rule's own domain, and the proper
    parents of every rule (exception rules name no public suffix and are skipped)."""
    found = set()
    for rule in public_suffix_rules():
        if rule.startswith("!"):
            continue
        labels = rule.removeprefix("*.").split(".")
        if rule.startswith("*."):
            found.add(".".join(labels))
        found.update(".".join(labels[i:]) for i in range(1, len(labels)))
    return sorted(found)


def render_parents() -> str:
    return "\n".join(parents()) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="ascii")
    PARENTS.write_text(render_parents(), encoding="ascii")
    print(f"wrote {TARGET} ({len(public_suffix_rules())} rules), {PARENTS} ({len(parents())})")
