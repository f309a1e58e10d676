"""Generate man pages (man/mrgen.1 and man/mrgen-CMD.1) from the CLI definitions.

Run ``python -m commands.manpages man`` after changing a command; a test checks the pages are
current. The conventions section of mrgen.1 is taken from the README's "Conventions" section,
so the conventions are written down once.
"""

import re
import sys
from pathlib import Path

import typer

from .main import app

ROOT = Path(__file__).resolve().parent.parent
DATE = "2026-11-22"  # fixed, so regenerating gives identical pages


def _escape(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line
                     for line in text.splitlines())


def _header(name: str, summary: str, version: str) -> list[str]:
    return [f'.TH {name.upper()} 1 "{DATE}" "mrgen {version}" "mrgen manual"',
            ".SH NAME", f"{_escape(name)} \\- {_escape(summary)}"]


def _is_argument(param) -> bool:
    # Duck-typed: typer may ship its own copy of click, so isinstance checks are unreliable.
    return param.param_type_name == "argument"


def _is_option(param) -> bool:
    return param.param_type_name == "option"


def _option_lines(param) -> list[str]:
    if _is_argument(param):
        return [".TP", f"\\fI{_escape(_argument_name(param))}\\fR",
                _escape(getattr(param, "help", None) or "")]
    names = ", ".join(param.opts + param.secondary_opts)
    metavar = "" if param.is_flag else f" \\fI{_escape(_metavar(param))}\\fR"
    text = param.help or ""
    if param.default not in (None, False, ()) and not param.is_flag and param.show_default is not False:
        text += f" [default: {param.default}]"
    return [".TP", f"\\fB{_escape(names)}\\fR{metavar}", _escape(text)]


def _argument_name(param) -> str:
    return (param.metavar or param.name).upper().strip(".")


def _metavar(param) -> str:
    if param.metavar:
        return param.metavar
    return _type_name(param.type_descriptor.annotation)


def _type_name(annotation) -> str:
    import enum
    import typing

    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is tuple:
        return " ".join(_type_name(a) for a in args)
    if typing.get_origin(annotation) is list:
        return _type_name(args[0]) + "..."
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "|".join(str(m.value) for m in annotation)
    return {str: "TEXT", int: "INT", float: "FLOAT"}.get(annotation, "VALUE")


def command_page(name: str, cmd, version: str) -> str:
    args = [p for p in cmd.params if _is_argument(p)]
    opts = [p for p in cmd.params if _is_option(p) and p.name != "help"]
    local = [p for p in opts if p.name not in ("device", "seed", "quiet", "debug")]
    usage = " ".join(_argument_name(a) + ("..." if a.nargs == -1 else "") for a in args)
    lines = _header(f"mrgen-{name.replace(' ', '-')}", cmd.short_help or "", version)
    lines += [".SH SYNOPSIS", f"\\fBmrgen {name}\\fR [\\fIOPTIONS\\fR] {_escape(usage)}",
              ".SH DESCRIPTION", _escape(_clean(cmd.help or ""))]
    if args:
        lines += [".SH ARGUMENTS"] + [line for a in args for line in _option_lines(a)]
    if local:
        lines += [".SH OPTIONS"] + [line for o in local for line in _option_lines(o)]
    lines += [".SH GLOBAL OPTIONS", "\\fB\\-\\-device\\fR, \\fB\\-\\-seed\\fR, "
              "\\fB\\-\\-quiet\\fR, \\fB\\-\\-debug\\fR: see \\fBmrgen\\fR(1).",
              ".SH SEE ALSO", "\\fBmrgen\\fR(1)"]
    return "\n".join(lines) + "\n"


def _clean(text: str) -> str:
    return re.sub(r"\\\[", "[", text)


def _markdown_to_roff(markdown: str) -> list[str]:
    lines = []
    for line in markdown.strip().splitlines():
        if line.startswith("- "):
            lines += [".IP \\(bu 2", _escape(line[2:].replace("`", ""))]
        elif line.startswith("  ") and lines:
            lines.append(_escape(line.strip().replace("`", "")))
        elif not line.strip():
            lines.append(".PP")
        else:
            lines.append(_escape(line.replace("`", "")))
    return lines


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return match.group(1) if match else ""


def main_page(group, version: str) -> str:
    lines = _header("mrgen", "accelerated MRI reconstruction on PyTorch", version)
    lines += [".SH SYNOPSIS", "\\fBmrgen\\fR [\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR "
              "[\\fIOPTIONS\\fR] \\fIINPUT\\fR... \\fIOUTPUT\\fR", ".SH DESCRIPTION",
              _escape(_clean(group.help or "")), ".SH COMMANDS"]
    for name, cmd in _leaf_commands(group):
        lines += [".TP", f"\\fBmrgen\\-{_escape(name.replace(' ', '-'))}\\fR(1)",
                  _escape(cmd.short_help or "")]
    lines += [".SH GLOBAL OPTIONS"]
    lines += [line for p in group.params if _is_option(p) and p.name != "help"
              for line in _option_lines(p)]
    lines += [".SH CONVENTIONS"] + _markdown_to_roff(readme_section("Conventions"))
    lines += [".SH REFERENCES"] + _markdown_to_roff(readme_section("References"))
    lines += [".SH EXIT STATUS", "0 on success; 2 for bad usage or bad input data; 1 for a "
              "runtime failure. Errors are one line on stderr (a traceback with \\-\\-debug)."]
    return "\n".join(lines) + "\n"


def render_all() -> dict[str, str]:
    from mrgen import __version__

    group = typer.main.get_command(app)
    pages = {"mrgen.1": main_page(group, __version__)}
    for name, cmd in _leaf_commands(group):
        pages[f"mrgen-{name.replace(' ', '-')}.1"] = command_page(name, cmd, __version__)
    return pages


def _leaf_commands(group, prefix=""):
    """(name, command) for every runnable command, "train prior" for nested groups."""
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _leaf_commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def write_all(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (folder / name).write_text(text)


if __name__ == "__main__":
    write_all(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "man"))
