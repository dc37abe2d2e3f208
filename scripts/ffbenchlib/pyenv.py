"""Find an interpreter that has the modules the scripts need, or say clearly which one is missing."""
import importlib.util
import os
import sys

REQUIRED = ("numpy", "h5py", "yaml")
OPTIONAL = ("matplotlib",)  # only `report` needs it; report checks again and names it
DEBIAN_PACKAGES = {"numpy": "python3-numpy", "h5py": "python3-h5py", "yaml": "python3-yaml",
                   "matplotlib": "python3-matplotlib"}
SYSTEM_PYTHON = "/usr/bin/python3"


def missing(modules=REQUIRED):
    return [m for m in modules if importlib.util.find_spec(m) is None]


def ensure_modules(argv, modules=REQUIRED):
    """Re-exec under Debian's python3 when the first python3 on PATH lacks the modules."""
    lacking = missing(modules)
    if not lacking:
        return
    # execv keeps the pid: the marker stops a loop in this process only, while child scripts
    # (fio-crosscheck started by a sweep) may still re-exec themselves
    if (os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON)
            and os.access(SYSTEM_PYTHON, os.X_OK)
            and os.environ.get("FFB_NO_REEXEC") != str(os.getpid())):
        os.environ["FFB_NO_REEXEC"] = str(os.getpid())
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON] + argv)
    pkgs = " ".join(DEBIAN_PACKAGES[m] for m in lacking)
    sys.stderr.write(f"ffbench: python module(s) {', '.join(lacking)} missing for {sys.executable}; "
                     f"install them with: apt-get install {pkgs} (or run scripts/setup-deps)\n")
    sys.exit(2)
