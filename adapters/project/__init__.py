"""A statewright project: which specs a command or a test run means, and the user's mistakes about it.

Shared by the ``statewright`` command (`adapters.cli`) and the pytest plugin
(`adapters.testing.pytest_plugin`), which import this package and never each
other:

* `adapters.project.settings` -- the ``[tool.statewright]`` table of the
  nearest pyproject.toml (`Project`, `find_project`);
* `adapters.project.targets` -- what a TARGET names (a spec name, a file, a
  module, the project's list, installed packages) and the `Loader` that
  imports them;
* `adapters.project.discovery` -- what a file or module offers as specs, and
  the `Target` each becomes;
* `adapters.project.errors` -- `UsageError` (one line, exit 2) and
  `user_location`, which points at the line of the user's code an error
  came from.

The submodules are imported where they are used, so reading a project's
settings does not import the checker.
"""
