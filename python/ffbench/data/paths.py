"""Where ffbench's programs and shipped files are, in a checkout or an installed tree.

Two layouts hold this package:
  checkout   <root>/python/ffbench          programs in <root>/build/bin, configs in <root>/configs
  installed  <P>/lib/ffbench/python/ffbench programs in <P>/bin, configs in <P>/share/ffbench/configs
(the CMake install rules). A `pip install .` has no programs or configs of its own: it reads them
from $FFB_ROOT, else the current directory, and finds the programs through $FFB_BIN or PATH.
$FFB_ROOT names a checkout explicitly.
Every module that looks for a program, a script or a shipped config asks this one.
"""
import os
import shutil

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../ffbench
PYTHON_DIR = os.path.dirname(PACKAGE_DIR)  # what PYTHONPATH names to import ffbench

# Programs whose presence marks a directory as ffbench's bin dir (every build has these).
_MARKER_PROGRAMS = ("mpi_allreduce_bench", "hfreduce_bench", "membw_bench", "storage_bench")


def _is_checkout(root):
    return os.path.isfile(os.path.join(root, "CMakeLists.txt")) and \
        os.path.isdir(os.path.join(root, "configs"))


def installed_prefix():
    """<P> when this package is <P>/lib/ffbench/python/ffbench, else None."""
    python_dir = os.path.dirname(PACKAGE_DIR)
    lib_ffbench = os.path.dirname(python_dir)
    if os.path.basename(python_dir) == "python" and os.path.basename(lib_ffbench) == "ffbench" \
            and os.path.basename(os.path.dirname(lib_ffbench)) == "lib":
        return os.path.dirname(os.path.dirname(lib_ffbench))
    return None


def checkout_root():
    """The source checkout: $FFB_ROOT, else the directory above python/ when this package lives
    in a checkout, else None (an installed tree)."""
    env = os.environ.get("FFB_ROOT")
    if env:
        return os.path.abspath(env)
    root = os.path.dirname(os.path.dirname(PACKAGE_DIR))
    return root if _is_checkout(root) else None


def repo_root():
    """The directory relative paths of configs (bin:, compare:, ...) are read against: the
    checkout, else the installed share/ffbench (which holds configs/ the same way)."""
    root = checkout_root()
    if root:
        return root
    prefix = installed_prefix()
    if prefix:
        return os.path.join(prefix, "share", "ffbench")
    return os.getcwd()  # a pip install: configs/ and build/bin of the directory it runs in


def _holds_programs(directory):
    return any(os.path.isfile(os.path.join(directory, p)) for p in _MARKER_PROGRAMS)


def bin_dir(cli_bin=None, sweep_bin=None):
    """The directory of the programs: --bin, then $FFB_BIN, then the config's bin: (relative to the
    checkout, like every path inside configs/), then the installed prefix's bin when it holds the
    programs, then the checkout's build/bin, then the directory on PATH that holds them."""
    if cli_bin:
        return os.path.abspath(cli_bin)
    if os.environ.get("FFB_BIN"):
        return os.path.abspath(os.environ["FFB_BIN"])
    if sweep_bin:
        return os.path.abspath(os.path.join(repo_root(), os.path.expanduser(sweep_bin)))
    prefix = installed_prefix()
    if prefix and _holds_programs(os.path.join(prefix, "bin")):
        return os.path.join(prefix, "bin")
    root = checkout_root()
    if root and os.path.isdir(os.path.join(root, "build", "bin")):
        return os.path.join(root, "build", "bin")
    for program in _MARKER_PROGRAMS:
        found = shutil.which(program)
        if found:
            return os.path.dirname(os.path.abspath(found))
    # Nothing built anywhere: the checkout's build/bin, so "not built" messages name it.
    return os.path.join(root or repo_root(), "build", "bin")


def scripts_dir():
    """The directory of the helper scripts sweeps may run (fio-crosscheck, ...): the checkout's
    scripts/, or the installed prefix's bin (installed next to bin/ffbench)."""
    root = checkout_root()
    if root:
        return os.path.join(root, "scripts")
    prefix = installed_prefix()
    return os.path.join(prefix, "bin") if prefix else os.path.join(repo_root(), "scripts")


def ffbench_command():
    """The ffbench entry script (report runs `ffbench model ...` as a child)."""
    return os.path.join(scripts_dir(), "ffbench")


def configs_dir():
    """The shipped configs: the installed <P>/share/ffbench/configs, or the checkout's configs/."""
    root = checkout_root()
    if root:
        return os.path.join(root, "configs")
    prefix = installed_prefix()
    if prefix:
        return os.path.join(prefix, "share", "ffbench", "configs")
    return os.path.join(repo_root(), "configs")


def shipped(*parts):
    """A path inside the shipped configs: shipped('reference', 'fire-flyer-2.yaml')."""
    return os.path.join(configs_dir(), *parts)


def config_path(path):
    """A path a user or a config gave: as is when it exists, else read against the checkout (or
    the installed share/ffbench), so 'configs/reference/x.yaml' works from any directory; when
    it is nowhere, the checkout's (so the error names where it was looked for)."""
    if os.path.exists(path) or os.path.isabs(path):
        return path
    candidate = os.path.join(repo_root(), path)
    if os.path.exists(candidate):
        return candidate
    parts = os.path.normpath(path).split(os.sep)
    if parts[0] == "configs":  # installed: configs/... lives under share/ffbench/configs
        candidate = shipped(*parts[1:])
        if os.path.exists(candidate):
            return candidate
    return os.path.join(repo_root(), path)
