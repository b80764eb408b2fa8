"""`@record`: a plain data class from annotated fields, as `@dataclass`
makes one (an __init__ taking the fields in order, with their defaults, and
a __repr__), for the personality's records (Vma, OpenFile, Thread...).

Why not dataclasses: importing it imports inspect (and ast, dis, tokenize),
several milliseconds of every `emu run` and of every execve'd program's
start; this costs nothing to import. Fields are compared by identity, like
ordinary objects (the personality never compares records by value)."""
from __future__ import annotations

_MISSING = object()


def record(cls):
    names = [n for n in cls.__dict__.get("__annotations__", {})]
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    params, body = [], []
    seen_default = False
    for n in names:
        if n in defaults:
            params.append("%s=_d_%s" % (n, n))
            seen_default = True
        elif seen_default:
            raise TypeError("%s: field %s without a default follows one with a default" % (cls.__name__, n))
        else:
            params.append(n)
        body.append("    self.%s = %s" % (n, n))
    src = "def __init__(self%s):\n%s\n" % ("".join(", " + p for p in params), "\n".join(body) or "    pass")
    env = {"_d_" + n: v for n, v in defaults.items()}
    exec(src, env)
    init = env["__init__"]
    init.__qualname__ = cls.__qualname__ + ".__init__"
    cls.__init__ = init

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (n, getattr(self, n, _MISSING)) for n in names))

    cls.__repr__ = __repr__
    return cls
