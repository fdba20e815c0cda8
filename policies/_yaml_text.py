"""The text of a policy file as YAML, refusing a key given twice in one mapping.

YAML parsers keep the last of two equal keys and drop the first without a word. In a
policy file that silently loses a rule: a second ``PromiseMade:`` entry under
``visibility:`` would replace a within-transaction rule, and the writes it gated would
commit unchecked. So the document's node tree is checked for repeated keys, by dotted
path, before it is built.
"""

from __future__ import annotations

from typing import Any

import yaml

_MERGE = "tag:yaml.org,2002:merge"  # ``<<: *base``: a merge, not a key given twice


def parse_yaml(text: str) -> Any:
    """The document of ``text`` (None for an empty one).

    Raises:
        PolicyFileError: the text is not YAML, or nests too deeply to parse.
        PolicyValueError: a mapping gives one key twice (its path names the key).
    """
    from ._yaml import PolicyFileError, PolicyValueError

    loader = yaml.SafeLoader(text)  # as ``yaml.safe_load``, with a look at the nodes
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        repeated = _repeated_key(root, "", set())
        if repeated is not None:
            path, line = repeated
            raise PolicyValueError(path, f"given twice (again on line {line})")
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise PolicyFileError("", f"not valid YAML: {exc}") from exc
    except RecursionError:  # the parser recurses once per level of nesting
        raise PolicyFileError("", "not a policy file: nested too deeply") from None
    finally:
        loader.dispose()


def _repeated_key(node: yaml.Node, path: str, seen: set[int]) -> tuple[str, int] | None:
    """The dotted path and line of the first key given twice in one mapping under
    ``node``; None if there is none. A node reached again through an alias is checked
    once (``seen``), so a document of nested aliases costs its size, not its expansion."""
    if id(node) in seen:
        return None
    seen.add(id(node))
    children: list[tuple[str, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else ""
            where = f"{path}.{name}" if path else name
            if name and key.tag != _MERGE:
                if name in keys:
                    return where, key.start_mark.line + 1
                keys.add(name)
            children.append((where, value))
    elif isinstance(node, yaml.SequenceNode):
        children = [(f"{path}[{i}]", item) for i, item in enumerate(node.value)]
    for where, child in children:
        found = _repeated_key(child, where, seen)
        if found is not None:
            return found
    return None
