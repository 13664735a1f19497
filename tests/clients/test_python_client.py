"""Unit tests of the Python client (easytorch_client) against a real easytorchd.

    python3 test_python_client.py /path/to/easytorchd [test names]

Runs the tests of every concept, one file each: test_client_models.py (definitions,
parameters, predictions, versions, ONNX, spec helpers, tokens), test_client_training.py
(push/step, train, client-side fit, gradients, binary transport, body limits),
test_client_jobs.py (evaluate, jobs, fit as a job, set_lr), test_client_events.py (event
streams, resume with Last-Event-ID) and test_client_graphs.py (graph models: create_graph,
named inputs and targets, several outputs). Names are unittest names such as
test_client_jobs.JobTests.test_cancel_mid_run.

Imports easytorch_client from wherever Python finds it (run_python_tests.py runs this inside
a venv where the package was pip-installed). PyTorch (required: a missing torch fails) is the
oracle for outputs, gradients and optimizer steps. Ends with `N passed, M failed`.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import client_common  # noqa: E402
from daemon import summary  # noqa: E402

MODULES = ["test_client_models", "test_client_training", "test_client_jobs", "test_client_events",
           "test_client_graphs"]


def main():
    if len(sys.argv) < 2:
        print("usage: test_python_client.py EASYTORCHD [unittest names]", file=sys.stderr)
        return 2
    client_common.EXE = sys.argv[1]
    et, np, torch = client_common.et, client_common.np, client_common.torch
    print("easytorch_client from %s; numpy %s; torch %s" % (
        os.path.dirname(et.__file__), np.__version__ if np else "absent", torch.__version__))
    loader = unittest.TestLoader()
    names = sys.argv[2:]
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = unittest.TestSuite(loader.loadTestsFromName(m) for m in MODULES)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped)
    summary(passed, failed, len(result.skipped))
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
