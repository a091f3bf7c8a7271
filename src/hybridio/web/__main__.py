"""``python -m hybridio.web [--port 0 ...]``: the same as ``hybridio serve``.

Imports are absolute on purpose: worker processes re-run the parent's ``__main__`` file as
``__mp_main__``, where a relative import fails.
"""

from hybridio.web._cli import serve

if __name__ == "__main__":
    serve(prog_name="python -m hybridio.web")
