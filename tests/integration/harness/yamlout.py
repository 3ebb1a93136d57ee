"""A small YAML emitter for the service configs written by the fixtures.

Only dicts, lists and scalars are needed. Every string is written double-quoted with JSON
escapes, which is valid YAML, so a value such as "on", "8080" or "a: b" can never be read back
as a boolean, an integer or a mapping.
"""
import json
import re

# Keys written bare when they are plain identifiers; anything else is quoted like a value.
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _key(key):
    if not isinstance(key, str):
        raise TypeError(f"YAML keys must be strings here, got {key!r}")
    if _PLAIN_KEY.match(key) and key.lower() not in _RESERVED:
        return key
    return json.dumps(key, ensure_ascii=False)


def _scalar(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinities have no place in a service config")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {type(value).__name__} as YAML: {value!r}")


def _emit(value, indent, out):
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            out.append(pad + "{}")
            return
        for key, item in value.items():
            head = pad + _key(key) + ":"
            if isinstance(item, (dict, list)) and item:
                out.append(head)
                _emit(item, indent + 1, out)
            elif isinstance(item, dict):
                out.append(head + " {}")
            elif isinstance(item, list):
                out.append(head + " []")
            else:
                out.append(head + " " + _scalar(item))
    elif isinstance(value, list):
        if not value:
            out.append(pad + "[]")
            return
        for item in value:
            if isinstance(item, (dict, list)) and item:
                # A nested block under "-" is written on the following lines, indented once
                # more; YAML reads "-\n  key: v" as a list item holding that mapping.
                out.append(pad + "-")
                _emit(item, indent + 1, out)
            elif isinstance(item, dict):
                out.append(pad + "- {}")
            elif isinstance(item, list):
                out.append(pad + "- []")
            else:
                out.append(pad + "- " + _scalar(item))
    else:
        out.append(pad + _scalar(value))


def dump_yaml(value):
    """Return the YAML text for a dict/list/scalar tree."""
    out = []
    _emit(value, 0, out)
    return "\n".join(out) + "\n"
