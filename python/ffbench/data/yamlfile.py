"""`load_yaml`: the one loader of every YAML file ffbench reads (sweep configs, references, cluster
and model descriptions, GPU peaks), so each failure reads the same way."""
import yaml

from ffbench.errors import ConfigError


def load_yaml(path, error=ConfigError, what="config"):
    """The YAML document in `path`, read as UTF-8 (a BOM is allowed). Every failure is one `error`
    line naming the file and the fix: cannot be read, not UTF-8 text, not valid YAML (with its line
    when known)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); save "
                    f"the {what} as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{path}: not valid YAML{where}: {problem}") from None
