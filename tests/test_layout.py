"""The package's layout: imports run one way, from the layer up to the workflow (README, Layout)."""

import ast
from pathlib import Path

VMP = Path(__file__).resolve().parents[1] / "vmp"
# A module imports only from stages before its own (or its own folder).
STAGES = ["names", "io", "layer", "data", "models", "training", "analysis", "workflow"]
COMMANDS = ["fetch", "evaluate"]  # the user commands sit on top


def stage(module: str) -> int:
    parts = module.split(".")[1:]
    order = STAGES + COMMANDS
    return order.index(parts[0]) if parts and parts[0] in order else -1


def vmp_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vmp."):
            yield node.module, node.lineno, node.col_offset > 0


def test_imports_run_one_way():
    wrong = []
    for path in VMP.rglob("*.py"):
        module = ".".join(("vmp", *path.relative_to(VMP).with_suffix("").parts))
        if module == "vmp.__init__":  # the package's lazy `vmp.MotionPromptLayer`
            continue
        for target, line, _ in vmp_imports(path):
            if stage(target) > stage(module):
                wrong.append(f"{path.relative_to(VMP.parent)}:{line} imports {target}")
    assert not wrong, "imports against the pipeline's direction:\n" + "\n".join(wrong)


def test_imports_inside_functions_say_why():
    # An import inside a function is there to keep torch (or av, pandas) out of Snakemake's parse
    # of the workflow; each one says so on its line or the line above.
    silent = []
    for path in VMP.rglob("*.py"):
        lines = path.read_text().splitlines()
        for target, line, inner in vmp_imports(path):
            context = " ".join(lines[max(0, line - 5) : line]).lower()
            if inner and "parse" not in context and "first use" not in context:
                silent.append(f"{path.relative_to(VMP.parent)}:{line} imports {target}")
    assert not silent, "imports inside functions without a reason:\n" + "\n".join(silent)


def test_every_stage_folder_is_a_package_and_every_module_in_the_readme():
    readme = (VMP.parent / "README.md").read_text()
    for folder in ("layer", "data", "models", "training", "analysis", "workflow"):
        assert (VMP / folder / "__init__.py").exists()
    missing = [
        str(p.relative_to(VMP.parent))
        for p in VMP.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
        and f"`{p.relative_to(VMP.parent)}`" not in readme
    ]
    assert not missing, f"modules missing from the README's layout: {missing}"
