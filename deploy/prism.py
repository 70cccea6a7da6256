"""Beam's Prism runner, built from the Go module proxy at the Beam SDK's version.

``ensure_prism()`` returns the path of a ``prism`` binary for the installed
``apache_beam`` version, building it once with::

    GOBIN=<cache>/prism-v<version> go install github.com/apache/beam/sdks/v2/go/cmd/prism@v<version>

``$ENTITYSTREAM_PRISM_BIN`` overrides it with an existing binary. Beam would
otherwise try to download Prism from GitHub at run time, which is not
possible offline; the pipeline always passes ``--prism_location``.
"""
import os
import shutil
import subprocess
import sys

from deploy.broker import cache_dir

__all__ = ["ensure_prism", "prism_version"]

_MODULE = "github.com/apache/beam/sdks/v2/go/cmd/prism"


def prism_version() -> str:
    """The Beam version Prism must match: the installed Python SDK's."""
    from apache_beam.version import __version__
    return __version__


def ensure_prism() -> str:
    """Path to a Prism binary matching the Beam SDK; build it if needed."""
    override = os.environ.get("ENTITYSTREAM_PRISM_BIN")
    if override:
        if not os.access(override, os.X_OK):
            raise RuntimeError(f"ENTITYSTREAM_PRISM_BIN={override} is not an executable file")
        return override
    version = prism_version()
    bindir = cache_dir() / f"prism-v{version}"
    binary = bindir / "prism"
    if binary.is_file():
        return str(binary)
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("Go is needed to build Beam's Prism runner (go install "
                           f"{_MODULE}@v{version}); install Go or set ENTITYSTREAM_PRISM_BIN")
    bindir.mkdir(parents=True, exist_ok=True)
    print(f"building Prism v{version} with go install (once, about a minute)...",
          file=sys.stderr, flush=True)
    env = dict(os.environ, GOBIN=str(bindir), GOFLAGS="-buildvcs=false")
    done = subprocess.run([go, "install", f"{_MODULE}@v{version}"], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0 or not binary.is_file():
        msg = (f"go install {_MODULE}@v{version} failed (exit {done.returncode}):\n"
               f"{done.stderr[-2000:]}")
        raise RuntimeError(msg)
    return str(binary)


if __name__ == "__main__":
    print(ensure_prism())
