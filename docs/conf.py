"""Sphinx configuration of the documentation site (``make docs``)."""

from __future__ import annotations

import doctest
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the package, hence Airflow: give Airflow a throwaway home, never ~/airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="md-docs-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from airflow_provider_motherduck import __version__  # noqa: E402

project = "airflow-provider-motherduck"
author = "airflow-provider-motherduck developers"
copyright = "airflow-provider-motherduck developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",  # renders the doctest blocks; tests/docs/test_docs_code.py runs them
    "sphinx.ext.graphviz",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build"]
root_doc = "index"
language = "en"
nitpicky = False

# Code blocks: the same flags tests/docs/test_docs_code.py runs the doctests with.
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

autodoc_default_options = {
    "members": True,
    "member-order": "groupwise",  # classes, then functions, then constants
    "show-inheritance": True,
    # Every operator's argument checks and work method: how the base class is extended, shown there.
    "exclude-members": "arg_checks, run",
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "class"
python_use_unqualified_type_names = True

graphviz_output_format = "svg"

html_theme = "furo"
html_title = f"MotherDuck provider for Apache Airflow {release}"
html_static_path = ["_static"]
html_theme_options = {
    "sidebar_hide_name": False,
    "navigation_with_keys": True,
}


# -- literalinclude without the example markers ----------------------------------------------------
# Example DAGs mark the parts the pages show with "# [START name]" / "# [END name]" comments. One
# part may hold another (a whole DAG and each of its tasks), so the markers of the inner parts are
# left out of what a page shows.

import re  # noqa: E402

from docutils import nodes  # noqa: E402
from sphinx.application import Sphinx  # noqa: E402
from sphinx.directives.code import LiteralInclude  # noqa: E402

_MARKER = re.compile(r"^\s*# \[(START|END) [\w.-]+\]\s*$")


class MarkerFreeLiteralInclude(LiteralInclude):
    """``literalinclude`` that drops ``# [START x]`` / ``# [END x]`` lines from what it shows."""

    def run(self) -> list[nodes.Node]:
        result = super().run()
        for top in result:
            for block in top.findall(nodes.literal_block):
                kept = "\n".join(line for line in block.astext().splitlines() if not _MARKER.match(line))
                block.rawsource = kept
                block.children = [nodes.Text(kept)]
        return result


# -- the fault matrix -------------------------------------------------------------------------------
# ``.. fault-matrix::`` renders the cases that tests/hooks/test_fault_matrix.py runs, so the table
# on the reliability page is the tested one.

from docutils.parsers.rst import Directive  # noqa: E402
from docutils.statemachine import StringList  # noqa: E402


class FaultMatrix(Directive):
    """The table of :func:`tests.hooks.fault_matrix.rst_table`."""

    def run(self) -> list[nodes.Node]:
        from tests.hooks.fault_matrix import rst_table

        holder = nodes.container()
        self.state.nested_parse(StringList(rst_table(), "tests/hooks/fault_matrix.py"), 0, holder)
        return holder.children


def setup(app: Sphinx) -> dict[str, bool]:
    app.add_directive("literalinclude", MarkerFreeLiteralInclude, override=True)
    app.add_directive("fault-matrix", FaultMatrix)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
